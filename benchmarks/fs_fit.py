#!/usr/bin/env python
"""Benchmark of the FS fitter: one full-batch TorchAdam fit at K=16 on linspace(-8, 12, 1e5).

    python benchmarks/fs_fit.py                 # 20,000 steps (the issue's target: <= 60 s on 2 cores)
    python benchmarks/fs_fit.py --steps=2000 --eager_steps=50 --step_mode_steps=300

Prints one line per measurement: wall seconds and process CPU seconds (the latter is less disturbed
by other processes on a shared machine), and the speed-up over an uncompiled eager loop measured in
the same process. XLA is requested explicitly (``jit_compile=True``).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfspike.utils.xla import prefer_wide_vectors  # noqa: E402

prefer_wide_vectors()  # as main.py --model_type=FS does; before TensorFlow compiles anything

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfspike.fs.dynamics import fs_forward  # noqa: E402
from tfspike.fs.fit import FSFitter, TorchAdam  # noqa: E402
from tfspike.fs.params import get_params  # noqa: E402
from tfspike.fs.targets import CANONICAL_GRID, make_grid, target_tf  # noqa: E402
from tfspike.fs.trends import PUBLISHED_TRENDS  # noqa: E402


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--K", type=int, default=16)
    ap.add_argument("--points", type=int, default=CANONICAL_GRID[2])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--eager_steps", type=int, default=100)
    ap.add_argument("--step_mode_steps", type=int, default=1000)
    args = ap.parse_args()
    K = args.K
    x = make_grid((*CANONICAL_GRID[:2], args.points))
    y = target_tf("swish")(tf.constant(x))
    init = np.stack(get_params(f"tbpi_trend_k{K}").as_tuple()) if K in PUBLISHED_TRENDS else \
        np.abs(np.random.default_rng(0).normal(size=(3, K))).astype(np.float32)
    print(f"# TF {tf.__version__}, {os.cpu_count()} CPUs visible, K={K}, {args.points} points, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}", flush=True)

    # baseline: uncompiled eager loop (GradientTape + TorchAdam per step, Python-side)
    xt = tf.constant(x)
    opt = TorchAdam(1e-3)

    def eager(n):
        theta, m, v = tf.constant(init), tf.zeros_like(init), tf.zeros_like(init)
        for t in range(1, n + 1):
            with tf.GradientTape() as tape:
                tape.watch(theta)
                loss = tf.reduce_mean(tf.square(fs_forward(xt, theta[0], theta[1], theta[2]) - y))
            g = tape.gradient(loss, theta)
            theta, m, v = opt.update(theta, g, m, v, tf.constant(t))
        return float(loss)

    eager(2)
    _, w, c = timed(lambda: eager(args.eager_steps))
    eager_per_step = w / args.eager_steps
    print(f"fs_fit_eager k{K} steps={args.eager_steps} seconds={w:.2f} cpu_seconds={c:.2f} "
          f"ms_per_step={1e3 * eager_per_step:.2f}", flush=True)

    fitter = FSFitter(x, y, K, 1e-3, "none", 0.0, chunk=1000)
    # compile both modes outside the timed region
    fitter.run(init, 2, mode="step")
    fitter.run(init, min(1000, args.steps), mode="loop")

    r, w, c = timed(lambda: fitter.run(init, args.step_mode_steps, mode="step"))
    print(f"fs_fit_step_mode k{K} steps={args.step_mode_steps} seconds={w:.2f} cpu_seconds={c:.2f} "
          f"ms_per_step={1e3 * w / args.step_mode_steps:.2f} speedup_vs_eager={eager_per_step * args.step_mode_steps / w:.1f}",
          flush=True)

    r, w, c = timed(lambda: fitter.run(init, args.steps, mode="loop"))
    print(f"fs_fit k{K} steps={args.steps} seconds={w:.2f} cpu_seconds={c:.2f} "
          f"ms_per_step={1e3 * w / args.steps:.2f} speedup_vs_eager={eager_per_step * args.steps / w:.1f} "
          f"reported_loss={r['losses'][-1]:.7f} best_loss={r['best_loss']:.7f}", flush=True)


if __name__ == "__main__":
    main()
