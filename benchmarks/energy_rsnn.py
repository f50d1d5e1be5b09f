#!/usr/bin/env python
"""Time the RSNN energy counting against the plain evaluation, in one process, one line per task.

    python benchmarks/energy_rsnn.py                             # ECG shape (4-36-6, T=1300), 141 samples
    python benchmarks/energy_rsnn.py --tasks ecg,smnist --samples 256 --repeats 5 --neuron ALIF

Three passes over the same inputs (the task's preset network, random init, random inputs of the task's
kind: 0/1 spikes for ECG/SHD, pixel-like analog values with zeros for (P)S-MNIST; compile time excluded
by a warm-up call of each). The passes are dense, so their time does not depend on how much the network
spikes; an untrained network hardly spikes, so for meaningful counts load trained weights with
``--reference_npz`` (e.g. ``../shared/golden/brf/ecg_brf.npz`` with ``--tasks ecg --neuron BRF``):

* ``evaluate``: :func:`tfspike.rsnn.train.evaluate` (``model.evaluate``, jit_compile as ``fit_recipe``);
* ``count``: :func:`tfspike.energy.rsnn.count_rsnn` alone (a second pass after an evaluation);
* ``one_pass``: :func:`tfspike.energy.rsnn.evaluate_and_count`, the evaluation and the counts together.

Prints min and median seconds of ``--repeats`` runs and the ratios ``one_pass/evaluate`` (the cost of
evaluating with counting, budget <= 1.20) and ``(evaluate+count)/evaluate`` (evaluating, then counting).
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfspike.rsnn.neurons import neuron_names  # noqa: E402  (TensorFlow-free: --help stays instant)

TASKS = {"ecg": "ECG", "smnist": "SMNIST", "psmnist": "PSMNIST", "shd": "SHD"}


def timed(fn, repeats):
    fn()  # warm-up: tracing and XLA compilation
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="ecg", help=f"comma-separated, of {', '.join(TASKS)}")
    ap.add_argument("--neuron", default="BRF", choices=neuron_names())
    ap.add_argument("--samples", type=int, default=141, help="evaluated samples (ECG test set: 141)")
    ap.add_argument("--batch_size", type=int, default=None, help="default: the recipe's test batch size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-jit", dest="jit", action="store_false")
    ap.add_argument("--reference_npz", default=None, help="reference checkpoint to load (one task only)")
    args = ap.parse_args(argv)

    import keras
    import numpy as np

    from tfspike.energy.rsnn import count_rsnn, evaluate_and_count
    from tfspike.rsnn.presets import build_rsnn, preset
    from tfspike.rsnn.reference_io import import_reference_npz
    from tfspike.rsnn.train import evaluate

    for name in args.tasks.split(","):
        task = TASKS[name]
        keras.utils.set_random_seed(0)
        p = preset(args.neuron, task)
        batch = args.batch_size or p["test_batch_size"]
        model = build_rsnn(args.neuron, task)
        if args.reference_npz:
            import_reference_npz(model, args.reference_npz)
        model.compile(jit_compile=args.jit)
        rng = np.random.default_rng(0)
        shape = (args.samples, p["steps"], p["input_units"])
        if task in ("SMNIST", "PSMNIST"):
            x = rng.random(shape).astype("float32") * (rng.random(shape) < 0.2)
        else:
            x = (rng.random(shape) < 0.3).astype("float32")
        y = (rng.integers(0, p["output_units"], shape[:2]) if p["per_step_labels"]
             else rng.integers(0, p["output_units"], (args.samples,)))
        ev = timed(lambda: evaluate(model, x, y, batch), args.repeats)
        co = timed(lambda: count_rsnn(model, x, batch, jit_compile=args.jit), args.repeats)
        op = timed(lambda: evaluate_and_count(model, x, y, batch, jit_compile=args.jit), args.repeats)
        report = count_rsnn(model, x, batch, jit_compile=args.jit)
        print(f"{name} {args.neuron} {args.samples}x{p['steps']}x{p['input_units']} H={p['hidden_units']} "
              f"batch={batch} jit={args.jit}: evaluate_s min={ev[0]:.3f} med={ev[1]:.3f} | "
              f"count_s min={co[0]:.3f} med={co[1]:.3f} | one_pass_s min={op[0]:.3f} med={op[1]:.3f} | "
              f"one_pass/evaluate min={op[0] / ev[0]:.3f} med={op[1] / ev[1]:.3f} | "
              f"(evaluate+count)/evaluate min={(ev[0] + co[0]) / ev[0]:.3f} med={(ev[1] + co[1]) / ev[1]:.3f} | "
              f"SOP={report.meta['sop']:.1f} input={report.meta['input_is']} "
              f"SNN/ANN(45nm_fp32)={report.ratio_vs_ann():.4f}", flush=True)


if __name__ == "__main__":
    main()
