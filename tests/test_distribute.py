"""``--distribute`` (tfspike.distribute): a MirroredStrategy over 2 logical CPU devices trains TTFS and BRF
to the same weights and metrics as one device with the same global batch and seed; the TTFS window growth
rule takes the max over all replicas; unsupported strategies and missing clusters are one-line errors.

Logical CPU devices must be configured before TensorFlow starts, so every strategy run is a subprocess.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from datafiles import write_mnist_npz
from records import results as _results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "SLURM_JOB_ID")}
    return dict(env, TFSPIKE_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", **extra)


def _main(*args, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], capture_output=True, text=True,
                          env=env or _env(), cwd=ROOT, timeout=300)


def _one_error_line(proc):
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def _one_device_and_mirrored(script, timeout=600):
    """``script``'s last stdout line (JSON) run with ``none`` and with ``mirrored`` (2 logical CPUs)."""
    out = {}
    for kind in ("none", "mirrored"):
        proc = subprocess.run([sys.executable, "-c", script, kind], capture_output=True, text=True,
                              env=_env(), cwd=ROOT, timeout=timeout)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["mirrored"]["replicas"] == 2 and out["none"]["replicas"] == 1
    return out["none"], out["mirrored"]


def _moved_and_equal(one, two, key="weights"):
    """Assert ``two[key]`` equals ``one[key]`` array by array (rtol 1e-5); the number of arrays that moved
    from ``one["init"]`` by more than 1e-4."""
    moved = 0
    for a, b, w0 in zip(one[key], two[key], one["init"]):
        a, b, w0 = np.asarray(a), np.asarray(b), np.asarray(w0)
        moved += int(np.abs(a - w0).max() > 1e-4)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    return moved


def test_mirrored_on_two_cpus_matches_one_device(tmp_path):
    import keras

    from tfspike.ttfs import TTFSModel  # also registers it for load_model

    # Two reshuffled batches per epoch: the distributed loop must see exactly the batches of model.fit on one
    # device (Keras' epoch iterator moves a seeded reshuffle on by one permutation per epoch; so does the loop).
    write_mnist_npz(tmp_path, n_train=64, n_test=48)
    common = ["--model_type=SNN", "--model_name=FC2_example", f"--data_dir={tmp_path}", "--batch_size=32",
              "--epochs=3", "--val_split=0", "--seed=5", "--save=True", "--plots=False", "--verbose=0",
              "--jit_compile=False", "--steps_per_execution=1"]
    runs = {}
    for name, extra in (("one", []), ("two", ["--cpu_devices=2", "--distribute=mirrored"])):
        logs = str(tmp_path / name)
        proc = _main(*common, f"--logging_dir={logs}", *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        model = keras.saving.load_model(os.path.join(logs, "MNIST-FC2_example_snn.keras"))
        assert isinstance(model, TTFSModel)
        runs[name] = (_results(logs, "MNIST-FC2_example-SNN"), model.get_weights())
    (one, w1), (two, w2) = runs["one"], runs["two"]
    assert two["distribute"] == {"strategy": "mirrored", "replicas": 2} and "distribute" not in one
    assert len(w1) == len(w2)
    moved = 0
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
        moved += 0 if a.dtype == np.float64 else 1
    assert moved >= 4  # kernels and biases of both layers
    assert one["test_accuracy"] == two["test_accuracy"]
    # same start, and training moved it (the comparison is not between two initial states)
    assert one["test_loss_initial"] == two["test_loss_initial"] and one["test_loss"] != one["test_loss_initial"]
    np.testing.assert_allclose(two["test_loss"], one["test_loss"], rtol=1e-5)
    np.testing.assert_allclose(two["history"]["loss"], one["history"]["loss"], rtol=1e-5)
    np.testing.assert_allclose(two["history"]["accuracy"], one["history"]["accuracy"], rtol=0, atol=1e-7)
    assert two["windows"] == one["windows"] and two["spikes_per_neuron"] == one["spikes_per_neuron"]


WINDOW_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from tfspike.distribute import fit, make_strategy
    strategy = make_strategy(sys.argv[1], cpu_devices=2)
    import keras, tensorflow as tf
    from tfspike.ttfs import TTFSDense, TTFSInput, TTFSModel
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((8, 6)).astype("float32")
    x[6] *= 40.0  # the largest activation is in the second half of the batch: replica 1's share
    y = np.arange(8) % 3
    with strategy.scope():
        model = TTFSModel([keras.Input((6,)), TTFSInput(input_is="value"), TTFSDense(5), TTFSDense(3, output=True)])
        model.reset_windows(0.01)  # Δ = 0.015: the growth rule must widen it
        model.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=False,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hidden = model.spiking_layers()[0]
    act = tf.nn.relu(hidden.linear(model.layers[0](x))).numpy()
    init = [w.tolist() for w in model.get_weights()]
    fit(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=1, verbose=0)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "delta": model.deltas()[0],
                      "weights": [w.tolist() for w in model.get_weights()],
                      "init": init, "max_all": float(act.max()), "max_first_half": float(act[:4].max())}))
