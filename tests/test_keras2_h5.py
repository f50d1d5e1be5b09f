"""Legacy Keras 2 ``.h5`` weights (cifar10vgg.h5 layout, spec §5.8, test A13) → Keras 3 → TTFS.

The fixture writer reproduces Keras 2.2's ``save_weights_to_hdf5_group`` byte layout: root attributes
``layer_names`` / ``backend`` / ``keras_version``, one group per layer (weightless ones included) with a
``weight_names`` attribute, datasets named ``<layer>/<weight>:0`` (so nested groups), attributes chunked
as ``name0``, ``name1``, … past the HDF5 object-header limit.
"""

import hashlib
import json
import os
import warnings

import h5py
import keras
import numpy as np
import pytest

from test_convert_cifar_vgg import cifar_vgg, randomize
from tfspike.convert.ttfs import relu_to_ttfs
from tfspike.errors import UserError, WeightMismatchError
from tfspike.io import CIFAR10VGG_SIZE, load_keras2_h5, load_relu_weights
from tfspike.io.keras2_h5 import read_attribute_list

HDF5_OBJECT_HEADER_LIMIT = 64512
SMALL = ((4, 4), (6, 6), (8, 8, 8), (8, 8, 8), (8, 8, 8))


def _save_attributes(group, name, data, min_chunks=1):
    """Keras 2 ``save_attributes_to_hdf5_group`` (``min_chunks`` > 1 forces the chunked form)."""
    data_npy = np.asarray(data)
    num_chunks = min_chunks
    chunked = np.array_split(data_npy, num_chunks)
    while any(x.nbytes > HDF5_OBJECT_HEADER_LIMIT for x in chunked):
        num_chunks += 1
        chunked = np.array_split(data_npy, num_chunks)
    if num_chunks > 1:
        for k, chunk in enumerate(chunked):
            group.attrs[f"{name}{k}"] = chunk
    else:
        # h5py 2.x (2018) stored a list of bytes as a fixed-length 'S' array; an empty list as float64 []
        group.attrs[name] = data_npy


def write_keras2_h5(path, model, whole_model=False, chunks=1, names=None):
    """Write ``model``'s weights the way Keras 2 ``save_weights`` (or ``model.save``) did."""
    names = names or [l.name for l in model.layers]
    with h5py.File(path, "w") as f:
        if whole_model:
            f.attrs["keras_version"] = b"2.2.4"
            f.attrs["backend"] = b"tensorflow"
            f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {}}).encode("utf8")
            f.create_group("optimizer_weights")
            root = f.create_group("model_weights")
        else:
            root = f
        _save_attributes(root, "layer_names", [n.encode("utf8") for n in names], min_chunks=chunks)
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.2.4"
        for name, layer in zip(names, model.layers):
            g = root.create_group(name)
            weights = list(layer.trainable_weights) + list(layer.non_trainable_weights)  # Keras 2 legacy order
            wnames = [f"{name}/{w.name}:0".encode("utf8") for w in weights]
            _save_attributes(g, "weight_names", wnames, min_chunks=chunks if wnames else 1)
            for wn, w in zip(wnames, weights):
                d = g.create_dataset(wn, w.shape, dtype="float32")
                d[...] = np.asarray(w.numpy(), dtype="float32")
    return path


def _pretrained(seed=0):
    return randomize(cifar_vgg(SMALL, dense=16), seed=seed)


def _x(n=64):
    return np.random.default_rng(7).uniform(-1.882, 2.093, (n, 32, 32, 3)).astype("float32")


def test_fixture_has_keras2_layout(tmp_path):
    src = _pretrained()
    path = write_keras2_h5(tmp_path / "w.h5", src)
    with h5py.File(path, "r") as f:
        names = read_attribute_list(f, "layer_names")
        assert len(names) == 60
        assert sum(1 for n in names if len(f[n].attrs["weight_names"])) == 29
        assert "kernel:0" in f["conv2d_1"]["conv2d_1"]  # nested by the '/' of the weight name
        stored = f["batch_normalization_1"].attrs["weight_names"]
        assert stored.dtype.kind == "S"
        assert [w.decode() for w in stored] == [
            "batch_normalization_1/gamma:0", "batch_normalization_1/beta:0",
            "batch_normalization_1/moving_mean:0", "batch_normalization_1/moving_variance:0"]


