"""Bad input through ``main.py`` (in process), family by family: one ``error:`` line naming the file or
flag, exit status 2, never a traceback.

The classes swept (issue 11, "Nothing lost, nothing cryptic"): impossible values; ``--load`` files that
are missing, empty, truncated, corrupt, of the wrong kind or of another model; dataset files that are
truncated or corrupt (MNIST ``.npz``, Fashion-MNIST ``.gz``, ECG ``.mat``, SHD ``.h5``, PS-MNIST
permutations); and outputs that cannot be written. Every bad file is made in ``tmp_path`` from a tiny
valid one (``tests/datafiles.py``) by truncating or overwriting bytes. Every case fails before a model
trains, so the whole module takes seconds per family.
"""

import json
import os

import numpy as np
import pytest

from datafiles import (overwrite_bytes, truncate_file, write_cifar10, write_cifar100, write_fashion_mnist,
                       write_mnist_npz, write_qtdb, write_shd)
from tfspike.cli import main


def run_main(argv, capsys):
    """``(status, stderr lines)`` of ``main(argv)``; flag errors exit through argparse's ``SystemExit``."""
    capsys.readouterr()
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:
        status = e.code
    err = capsys.readouterr().err
    return status, err


def error_line(argv, capsys):
    """The single ``error:`` line of a run that must fail with status 2 and no traceback."""
    status, err = run_main(argv, capsys)
    lines = [l for l in err.splitlines() if l.strip()]
    assert "Traceback" not in err, err
    assert status == 2, (status, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ----------------------------------------------------------------------------- bad files, made once

def _write_garbage(path, text="this is not a weight file\n"):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def _copy(src, dst):
    with open(src, "rb") as a, open(dst, "wb") as b:
        b.write(a.read())
    return str(dst)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny valid datasets and a zoo of bad weight/model files (paths as strings)."""
    import keras

    from tfspike.models.ttfs_zoo import build_relu_model
    from tfspike.rsnn.presets import build_rsnn

    root = tmp_path_factory.mktemp("bad_input")
    f = {"root": root}
    f["mnist"] = str(root / "mnist_ok")
    write_mnist_npz(f["mnist"], n_train=40, n_test=20)
    f["fmnist"] = str(root / "fmnist_ok")
    write_fashion_mnist(f["fmnist"], n_train=24, n_test=16)

    relu = build_relu_model("FC2_example", "MNIST")
    f["relu_weights"] = str(root / "relu.weights.h5")
    relu.save_weights(f["relu_weights"])
    f["relu_keras"] = str(root / "relu.keras")
    relu.save(f["relu_keras"])

    # A file of another model: a two-layer net of other shapes.
    other = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, name="other_dense")], name="other")
    f["other_weights"] = str(root / "other.weights.h5")
    other.save_weights(f["other_weights"])
    f["other_snn_weights"] = _copy(f["other_weights"], root / "other_snn.weights.h5")

    f["missing_weights"] = str(root / "absent.weights.h5")
    f["empty_weights"] = str(root / "empty.weights.h5")
    open(f["empty_weights"], "w").close()
    f["truncated_weights"] = str(truncate_file(_copy(f["relu_weights"], root / "truncated.weights.h5")))
    f["truncated_snn_weights"] = _copy(f["truncated_weights"], root / "truncated_snn.weights.h5")
    f["text_weights"] = _write_garbage(root / "text.weights.h5")
    f["text_h5"] = _write_garbage(root / "legacy.h5")
    f["truncated_keras"] = str(truncate_file(_copy(f["relu_keras"], root / "truncated.keras")))
    f["text_keras"] = _write_garbage(root / "text.keras")

    alif = build_rsnn("ALIF", "ECG")
    f["alif_keras"] = str(root / "alif.keras")
    alif.save(f["alif_keras"])
    f["missing_npz"] = str(root / "absent.npz")
    f["text_npz"] = _write_garbage(root / "text.npz")
    np.savez(root / "foreign.npz", foo=np.zeros(3), bar=np.ones(2))
    f["foreign_npz"] = str(root / "foreign.npz")
    np.savez(root / "ref.npz", **{"hidden/linear/weight": np.zeros((4, 8)), "out/linear/weight": np.zeros((2, 4))})
    f["truncated_npz"] = str(truncate_file(_copy(root / "ref.npz", root / "truncated.npz")))
    return f


# ----------------------------------------------------------------------------- TTFS: SNN and ReLU

def _ttfs(model_type, files, tmp_path, *extra):
    return [f"--model_type={model_type}", "--model_name=FC2_example", f"--data_dir={files['mnist']}",
            f"--logging_dir={tmp_path / 'logs'}", "--epochs=0", "--testing=False", "--plots=False", *extra]


TTFS_LOADS = [  # (file key, words the line must contain besides the file)
    ("missing_weights", "not found"),
    ("empty_weights", "is empty (0 bytes)"),
    ("truncated_weights", "truncated or corrupt"),
    ("text_weights", "not an HDF5 file"),
    ("other_weights", "does not fit"),
    ("truncated_keras", "not a .keras archive"),
    ("text_keras", "not a .keras archive"),
    ("text_h5", "not an HDF5 file"),
]


@pytest.mark.parametrize("model_type", ["ReLU", "SNN"])
@pytest.mark.parametrize("key,words", TTFS_LOADS, ids=[k for k, _ in TTFS_LOADS])
def test_ttfs_bad_load_file(model_type, key, words, files, tmp_path, capsys):
    line = error_line(_ttfs(model_type, files, tmp_path, f"--load={files[key]}"), capsys)
    assert files[key] in line and words in line, line


@pytest.mark.parametrize("key,words", [("truncated_snn_weights", "truncated or corrupt"),
                                       ("other_snn_weights", "does not fit"),
                                       ("relu_keras", "class Sequential ('FC2_example_relu'), not TTFSModel")])
def test_snn_load_of_snn_files_that_do_not_fit(key, words, files, tmp_path, capsys):
    """``*_snn.weights.h5`` and ``.keras`` are read as SNNs: a broken one or another model is one line."""
    line = error_line(_ttfs("SNN", files, tmp_path, f"--load={files[key]}"), capsys)
    assert files[key] in line and words in line, line


def test_ttfs_weight_mismatch_names_the_layer_and_shapes(files, tmp_path, capsys):
    line = error_line(_ttfs("ReLU", files, tmp_path, f"--load={files['other_weights']}"), capsys)
    # Keras reports the first layer that does not fit: the FC2's first Dense (784 inputs) against (5, 3)
    assert "has shape (784," in line and "but (5, 3) in the file" in line, line


@pytest.mark.parametrize("damage,words", [(truncate_file, "not an .npz archive (truncated or corrupt?)"),
                                          (lambda p: overwrite_bytes(p, 2000, 200), "not a valid .npz archive"),
                                          (lambda p: open(p, "w").close(), "is empty (0 bytes)")],
                         ids=["truncated", "bit-rot", "empty"])
def test_ttfs_corrupt_mnist(damage, words, tmp_path, capsys):
    write_mnist_npz(tmp_path / "data", n_train=20, n_test=10)
    path = str(tmp_path / "data" / "mnist" / "mnist.npz")
    damage(path)
    line = error_line(["--model_type=ReLU", "--model_name=FC2_example", f"--data_dir={tmp_path / 'data'}",
                       f"--logging_dir={tmp_path / 'logs'}", "--epochs=0"], capsys)
    assert path in line and words in line and "MNIST" in line and "re-download" in line, line


def test_ttfs_mnist_of_the_wrong_kind(tmp_path, capsys):
    os.makedirs(tmp_path / "data" / "mnist")
    np.savez(tmp_path / "data" / "mnist" / "mnist.npz", images=np.zeros((2, 28, 28), np.uint8))
    line = error_line(["--model_type=ReLU", "--model_name=FC2_example", f"--data_dir={tmp_path / 'data'}",
                       f"--logging_dir={tmp_path / 'logs'}", "--epochs=0"], capsys)
    assert "missing x_train, y_train, x_test, y_test (it has images)" in line, line


@pytest.mark.parametrize("data_name,write,rel", [
    ("CIFAR10", lambda d: write_cifar10(d, per_batch=4), "cifar-10-batches-py/test_batch"),
    ("CIFAR100", lambda d: write_cifar100(d, n=4), "cifar-100-python/train")])
@pytest.mark.parametrize("damage,words", [(truncate_file, "not a readable pickle"),
                                          (lambda p: overwrite_bytes(p, 0, 8), "not a readable pickle"),
                                          (lambda p: open(p, "w").close(), "is empty (0 bytes)")],
                         ids=["truncated", "overwritten-header", "empty"])
def test_ttfs_corrupt_cifar_pickles(data_name, write, rel, damage, words, tmp_path, capsys):
    write(tmp_path / "data")
    path = str(tmp_path / "data" / rel)
    damage(path)
    line = error_line(["--model_type=ReLU", "--model_name=VGG_BN_example", f"--data_name={data_name}",
                       f"--data_dir={tmp_path / 'data'}", f"--logging_dir={tmp_path / 'logs'}", "--epochs=0"], capsys)
    assert path in line and words in line and "CIFAR-1" in line, line


@pytest.mark.parametrize("argv,needle", [(["--latency_quantiles=0.5"], "--latency_quantiles"),
                                         (["--weight_bits=8", "--w_min=1", "--w_max=-1"], "--w_min"),
                                         (["--noise=-1"], "--noise"), (["--time_bits=1"], "--time_bits")])
def test_ttfs_bad_values(argv, needle, files, tmp_path, capsys):
    assert needle in error_line(_ttfs("SNN", files, tmp_path, *argv), capsys)


# ----------------------------------------------------------------------------- FS parameter sets

def _fs(tmp_path, *extra):
    return ["--model_type=FS", "--K=4", "--epochs=0", f"--logging_dir={tmp_path / 'logs'}", "--plots=False", *extra]


FS_FILES = [  # (name, content or None for absent, words)
    ("absent.json", None, "FS parameter file not found"),
    ("empty.json", "", "is empty (0 bytes)"),
    ("broken.json", '{"h": [1, 2', "is not a readable FS parameter JSON file"),
    ("list.json", "[1, 2, 3]", "not an FS set"),
    ("other.json", '{"x_n": [1.0]}', "not an FS set (needs h, d and T)"),
    ("ragged.json", '{"h": [1, 2, 3, 4], "d": [1, 2], "T": [1, 2, 3, 4]}', "the same length"),
    ("k8.json", json.dumps({"h": [0.5] * 8, "d": [0.5] * 8, "T": [0.5] * 8}), "has K = 8, not --K=4"),
]


@pytest.mark.parametrize("name,content,words", FS_FILES, ids=[n for n, _, _ in FS_FILES])
def test_fs_bad_parameter_file(name, content, words, tmp_path, capsys):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    line = error_line(_fs(tmp_path, f"--load={path}"), capsys)
    assert str(path) in line and words in line, line


def test_fs_bad_values(tmp_path, capsys):
    assert "--table" in error_line(_fs(tmp_path, "--table=True"), capsys)
    assert "--batch_size" in error_line(_fs(tmp_path, "--batch_size=8"), capsys)


# ----------------------------------------------------------------------------- BRF, RF, ALIF

def _rsnn(model_type, tmp_path, *extra, data_name="ECG", data_dir=None):
    return [f"--model_type={model_type}", f"--data_name={data_name}", "--epochs=0", "--plots=False",
            f"--logging_dir={tmp_path / 'logs'}", f"--data_dir={data_dir or tmp_path / 'no_data'}", *extra]


RSNN_LOADS = [
    ("missing_npz", "not found"),
    ("text_npz", "not an .npz archive (truncated or corrupt?)"),
    ("truncated_npz", "not an .npz archive (truncated or corrupt?)"),
    ("foreign_npz", "missing hidden/linear/weight, out/linear/weight, out/tau_mem"),
    ("missing_weights", "not found"),
    ("empty_weights", "is empty (0 bytes)"),
    ("truncated_weights", "truncated or corrupt"),
    ("text_weights", "not an HDF5 file"),
    ("other_weights", "does not fit"),
    ("text_keras", "not a .keras archive"),
    ("relu_keras", "class Sequential ('FC2_example_relu'), not RSNN"),
]


@pytest.mark.parametrize("model_type", ["BRF", "RF", "ALIF"])
@pytest.mark.parametrize("key,words", RSNN_LOADS, ids=[k for k, _ in RSNN_LOADS])
def test_rsnn_bad_load_file(model_type, key, words, files, tmp_path, capsys):
    line = error_line(_rsnn(model_type, tmp_path, f"--load={files[key]}"), capsys)
    assert files[key] in line and words in line, line


@pytest.mark.parametrize("model_type", ["BRF", "RF"])
def test_rsnn_keras_of_another_neuron(model_type, files, tmp_path, capsys):
    line = error_line(_rsnn(model_type, tmp_path, f"--load={files['alif_keras']}"), capsys)
    assert files["alif_keras"] in line and f"holds a model of ALIF neurons, not --model_type={model_type}" in line, line


def test_brf_reference_of_another_neuron_lists_the_missing_keys(files, tmp_path, capsys, golden_dir):
    """An ALIF network given the BRF golden checkpoint: the line lists the ALIF keys it lacks."""
    path = str(golden_dir / "brf" / "ecg_brf.npz")
    line = error_line(_rsnn("ALIF", tmp_path, f"--load={path}"), capsys)
    assert path in line and "missing hidden/tau_mem, hidden/tau_adp" in line, line


@pytest.mark.parametrize("damage,words", [(truncate_file, "not a readable MATLAB file"),
                                          (lambda p: overwrite_bytes(p, 0, 200), "not a readable MATLAB file")],
                         ids=["truncated", "overwritten-header"])
def test_rsnn_corrupt_ecg(damage, words, tmp_path, capsys):
    write_qtdb(tmp_path / "data")
    path = str(tmp_path / "data" / "ecg" / "QTDB_train.mat")
    damage(path)
    line = error_line(_rsnn("BRF", tmp_path, data_dir=tmp_path / "data"), capsys)
    assert path in line and words in line and "ECG-QTDB" in line, line


def test_rsnn_ecg_of_the_wrong_kind(tmp_path, capsys):
    import scipy.io

    write_qtdb(tmp_path / "data")
    path = str(tmp_path / "data" / "ecg" / "QTDB_train.mat")
    scipy.io.savemat(path, {"signal": np.zeros((2, 3))})
    line = error_line(_rsnn("BRF", tmp_path, data_dir=tmp_path / "data"), capsys)
    assert path in line and "missing x, y (it has signal)" in line, line


@pytest.mark.parametrize("damage,words", [(lambda p: overwrite_bytes(p, 0, 64), "not an HDF5 file"),
                                          (truncate_file, "not an HDF5 file")],
                         ids=["overwritten-signature", "truncated"])
def test_rsnn_corrupt_shd(damage, words, tmp_path, capsys):
    write_shd(tmp_path / "data")
    path = str(tmp_path / "data" / "shd" / "shd_train.h5")
    damage(path)
    line = error_line(_rsnn("BRF", tmp_path, data_name="SHD", data_dir=tmp_path / "data"), capsys)
    assert path in line and words in line and "zenkelab" in line, line


def test_rsnn_truncated_shd_gz(tmp_path, capsys):
    import gzip

    write_shd(tmp_path / "data")
    shd = tmp_path / "data" / "shd"
    with open(shd / "shd_train.h5", "rb") as src, gzip.open(shd / "shd_train.h5.gz", "wb") as dst:
        dst.write(src.read())
    os.remove(shd / "shd_train.h5")
    path = str(truncate_file(str(shd / "shd_train.h5.gz")))
    line = error_line(_rsnn("BRF", tmp_path, data_name="SHD", data_dir=tmp_path / "data"), capsys)
    assert path in line and "not a valid gzip file" in line, line
    assert not os.path.exists(shd / "shd_train.h5")  # no half-decompressed file left behind


@pytest.mark.parametrize("content,words", [(None, "permutation file not found"),
                                           (b"\x93NUMPY garbage", "not a valid .npy file"),
                                           ("arange783", "must be a permutation of 0..783")])
def test_psmnist_bad_permutation_file(content, words, tmp_path, capsys):
    path = tmp_path / "perm.npy"
    if content == "arange783":
        np.save(path, np.arange(783))
    elif content is not None:
        path.write_bytes(content)
    line = error_line(_rsnn("BRF", tmp_path, f"--permutation={path}", data_name="PSMNIST"), capsys)
    assert str(path) in line and words in line, line


def test_rsnn_bad_values(tmp_path, capsys):
    assert "--full_epochs" in error_line(_rsnn("BRF", tmp_path, "--epochs=500"), capsys)


# ----------------------------------------------------------------------------- DDIM

@pytest.fixture(scope="module")
def ddim_logs(tmp_path_factory):
    """One logging folder for the DDIM cases: the offline KID classifier is trained once and cached there."""
    return tmp_path_factory.mktemp("ddim_logs")


def _ddim(files, logs, *extra, data_dir=None):
    return ["--model_type=DDIM", "--activation=swish", "--data_name=FMNIST",
            f"--data_dir={data_dir or files['fmnist']}",
            f"--logging_dir={logs}", "--epochs=0", "--widths=8,16", "--block_depth=1", "--batch_size=8",
            "--kid_classifier_epochs=1", "--max_kid_batches=1", "--plots=False", "--spike_stats_images=0", *extra]


DDIM_LOADS = [
    ("missing_weights", "not found"),
    ("empty_weights", "is empty (0 bytes)"),
    ("truncated_weights", "truncated or corrupt"),
    ("text_weights", "not an HDF5 file"),
    ("relu_weights", "does not fit"),
    ("relu_keras", "expects a .weights.h5 file"),
]


@pytest.mark.parametrize("key,words", DDIM_LOADS, ids=[k for k, _ in DDIM_LOADS])
def test_ddim_bad_load_file(key, words, files, ddim_logs, capsys):
    line = error_line(_ddim(files, ddim_logs, f"--load={files[key]}"), capsys)
    assert files[key] in line and words in line, line


@pytest.mark.parametrize("damage,words", [(truncate_file, "not a valid gzip file"),
                                          (lambda p: overwrite_bytes(p, 0, 16), "not a valid gzip file"),
                                          (lambda p: os.remove(p), "Fashion-MNIST file not found")],
                         ids=["truncated", "overwritten-header", "missing"])
def test_ddim_corrupt_fashion_mnist(damage, words, files, tmp_path, capsys):
    write_fashion_mnist(tmp_path / "data", n_train=8, n_test=8)
    path = str(tmp_path / "data" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")
    damage(path)
    line = error_line(_ddim(files, tmp_path / "logs", data_dir=tmp_path / "data"), capsys)
    assert path in line and words in line, line


def test_ddim_bad_values(files, tmp_path, capsys):
    assert "divisible" in error_line(_ddim(files, tmp_path, "--widths=8,8,8,8,8,8,8"), capsys)


# ----------------------------------------------------------------------------- outputs

@pytest.mark.parametrize("model_type", ["SNN", "ReLU", "FS", "BRF", "RF", "ALIF", "DDIM"])
@pytest.mark.parametrize("below", [True, False], ids=["below-a-file", "is-a-file"])
def test_unwritable_logging_dir(model_type, below, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    target = blocker / "sub" if below else blocker
    line = error_line([f"--model_type={model_type}", "--epochs=0", f"--logging_dir={target}"], capsys)
    assert str(target) in line and "--logging_dir" in line, line


def test_unwritable_export_dir_is_refused_before_training(files, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    line = error_line(_ttfs("ReLU", files, tmp_path, f"--export={blocker / 'saved_model'}"), capsys)
    assert str(blocker) in line and "--export" in line, line
