"""activations_to_fewspike, neuron counting and spike statistics (fs.md §6 D4–D8)."""

import keras
import numpy as np
import pytest

from tfspike.convert import activations_to_fewspike
from tfspike.errors import UserError
from tfspike.fs import FewSpike, fs_relu, get_params
from tfspike.fs.stats import count_fs_neurons, spike_stats
from tfspike.reference import fs_numpy as R


def small_model():
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = keras.layers.Activation("relu", name="act")(x)
    x = keras.layers.ReLU(name="relu_layer")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(6, activation="relu", name="dense")(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inp, out)


def test_D4_convert_functional():
    model = small_model()
    x = np.random.default_rng(0).normal(size=(5, 8, 8, 1)).astype("float32")
    y0 = model.predict(x, verbose=0)
    w0 = [w.copy() for w in model.get_weights()]
    new, rep = activations_to_fewspike(model, {"relu": ("relu", {"K": 10, "alpha": 25.0})})
    assert rep["n_sites"] == 4
    assert [s["original"] for s in rep["sites"]] == ["conv", "act", "relu_layer", "dense"]
    assert rep["n_fs_neurons"] == 3 * 36 * 4 + 6
    assert count_fs_neurons(new) == rep["n_fs_neurons"]
    assert new.get_layer("head").get_config()["activation"] == "softmax"
    assert new.get_layer("conv").get_config()["activation"] == "linear"
    # the original model is untouched
    np.testing.assert_array_equal(model.predict(x, verbose=0), y0)
    for a, b in zip(model.get_weights(), w0):
        np.testing.assert_array_equal(a, b)
    assert model.get_layer("conv").get_config()["activation"] == "relu"
    # converted pre-activations equal the original's (the conv before its activation)
    conv_ref = keras.layers.Conv2D(4, 3)
    conv_ref.build((None, 8, 8, 1))
    conv_ref.set_weights(model.get_layer("conv").get_weights())
    new_pre = keras.Model(new.inputs, new.get_layer("conv").output).predict(x, verbose=0)
    np.testing.assert_array_equal(new_pre, conv_ref(x).numpy())
    # the converted model computes FS-ReLU exactly at every site
    fs_in = keras.Model(new.inputs, new.get_layer("conv_fs").output).predict(x, verbose=0)
    np.testing.assert_array_equal(fs_in, R.forward_post(new_pre, *fs_relu(10).as_tuple())[0])


def test_convert_sequential_and_spike_report():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="swish"),
                              keras.layers.Dense(2, activation="sigmoid")])
    x = np.random.default_rng(1).normal(size=(10, 4)).astype("float32")
    new, rep = activations_to_fewspike(model, {"swish": "stoeckl_swish_k16", "sigmoid": "stoeckl_sigmoid_k12"},
                                       data=x)
    assert rep["n_sites"] == 2 and rep["n_fs_neurons"] == 7
    assert {s["preset"] for s in rep["sites"]} == {"stoeckl_swish_k16", "stoeckl_sigmoid_k12"}
    # oracle: the converted dense layers are the original ones with a linear activation, then FS
    swish16, sigmoid12 = get_params("stoeckl_swish_k16"), get_params("stoeckl_sigmoid_k12")
    dense1, dense2 = (l for l in new.layers if isinstance(l, keras.layers.Dense))
    pre1 = keras.Model(new.inputs, dense1.output).predict(x, verbose=0)
    w1, b1 = model.layers[0].get_weights()
    np.testing.assert_allclose(pre1, x @ w1 + b1, rtol=1e-6, atol=1e-6)
    fs1, n1 = R.forward_post(pre1, *swish16.as_tuple())
    pre2 = keras.Model(new.inputs, dense2.output).predict(x, verbose=0)
    w2, b2 = model.layers[1].get_weights()
    np.testing.assert_allclose(pre2, fs1 @ w2 + b2, rtol=1e-6, atol=1e-6)
    out, n2 = R.forward_post(pre2, *sigmoid12.as_tuple())
    # equal up to the float32 rounding of a sum of <= 12 terms (compiled predict may fuse it differently);
    # one spike more or less would move an output by some |d[k]| >= 1e-3
    assert np.min(np.abs(sigmoid12.d)) > 1e-3
    np.testing.assert_allclose(new.predict(x, verbose=0), out, rtol=0, atol=1e-6)
    # spike statistics: the oracle's spike counts at both sites, exactly
    st = rep["spike_stats"]
    assert st["total"]["n_samples"] == 10 and st["total"]["n_neurons"] == 7
    sites = list(st["sites"].values())
    assert [s["n_neurons"] for s in sites] == [5, 2]
    assert [s["spikes"] for s in sites] == [float(n1.sum()), float(n2.sum())]
    assert sites[0]["spikes_per_neuron"] == float(n1.sum()) / 50
    assert sites[1]["spikes_per_neuron"] == float(n2.sum()) / 20
    assert st["total"]["spikes_per_neuron"] == float(n1.sum() + n2.sum()) / 70
    assert n1.sum() > 0 and n2.sum() > 0


