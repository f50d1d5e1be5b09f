"""main.py for --model_type SNN | ReLU: bad input gives one line and exit 2; the reference's command
sequence (train ReLU, save, map, load as SNN) works end to end on a tiny MNIST written by the test."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from datafiles import write_mnist_npz
from records import record_file, results
from tfspike.cli.common import run_dirs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, env=None, cwd=None):
    e = dict(os.environ, TFSPIKE_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], capture_output=True, text=True,
                          env=e, cwd=cwd or ROOT, timeout=600)


def error_line(proc):
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("error:")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("args,needle", [
    (["--model_type=SNN", "--bogus=1"], "--bogus"),
    (["--save=maybe"], "--save"),
    (["--data_name=SVHN"], "--data_name"),
    (["--latency_quantiles=0.5", "--epochs=0"], "latency_quantiles"),
    (["--weight_bits=1"], "--weight_bits"),
    (["--lr=0"], "--lr"),
    (["--batch_size=0"], "--batch_size"),
    (["--epochs=-1"], "--epochs"),
    (["--noise=-0.1"], "--noise"),
    (["--model_type=CNN"], "--model_type"),
    (["--model_name=ResNet", "--epochs=0"], "FC2, VGG or CNN"),
    (["--model_name=CNN_mine", "--epochs=0"], "needs --model_type=SNN and --load=<file>.keras"),
    (["--model_type=ReLU", "--model_name=CNN_mine", "--load=x.keras"], "needs --model_type=SNN"),
    (["--weight_bits=8", "--w_min=1", "--w_max=-1"], "w_min"),
])
def test_bad_flags_exit_2_with_one_line(args, needle, tmp_path):
    proc = run_cli(*args, f"--logging_dir={tmp_path}", f"--data_dir={tmp_path}")
    assert needle in error_line(proc)


def test_missing_data_names_the_file(tmp_path):
    proc = run_cli("--model_type=ReLU", "--model_name=FC2", "--epochs=0", f"--data_dir={tmp_path / 'none'}",
                   f"--logging_dir={tmp_path}")
    assert "mnist/mnist.npz" in error_line(proc)


def test_missing_cifar_weights_names_the_file(tmp_path):
    from datafiles import write_cifar10

    write_cifar10(tmp_path)
    proc = run_cli("--model_type=ReLU", "--model_name=VGG_BN_example", "--data_name=CIFAR10",
                   "--load=cifar10vgg.h5", "--save=True", "--epochs=0", f"--data_dir={tmp_path}",
                   f"--logging_dir={tmp_path / 'logs'}")
    assert "cifar10vgg.h5" in error_line(proc)


def test_snn_load_true_without_saved_relu_names_the_file(tmp_path):
    write_mnist_npz(tmp_path)
    proc = run_cli("--model_type=SNN", "--model_name=FC2_example", "--load=True", "--epochs=0",
                   f"--data_dir={tmp_path}", f"--logging_dir={tmp_path / 'logs'}")
    assert "MNIST-FC2_example_preprocessed.keras" in error_line(proc)


def test_booleans_accept_common_spellings():
    from tfspike.cli.common import str2bool

    assert [str2bool(v) for v in ("True", "true", "1", "yes", "False", "false", "0", "no")] == [True] * 4 + [False] * 4


def _main(*args):
    import main

    return main.main(list(args))


def results_at(logdir, record, number):
    with open(os.path.join(logdir, "runs", record, number, f"{record}_results.json")) as f:
        return json.load(f)


def _results(logdir, name, model_type):
    """The newest record of ``MNIST-<name>``: its results carry the model type, so a ReLU and an SNN run
    of the same model name keep separate records."""
    return results(logdir, f"MNIST-{name}-{model_type}")


def test_relu_save_then_snn_load_maps_exactly(tmp_path):
    write_mnist_npz(tmp_path, n_train=400, n_test=200)
    logs = str(tmp_path / "logs")
    common = [f"--data_dir={tmp_path}", f"--logging_dir={logs}", "--batch_size=32", "--seed=1"]
    assert _main("--model_type=ReLU", "--model_name=FC2_example", "--data_name=MNIST", "--save=True",
                 "--epochs=1", *common) == 0
    relu = _results(logs, "FC2_example", "ReLU")
    for suffix in ("_relu.weights.h5", "_preprocessed.weights.h5", "_preprocessed.keras", "_X_n.json",
                   "_mapping.json"):
        assert os.path.exists(os.path.join(logs, f"MNIST-FC2_example{suffix}")), suffix
    assert os.path.exists(record_file(logs, "MNIST-FC2_example-ReLU", "_log.txt"))
    assert os.path.isdir(os.path.join(logs, "tensorboard", "MNIST-FC2_example-ReLU"))
    assert _main("--model_type=SNN", "--model_name=FC2_example", "--data_name=MNIST", "--load=True",
                 "--epochs=1", "--save=True", f"--export={tmp_path / 'saved'}", *common) == 0
    snn = _results(logs, "FC2_example", "SNN")
    assert _results(logs, "FC2_example", "ReLU") == relu  # the SNN run left the ReLU run's record alone
    assert snn["test_accuracy_initial"] == relu["test_accuracy"]
    assert snn["agreement_with_relu"] == 1.0
    assert snn["snn_initial"]["max_abs_logit_diff"] < 1e-4
    for key in ("model_type", "data_name", "model_name", "epochs", "batch_size", "test_accuracy_initial",
                "test_accuracy", "test_loss", "spikes_per_neuron", "agreement_with_relu", "latency",
                "train_seconds"):
        assert snn[key] is not None, key
    assert 0 < snn["spikes_per_neuron"] < 1 and snn["latency"] >= 1501
    assert max(snn["export"]["max_abs_diff"].values()) <= 1e-5 and "serve" in snn["export"]["signatures"]
    assert os.path.exists(os.path.join(logs, "MNIST-FC2_example_snn.keras"))
    assert os.path.exists(os.path.join(logs, "MNIST-FC2_example_snn.weights.h5"))
    # the saved SNN checkpoint loads back and evaluates to the same accuracy
    assert _main("--model_type=SNN", "--model_name=FC2_example", "--data_name=MNIST",
                 "--load=MNIST-FC2_example_snn.keras", "--epochs=0", *common) == 0
    again = _results(logs, "FC2_example", "SNN")
    assert again["test_accuracy_initial"] == snn["test_accuracy"]
    # a new command is a new record: the earlier SNN record is kept as run 001, this one is 002
    assert [os.path.basename(d) for d in run_dirs(logs, "MNIST-FC2_example-SNN")] == ["001", "002"]
    assert results_at(logs, "MNIST-FC2_example-SNN", "001") == snn


@pytest.mark.slow  # XLA-compiles VGG16 three times (~1-3 min on 2 cores)
def test_snn_from_scratch_float64_vgg_tiny_epoch(tmp_path):
    write_mnist_npz(tmp_path, n_train=40, n_test=20)
    logs = str(tmp_path / "logs")
    assert _main("--model_type=SNN", "--model_name=VGG_example_train", "--data_name=MNIST", "--epochs=1",
                 "--batch_size=20", "--dtype=float64", "--val_split=0", f"--data_dir={tmp_path}",
                 f"--logging_dir={logs}") == 0
    res = _results(logs, "VGG_example_train", "SNN")
    assert np.isfinite(res["test_loss"]) and res["latency"] >= 22501
    assert 0 <= res["spikes_per_neuron"] <= 1


@pytest.mark.data
def test_fc2_mapping_on_real_mnist_gives_identical_predictions(data_dir, tmp_path):
    """README commands 3 → 4 on real MNIST (batch 128 to keep it short): the mapped SNN's initial test
    accuracy equals the ReLU accuracy, with identical predictions on all 10,000 test images."""
    logs = str(tmp_path / "logs")
    common = [f"--data_dir={data_dir}", f"--logging_dir={logs}", "--batch_size=128", "--model_name=FC2_example",
              "--data_name=MNIST"]
    assert _main("--model_type=ReLU", "--save=True", "--epochs=1", *common) == 0
    relu = _results(logs, "FC2_example", "ReLU")
    assert relu["test_accuracy"] >= 0.9
    assert _main("--model_type=SNN", "--load=True", "--epochs=0", *common) == 0
    snn = _results(logs, "FC2_example", "SNN")
    assert snn["test_accuracy_initial"] == relu["test_accuracy"]
    assert snn["agreement_with_relu"] == 1.0 and snn["snn_initial"]["n_samples"] == 10000
    assert 0 < snn["spikes_per_neuron"] < 1


@pytest.mark.data
def test_fc2_mapping_on_real_mnist_float64_logits(data_dir):
    import keras
    import tensorflow as tf

    from tfspike.convert.ttfs import relu_to_ttfs
    from tfspike.data.images import load_image_dataset
    from tfspike.data.pipeline import make_dataset
    from tfspike.data.preprocess import ttfs_preprocess
    from tfspike.models.ttfs_zoo import build_relu_model

    keras.config.set_floatx("float64")
    (xtr, ytr), (xte, yte) = load_image_dataset("MNIST", data_dir)
    xtr = ttfs_preprocess("MNIST", xtr[:12000], flatten=True, dtype="float64")
    xte = ttfs_preprocess("MNIST", xte, flatten=True, dtype="float64")
    relu = build_relu_model("FC2", "MNIST", dtype="float64")
    relu.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    relu.fit(make_dataset(xtr, ytr[:12000], 128, shuffle=True), epochs=1, verbose=0)
    snn = relu_to_ttfs(relu, input_range=(0.0, 1.0), dtype="float64")
    z_relu = np.concatenate([relu(tf.constant(xte[i:i + 2000])).numpy() for i in range(0, 10000, 2000)])
    z_snn = np.concatenate([snn(tf.constant(xte[i:i + 2000])).numpy() for i in range(0, 10000, 2000)])
    assert np.abs(z_snn - z_relu).max() <= 1e-9
    assert (z_snn.argmax(-1) == yte).mean() == (z_relu.argmax(-1) == yte).mean() > 0.9


def test_robustness_flags_and_measured_windows(tmp_path):
    write_mnist_npz(tmp_path, n_train=200, n_test=100)
    logs = str(tmp_path / "logs")
    common = [f"--data_dir={tmp_path}", f"--logging_dir={logs}", "--batch_size=50", "--model_name=FC2_r",
              "--data_name=MNIST"]
    assert _main("--model_type=ReLU", "--save=True", "--epochs=0", *common) == 0
    with open(os.path.join(logs, "MNIST-FC2_r_X_n.json")) as f:
        x_n = json.load(f)["x_n"]
    assert _main("--model_type=SNN", "--load=True", "--epochs=1", "--window_init=measured", "--noise=0.05",
                 "--noise_mode=spikes", "--time_bits=12", "--weight_bits=8", "--w_min=-0.5", "--w_max=0.5",
                 *common) == 0
    res = _results(logs, "FC2_r", "SNN")
    # --window_init=measured: Δ⁽ⁿ⁾ = (1 + ζ)·X_n with ζ = 0.5, chained from t = 1 (before training)
    bounds = 1.0 + 1.5 * np.cumsum([0.0] + list(x_n))
    np.testing.assert_allclose(res["snn_initial"]["windows"], np.stack([bounds[:-1], bounds[1:]], 1), rtol=1e-12)
    assert res["snn_initial"]["latency"] == pytest.approx(1.0 + 1.5 * sum(x_n), rel=1e-12)
    assert res["latency"] >= res["snn_initial"]["latency"] - 1e-9  # windows only grow in training
    # the final evaluation counted every test sample once: the accuracy is a whole number of the 100 samples
    assert res["snn_final"]["n_samples"] == 100
    assert res["test_accuracy"] * 100 == pytest.approx(round(res["test_accuracy"] * 100), abs=1e-9)
    assert len(res["history"]["loss"]) == 1 and np.isfinite(res["history"]["loss"][0]) and np.isfinite(res["test_loss"])


@pytest.mark.slow  # XLA-compiles the CIFAR VGG16 several times (a few minutes on 2 cores)
def test_cifar10vgg_reference_commands(tmp_path):
    """README commands 5 and 6 verbatim, on tiny CIFAR-10 pickles and a full-size cifar10vgg.h5 written in
    the Keras-2 layout: evaluate the pretrained net, map and save; load the SNN, equal initial accuracy."""
    from datafiles import write_cifar10
    from test_convert_cifar_vgg import randomize
    from test_keras2_h5 import write_keras2_h5
    from tfspike.models.ttfs_zoo import build_relu_model

    write_cifar10(tmp_path, per_batch=8)
    logs = tmp_path / "logs"
    logs.mkdir()
    pretrained = randomize(build_relu_model("VGG_BN", "CIFAR10", dropout="cifar-vgg"), seed=0)
    write_keras2_h5(logs / "cifar10vgg.h5", pretrained)
    where = [f"--data_dir={tmp_path}", f"--logging_dir={logs}"]
    assert _main("--model_type=ReLU", "--model_name=VGG_BN_example", "--data_name=CIFAR10", "--load=cifar10vgg.h5",
                 "--save=True", "--epochs=0", *where) == 0
    relu = results(logs, "CIFAR10-VGG_BN_example-ReLU")
    with open(logs / "CIFAR10-VGG_BN_example_X_n.json") as f:
        assert len(json.load(f)["x_n"]) == 14
    assert _main("--model_type=SNN", "--lr=1e-6", "--model_name=VGG_BN_example", "--data_name=CIFAR10",
                 "--load=True", "--epochs=1", *where) == 0
    snn = results(logs, "CIFAR10-VGG_BN_example-SNN")
    assert snn["test_accuracy_initial"] == relu["test_accuracy"]
    assert snn["agreement_with_relu"] == 1.0 and snn["latency"] >= 21001
