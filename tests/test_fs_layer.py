"""FewSpike layer: the contract the DDIM helper relies on, and checks D1–D3 of fs.md §6."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_contract import check_layer_contract
from tfspike import surrogates
from tfspike.errors import UserError
from tfspike.fs import FewSpike, fs_relu, get_params, post_to_pre
from tfspike.reference import fs_numpy as R


def test_contract_imports_and_get_params():
    p = get_params("stoeckl_swish_k16")
    assert p.K == 16 and p.name == "stoeckl_swish_k16"
    assert p.h.dtype == np.float32 and p.d.dtype == np.float32 and p.T.dtype == np.float32
    assert get_params("stoeckl_sigmoid_k12").K == 12
    relu = get_params("relu_k10")
    assert relu.K == 10 and relu.h[0] == 12.5
    np.testing.assert_array_equal(fs_relu(10, 25.0).T, relu.T)
    # dicts, tuples and saved files resolve to the same set
    d = {"h": p.h.tolist(), "d": p.d.tolist(), "T": p.T.tolist()}
    for obj in (d, (p.h, p.d, p.T)):
        q = get_params(obj)
        assert q.K == 16
        np.testing.assert_array_equal(q.T, p.T)


def test_contract_layer_constant_params():
    layer = FewSpike(params="stoeckl_swish_k16", voltage_scaling="abs_plus_one", trainable_params=False,
                     name="fs_test")
    x = np.random.default_rng(0).normal(0, 2, (3, 4, 4, 5)).astype(np.float32)
    y = layer(x)
    assert layer.weights == [] and layer.trainable_weights == []
    assert y.dtype == tf.float32 and tuple(y.shape) == x.shape
    np.testing.assert_array_equal(y.numpy(), R.forward_post(x, *get_params("stoeckl_swish_k16").as_tuple())[0])


def test_unknown_and_ungenerated_presets_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown FS parameter set"):
        get_params("no_such_set")
    with pytest.raises(UserError, match="same length"):
        get_params(([1.0, 2.0], [1.0], [0.0, 0.0]))
    with pytest.raises(UserError, match="not found"):
        get_params(str(tmp_path / "missing.json"))
    # a fitted preset whose file is missing (e.g. deleted by the user) gets a hint how to make it
    from tfspike.fs import params as params_mod

    monkeypatch.setattr(params_mod, "BUILTIN_PRESET_DIR", str(tmp_path))
    monkeypatch.delenv("TFSPIKE_FS_PRESETS", raising=False)
    with pytest.raises(UserError, match="has not been generated"):
        get_params("swish_k16_best")


def test_saved_set_round_trip(tmp_path):
    p = get_params("stoeckl_sigmoid_k12")
    path = p.save(tmp_path / "s.json")
    q = get_params(str(path))
    for a, b in zip(p.as_tuple(), q.as_tuple()):
        np.testing.assert_array_equal(a, b)
    layer = FewSpike(str(path))
    assert layer.K == 12


def test_pre_ordering_loader(tmp_path):
    from tfspike.fs import load_params
    from tfspike.fs.param_set import FSParams

    p = get_params("stoeckl_swish_k16")
    pre = FSParams(*post_to_pre(*p.as_tuple()))
    import json

    path = tmp_path / "pre.json"
    json.dump({"h": pre.h.tolist(), "d": pre.d.tolist(), "T": pre.T.tolist(), "ordering": "pre"}, open(path, "w"))
    with pytest.raises(UserError, match="ordering"):
        load_params(path)  # no default ordering
    with pytest.raises(UserError, match="declares ordering"):
        load_params(path, ordering="post")
    q = load_params(path, ordering="pre")
    np.testing.assert_array_equal(q.h, p.h)
    with pytest.raises(UserError):
        get_params(str(path))  # get_params only takes post sets


@pytest.mark.parametrize("trainable", [False, True])
def test_layer_contract(trainable):
    x = np.random.default_rng(1).normal(0, 2, (8, 6, 3)).astype(np.float32)
    model = check_layer_contract(
        lambda: FewSpike("stoeckl_swish_k16", trainable_params=trainable), x,
        expected_output_shape=(8, 6, 3), fit=True)
    fs = [l for l in model.layers if isinstance(l, FewSpike)][0]
    assert len(fs.weights) == (3 if trainable else 0)


@pytest.mark.parametrize("trainable", [False, True])
def test_layer_contract_with_a_non_default_surrogate(trainable, tmp_path):
    """The contract (config round trip, .keras and .weights.h5 reload, a fit step) with Triangle(2, 0.5),
    and the restored layer keeps that surrogate and its gradients."""
    x = np.random.default_rng(1).normal(0, 2, (8, 6, 3)).astype(np.float32)
    make = lambda: FewSpike("stoeckl_swish_k16", trainable_params=trainable,  # noqa: E731
                            surrogate=surrogates.Triangle(width=2.0, peak=0.5))
    model = check_layer_contract(make, x, expected_output_shape=(8, 6, 3), fit=True)
    fs = [l for l in model.layers if isinstance(l, FewSpike)][0]
    assert fs.surrogate == surrogates.Triangle(width=2.0, peak=0.5)
    model.save(tmp_path / "tri.keras")
    loaded = keras.saving.load_model(tmp_path / "tri.keras")
    fs_loaded = [l for l in loaded.layers if isinstance(l, FewSpike)][0]
    assert fs_loaded.surrogate == surrogates.Triangle(width=2.0, peak=0.5)
    assert fs_loaded.get_config() == fs.get_config()
    xt = tf.constant(x)
    grads = []
    for m in (model, loaded):
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = m(xt)
        grads.append(tape.gradient(y, xt).numpy())
    np.testing.assert_array_equal(grads[0], grads[1])


def test_default_surrogate_is_the_unit_triangle_and_keeps_the_reference_gradients():
    """Default = Triangle(1, 1) (spec §1.4): every gradient equals the NumPy reverse pass of fs_numpy."""
    layer = FewSpike("stoeckl_swish_k16", trainable_params=True)
    assert layer.surrogate == surrogates.Triangle(width=1.0, peak=1.0)
    cfg = layer.get_config()["surrogate"]
    assert cfg["class_name"] == "Triangle" and cfg["config"] == {"width": 1.0, "peak": 1.0}
    p = get_params("stoeckl_swish_k16")
    x = np.random.default_rng(5).normal(0, 3, (200,)).astype(np.float32)
    g_out = np.random.default_rng(6).normal(size=x.shape).astype(np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(layer(xt) * g_out)
    got = tape.gradient(loss, [xt, layer.h, layer.d, layer.T])
    want = R.backward_post(x, *p.as_tuple(), g_out, voltage_scaling="abs_plus_one")
    for a, b, name in zip(got, want, ("x", "h", "d", "T")):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-4, atol=1e-5, err_msg=name)


def _input_gradient(surrogate, voltage_scaling, x):
    """d out / d x of a one-step FS neuron (h = 0, d = 1, T = 1): the surrogate at s, times ds/dx."""
    layer = FewSpike(h=[0.0], d=[1.0], T=[1.0], voltage_scaling=voltage_scaling, surrogate=surrogate)
    xt = tf.constant(np.float32(x))
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
    return y.numpy(), tape.gradient(y, xt).numpy()


def test_surrogate_sets_the_gradient_by_hand():
    x = [-0.5, 0.25, 0.9, 1.5, 2.2, 3.5]  # s = x - 1 = [-1.5, -0.75, -0.1, 0.5, 1.2, 2.5]
    y, g_default = _input_gradient(None, "none", x)
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(g_default, [0, 0.25, 0.9, 0.5, 0, 0], atol=1e-6)  # max(0, 1 - |s|)
    y_tri, g_tri = _input_gradient(surrogates.Triangle(width=2.0, peak=0.5), "none", x)
    np.testing.assert_array_equal(y_tri, y)  # the surrogate never changes the forward pass
    np.testing.assert_allclose(g_tri, [0.125, 0.3125, 0.475, 0.375, 0.2, 0], atol=1e-6)  # 0.5 max(0, 1 - |s|/2)
    # double Gaussian by name, at s = 0, 0.25, 0.5, 1 (brf.md table: g = 0.438837, 0.384997, 0.258594, 0.043220)
    _, g_dg = _input_gradient("double_gaussian", "none", [1.0, 1.25, 1.5, 2.0])
    np.testing.assert_allclose(g_dg, [0.438837, 0.384997, 0.258594, 0.043220], atol=1e-6)
    # scaled argument: x = 2 gives s = 1/3 and ds/dx = 1/3 - 1/9 = 2/9
    _, g_scaled = _input_gradient(surrogates.Triangle(width=2.0, peak=0.5), "abs_plus_one", [2.0])
    np.testing.assert_allclose(g_scaled, [0.5 * (1 - 1 / 6) * 2 / 9], rtol=1e-6)
    _, g_scaled_default = _input_gradient(None, "abs_plus_one", [2.0])
    np.testing.assert_allclose(g_scaled_default, [(1 - 1 / 3) * 2 / 9], rtol=1e-6)


def test_surrogate_config_forms_and_old_configs():
    by_dict = FewSpike("relu_k10", surrogate={"class_name": "triangle", "config": {"width": 3.0}})
    assert by_dict.surrogate == surrogates.Triangle(width=3.0)
    clone = FewSpike.from_config(by_dict.get_config())
    assert clone.surrogate == by_dict.surrogate and clone.get_config() == by_dict.get_config()
    old = FewSpike("relu_k10").get_config()
    del old["surrogate"]  # configs saved before surrogate= existed load with the default
    assert FewSpike.from_config(old).surrogate == surrogates.Triangle()
    with pytest.raises(UserError, match="unknown surrogate"):
        FewSpike("relu_k10", surrogate="sigmoid_surrogate")


def test_D1_weights():
    a = FewSpike("relu_k10", trainable_params=False)
    a.build((None, 4))
    assert a.weights == []
    b = FewSpike("relu_k10", trainable_params=True)
    b.build((None, 4))
    assert [w.shape for w in b.weights] == [(10,)] * 3
    assert sorted(w.name for w in b.weights) == ["T", "d", "h"]
    assert len(b.trainable_weights) == 3


def test_D2_clone_and_keras_round_trip(tmp_path):
    inp = keras.Input((5,))
    out = FewSpike("stoeckl_sigmoid_k12", voltage_scaling="none")(keras.layers.Dense(5)(inp))
    model = keras.Model(inp, out)
    x = np.random.default_rng(2).normal(0, 3, (16, 5)).astype(np.float32)
    y = model.predict(x, verbose=0)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x, verbose=0), y)
    fs_c = clone.layers[-1]
    assert fs_c.get_config() == model.layers[-1].get_config()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), y)
    assert loaded.layers[-1].get_config() == model.layers[-1].get_config()
    assert loaded.layers[-1].voltage_scaling == "none"


def test_trained_params_survive_save(tmp_path):
    x = np.random.default_rng(3).normal(0, 2, (32, 4)).astype(np.float32)
    inp = keras.Input((4,))
    model = keras.Model(inp, FewSpike("tbpi_trend_k8", trainable_params=True)(inp))
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    model.fit(x, np.tanh(x), epochs=3, verbose=0)
    h_trained = model.layers[-1].current_params()[0]
    assert not np.array_equal(h_trained[:-1], get_params("tbpi_trend_k8").h[:-1])
    assert h_trained[-1] == get_params("tbpi_trend_k8").h[-1]  # B1: dead reset never moves
    model.save(tmp_path / "t.keras")
    loaded = keras.saving.load_model(tmp_path / "t.keras")
    np.testing.assert_array_equal(loaded.layers[-1].current_params()[0], h_trained)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_D3_mixed_precision_computes_in_float32():
    x32 = np.random.default_rng(4).normal(0, 3, (4, 9)).astype(np.float32)
    x16 = x32.astype(np.float16)
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        inp = keras.Input((9,))
        pre = keras.layers.Dense(9)(inp)
        layer = FewSpike("stoeckl_swish_k16")
        out = layer(pre)
        model = keras.Model(inp, out)
        assert layer.compute_dtype == "float32" and out.dtype == "float32"
        direct = layer(tf.constant(x16))
        assert direct.dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")
    want = R.forward_post(x16.astype(np.float32), *get_params("stoeckl_swish_k16").as_tuple())[0]
    np.testing.assert_array_equal(direct.numpy(), want)
    assert model.predict(x32, verbose=0).dtype == np.float32


def test_spike_count_does_not_change_output():
    layer = FewSpike("relu_k10")
    x = tf.constant(np.linspace(0, 25, 100001).astype(np.float32))
    n = layer.spike_count(x).numpy()
    assert abs(n.mean() - 5.0008) < 2e-3
    np.testing.assert_array_equal(layer(x).numpy(), R.forward_post(x.numpy(), *fs_relu(10).as_tuple())[0])


def test_bad_arguments():
    with pytest.raises(UserError, match="voltage_scaling"):
        FewSpike("relu_k10", voltage_scaling="scaled")
    with pytest.raises(UserError, match="needs params"):
        FewSpike()
    with pytest.raises(UserError, match="not both"):
        FewSpike("relu_k10", h=[1.0], d=[1.0], T=[0.0])


@pytest.mark.parametrize("name", ["swish_k16_random", "swish_k16_gaussian", "swish_k16_tbpi", "swish_k16_best"])
def test_shipped_fitted_presets(name):
    from tfspike.fs.params import BUILTIN_PRESET_DIR
    from tfspike.fs.targets import grid_mse

    if not os.path.exists(os.path.join(BUILTIN_PRESET_DIR, name + ".json")):
        pytest.skip(f"{name} not generated")
    p = get_params(name)
    assert p.K == 16 and p.name == name
    assert "seed" in p.meta and "config" in p.meta and "command" in p.meta
    mse = grid_mse(p)
    assert mse == pytest.approx(p.meta["final_mse"], rel=0.1)
    if name == "swish_k16_best":
        assert mse == pytest.approx(p.meta["grid_mse"], rel=1e-5)
        assert mse < 0.000525  # below the TBPI README / re-implementation K = 16 value
    out = FewSpike(name)(np.float32([-5.0, 0.0, 5.0])).numpy()
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("trainable", [False, True])
def test_default_layer_gradients_equal_autodiff_of_the_quotient(trainable):
    """The default layer (abs_plus_one, Triangle) has no division in its forward pass; its output and the
    gradients of its input (and trained h, d, T) equal autodiff of surrogate((v - T)/(|v| + 1)), bitwise."""
    p = get_params("stoeckl_swish_k16")
    x = tf.constant(np.random.default_rng(12).normal(0, 3, (4, 50)).astype(np.float32))
    layer = FewSpike("stoeckl_swish_k16", trainable_params=trainable)
    layer.build(x.shape)
    hdT = [layer.h, layer.d, layer.T] if trainable else [tf.constant(a) for a in p.as_tuple()]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = layer(x)
        v, want = x, tf.zeros_like(x)
        h, d, T = hdT
        for k in range(p.K):  # the quotient form, written out
            z = surrogates.Triangle()((v - T[k]) / (tf.abs(v) + 1.0))
            want = want + d[k] * z
            if k < p.K - 1:
                v = v - h[k] * z
        loss, loss_want = tf.reduce_sum(y * tf.cos(x)), tf.reduce_sum(want * tf.cos(x))
    np.testing.assert_array_equal(y.numpy(), want.numpy())
    sources = [x] + (hdT if trainable else [])
    for got, ref in zip(tape.gradient(loss, sources), tape.gradient(loss_want, sources)):
        np.testing.assert_array_equal(got.numpy(), ref.numpy())
