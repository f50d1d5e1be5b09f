"""Cost of FS operation counting relative to a plain evaluation pass, measured in the same process.

    python benchmarks/energy_fs.py                       # the FS-swish CNN and FC2, 2,000 MNIST-shaped images
    python benchmarks/energy_fs.py --models cnn --n 2000 --batch_size 500 --repeats 5

Models: ``cnn`` is the architecture of ``examples/fs_mnist_cnn.py`` (Conv32-pool-Conv64-pool-Flatten-
Dense128-Dense10, swish), ``fc2`` is 784-340-10 (swish); both converted with
``activations_to_fewspike`` to Stöckl's FS-swish (K = 16, ``voltage_scaling="abs_plus_one"``), random
weights, synthetic images in [0, 1] with half the pixels zero. The plain pass is the XLA-compiled model call
over the batches (outputs fetched to NumPy, as ``predict`` does); the counting pass is
:meth:`tfspike.energy.fs.FSCounter.count` with ``return_outputs=True`` — the same outputs (checked bit for
bit: ``bit_identical``) plus every count, so it replaces the evaluation pass. A second baseline, ``unscaled``, is the plain pass
of the same network with ``voltage_scaling="none"`` (the same outputs, without the gradient-only division
per step, which the scaled form no longer computes in its forward pass): ``vs_unscaled`` is the cost of
counting itself (XLA on CPU has no multi-output loop fusion: the count is a second, cheaper K-step chain
beside the output's, plus the count of the max-pool winners from their inputs). Rounds alternate; one line per model: ``ratio_min`` (fastest counting / fastest plain),
``ratio_median``, the same against ``unscaled``, and the one-off counter build time (clone, trace and XLA
compile). A third baseline, ``quotient``, is the same network evaluated the way FS layers with
``abs_plus_one`` ran before issue 13: the surrogate applied to the quotient (v - T)/(|v| + 1) at every step
(forced by a surrogate that overrides ``__call__``); ``plain_vs_quotient`` is the evaluation speed-up of
the division-free forward pass. Timings on a shared CPU are noisy.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build(name):
    import keras

    inp = keras.Input((28, 28, 1))
    if name == "cnn":
        x = keras.layers.Conv2D(32, 3, activation="swish", name="conv1")(inp)
        x = keras.layers.MaxPooling2D(name="pool1")(x)
        x = keras.layers.Conv2D(64, 3, activation="swish", name="conv2")(x)
        x = keras.layers.MaxPooling2D(name="pool2")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(128, activation="swish", name="dense1")(x)
    elif name == "fc2":
        x = keras.layers.Flatten(name="flatten")(inp)
        x = keras.layers.Dense(340, activation="swish", name="dense1")(x)
    else:
        raise SystemExit(f"unknown model {name!r}")
    return keras.Model(inp, keras.layers.Dense(10, name="logits")(x))


def unscaled_twin(fs_model):
    """The same network with ``voltage_scaling="none"`` in every FS layer: the same outputs, without the
    per-step division (gradient-only) that the plain pass evaluates."""
    import keras

    from tfspike.fs import FewSpike

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, FewSpike):
            config["voltage_scaling"] = "none"
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(fs_model, clone_function=clone)
    twin.set_weights(fs_model.get_weights())
    return twin


def quotient_twin(fs_model):
    """The same network with the pre-issue-13 forward pass: every FS layer's surrogate is a Triangle whose
    ``__call__`` is overridden, so ``fs_forward`` applies it to the quotient (v - T)/(|v| + 1)."""
    from tfspike.fs import FewSpike
    from tfspike.surrogates.triangle import Triangle

    class QuotientTriangle(Triangle):
        def __call__(self, x):
            return super().__call__(x)

    twin = unscaled_twin(fs_model)
    for layer, original in zip(twin.layers, fs_model.layers):
        if isinstance(layer, FewSpike):
            layer.voltage_scaling = original.voltage_scaling
            layer.surrogate = QuotientTriangle(**original.surrogate.get_config())
    return twin


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="cnn,fc2")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--batch_size", type=int, default=500)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from tfspike.convert import activations_to_fewspike
    from tfspike.energy.fs import FSCounter

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (args.n, 28, 28, 1)).astype("float32")
    x[x < 0.5] = 0.0
    for name in args.models.split(","):
        keras.utils.set_random_seed(0)
        fs_model, _ = activations_to_fewspike(build(name), {"silu": "stoeckl_swish_k16"})
        unscaled, quotient = unscaled_twin(fs_model), quotient_twin(fs_model)

        def compiled(model):
            return tf.function(lambda b: model(b, training=False), jit_compile=True, reduce_retracing=True)

        def evaluate(fn):
            return np.concatenate([np.asarray(fn(tf.convert_to_tensor(x[i:i + args.batch_size])))
                                   for i in range(0, len(x), args.batch_size)])

        plain_fn, unscaled_fn, quotient_fn = compiled(fs_model), compiled(unscaled), compiled(quotient)

        def plain():
            return evaluate(plain_fn)

        def plain_unscaled():
            return evaluate(unscaled_fn)

        def plain_quotient():
            return evaluate(quotient_fn)

        t = time.perf_counter()
        counter = FSCounter(fs_model, jit_compile=True)
        report, out = counter.count(x, batch_size=args.batch_size, return_outputs=True)
        build_s = time.perf_counter() - t
        ref = plain()
        assert np.allclose(out, ref, atol=1e-4) and np.allclose(plain_unscaled(), ref, atol=1e-4), "outputs changed"
        bit_identical = all(np.array_equal(o, ref) for o in (out, plain_unscaled(), plain_quotient()))
        plain_t, unscaled_t, quotient_t, count_t = [], [], [], []
        for _ in range(args.repeats):
            for fn, times in ((plain, plain_t), (plain_unscaled, unscaled_t), (plain_quotient, quotient_t),
                              (lambda: counter.count(x, batch_size=args.batch_size, return_outputs=True), count_t)):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
        print(f"{name} n={args.n} batch={args.batch_size} ratio_min={min(count_t) / min(plain_t):.3f} "
              f"ratio_median={statistics.median(count_t) / statistics.median(plain_t):.3f} "
              f"vs_unscaled_min={min(count_t) / min(unscaled_t):.3f} "
              f"vs_unscaled_median={statistics.median(count_t) / statistics.median(unscaled_t):.3f} "
              f"plain_vs_quotient_min={min(plain_t) / min(quotient_t):.3f} "
              f"plain_vs_quotient_median={statistics.median(plain_t) / statistics.median(quotient_t):.3f} "
              f"plain_s={min(plain_t):.3f} unscaled_s={min(unscaled_t):.3f} quotient_s={min(quotient_t):.3f} "
              f"count_s={min(count_t):.3f} "
              f"counter_build_s={build_s:.1f} bit_identical={bit_identical} "
              f"synops={report.synops:.0f} macs={report.macs:.0f} ann_macs={report.ann_macs:.0f} "
              f"ratio_vs_ann_45nm_fp32={report.ratio_vs_ann():.3f}", flush=True)


if __name__ == "__main__":
    main()