""")


def test_window_growth_takes_the_max_over_all_replicas():
    one, m = _one_device_and_mirrored(WINDOW_SCRIPT, timeout=300)
    assert m["max_first_half"] < m["max_all"] / 2  # replica 0 alone would give a narrower window
    # oracle: Δ ← max(Δ, 10 · largest activation of the whole global batch, before the step) (spec §1.7)
    np.testing.assert_allclose(m["delta"], max(0.015, 10 * m["max_all"]), rtol=1e-6)
    assert m["delta"] == one["delta"]
    # plain SGD (unlike Adam) is not scale-invariant: equal weights mean the loss is scaled for the global batch
    for a, b in zip(one["weights"], m["weights"]):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-7)
    kernels = [(np.asarray(a), np.asarray(b)) for a, b in zip(m["init"], m["weights"]) if np.ndim(a) == 2]
    assert len(kernels) == 2 and min(np.abs(b - a).max() for a, b in kernels) > 1e-3  # the step moved them


RSNN_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from tfspike.distribute import fit, make_strategy
    strategy = make_strategy(sys.argv[1], cpu_devices=2)
    import keras, tensorflow as tf
    from tfspike.rsnn.model import RSNN
    rng = np.random.default_rng(0)
    x = (rng.random((8, 40, 4)) < 0.4).astype("float32")
    y = rng.integers(0, 6, (8, 40))  # per-step labels, as ECG
    out = {"replicas": strategy.num_replicas_in_sync}
    for tbptt in (0, 10):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = RSNN("BRF", 12, 6, per_step_labels=True, tbptt=tbptt)
            model.build((None, 40, 4))
            k = model.hidden.cell.kernel
            k.assign(tf.concat([k[:4] * 30.0, k[4:]], axis=0))  # a strong input drive: the hidden layer spikes
            # full BPTT with XLA (under a strategy: each replica's pass compiled on its own), TBPTT without
            model.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=tbptt == 0)
        init = [w.tolist() for w in model.get_weights()]
        hist = fit(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=3, verbose=0).history
        out[tbptt] = {"init": init, "history": hist, "weights": [w.tolist() for w in model.get_weights()]}
    print(json.dumps(out))
""")


