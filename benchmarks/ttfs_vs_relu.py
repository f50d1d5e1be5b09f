"""Train time of TTFS SNNs against their ReLU twins and, optionally, the IBM reference, in one sitting.

    python benchmarks/ttfs_vs_relu.py                 # fc2 (batch 128) and vgg16 MNIST (batch 32) steps
    python benchmarks/ttfs_vs_relu.py --only fc2 --epoch --data_dir ../shared/data   # + FC2 MNIST epochs, batch 8
    python benchmarks/ttfs_vs_relu.py --only fc2 --epoch --data_dir ../shared/data \
        --reference_dir /path/to/equivalent-training-ReLUnetwork-SNN \
        --reference_python /path/to/tf-keras-venv/bin/python --json ttfs.json

Step lines, e.g. ``fc2 snn_over_relu=1.04 snn_step_ms=0.91 relu_step_ms=0.88``: both models compiled
with ``jit_compile=True``, trained on the same synthetic batches from a prefetched ``tf.data`` pipeline,
Keras ``fit``; SNN and ReLU rounds alternate and the fastest round of each is reported. The SNN step
includes the window-growth rule.

``--epoch`` trains whole FC2 MNIST epochs at batch 8 (60,000 images) the way ``main.py`` does: stacks of
``--steps_per_execution`` = 32 batches, each stack's steps in one XLA call (``tfspike.distribute.fit``).
SNN, ReLU twin and (with ``--reference_dir``/``--reference_python``) the reference's SNN alternate, each
round one epoch per side after an untimed one that compiles; min and median of each, the SNN/ReLU ratio
and ``ratio`` = reference / tfspike SNN (medians) are printed and go to ``--json``. The reference is a
checkout of IBM/equivalent-training-ReLUnetwork-SNN run unchanged under ``--reference_python``, a Python
with TensorFlow and ``tf_keras`` (``TF_USE_LEGACY_KERAS=1``): its ``create_fc_model_SNN`` with its
``get_optimizer``, windows set as its ``main.py`` sets them, its float64 inputs (``1 − x/255``) and
``model.fit(batch_size=8, epochs=1)``; only the ``fit`` call is timed, as only tfspike's ``fit`` is.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _timing  # noqa: E402
from tfspike.errors import UserError  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfspike.models.ttfs_zoo import build_relu_model, build_snn_model, copy_weights_by_name, make_optimizer  # noqa
from tfspike.data.pipeline import make_dataset  # noqa: E402
from tfspike.distribute import fit  # noqa: E402


def compiled_twins(model_name, data_name):
    relu = build_relu_model(model_name, data_name)
    snn = build_snn_model(model_name, data_name, input_is="value")
    copy_weights_by_name(relu, snn)
    for m in (relu, snn):
        m.compile(optimizer=make_optimizer(model_name, 5e-4), jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return relu, snn


def synthetic(shape, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n,) + shape).astype("float32")
    x[x < 0.5] = 0.0
    return x, rng.integers(0, 10, n)


def time_steps(model, ds, steps, warmup=True):
    if warmup:  # trace, compile and touch every buffer with the same number of steps
        model.fit(ds, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    t = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    return (time.perf_counter() - t) / steps


def step_ratio(label, model_name, data_name, batch, steps, rounds):
    relu, snn = compiled_twins(model_name, data_name)
    x, y = synthetic(relu.input_shape[1:], batch * 16)
    ds = make_dataset(x, y, batch, shuffle=True).repeat()
    time_steps(relu, ds, steps)
    time_steps(snn, ds, steps)
    t_relu, t_snn = [], []
    for _ in range(rounds):
        t_relu.append(time_steps(relu, ds, steps, warmup=False))
        t_snn.append(time_steps(snn, ds, steps, warmup=False))
    if os.environ.get("BENCH_VERBOSE"):
        print(label, "relu", [round(t * 1e3, 1) for t in t_relu], "snn", [round(t * 1e3, 1) for t in t_snn])
    r, s = min(t_relu), min(t_snn)  # best-of-rounds: the least disturbed measurement of each
    print(f"{label} snn_over_relu={s / r:.2f} snn_step_ms={s * 1e3:.2f} relu_step_ms={r * 1e3:.2f} "
          f"batch={batch} rounds={rounds}", flush=True)


# Runs under --reference_python (protocol: _timing.ReferenceProcess).
REFERENCE_DRIVER = r'''
import json, os, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"  # the reference is tf.keras 2 code
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, sys.argv[1])
import numpy as np
import tensorflow as tf
import tf_keras
import model as ref  # the reference's model.py (sets floatx to float64, as its main.py does)


def reply(obj):
    sys.stdout.write("@@ " + json.dumps(obj) + "\n")
    sys.stdout.flush()


reply({"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__})
net = x = y = None
for line in sys.stdin:
    c = json.loads(line)
    if c["cmd"] == "build":
        x, y = np.load(c["x"]), np.load(c["y"])
        tf.keras.utils.set_random_seed(0)
        robustness = {"noise": 0.0, "time_bits": 0, "weight_bits": 0, "w_min": -1.0, "w_max": 1.0,
                      "latency_quantiles": 0.0}
        net = ref.create_fc_model_SNN(layers=2, optimizer=ref.get_optimizer(c["lr"]), robustness_params=robustness)
        t_min, t_max = 0, 1  # as the reference's main.py
        for layer in net.layers:
            if "conv" in layer.name or "dense" in layer.name:
                t_min, t_max = layer.set_params(t_min, t_max)
        reply({"params": int(net.count_params())})
    elif c["cmd"] == "epoch":
        n = c["images"]
        t0 = time.perf_counter()
        h = net.fit(x[:n], y[:n], batch_size=c["batch"], epochs=1, verbose=0)
        reply({"seconds": time.perf_counter() - t0, "loss": float(h.history["loss"][-1])})
    elif c["cmd"] == "quit":
        break
'''


def fc2_epoch(data_dir, rounds=3, reference=None, tmp=None):
    """One FC2 MNIST epoch at batch 8 (60,000 images) per side and round: the SNN and its ReLU twin as
    ``main.py`` trains them, and the reference's SNN when ``reference`` runs; returns the --json record."""
    from tfspike.data.images import load_image_dataset
    from tfspike.data.preprocess import ttfs_preprocess

    (xtr, ytr), _ = load_image_dataset("MNIST", data_dir)
    x = ttfs_preprocess("MNIST", xtr, flatten=True)
    relu, snn = compiled_twins("FC2", "MNIST")
    spe, lr, batch = 32, 5e-4, 8

    def epoch(m, seed):
        fit(m, make_dataset(x, ytr, batch, shuffle=True, seed=seed, steps_per_element=spe), epochs=1,
            shuffle=False, verbose=0, steps_per_element=spe)

    for m in (relu, snn):
        m.compile(optimizer=make_optimizer("FC2", lr), jit_compile=True, steps_per_execution=spe,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        epoch(m, 0)  # compiles every stack shape of the epoch outside the timing
    seeds = {"snn": 0, "relu": 0}

    def side(name, m):
        def run():
            seeds[name] += 1
            t = time.perf_counter()
            epoch(m, seeds[name])
            return [time.perf_counter() - t]
        return run

    runs = {"snn": side("snn", snn), "relu": side("relu", relu)}
    extra = {}
    if reference is not None:
        np.save(os.path.join(tmp, "x.npy"), 1.0 - x.astype("float64"))  # the reference's TTFS input times
        np.save(os.path.join(tmp, "y.npy"), np.eye(10)[ytr])
        extra["reference_params"] = reference.ask(cmd="build", lr=lr, x=os.path.join(tmp, "x.npy"),
                                                  y=os.path.join(tmp, "y.npy"))["params"]
        reference.ask(cmd="epoch", images=len(x), batch=batch)  # traces outside the timing
        runs["reference"] = lambda: [reference.ask(cmd="epoch", images=len(x), batch=batch)["seconds"]]
    times = _timing.alternate(runs, rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    record = _timing.make_record("ttfs_fc2_mnist_epoch_b8", times["snn"], None, times.get("reference"),
                                 relu_median_s=med["relu"], relu_min_s=min(times["relu"]),
                                 snn_over_relu=med["snn"] / med["relu"], images=len(x), batch=batch,
                                 steps_per_execution=spe, cpu=_timing.cpu_model(),
                                 load_average=_timing.load_average(), params=snn.count_params(),
                                 tfspike_times_s=times["snn"], relu_times_s=times["relu"],
                                 reference_times_s=times.get("reference"), **extra)
    line = (f"fc2_epoch_b8 snn_median_s={med['snn']:.2f} (min {min(times['snn']):.2f}) "
            f"relu_median_s={med['relu']:.2f} (min {min(times['relu']):.2f}) "
            f"snn_over_relu={record['snn_over_relu']:.3f}")
    if reference is not None:
        line += (f" reference_median_s={med['reference']:.2f} (min {min(times['reference']):.2f}) "
                 f"reference_over_snn={record['ratio']:.2f}")
    print(line + f" rounds={rounds} images={len(x)}", flush=True)
    return record


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of the step timing")
    p.add_argument("--epoch", action="store_true", help="also time FC2 MNIST epochs at batch 8")
    p.add_argument("--epoch_rounds", type=int, default=3, help="alternating rounds of the epoch timing")
    p.add_argument("--only", choices=("fc2", "vgg16"), default=None)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--reference_dir", help="a checkout of IBM/equivalent-training-ReLUnetwork-SNN (--epoch)")
    p.add_argument("--reference_python", help="a Python with TensorFlow and tf_keras that runs the reference")
    p.add_argument("--json", help="write the --epoch record to this file")
    a = p.parse_args(argv)
    for name in ("rounds", "epoch_rounds"):
        if getattr(a, name) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(a, name)}")
    if bool(a.reference_dir) != bool(a.reference_python):
        raise UserError("--reference_dir and --reference_python go together")
    if a.reference_dir:
        if not a.epoch:
            raise UserError("the reference runs in the --epoch timing: add --epoch")
        probe = os.path.join(a.reference_dir, "model.py")
        if not os.path.isfile(probe) or "create_fc_model_SNN" not in open(probe).read():
            raise UserError(f"--reference_dir {a.reference_dir} is not an equivalent-training-ReLUnetwork-SNN "
                            f"checkout (no create_fc_model_SNN in {probe})")
        a.reference_dir = os.path.abspath(a.reference_dir)
    if a.json and not a.epoch:
        raise UserError("--json writes the --epoch record: add --epoch")
    if a.json and not os.path.isdir(os.path.dirname(os.path.abspath(a.json))):
        raise UserError(f"--json {a.json}: its folder does not exist")
    return a


def main(argv=None):
    a = parse_args(argv)
    keras.utils.set_random_seed(0)
    print(f"cpu: {_timing.cpu_model()} | load average {_timing.load_average()}", flush=True)
    if a.only in (None, "fc2"):
        step_ratio("fc2", "FC2", "MNIST", batch=128, steps=500, rounds=a.rounds)
    if a.only in (None, "vgg16"):
        step_ratio("vgg16_mnist", "VGG", "MNIST", batch=32, steps=3, rounds=a.rounds)
    if not a.epoch:
        return
    reference = (_timing.ReferenceProcess(a.reference_python, REFERENCE_DRIVER, a.reference_dir)
                 if a.reference_dir else None)
    try:
        if reference is not None:
            print(f"reference: TensorFlow {reference.info['tensorflow']}, tf_keras {reference.info['tf_keras']}",
                  flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            record = fc2_epoch(a.data_dir, a.epoch_rounds, reference, tmp)
    finally:
        if reference is not None:
            reference.close()
    if a.json:
        _timing.write_records(a.json, [record])


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
