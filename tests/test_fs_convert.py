"""activations_to_fewspike, neuron counting and spike statistics (fs.md §6 D4–D8)."""

import keras
import numpy as np
import pytest

from tfspike.convert import activations_to_fewspike
from tfspike.errors import UserError
from tfspike.fs import FewSpike, fs_relu
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
    st = rep["spike_stats"]
    assert st["total"]["n_samples"] == 10 and st["total"]["n_neurons"] == 7
    assert 0 < st["total"]["spikes_per_neuron"] < 16
    # the output is close to the ANN (FS approximates swish/sigmoid)
    np.testing.assert_allclose(new.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.1)


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
    assert abs(site["spikes_per_neuron"] - 5.0008) < 2e-3
    assert abs(site["input_mean"] - 12.5) < 1e-6
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
