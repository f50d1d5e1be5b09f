"""The FS-swish CNN (``tfspike.fs.networks``) and ``main.py --model_type=FS --network cnn``: the
architecture against a hand count, a tiny train → save → load → evaluate round trip that must reproduce
itself exactly and agree with an independent recount (Keras predict + the NumPy FS oracle), and the
flag and file errors (one line, exit 2)."""

import os

import numpy as np
import pytest

from datafiles import write_mnist_npz
from records import results
from tfspike.cli import main, parse_args
from tfspike.errors import UserError

# A K = 4 binary set (h = d = T = 2^-k, k = 1..4: out ≈ x clipped to [0, 0.94] in steps of 1/16), saved as
# .json: a quarter of the K = 16 trace, and every site spikes; the CLI's mechanics do not depend on K.
SET = "binary_k4"
RECORD = f"FS-cnn-MNIST-{SET}"


def _write_set(folder):
    from tfspike.fs.param_set import FSParams

    steps = [0.5, 0.25, 0.125, 0.0625]
    return FSParams(steps, steps, steps, name=SET).save(os.path.join(folder, f"{SET}.json"))


def _cnn_parameters(input_shape, num_classes):
    """Weights + biases of Conv32(3x3)-pool-Conv64(3x3)-pool-Dense128-Dense(classes), counted by hand."""
    h, w, c = input_shape
    conv1 = 3 * 3 * c * 32 + 32
    h, w = (h - 2) // 2, (w - 2) // 2  # valid 3x3 conv, then 2x2 max-pool
    conv2 = 3 * 3 * 32 * 64 + 64
    h, w = (h - 2) // 2, (w - 2) // 2
    dense1 = h * w * 64 * 128 + 128
    return conv1 + conv2 + dense1 + 128 * num_classes + num_classes


def test_build_cnn_layers_shapes_and_parameter_count():
    from tfspike.fs.networks import CNN_LAYERS, build_cnn
    from tfspike.utils.models import count_parameters

    model = build_cnn()
    assert [l.name for l in model.layers[1:]] == list(CNN_LAYERS)
    assert tuple(model.output.shape) == (None, 10)
    assert _cnn_parameters((28, 28, 1), 10) == 320 + 18496 + 204928 + 1290
    assert count_parameters(model) == (_cnn_parameters((28, 28, 1), 10), 0)
    other = build_cnn("relu", input_shape=(32, 32, 3), num_classes=5)
    assert tuple(other.output.shape) == (None, 5)
    assert count_parameters(other)[0] == _cnn_parameters((32, 32, 3), 5)
    assert other.get_layer("conv1").get_config()["activation"] == "relu"


def test_fs_network_replaces_the_three_swish_sites():
    from tfspike.fs.networks import build_cnn, fs_network

    fs_model, report = fs_network(build_cnn(), "swish_k16_best")
    assert [s["fs_layer"] for s in report["sites"]] == ["conv1_fs", "conv2_fs", "dense1_fs"]
    assert report["n_fs_neurons"] == 26 * 26 * 32 + 11 * 11 * 64 + 128
    assert fs_model.get_layer("logits").get_config()["activation"] == "linear"
    with pytest.raises(UserError, match="no swish activations"):
        fs_network(build_cnn("relu"), "swish_k16_best")


