#!/usr/bin/env python
"""Time one training step (forward, backward, Adam) of the BRF RSNNs on CPU, one line per task.

    python benchmarks/resonate_step.py                       # smnist, ecg, shd; BRF; jit_compile=True
    python benchmarks/resonate_step.py --tasks ecg --neuron RF --repeats 5
    python benchmarks/resonate_step.py --no-jit              # the same without XLA

Prints e.g. ``smnist train_step_s=1.23 ref_torch_s=11.8 speedup=9.6x`` (median of ``--repeats``
steps after ``--warmup`` steps; compile time is excluded). Random inputs with the task's shapes and
the task's recipe (learning rate, global clipping for S-MNIST).
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfspike.rsnn.neurons import neuron_names  # noqa: E402  (TensorFlow-free: --help stays instant)

# task: (preset name, batch, PyTorch reference seconds per step on a 2-core CPU, from the issue)
TASKS = {"smnist": ("SMNIST", 256, 11.8), "ecg": ("ECG", 16, 18.6), "shd": ("SHD", 32, 1.68)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="smnist,ecg,shd")
    ap.add_argument("--neuron", default="BRF", choices=neuron_names())
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-jit", dest="jit", action="store_false")
    ap.add_argument("--bptt", default="manual", choices=("manual", "autodiff"),
                    help="hand-written backward loop (default) or autodiff through tf.while_loop")
    args = ap.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from tfspike.rsnn.presets import build_rsnn, preset
    from tfspike.rsnn.train import make_optimizer

    for name in args.tasks.split(","):
        task, batch, ref = TASKS[name]
        keras.utils.set_random_seed(0)
        p = preset(args.neuron, task)
        model = build_rsnn(args.neuron, task, bptt=args.bptt)
        model.compile(optimizer=make_optimizer(p["learning_rate"], p["clipnorm"]), jit_compile=args.jit)
        rng = np.random.default_rng(0)
        if task == "SMNIST":  # pixel intensities
            x = rng.random((batch, p["steps"], 1)).astype("float32")
        else:  # spike-like 0/1 inputs
            x = (rng.random((batch, p["steps"], p["input_units"])) < 0.3).astype("float32")
        y = (rng.integers(0, p["output_units"], (batch, p["steps"])) if p["per_step_labels"]
             else rng.integers(0, p["output_units"], (batch,)))
        data = (tf.constant(x), tf.constant(y))
        times = []
        for i in range(args.warmup + args.repeats):
            t0 = time.perf_counter()
            logs = model.train_on_batch(*data, return_dict=True)
            float(logs["loss"])  # block until done
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f"{name} train_step_s={med:.3f} ref_torch_s={ref} speedup={ref / med:.1f}x "
              f"(neuron={args.neuron} batch={batch} T={p['steps']} {p['input_units']}-{p['hidden_units']}-"
              f"{p['output_units']} jit={args.jit} bptt={args.bptt} tbptt={p['tbptt']} "
              f"min={min(times):.3f} max={max(times):.3f})", flush=True)


if __name__ == "__main__":
    main()