def test_subclassed_model_is_rejected():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(2, activation="relu")

        def call(self, x):
            return self.d(x)

    m = Sub()
    m(np.zeros((1, 3), "float32"))
    with pytest.raises(UserError, match="subclassed"):
        activations_to_fewspike(m)


def test_D6_count_is_from_graph_not_traces():
    inp = keras.Input((28, 28, 1))
    out = FewSpike("relu_k10")(keras.layers.Conv2D(8, 3, padding="same")(inp))
    model = keras.Model(inp, out)
    assert count_fs_neurons(model) == 6272
    x = np.random.default_rng(0).normal(size=(4, 28, 28, 1)).astype("float32")
    model.compile(loss="mse")
    model.predict(x, verbose=0)
    model.evaluate(x, model.predict(x, verbose=0), verbose=0)
    assert count_fs_neurons(model) == 6272


def test_D8_spike_stats_relu():
    inp = keras.Input((1,))
    model = keras.Model(inp, FewSpike("relu_k10")(inp))
    x = np.linspace(0, 25, 100001).astype(np.float32).reshape(-1, 1)
    st = spike_stats(model, x, batch_size=10000)
    site = next(iter(st["sites"].values()))
    assert site["n_neurons"] == 1 and site["n_samples"] == 100001
    _, n = R.forward_post(x[:, 0], *fs_relu(10).as_tuple())
    assert site["spikes"] == float(n.sum()) and site["spikes_per_neuron"] == float(n.sum()) / 100001
    assert abs(site["spikes_per_neuron"] - 5.0008) < 2e-3  # spec fs.md D8
    assert site["input_mean"] == pytest.approx(np.mean(x, dtype=np.float64), rel=1e-12)
    # the model's output is unchanged by the instrumentation
    np.testing.assert_array_equal(model.predict(x[:10], verbose=0)[:, 0],
                                  R.forward_post(x[:10, 0], *fs_relu(10).as_tuple())[0])


def test_D5_efficientnet_b0_sites():
    model = keras.applications.EfficientNetB0(weights=None)
    new, rep = activations_to_fewspike(model, {"silu": "stoeckl_swish_k16", "sigmoid": "stoeckl_sigmoid_k12"})
    swish = [s for s in rep["sites"] if s["activation"] == "silu"]
    sig = [s for s in rep["sites"] if s["activation"] == "sigmoid"]
    assert len(swish) == 49 and sum(s["n_neurons"] for s in swish) == 6157916
    assert len(sig) == 16 and sum(s["n_neurons"] for s in sig) == 8960
    assert count_fs_neurons(new) == 6157916 + 8960


@pytest.mark.slow
def test_D5b_efficientnet_b7_sites():
    model = keras.applications.EfficientNetB7(weights=None)
    _, rep = activations_to_fewspike(model, {"silu": "stoeckl_swish_k16"}, copy_weights=False)
    assert rep["n_sites"] == 163 and rep["n_fs_neurons"] == 259366992
    _, rep2 = activations_to_fewspike(model, {"silu": "stoeckl_swish_k16", "sigmoid": "stoeckl_sigmoid_k12"},
                                      copy_weights=False)
    assert rep2["n_sites"] == 163 + 55 and rep2["n_fs_neurons"] == 259366992 + 70240