def test_network_mode_defaults_and_fs_params_choices(tmp_path):
    from tfspike.cli.fs import check_network_args

    args, _ = parse_args(["--model_type=FS", "--network", "cnn", "--logging_dir", str(tmp_path)])
    check_network_args(args)
    assert (args.epochs, args.batch_size, args.ann_epochs, args.fs_set.name) == (0, 128, 2, "swish_k16_best")
    args, _ = parse_args(["--model_type=FS", "--network", "cnn", "--fs_params", "published", "--epochs", "3",
                          "--batch_size", "32", "--logging_dir", str(tmp_path)])
    check_network_args(args)
    assert (args.epochs, args.batch_size, args.fs_set.name) == (3, 32, "stoeckl_swish_k16")
    args, _ = parse_args(["--model_type=FS"])  # neuron fitting keeps its own defaults
    assert args.epochs == 20000 and args.batch_size is None


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run: 1 ANN epoch, conversion, 1 fine-tuning epoch of the FS net, saved; plain graphs (the
    XLA compiles would dominate at this size)."""
    root = tmp_path_factory.mktemp("fsnet")
    data, logs = root / "data", root / "logs"
    arrays = write_mnist_npz(str(data), n_train=256, n_test=64, seed=5)
    fs_set = _write_set(str(root))
    common = ["--model_type=FS", "--network", "cnn", "--data_dir", str(data), "--logging_dir", str(logs),
              "--jit_compile=False", "--plots=False", "--verbose", "0", "--energy"]
    assert main(common + ["--fs_params", fs_set, "--ann_epochs", "1", "--epochs", "1", "--save=True"]) == 0
    return {"root": root, "logs": logs, "data": data, "arrays": arrays, "common": common, "set": fs_set,
            "first": results(logs, RECORD)}


def _one_line_error(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_first_run_record(trained):
    r, logs = trained["first"], trained["logs"]
    assert r["fs_params"] == SET and r["network"] == "cnn" and r["data_name"] == "MNIST"
    assert r["n_fs_neurons"] == 29504 and r["params"] == _cnn_parameters((28, 28, 1), 10)
    assert 0 <= r["ann_test_accuracy"] <= 1 and r["epochs_run"] == 1 and len(r["history"]["loss"]) == 1
    assert set(r["sites"]) == {"conv1_fs", "conv2_fs", "dense1_fs"} and r["test_samples"] == 64
    assert all(0 < site["spikes_per_neuron"] < 4 for site in r["sites"].values())  # every site spikes, K = 4
    assert r["energy"]["n_samples"] == 64 and r["energy"]["ratio_vs_ann"] > 0
    assert r["train_seconds"] == pytest.approx(r["ann_train_seconds"] + r["fs_train_seconds"])
    assert os.path.exists(logs / f"{RECORD}_fs.keras") and os.path.exists(logs / f"{RECORD}_ann.keras")


def test_load_and_evaluate_reproduces_the_run_and_an_independent_recount(trained):
    import keras

    from tfspike.fs.layer import FewSpike
    from tfspike.reference.fs_numpy import forward_post

    logs, first = trained["logs"], trained["first"]
    saved = str(logs / f"{RECORD}_fs.keras")
    assert main(trained["common"] + ["--load", saved, "--epochs=0"]) == 0
    second = results(logs, RECORD)
    assert second["loaded"] == saved and second["ann_test_accuracy"] is None and second["epochs_run"] == 0
    for key in ("test_accuracy", "test_loss", "spikes_per_neuron", "sites", "n_fs_neurons"):
        assert second[key] == first[key], key  # the same numbers, bit for bit
    assert second["energy"]["per_sample"] == first["energy"]["per_sample"]
    assert not os.path.exists(logs / "runs" / RECORD / "002" / f"{RECORD}_fs.keras")

    # the oracle: Keras' own forward pass for the accuracy and loss, the NumPy FS neuron for the spikes
    x = trained["arrays"]["x_test"].astype(np.float64)[..., None] / 255.0
    y = trained["arrays"]["y_test"].astype(np.int64)
    model = keras.saving.load_model(saved)
    logits = model.predict(x.astype(np.float32), batch_size=len(x), verbose=0).astype(np.float64)
    assert second["test_accuracy"] == np.mean(np.argmax(logits, 1) == y)
    z = logits - logits.max(1, keepdims=True)
    loss = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y])
    assert second["test_loss"] == pytest.approx(loss, rel=1e-5)
    fs_layers = [l for l in model.layers if isinstance(l, FewSpike)]
    probe = keras.Model(model.inputs, [l.input for l in fs_layers])
    inputs = probe.predict(x.astype(np.float32), batch_size=len(x), verbose=0)
    total_spikes = total_neurons = 0
    for layer, a in zip(fs_layers, inputs):
        _, n = forward_post(a, *layer.current_params())
        per_neuron = float(n.astype(np.float64).sum()) / a[0].size / len(x)
        assert second["sites"][layer.name]["spikes_per_neuron"] == pytest.approx(per_neuron, rel=1e-6)
        total_spikes, total_neurons = total_spikes + per_neuron * a[0].size, total_neurons + a[0].size
    assert second["spikes_per_neuron"] == pytest.approx(total_spikes / total_neurons, rel=1e-6)


def test_preset_model_is_the_saved_network_compiled(trained):
    """``tfspike.zoo.load`` builds an FS preset with the family's ``preset_model``: the saved network,
    compiled with the family's loss and accuracy."""
    args, family = parse_args(trained["common"] + ["--load", str(trained["logs"] / f"{RECORD}_fs.keras")])
    model = family.preset_model(args)
    x = (trained["arrays"]["x_test"].astype(np.float64)[..., None] / 255.0).astype(np.float32)
    loss, accuracy = model.evaluate(x, trained["arrays"]["y_test"], batch_size=len(x), verbose=0)
    assert accuracy == pytest.approx(trained["first"]["test_accuracy"], abs=1e-6)
    assert loss == pytest.approx(trained["first"]["test_loss"], rel=1e-5)