def test_rsnn_mirrored_matches_one_device():
    """BRF with its hand-written loss (summed per-step NLL) and BPTT engine: 3 SGD steps on 2 replicas give
    the weights, loss, accuracy and SOP of one device, full BPTT (XLA) and truncated BPTT."""
    out = dict(zip(("none", "mirrored"), _one_device_and_mirrored(RSNN_SCRIPT, timeout=300)))
    for tbptt in ("0", "10"):
        one, two = out["none"][tbptt], out["mirrored"][tbptt]
        assert min(two["history"]["sop"]) > 1  # the network spikes, so the hidden weights get gradients
        for a, b, w0 in zip(one["weights"], two["weights"], one["init"]):
            a, b, w0 = np.asarray(a), np.asarray(b), np.asarray(w0)
            assert np.abs(a - w0).max() > 1e-4, tbptt  # every weight moved (plain SGD: scale-sensitive)
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=tbptt)
        for key in ("loss", "accuracy", "sop"):
            np.testing.assert_allclose(two["history"][key], one["history"][key], rtol=1e-5, err_msg=key)


FS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from tfspike.distribute import fit, make_strategy
    strategy = make_strategy(sys.argv[1], cpu_devices=2)
    import keras, tensorflow as tf
    from tfspike.fs.networks import build_cnn, fs_network
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, 16)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model, _ = fs_network(build_cnn("swish"), "swish_k16_best")
        model.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=False, metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    init = [w.tolist() for w in model.get_weights()]
    hist = fit(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=2, verbose=0).history
    from tfspike.models.ttfs_zoo import build_relu_model
    with strategy.scope():  # BatchNorm of the ReLU VGG_BN twin: global-batch statistics under the strategy
        bn = [l.synchronized for l in build_relu_model("VGG_BN", "MNIST").layers
              if isinstance(l, keras.layers.BatchNormalization)]
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "init": init, "history": hist, "bn": bn,
                      "weights": [w.tolist() for w in model.get_weights()]}))
""")


def test_fs_cnn_mirrored_matches_one_device():
    """The FS-swish CNN (Keras' compiled loss, surrogate gradients through the FS neurons): 4 SGD steps on 2
    replicas give the weights, loss and accuracy of one device."""
    one, two = _one_device_and_mirrored(FS_SCRIPT)
    # the kernels and biases of the conv and dense layers before the logits were trained
    assert _moved_and_equal(one, two) >= 6
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(two["history"][key], one["history"][key], rtol=1e-5, err_msg=key)
    # every BatchNorm that a family trains is synchronised under the strategy, and only there
    assert len(one["bn"]) == 15 and not any(one["bn"]) and all(two["bn"])


DDIM_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from tfspike.distribute import evaluate, fit, make_strategy
    strategy = make_strategy(sys.argv[1], cpu_devices=2)
    import keras, tensorflow as tf
    from tfspike.ddim.diffusion import DiffusionModel
    rng = np.random.default_rng(0)
    train, val = rng.random((24, 16, 16, 1)).astype("float32"), rng.random((16, 16, 16, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(8)])
    with strategy.scope():  # synchronised BN on one device too: the same statistics formula on both sides
        model = DiffusionModel(16, 1, widths=(4, 8), block_depth=1, activation="swish", ema=0.5,
                               kid_diffusion_steps=2, kid_encoder=encoder, kid_name="kid", seed=3,
                               synchronized_bn=True)
        model.normalizer.adapt(train)
        model.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=False)
    init = [w.tolist() for w in model.network.get_weights()]
    ds = tf.data.Dataset.from_tensor_slices(train).shuffle(24, seed=1).batch(8, drop_remainder=True)
    val_ds = tf.data.Dataset.from_tensor_slices(val).batch(8)
    hist = fit(model, ds, epochs=3, steps_per_epoch=2, validation_data=val_ds, validation_steps=1, verbose=0)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "init": init, "history": hist.history,
                      "final": evaluate(model, val_ds), "weights": [w.tolist() for w in model.network.get_weights()],
                      "ema": [w.tolist() for w in model.ema_network.get_weights()]}))
""")