def test_load_by_name_then_convert_identical_logits(tmp_path):
    src = _pretrained(seed=0)
    path = write_keras2_h5(tmp_path / "cifar10vgg_small.h5", src)
    dst = cifar_vgg(SMALL, dense=16)
    summary = load_keras2_h5(dst, path)
    assert summary["layers"] == 29 and summary["matched_by"] == "name"
    assert summary["parameters"] == src.count_params()
    for a, b in zip(src.weights, dst.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = _x()
    z = keras.Model(dst.inputs, dst.layers[-2].output).predict(x, verbose=0)
    snn = relu_to_ttfs(dst, input_range=(-3, 3))
    z_snn = snn.predict(x, verbose=0)
    np.testing.assert_array_equal(z_snn.argmax(-1), z.argmax(-1))
    np.testing.assert_allclose(z_snn, z, rtol=0, atol=1e-4 * max(1, np.abs(z).max()))
    # the same file into a float64 model: the converted logits are exact
    keras.config.set_floatx("float64")
    dst64 = cifar_vgg(SMALL, dense=16, dtype="float64")
    load_keras2_h5(dst64, path)
    x64 = x.astype("float64")
    z64 = keras.Model(dst64.inputs, dst64.layers[-2].output).predict(x64, verbose=0)
    snn64 = relu_to_ttfs(dst64, input_range=(-3, 3), dtype="float64")
    assert np.max(np.abs(snn64.predict(x64, verbose=0) - z64)) <= 1e-9


def test_full_size_file_loads_into_zoo_vgg_bn(tmp_path):
    """A full-size file in the cifar10vgg layout (15,001,418 parameters) loads by name into the zoo's
    VGG_BN CIFAR10 model that ``main.py --load=cifar10vgg.h5`` builds."""
    zoo = pytest.importorskip("tfspike.models.ttfs_zoo")
    src = cifar_vgg()
    assert src.count_params() == 15_001_418
    path = write_keras2_h5(tmp_path / "cifar10vgg_layout.h5", src)
    for dropout in (None, "cifar-vgg"):
        dst = zoo.build_relu_model("VGG_BN", "CIFAR10", dropout=dropout)
        summary = load_keras2_h5(dst, path)
        assert summary == {**summary, "layers": 29, "parameters": 15_001_418, "matched_by": "name"}
        by_name = {l.name: l for l in dst.layers}
        for layer in src.layers:
            for a, b in zip(layer.weights, by_name[layer.name].weights if layer.weights else []):
                np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_whole_model_chunked_attributes_and_order_matching(tmp_path):
    src = _pretrained(seed=1)
    path = write_keras2_h5(tmp_path / "model.h5", src, whole_model=True, chunks=3)
    with h5py.File(path, "r") as f:
        assert "layer_names" not in f["model_weights"].attrs and "layer_names2" in f["model_weights"].attrs
    # Keras 3 auto names (conv2d, conv2d_1, …) do not match the Keras 2 names: matched in order
    keras.backend.clear_session()
    auto = keras.Sequential([l.__class__.from_config({k: v for k, v in l.get_config().items() if k != "name"})
                             for l in src.layers])
    auto.build((None, 32, 32, 3))
    assert auto.layers[0].name != "conv2d_1" or auto.layers[-1].name != "activation_15"
    summary = load_keras2_h5(auto, path)
    assert summary["matched_by"] == "order" and summary["layers"] == 29
    for a, b in zip(src.weights, auto.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_route_a_keras_legacy_loader(tmp_path):
    """Route A: Keras 3's own legacy loader reads the same file (topological order)."""
    src = _pretrained(seed=2)
    path = write_keras2_h5(tmp_path / "w.h5", src)
    dst = cifar_vgg(SMALL, dense=16)
    dst.load_weights(str(path))
    for a, b in zip(src.weights, dst.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_wrong_shape_names_layer_and_shapes_and_assigns_nothing(tmp_path):
    src = _pretrained()
    path = write_keras2_h5(tmp_path / "w.h5", src)
    wider = list(SMALL)
    wider[2] = (8, 9, 8)  # conv2d_6 has 9 filters instead of 8
    dst = cifar_vgg(tuple(wider), dense=16)
    before = [w.numpy().copy() for w in dst.weights]
    with pytest.raises(WeightMismatchError) as e:
        load_keras2_h5(dst, path)
    msg = str(e.value)
    assert "'conv2d_6'" in msg and "(3, 3, 8, 8)" in msg and "(3, 3, 8, 9)" in msg and "\n" not in msg
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, dst.weights))


def test_wrong_layer_count(tmp_path):
    src = _pretrained()
    path = write_keras2_h5(tmp_path / "w.h5", src)
    fewer = cifar_vgg(SMALL[:4], dense=16)
    with pytest.raises(WeightMismatchError, match="has 29 layers with weights"):
        load_keras2_h5(fewer, path)


def test_load_relu_weights_dispatch(tmp_path):
    src = _pretrained(seed=3)
    x = _x(8)
    want = keras.ops.convert_to_numpy(src(x))  # eager calls: no per-model tracing
    src.save_weights(tmp_path / "relu.weights.h5")
    src.save(tmp_path / "relu.keras")
    write_keras2_h5(tmp_path / "legacy.h5", src)
    for name in ("relu.weights.h5", "relu.keras", "legacy.h5"):
        dst = cifar_vgg(SMALL, dense=16)
        load_relu_weights(dst, tmp_path / name)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(dst(x)), want)
    with pytest.raises(UserError, match="weight file not found"):
        load_relu_weights(cifar_vgg(SMALL, dense=16), tmp_path / "absent.h5")
    with open(tmp_path / "w.txt", "w") as f:
        f.write("x")
    with pytest.raises(UserError, match="unsupported weight file"):
        load_relu_weights(cifar_vgg(SMALL, dense=16), tmp_path / "w.txt")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("a", data=np.zeros(3))
    with pytest.raises(WeightMismatchError, match="neither a Keras 2"):
        load_relu_weights(cifar_vgg(SMALL, dense=16), tmp_path / "other.h5")
    wider = cifar_vgg(SMALL, dense=32)
    with pytest.raises(WeightMismatchError):
        load_relu_weights(wider, tmp_path / "relu.weights.h5")


def test_cifar10vgg_identity_warning(tmp_path):
    src = _pretrained()
    path = write_keras2_h5(tmp_path / "cifar10vgg.h5", src)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = load_keras2_h5(cifar_vgg(SMALL, dense=16), path)
    assert any("differs from the published cifar10vgg.h5" in str(w.message) for w in caught)
    with open(path, "rb") as f:
        want_sha = hashlib.sha256(f.read()).hexdigest()
    assert summary["size"] == os.path.getsize(path) and summary["sha256"] == want_sha


@pytest.mark.data
def test_real_cifar10vgg_file_if_present(data_dir):
    """With the real file (``--data_dir`` or ``logs/``): 60,134,600 bytes, 15,001,418 parameters."""
    candidates = [os.path.join(d, "cifar10vgg.h5") for d in (data_dir, "logs")]
    path = next((p for p in candidates if os.path.exists(p)), None)
    if path is None:
        pytest.skip("cifar10vgg.h5 is not available offline")
    assert os.path.getsize(path) == CIFAR10VGG_SIZE
    model = cifar_vgg()
    summary = load_keras2_h5(model, path)
    assert summary["layers"] == 29 and summary["parameters"] == 15_001_418