def test_load_true_is_this_runs_file_and_its_set_must_match(trained, capsys):
    err = _one_line_error(capsys, trained["common"] + ["--load=True", "--fs_params", "published", "--epochs=0"])
    assert "FS-cnn-MNIST-stoeckl_swish_k16_fs.keras" in err and "not found" in err
    fs_file = str(trained["logs"] / f"{RECORD}_fs.keras")
    err = _one_line_error(capsys, trained["common"] + ["--load", fs_file, "--fs_params", "published", "--epochs=0"])
    assert fs_file in err and SET in err and "--fs_params published" in err


@pytest.mark.parametrize("argv,words", [
    (["--network", "cnn", "--K", "4"], ["--K", "neuron fitting"]),
    (["--network", "cnn", "--steps", "5"], ["--steps", "--epochs"]),
    (["--network", "cnn", "--init", "tbpi"], ["--init"]),            # a fitting flag at its default is refused too
    (["--data_name", "MNIST"], ["--data_name", "--network cnn"]),
    (["--fs_params", "best", "--epochs=0"], ["--fs_params"]),
    (["--K", "4", "--epochs=0", "--export", "saved_model"], ["--export", "--network cnn"]),
    (["--network", "cnn", "--load", "x_fs.keras", "--ann_epochs", "3"], ["--ann_epochs", "--load"]),
    (["--network", "cnn", "--fs_params", "no_such_set"], ["no_such_set"]),
])
def test_flags_of_the_other_mode_are_one_line_errors(argv, words, tmp_path, capsys):
    err = _one_line_error(capsys, ["--model_type=FS", "--logging_dir", str(tmp_path), *argv])
    assert all(w in err for w in words), err
    assert not (tmp_path / "runs").exists()  # refused before any run record


def test_bad_load_files_are_one_line_errors(trained, tmp_path, capsys):
    from tfspike.fs.networks import build_cnn, fs_network
    from tfspike.utils.io import save_model_atomic

    common = trained["common"] + ["--epochs=0", "--load"]
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip archive")
    err = _one_line_error(capsys, common + [str(garbage)])
    assert str(garbage) in err and "not a .keras archive" in err
    ann = str(trained["logs"] / f"{RECORD}_ann.keras")
    err = _one_line_error(capsys, common + [ann])
    assert ann in err and "without FewSpike layers" in err
    wide = str(tmp_path / "wide_fs.keras")
    save_model_atomic(fs_network(build_cnn(input_shape=(32, 32, 1)), trained["set"])[0], wide)
    err = _one_line_error(capsys, common + [wide])
    assert wide in err and "(32, 32, 1)" in err and "(28, 28, 1)" in err