def test_ddim_mirrored_matches_one_device():
    """A tiny DDIM (swish U-Net with BatchNorm, EMA 0.5, a KID metric): 6 SGD steps (3 epochs of 2 steps of a
    seeded reshuffle, ``steps_per_epoch`` carrying the iterator over) on 2 replicas give the weights, EMA
    weights, losses and KID of one device: the noise is drawn per global batch, BN statistics and KID are
    those of the global batch. (Swish sites: with FS-Swish ones a float32 reordering of the gradient sum can
    flip a spike, which no float32 tolerance covers; the FS CNN test covers FS neurons under the strategy.)"""
    one, two = _one_device_and_mirrored(DDIM_SCRIPT)
    assert _moved_and_equal(one, two) >= 10  # every conv kernel and bias was trained (the output conv starts at 0)
    assert _moved_and_equal(one, two, "ema") >= 10  # the EMA network followed
    assert sorted(two["history"]) == sorted(one["history"])  # the keys Keras' fit logs, "loss" included
    assert "kid" not in one["history"] and "val_kid" in one["history"]
    for key in one["history"]:
        # KID is a difference of kernel means (cancellation): float32 reordering shows at 1e-5 of its terms
        np.testing.assert_allclose(two["history"][key], one["history"][key], rtol=1e-4 if "kid" in key else 1e-5,
                                   err_msg=key)
    assert len(set(np.round(one["history"]["val_n_loss"], 6))) == 3  # the validation losses moved
    for key, value in one["final"].items():
        np.testing.assert_allclose(two["final"][key], value, rtol=1e-4 if key == "kid" else 1e-5, err_msg=key)


@pytest.mark.data
def test_ddim_cli_mirrored_run(data_dir, tmp_path):
    """``main.py --model_type=DDIM --distribute=mirrored``: trains, validates (KID), writes one record with the
    ``distribute`` block, the best weights and the image grids."""
    logs = tmp_path / "logs"
    proc = _main("--model_type=DDIM", "--activation=swish", "--data_name=FMNIST", f"--data_dir={data_dir}",
                 f"--logging_dir={logs}", "--widths=4,8,8,8", "--block_depth=1", "--epochs=2", "--steps_per_epoch=2",
                 "--batch_size=8", "--max_kid_batches=1", "--train_samples=64", "--kid_classifier_epochs=1",
                 "--kid_classifier_samples=256", "--plot_images=4", "--plot_diffusion_steps=2",
                 "--kid_diffusion_steps=1", "--verbose=0", "--jit_compile=False", "--distribute=mirrored",
                 "--cpu_devices=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    prefix = "DDIM-swish-ann-FMNIST"
    res = _results(str(logs), prefix)
    assert res["distribute"] == {"strategy": "mirrored", "replicas": 2}
    for key in ("noise_loss", "image_loss", "kid", "val_noise_loss"):
        assert len(res[key]) == 2 and all(np.isfinite(res[key])), key
    assert res["best_kid"] == min(res["kid"]) and res["finished"]
    assert os.path.exists(logs / f"{prefix}_best.weights.h5")


def test_fs_neuron_fit_refuses_a_strategy_in_one_line(tmp_path):
    line = _one_error_line(_main("--model_type=FS", "--distribute=mirrored", f"--logging_dir={tmp_path}"))
    assert "--network cnn" in line and "one device" in line


def test_multi_worker_without_cluster_is_one_line(tmp_path):
    line = _one_error_line(_main("--model_type=SNN", "--distribute=multi_worker", f"--logging_dir={tmp_path}"))
    assert "TF_CONFIG" in line and "Slurm" in line
    assert not os.path.exists(tmp_path / "runs")  # refused before any work


def test_is_chief_reads_the_cluster():
    from tfspike.distribute import is_chief

    class Resolver:
        def __init__(self, task_type, task_id, spec):
            self.task_type, self.task_id, self._spec = task_type, task_id, spec

        def cluster_spec(self):
            return type("Spec", (), {"as_dict": lambda s: self._spec})()

    class Strategy:
        def __init__(self, resolver=None):
            self.cluster_resolver = resolver

    workers = {"worker": ["a:1", "b:2"]}
    assert is_chief(Strategy())
    assert is_chief(Strategy(Resolver("worker", 0, workers)))
    assert not is_chief(Strategy(Resolver("worker", 1, workers)))
    with_chief = dict(workers, chief=["c:3"])
    assert is_chief(Strategy(Resolver("chief", 0, with_chief)))
    assert not is_chief(Strategy(Resolver("worker", 0, with_chief)))


# -- multi_worker: two worker processes on localhost ------------------------------------------------------

def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def _start_workers(argv, n=2):
    """``n`` worker processes of ``main.py argv --distribute=multi_worker`` (TF_CONFIG on free localhost ports)."""
    hosts = [f"localhost:{p}" for p in _free_ports(n)]
    procs = []
    for index in range(n):
        config = json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), *argv,
                                       "--distribute=multi_worker"], cwd=ROOT, env=_env(TF_CONFIG=config),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return procs


