"""Benchmark: ReLU → TTFS conversion of the CIFAR VGG16 with BN after ReLU (cifar10vgg, 15,001,418 params).

Goal (issue 3): conversion ≤ 30 s on a 2-core CPU, float64 verification included. Prints one line per
measurement; the baselines (``clone_model`` of the same network, one ``predict`` batch) are measured in
the same process so the ratios survive a busy machine.

    python benchmarks/convert_vgg16.py [--repeats 3] [--verify_batch 16] [--dtype float32]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfspike.convert.ttfs import relu_to_ttfs  # noqa: E402
from tfspike.models.ttfs_zoo import build_relu_model  # noqa: E402


def randomize_bn(model, seed=0):
    """BN statistics as after training (some negative γ), so every fold and the sign-aware pools do work."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            gamma = rng.uniform(0.5, 1.5, c) * rng.choice([-1.0, 1.0], c, p=[0.2, 0.8])
            layer.set_weights([gamma, rng.normal(0, 0.3, c), rng.normal(0.5, 0.2, c), rng.uniform(0.2, 0.6, c)])


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--verify_batch", type=int, default=16)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args()

    keras.utils.set_random_seed(0)
    model = build_relu_model("VGG_BN", "CIFAR10", dropout="cifar-vgg")
    randomize_bn(model)
    n_params = model.count_params()
    x = np.random.default_rng(1).uniform(-1.882, 2.093, (args.verify_batch, 32, 32, 3)).astype("float32")
    model.predict(x, verbose=0)  # warm up

    t_clone, _ = best_of(lambda: keras.models.clone_model(model), args.repeats)
    t_predict, _ = best_of(lambda: model.predict(x, verbose=0, batch_size=len(x)), args.repeats)
    t_noverify, _ = best_of(lambda: relu_to_ttfs(model, input_range=(-3, 3), dtype=args.dtype, verify=False),
                            args.repeats)
    t_convert, (snn, report) = best_of(
        lambda: relu_to_ttfs(model, input_range=(-3, 3), dtype=args.dtype, verify_batch=args.verify_batch,
                             return_report=True), args.repeats)
    dz = np.abs(snn.predict(x, verbose=0) - model.predict(x, verbose=0)).max()

    print(f"model VGG_BN CIFAR10 params={n_params} hidden_layers={len(snn.spiking_layers())} cpus={os.cpu_count()}")
    print(f"clone_model seconds={t_clone:.2f}")
    print(f"predict_batch{args.verify_batch} seconds={t_predict:.3f}")
    print(f"convert_vgg16_noverify seconds={t_noverify:.2f} ratio_to_clone={t_noverify / t_clone:.2f}")
    print(f"convert_vgg16 seconds={t_convert:.2f} ratio_to_clone={t_convert / t_clone:.2f} "
          f"ratio_to_predict={t_convert / t_predict:.1f} goal_seconds=30 "
          f"verify_float64_max_abs_dz={report['verification']['max_abs_logit_diff']:.2e} "
          f"{args.dtype}_max_abs_dz={dz:.2e}")


if __name__ == "__main__":
    main()
