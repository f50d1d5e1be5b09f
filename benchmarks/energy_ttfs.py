#!/usr/bin/env python
"""Cost of TTFS energy counting: the evaluation pass with and without the count, in the same process.

    python benchmarks/energy_ttfs.py                          # FC2 on 2,000 MNIST test images (synthetic if absent)
    python benchmarks/energy_ttfs.py --model=VGG --data=CIFAR10 --n=256 --batch=128

Times three streaming passes over the same inputs, alternating, ``--repeats`` rounds each (all
XLA-compiled and warmed up first): ``plain`` = ``evaluate_ttfs(snn, x, y)``, ``counted`` =
``evaluate_ttfs(snn, x, y, energy=True)`` (the count inside the evaluation pass) and ``separate`` =
``count_ttfs(snn, x)`` (a pass of its own). Prints per-pass seconds and the overhead of counting,
(counted − plain)/plain, from the fastest pass of each kind and as the median over rounds; the
issue's target is ≤ 20 %.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from tfspike.data.paths import ENV_OFFLINE  # noqa: E402
from tfspike.energy import count_ttfs  # noqa: E402
from tfspike.errors import MissingDataError  # noqa: E402
from tfspike.models.ttfs_zoo import build_snn_model, input_shape  # noqa: E402
from tfspike.ttfs import evaluate_ttfs  # noqa: E402


def inputs(model_name, data_name, n, data_dir):
    """The first ``n`` test images, preprocessed as the SNN takes them (``input_is="value"``), or
    synthetic ones when the data set is not on disk (never downloaded): MNIST-like (uniform with ~60 %
    exact zeros) or CIFAR-like (standardised values, every pixel spikes)."""
    os.environ.setdefault(ENV_OFFLINE, "1")
    shape = input_shape(model_name, data_name)
    try:
        from tfspike.data.images import load_image_dataset
        from tfspike.data.preprocess import ttfs_preprocess

        _, (x, y) = load_image_dataset(data_name, data_dir)
        x = ttfs_preprocess(data_name, x[:n], flatten=len(shape) == 1)
        return x, np.asarray(y[:n]).reshape(-1), "real"
    except MissingDataError:
        rng = np.random.default_rng(0)
        if data_name.startswith("CIFAR"):
            x = rng.normal(0.0, 1.0, (n,) + shape).clip(-1.88, 2.09).astype("float32")
        else:
            x = rng.uniform(0, 1, (n,) + shape).astype("float32")
            x[x < 0.6] = 0.0
        return x, rng.integers(0, 10, n), "synthetic"


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="FC2", help="FC2 or VGG (zoo model name)")
    ap.add_argument("--data", default="MNIST", help="MNIST | FMNIST | CIFAR10 | CIFAR100")
    ap.add_argument("--n", type=int, default=2000, help="test inputs per pass")
    ap.add_argument("--batch", type=int, default=256, help="evaluation batch size")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data_dir", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                       "..", "shared", "data"))
    a = ap.parse_args()
    snn = build_snn_model(a.model, a.data, input_is="value")
    x, y, source = inputs(a.model, a.data, a.n, a.data_dir)
    passes = {"plain": lambda: evaluate_ttfs(snn, x, y, batch_size=a.batch),
              "counted": lambda: evaluate_ttfs(snn, x, y, batch_size=a.batch, energy=True),
              "separate": lambda: count_ttfs(snn, x, batch_size=a.batch)}
    for fn in passes.values():  # trace and compile every step outside the timing
        fn()
    times = {k: [] for k in passes}
    for _ in range(a.repeats):
        for k, fn in passes.items():
            times[k].append(timed(fn))
    t = {k: np.asarray(v) for k, v in times.items()}
    overhead = t["counted"] / t["plain"] - 1.0  # per round: both passes saw about the same machine load
    best = t["counted"].min() / t["plain"].min() - 1.0
    report = count_ttfs(snn, x, batch_size=a.batch)
    print(f"{a.model} {a.data} n={a.n} ({source}) batch={a.batch} repeats={a.repeats}")
    for k in passes:
        print(f"  {k:<9} s/pass min {t[k].min():.4f} median {np.median(t[k]):.4f}")
    print(f"  counting overhead in the evaluation pass: best-of-rounds {best * 100:.1f} %, "
          f"median of rounds {np.median(overhead) * 100:.1f} % (target <= 20 %); "
          f"separate pass / plain: median {np.median(t['separate'] / t['plain']):.2f}")
    print(f"  per sample: synops {report.synops:.4g}, ANN twin MACs {report.ann_macs:.4g}, "
          f"45nm_fp32 ratio {report.ratio_vs_ann('45nm_fp32'):.4f}")


if __name__ == "__main__":
    main()