def _finish(procs, timeout=400):
    outs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=timeout)
        outs.append(out)
    for proc, out in zip(procs, outs):
        assert proc.returncode == 0, out[-3000:]
    return outs


def _results_files(logs):
    return sorted(os.path.join(d, f) for d, _, files in os.walk(logs) for f in files if f.endswith("_results.json"))


def _assert_one_record_and_no_worker_folder(logs, outs):
    """Exactly one results file under the shared --logging_dir (the chief's); the other worker wrote into a
    temporary folder of its own, gone after it exited."""
    assert len(_results_files(logs)) == 1, _results_files(logs)
    worker_results = [line.split("results: ", 1)[1].strip() for line in outs[1].splitlines() if "results: " in line]
    assert len(worker_results) == 1 and not worker_results[0].startswith(str(logs))
    assert not os.path.exists(worker_results[0])


def _one_process_and_two_workers(argv, tmp_path, record):
    """Run ``main.py argv`` in one process and as two workers; ``((logs, results), (logs, results))``
    after checking that the workers wrote exactly one record."""
    one_logs, two_logs = tmp_path / "one", tmp_path / "two"
    proc = _main(*argv, f"--logging_dir={one_logs}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    outs = _finish(_start_workers([*argv, f"--logging_dir={two_logs}"]))
    _assert_one_record_and_no_worker_folder(two_logs, outs)
    two = _results(two_logs, record)
    assert two["distribute"] == {"strategy": "multi_worker", "replicas": 2}
    return (one_logs, _results(one_logs, record)), (two_logs, two)


def test_multi_worker_ttfs_matches_one_process(tmp_path):
    import keras

    from tfspike.ttfs import TTFSModel  # also registers the class for load_model

    write_mnist_npz(tmp_path, n_train=64, n_test=48)
    common = ["--model_type=SNN", "--model_name=FC2_example", f"--data_dir={tmp_path}", "--batch_size=16",
              "--epochs=2", "--val_split=0.25", "--seed=5", "--save=True", "--plots=False", "--verbose=0",
              "--jit_compile=False", "--steps_per_execution=1"]
    (one_logs, one), (two_logs, two) = _one_process_and_two_workers(common, tmp_path, "MNIST-FC2_example-SNN")
    m1, m2 = (keras.saving.load_model(os.path.join(logs, "MNIST-FC2_example_snn.keras"))
              for logs in (one_logs, two_logs))
    assert isinstance(m2, TTFSModel)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):  # three batches per epoch, and validation
        np.testing.assert_allclose(two["history"][key], one["history"][key], rtol=1e-5, err_msg=key)
    assert one["test_loss"] != one["test_loss_initial"]  # training moved the weights
    np.testing.assert_allclose(two["test_loss"], one["test_loss"], rtol=1e-5)
    assert two["test_accuracy"] == one["test_accuracy"] and two["windows"] == one["windows"]


