#!/usr/bin/env python
"""Time one BRF/RF RSNN training step (forward, backward, Adam) of tfspike against the PyTorch reference,
measured in the same sitting, and against a roofline.

    python benchmarks/resonate_step.py                                   # tfspike vs roofline only
    python benchmarks/resonate_step.py --reference_dir ../brf-neurons \\
        --reference_python /path/to/torch-venv/bin/python --json resonate.json
    python benchmarks/resonate_step.py --tasks ecg --neuron RF --rounds 5 --steps 5 --threads 1

What each side runs, per workload (S-MNIST: batch 256, T 784, 1-256-10; SHD: 32, 250, 700-128-20;
ECG: 16, 1300, 4-36-6), on the same synthetic batch of the task's shape (S-MNIST pixels U(0, 1); SHD
and ECG 0/1 inputs with p = 0.3; random class labels, per step for ECG):

* tfspike: ``build_rsnn(neuron, task)`` compiled with the recipe's Adam (eps 1e-8; global-norm clip
  1.0 for S-MNIST) and ``jit_compile=True``; one step is ``model.train_on_batch(x, y)`` (its metrics
  included) until the loss is on the host.
* reference (``--reference_dir``, a checkout of AdaptiveAILab/brf-neurons, run by
  ``--reference_python``, a Python with PyTorch, in a subprocess): the model class its training scripts
  build (``snn.models.SimpleResRNN`` for BRF, ``SimpleVanillaRFRNN`` for RF) with the same preset
  (sizes, init ranges, label_last), wrapped in ``torch.jit.script`` as the scripts do; one step is the
  scripts' loop body: ``zero_grad``, forward on time-major input, the task's
  ``experiments/<task>/tools.py:apply_seq_loss`` (sum over kept steps of the batch-mean NLL, the same
  loss tfspike backpropagates), ``loss.item()``, ``backward``, ``clip_grad_norm_(..., 1.0)`` for S-MNIST
  only, ``Adam.step``. The scripts' accuracy bookkeeping and data loading are left out.

Both sides run full BPTT over all T steps. After ``--warmup`` untimed steps each (XLA compilation,
TorchScript profiling), ``--rounds`` rounds alternate the two sides (A B, B A, ...), each side timing
``--steps`` steps per round; the idle process waits on a pipe, so the sides never share the CPU. The
line per workload gives min and median of both, ratio = reference median / tfspike median, and a
roofline:

* FLOPs (:func:`train_step_flops`): only the matmuls, 2 FLOPs per multiply-add. Forward per step:
  input ``(B, I) @ (I, H)``, recurrent ``(B, H) @ (H, H)`` and readout ``(B, H) @ (H, O)``, over all T
  steps; backward counts twice the forward (the gradients of both matmul operands), so the step is
  3x the forward matmuls. Elementwise neuron updates, the loss and Adam are not counted.
* rate: the best of 5 calls of 64 chained fp32 ``(256, 256) @ (256, 256)`` matmuls under XLA, measured
  in this process just before the workload's rounds (``matmul_gflops``); also the rate at the
  workload's recurrent shape ``(B, H) @ (H, H)`` (``shape_gflops``).
* ideal = FLOPs / rate; ``roofline_ratio`` = tfspike median / ideal (``shape_roofline_ratio`` with the
  shape rate).

``--bptt`` (tfspike only): ``manual`` (default) is the hand-written backward loop with the cell's
closed-form step VJP (BRF, RF); ``tape`` is the same loop with the closed form switched off (the
cell's ``closed_form_vjp`` patched to return None), so each backward step is a GradientTape of the
update, the path before the closed form (and the one ALIF takes); ``autodiff`` differentiates the
plain ``tf.while_loop``. Run two invocations back to back to compare them in one sitting.

Threads: by default each library picks its own (TensorFlow's pools, ``torch.get_num_threads()``).
``--threads N`` sets both (TF intra- and inter-op, ``torch.set_num_threads``). On a machine whose cores
are busy with other jobs, N = 1 gives far steadier figures: PyTorch's OpenMP threads spin-wait for each
other on every small op, which costs most when a core is taken away.

At initialisation the synthetic S-MNIST and ECG batches drive no hidden spikes (``tfspike_warmup_sop``
is recorded); both sides compute densely, so the work per step does not depend on the spike count.

``--json FILE`` writes one record per workload (keys ``workload``, ``tfspike_median_s``,
``reference_median_s``, ``ratio``, ``roofline_ratio`` and the rest of the printed figures). On a shared
machine the figures move with the load; the header prints the load average before and after.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _timing  # noqa: E402
from tfspike.errors import UserError  # noqa: E402  (TensorFlow-free: --help and flag errors stay instant)
from tfspike.rsnn.neurons import neuron_names  # noqa: E402
from tfspike.rsnn.presets import preset  # noqa: E402

# name: (preset task, training batch size of the recipe, the reference's tools.py for that task)
TASKS = {"smnist": ("SMNIST", 256, "experiments/smnist/tools.py"),
         "shd": ("SHD", 32, "experiments/SHD/tools.py"),
         "ecg": ("ECG", 16, "experiments/ecg/tools.py")}
REFERENCE_MODELS = {"BRF": "SimpleResRNN", "RF": "SimpleVanillaRFRNN"}

# Runs under --reference_python. Protocol: one JSON command per stdin line; each reply is one stdout
# line starting with "@@ " (anything else the reference prints is ignored).
REFERENCE_DRIVER = r'''
import importlib.util, json, os, sys, time
import numpy as np
import torch

ref_dir = sys.argv[1]
sys.path.insert(0, ref_dir)
import snn  # noqa: E402  (the reference package)


def reply(obj):
    sys.stdout.write("@@ " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def load_tools(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


reply({"torch": torch.__version__, "threads": torch.get_num_threads()})
step = None
for line in sys.stdin:
    c = json.loads(line)
    if c["cmd"] == "threads":
        torch.set_num_threads(c["threads"])
        reply({"threads": torch.get_num_threads()})
    elif c["cmd"] == "build":
        torch.manual_seed(0)
        tools = load_tools(os.path.join(ref_dir, c["tools"]), "reference_tools_" + c["task"])
        model = getattr(snn.models, c["model"])(
            input_size=c["I"], hidden_size=c["H"], output_size=c["O"],
            adaptive_omega_a=c["omega"][0], adaptive_omega_b=c["omega"][1],
            adaptive_b_offset_a=c["b_offset"][0], adaptive_b_offset_b=c["b_offset"][1],
            out_adaptive_tau_mem_mean=c["tau_out"][0], out_adaptive_tau_mem_std=c["tau_out"][1],
            label_last=c["label_last"], sub_seq_length=c["sub_seq"], output_bias=False)
        model = torch.jit.script(model)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=c["lr"])
        criterion = torch.nn.NLLLoss()
        x = torch.from_numpy(np.load(c["x"])).permute(1, 0, 2)  # time-major view, as the scripts feed it
        y = torch.from_numpy(np.load(c["y"])).long()
        if c["per_step"]:  # ECG: one-hot targets, time-major, cut at sub_seq_length (apply_seq_loss argmaxes)
            target = torch.nn.functional.one_hot(y, c["O"]).float().permute(1, 0, 2)[c["sub_seq"]:]
        else:
            target = y
        clip = c["clip"]
        params = list(model.parameters())

        def step():
            optimizer.zero_grad()
            outputs, _, _ = model(x)
            loss = tools.apply_seq_loss(criterion, outputs, target)
            value = loss.item()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            return value

        reply({"params": sum(p.numel() for p in params)})
    elif c["cmd"] == "run":
        times, loss = [], None
        for _ in range(c["steps"]):
            t0 = time.perf_counter()
            loss = step()
            times.append(time.perf_counter() - t0)
        reply({"times": times, "loss": loss})
    else:
        break
'''


def train_step_flops(batch, steps, inputs, hidden, outputs):
    """Matmul FLOPs of one full-BPTT training step of an I-H-O RSNN (2 per multiply-add).

    Forward, per time step: input ``(B, I) @ (I, H)``, recurrent ``(B, H) @ (H, H)``, readout
    ``(B, H) @ (H, O)``. Backward: for each product, the gradient of each operand is a matmul of the
    same size, so twice the forward. Elementwise work, the loss and the optimizer are not counted.
    """
    forward = 2 * batch * steps * (inputs * hidden + hidden * hidden + hidden * outputs)
    return 3 * forward


def synthetic_batch(p, batch, seed=0):
    """``(x, y)`` numpy arrays of the preset's shapes: S-MNIST pixels U(0, 1), else 0/1 inputs with
    p = 0.3; labels ``(batch,)``, or ``(batch, T)`` with per-step labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if p["task"] in ("SMNIST", "PSMNIST"):
        x = rng.random((batch, p["steps"], p["input_units"])).astype("float32")
    else:
        x = (rng.random((batch, p["steps"], p["input_units"])) < 0.3).astype("float32")
    shape = (batch, p["steps"]) if p["per_step_labels"] else (batch,)
    y = rng.integers(0, p["output_units"], shape).astype("int64")
    return x, y


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--tasks", default="smnist,shd,ecg", help="comma-separated: " + ",".join(TASKS))
    ap.add_argument("--neuron", default="BRF", choices=neuron_names())
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per side and round (default 3)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per side first (default 2)")
    ap.add_argument("--no-jit", dest="jit", action="store_false", help="tfspike without XLA")
    ap.add_argument("--bptt", default="manual", choices=("manual", "tape", "autodiff"),
                    help="tfspike: hand-written backward loop with the closed-form step VJP (default), the same "
                         "loop with a GradientTape per step (tape), or autodiff through tf.while_loop")
    ap.add_argument("--reference_dir", help="a checkout of AdaptiveAILab/brf-neurons")
    ap.add_argument("--reference_python", help="a Python with PyTorch that runs the reference")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads of both sides (TF intra-op and torch.set_num_threads); 0 = each library's "
                         "default. On a loaded machine 1 keeps the two from spinning against the other jobs")
    ap.add_argument("--json", help="write the records to this file")
    args = ap.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise UserError(f"unknown task(s) {','.join(bad) or '(none)'}; choose from {','.join(TASKS)}")
    args.tasks = tasks
    for name in ("rounds", "steps"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.threads < 0:
        raise UserError(f"--threads must be >= 0, got {args.threads}")
    if args.warmup < 0:
        raise UserError(f"--warmup must be >= 0, got {args.warmup}")
    if bool(args.reference_dir) != bool(args.reference_python):
        raise UserError("--reference_dir and --reference_python go together")
    if args.reference_dir:
        if args.neuron not in REFERENCE_MODELS:
            raise UserError(f"the reference comparison covers {', '.join(REFERENCE_MODELS)}, not {args.neuron}")
        probe = os.path.join(args.reference_dir, "snn", "models", "resonaternns.py")
        if not os.path.isfile(probe):
            raise UserError(f"--reference_dir {args.reference_dir} is not a brf-neurons checkout (no {probe})")
        args.reference_dir = os.path.abspath(args.reference_dir)
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise UserError(f"--json {args.json}: its folder does not exist")
    return args


def tfspike_step(args, p, x, y):
    """``(run(n) -> (n step seconds, last logs), parameter count)`` of the tfspike model."""
    import keras
    import tensorflow as tf

    from tfspike.rsnn.presets import build_rsnn
    from tfspike.rsnn.train import make_optimizer

    keras.utils.set_random_seed(0)
    model = build_rsnn(args.neuron, p["task"], bptt="manual" if args.bptt == "tape" else args.bptt)
    if args.bptt == "tape":  # before the first trace: the engine then takes the GradientTape step
        model.hidden.cell.closed_form_vjp = lambda: None
    model.compile(optimizer=make_optimizer(p["learning_rate"], p["clipnorm"]), jit_compile=args.jit)
    data = (tf.constant(x), tf.constant(y))

    def run(n):
        times, logs = [], None
        for _ in range(n):
            t0 = time.perf_counter()
            logs = model.train_on_batch(*data, return_dict=True)
            logs = {k: float(v) for k, v in logs.items()}  # float(): wait for the step
            times.append(time.perf_counter() - t0)
        return times, logs

    return run, model.count_params()


def measure(args, name, reference, tmp):
    """Warm up both sides, alternate the timed rounds, and return the workload's record."""
    task, batch, tools = TASKS[name]
    p = preset(args.neuron, task)
    x, y = synthetic_batch(p, batch)
    run_tf, params = tfspike_step(args, p, x, y)
    logs = run_tf(max(args.warmup, 1))[1]  # at least one step: the compilation
    first = {"tfspike": logs["loss"]}
    runs = {"tfspike": lambda: run_tf(args.steps)[0]}
    # hidden spikes per sample in the warm-up steps: a batch that never spikes would leave the gradient
    # of the readout at zero (the dense work is the same on both sides either way)
    extra = {"params": params, "tfspike_warmup_sop": logs["sop"]}
    if reference is not None:
        import numpy as np

        np.save(os.path.join(tmp, "x.npy"), x)
        np.save(os.path.join(tmp, "y.npy"), y)
        info = reference.ask(
            cmd="build", model=REFERENCE_MODELS[args.neuron], task=task, tools=tools, I=p["input_units"],
            H=p["hidden_units"], O=p["output_units"], omega=list(p["omega_init"]), b_offset=list(p["b_offset_init"]),
            tau_out=list(p["tau_out_init"]), label_last=p["label_last"], sub_seq=p["sub_seq_length"],
            per_step=p["per_step_labels"], lr=p["learning_rate"], clip=p["clipnorm"],
            x=os.path.join(tmp, "x.npy"), y=os.path.join(tmp, "y.npy"))
        if info["params"] != params:
            raise UserError(f"{name}: the reference has {info['params']} parameters, tfspike {params}")
        kept = 1 if p["label_last"] else p["steps"] - p["sub_seq_length"]
        first["reference"] = reference.ask(cmd="run", steps=max(args.warmup, 1))["loss"] / kept  # logged as per step
        runs["reference"] = lambda: reference.ask(cmd="run", steps=args.steps)["times"]
    rate = _timing.matmul_rate(256, 256)
    shape_rate = _timing.matmul_rate(batch, p["hidden_units"])
    times = _timing.alternate(runs, args.rounds)
    flops = train_step_flops(batch, p["steps"], p["input_units"], p["hidden_units"], p["output_units"])
    median = statistics.median(times["tfspike"])
    extra.update(cpu=_timing.cpu_model(), load_average=_timing.load_average(), neuron=args.neuron, batch=batch,
                 steps=p["steps"], shape=f"{p['input_units']}-{p['hidden_units']}-{p['output_units']}",
                 threads=args.threads or None, jit=args.jit, bptt=args.bptt, flops=flops, matmul_gflops=rate / 1e9, shape_gflops=shape_rate / 1e9,
                 shape_ideal_s=flops / shape_rate, shape_roofline_ratio=median * shape_rate / flops,
                 tfspike_warmup_loss=first["tfspike"], reference_warmup_loss=first.get("reference"),
                 tfspike_times_s=times["tfspike"], reference_times_s=times.get("reference"))
    return _timing.make_record(name, times["tfspike"], flops / rate, times.get("reference"), **extra)


def report(r):
    """One printed line of a record."""
    line = (f"{r['workload']} {r['neuron']} (batch {r['batch']}, T {r['steps']}, {r['shape']}): "
            f"tfspike median {r['tfspike_median_s']:.3f} s (min {r['tfspike_min_s']:.3f})")
    if r["ratio"] is not None:
        line += (f" | reference median {r['reference_median_s']:.3f} s (min {r['reference_min_s']:.3f})"
                 f" | ratio {r['ratio']:.2f}x")
    line += (f" | {r['flops'] / 1e9:.2f} GFLOP, matmul {r['matmul_gflops']:.1f} GFLOP/s -> ideal "
             f"{r['ideal_s']:.3f} s, roofline_ratio {r['roofline_ratio']:.2f} (at the ({r['batch']}, H) shape: "
             f"{r['shape_gflops']:.1f} GFLOP/s, {r['shape_roofline_ratio']:.2f})")
    return line


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    if args.threads:  # before TensorFlow runs its first op
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    reference = (_timing.ReferenceProcess(args.reference_python, REFERENCE_DRIVER, args.reference_dir)
                 if args.reference_dir else None)
    if reference is not None and args.threads:
        reference.info["threads"] = reference.ask(cmd="threads", threads=args.threads)["threads"]
    header = (f"cpu: {_timing.cpu_model()} | load average {_timing.load_average()} | TF {tf.__version__} "
              f"threads={args.threads or 'default'} jit={args.jit} bptt={args.bptt}")
    if reference is not None:
        header += f" | reference: torch {reference.info['torch']}, {reference.info['threads']} threads"
    print(header + f" | {args.rounds} alternating rounds x {args.steps} steps after {args.warmup} warm-up steps",
          flush=True)
    records = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.tasks:
                records.append(measure(args, name, reference, tmp))
                print(report(records[-1]), flush=True)
    finally:
        if reference is not None:
            reference.close()
    print(f"load average at the end: {_timing.load_average()}", flush=True)
    if args.json:
        _timing.write_records(args.json, records)
    return records


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
