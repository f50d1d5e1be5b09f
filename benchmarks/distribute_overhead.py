"""Cost of the ``tf.distribute`` strategy itself: train-step time with 2 logical CPU devices vs 1 device, on
the same cores, in the same process.

    python benchmarks/distribute_overhead.py                      # TTFS FC2 (batch 128) and BRF ECG (batch 16)
    python benchmarks/distribute_overhead.py --workloads fc2 --steps 20 --rounds 5 --json overhead.json

The CPU is split into 2 logical devices before TensorFlow starts (``tfspike.distribute.split_cpu``).
``one`` is the model built outside any strategy and trained by Keras' ``fit`` on ``/cpu:0`` (what
``--distribute=none`` runs); ``mirrored`` is the same model built under a ``MirroredStrategy`` over both
logical devices and trained by :func:`tfspike.distribute.fit` (what ``--distribute=mirrored
--cpu_devices=2`` runs), same global batch. Both logical devices share the same physical cores, so
``ratio`` = mirrored / one (medians of the per-step times over alternating rounds, one epoch of
``--steps`` batches per timing) is the overhead of splitting the batch, the all-reduce and the loop —
not a speed-up. TTFS runs without XLA on both sides (XLA is off under a strategy for TTFS); the RSNN
compiles its whole step with XLA on one device and each replica's pass through time under the
strategy (``RSNN._on_replica``). Synthetic data with the tasks' shapes.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

WORKLOADS = ("fc2", "brf_ecg")


def build(name):
    """``(model factory, batch size)`` of a workload; the factory builds and compiles the model."""
    import keras

    if name == "fc2":
        from tfspike.models.ttfs_zoo import build_snn_model, make_optimizer

        def make():
            keras.utils.set_random_seed(0)
            model = build_snn_model("FC2", "MNIST", input_is="value")
            model.compile(optimizer=make_optimizer("FC2", 5e-4), jit_compile=False, metrics=["accuracy"],
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            return model

        return make, 128
    from tfspike.rsnn.presets import build_rsnn

    def make():
        keras.utils.set_random_seed(0)
        model = build_rsnn("BRF", "ECG")
        model.compile(optimizer=keras.optimizers.Adam(0.1), jit_compile=True)
        return model

    return make, 16


def data(name, steps, batch):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(1)
    n = steps * batch
    if name == "fc2":
        x = rng.uniform(0, 1, (n, 784)).astype("float32")
        x[x < 0.5] = 0.0
        y = rng.integers(0, 10, n)
    else:
        x = (rng.random((n, 1300, 4)) < 0.3).astype("float32")
        y = rng.integers(0, 6, (n, 1300))
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).prefetch(tf.data.AUTOTUNE)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--steps", type=int, default=10, help="batches per timed epoch")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None, help="write the records to this file")
    args = p.parse_args()
    names = args.workloads.split(",")
    if any(n not in WORKLOADS for n in names) or args.steps < 1 or args.rounds < 1:
        sys.exit(f"error: --workloads from {', '.join(WORKLOADS)}; --steps and --rounds >= 1")

    from tfspike.distribute import fit, make_strategy

    strategy = make_strategy("mirrored", cpu_devices=2)  # splits the CPU before TensorFlow starts
    from _timing import alternate, cpu_model, load_average, summary, write_records

    records = []
    for name in names:
        make, batch = build(name)
        one = make()
        with strategy.scope():
            two = make()
        dataset = data(name, args.steps, batch)

        def epoch(model):
            def timed():
                t = time.perf_counter()
                fit(model, dataset, epochs=1, verbose=0, shuffle=False)
                return [(time.perf_counter() - t) / args.steps]
            return timed

        for model in (one, two):  # warm-up: traces and compiles
            epoch(model)()
        times = alternate({"one": epoch(one), "mirrored": epoch(two)}, args.rounds)
        s1, s2 = summary(times["one"]), summary(times["mirrored"])
        record = {"workload": f"{name} batch {batch}", "one_median_s": s1["median"], "one_min_s": s1["min"],
                  "mirrored_median_s": s2["median"], "mirrored_min_s": s2["min"],
                  "ratio": s2["median"] / s1["median"], "replicas": strategy.num_replicas_in_sync,
                  "cpu": cpu_model(), "load_average": load_average()}
        records.append(record)
        print(f"{name} batch={batch} one_step_s={s1['median']:.4f} (min {s1['min']:.4f}) "
              f"mirrored_step_s={s2['median']:.4f} (min {s2['min']:.4f}) ratio={record['ratio']:.2f} "
              f"cpu={record['cpu']!r} load={record['load_average']}", flush=True)
    if args.json:
        write_records(args.json, records)


if __name__ == "__main__":
    main()