@pytest.mark.data
def test_multi_worker_brf_ecg_matches_one_process(golden_dir, tmp_path):
    """BRF on ECG-shaped data (the golden ECG weights, so that the network spikes and learns), one train,
    val and test batch per epoch, two epochs, XLA on: two workers give the single process's history and
    weights."""
    import keras

    from datafiles import write_qtdb
    from tfspike.rsnn.model import RSNN  # also registers the class for load_model

    write_qtdb(tmp_path, n_train=36, n_test=8)
    common = ["--model_type=BRF", "--data_name=ECG", f"--data_dir={tmp_path}", "--epochs=2", "--full_epochs=2",
              "--max_batches=1", "--seed=3", "--plots=False", "--verbose=0",
              f"--load={golden_dir / 'brf' / 'ecg_brf.npz'}"]
    (one_logs, one), (two_logs, two) = _one_process_and_two_workers(common, tmp_path, "ECG-BRF")
    assert [r["epoch"] for r in two["history"]] == [r["epoch"] for r in one["history"]] == [0, 1, 2]
    assert one["history"][2]["val_loss"] != one["history"][0]["val_loss"]  # training moved the weights
    for r1, r2 in zip(one["history"], two["history"]):
        for key in ("loss", "accuracy", "sop", "val_loss", "val_accuracy", "val_sop", "test_loss", "test_sop"):
            if key in r1:
                np.testing.assert_allclose(r2[key], r1[key], rtol=1e-5, err_msg=f"epoch {r1['epoch']} {key}")
    for key in ("test_loss", "test_accuracy", "sop_per_sample", "best_epoch"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-5, err_msg=key)
    m1, m2 = (keras.saving.load_model(os.path.join(logs, "ECG-BRF_best.keras")) for logs in (one_logs, two_logs))
    assert isinstance(m2, RSNN)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_multi_worker_run_resumes_after_a_worker_is_killed(tmp_path):
    """SIGKILL worker 1 once the chief has backed up an epoch, stop the chief, restart both: they resume at
    the backed-up epoch together, train only the remaining epochs and finish the chief's record."""
    import signal
    import time

    from tfspike.cli.common import run_dirs

    write_mnist_npz(tmp_path, n_train=2400, n_test=48)
    logs = tmp_path / "logs"
    argv = ["--model_type=ReLU", "--model_name=FC2_k", f"--data_dir={tmp_path}", f"--logging_dir={logs}",
            "--epochs=4", "--batch_size=16", "--val_split=0", "--jit_compile=False", "--steps_per_execution=1",
            "--plots=False", "--verbose=0"]
    record = "MNIST-FC2_k-ReLU"
    meta = logs / "backup" / record / "training_metadata.json"
    procs = _start_workers(argv)
    try:
        deadline = time.monotonic() + 400
        k = None
        while time.monotonic() < deadline and k is None:
            for proc in procs:
                if proc.poll() is not None:
                    pytest.fail(f"a worker ended before the kill:\n{proc.stdout.read()[-3000:]}")
            try:
                k = json.loads(meta.read_text())["epoch"] or None
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)
        assert k is not None, "no epoch was backed up in time"
        os.kill(procs[1].pid, signal.SIGKILL)  # mid-epoch k + 1
        time.sleep(1.0)
        os.kill(procs[0].pid, signal.SIGKILL)  # the chief is stuck in a collective with its dead peer
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    k = json.loads(meta.read_text())["epoch"]  # the backup both restart from
    assert 1 <= k < 4
    outs = _finish(_start_workers(argv))
    assert all(f"resumed from epoch {k} of 4" in out for out in outs), outs[0][-2000:]
    res = _results(logs, record)
    assert res["resumed_from"] == k and res["epochs_run"] == 4 - k and len(res["history"]["loss"]) == 4 - k
    assert [os.path.basename(d) for d in run_dirs(str(logs), record)] == ["001"]  # the chief's record, continued
    assert len(_results_files(logs)) == 1 and not (logs / "backup" / record).exists()
