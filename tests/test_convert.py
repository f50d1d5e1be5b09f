"""ReLU → TTFS converter (spec §5): exactness on random models that exercise every rule together."""

import json
import os

import keras
import numpy as np
import pytest

from tfspike.convert.ttfs import (RULES, AffineOp, MappingCheckError, UnsupportedLayersError, register_rule,
                                  relu_to_ttfs)
from tfspike.convert.ttfs.plan import plan
from tfspike.convert.ttfs.spec import ConvSpec, DenseSpec, FlattenSpec, PoolSpec
from tfspike.errors import UserError
from tfspike.ttfs import TTFSConv2D, TTFSDense, TTFSMaxPool2D, TTFSModel
from tfspike.ttfs.windows import measure_x_n, write_x_n_json

P, Q = -3.0, 3.0


def randomize_bn(model, seed=0, zero_gamma=True):
    """Random BN statistics: some negative scales in every BN, one γ = 0 channel in the first BN."""
    rng = np.random.default_rng(seed)
    first = True
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            gamma = rng.uniform(0.5, 1.5, c) * rng.choice([-1.0, 1.0], c)
            gamma[0] = -abs(gamma[0])  # ≥ 1 negative scale per layer
            if zero_gamma and first:
                gamma[1 % c] = 0.0
            first = False
            layer.set_weights([gamma, rng.normal(0, 0.5, c), rng.normal(0, 0.5, c), rng.uniform(0.5, 2.0, c)])
    return model


def every_rule_model(dtype="float32", seed=0):
    """Conv (activation=) → BN(after ReLU) → pool (sign-aware) → conv → ReLU() → BN → pool → Dropout
    → conv stride 2 → BN (before ReLU) → Activation('relu') → BN → valid 1×1 conv → ReLU → BN → Flatten
    → Dense(relu) → BN → Dropout → Dense (logits)."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    model = keras.Sequential([
        keras.Input((12, 12, 3), dtype=dtype),
        L.Conv2D(6, 3, padding="same", activation="relu", name="conv2d_1", dtype=dtype),
        L.BatchNormalization(name="batch_normalization_1", dtype=dtype),
        L.MaxPooling2D(2, name="max_pooling2d_1", dtype=dtype),
        L.Conv2D(8, 3, padding="same", name="conv2d_2", dtype=dtype),
        L.ReLU(name="re_lu_1", dtype=dtype),
        L.BatchNormalization(name="batch_normalization_2", dtype=dtype),
        L.MaxPooling2D(2, name="max_pooling2d_2", dtype=dtype),
        L.Dropout(0.3, name="dropout_1", dtype=dtype),
        L.Conv2D(8, 3, strides=2, padding="same", name="conv2d_3", dtype=dtype),
        L.BatchNormalization(name="batch_normalization_3", dtype=dtype),
        L.Activation("relu", name="activation_1", dtype=dtype),
        L.BatchNormalization(name="batch_normalization_4", dtype=dtype),
        L.Conv2D(10, 1, padding="valid", name="conv2d_4", dtype=dtype),
        L.ReLU(name="re_lu_2", dtype=dtype),
        L.BatchNormalization(name="batch_normalization_5", dtype=dtype),
        L.Flatten(name="flatten_1", dtype=dtype),
        L.Dense(16, activation="relu", name="dense_1", dtype=dtype),
        L.BatchNormalization(name="batch_normalization_6", dtype=dtype),
        L.Dropout(0.5, name="dropout_2", dtype=dtype),
        L.Dense(10, name="dense_2", dtype=dtype),
    ])
    # Biases are zero at init; make them non-zero so every fold has something to move.
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            k, b = layer.get_weights()
            layer.set_weights([k, rng.normal(0, 0.3, b.shape)])
    return randomize_bn(model, seed)


def inputs(n, shape=(12, 12, 3), seed=1, dtype="float32"):
    return np.random.default_rng(seed).uniform(P, Q, (n,) + shape).astype(dtype)


def test_every_rule_float64_exact():
    keras.config.set_floatx("float64")
    model = every_rule_model("float64")
    snn, report = relu_to_ttfs(model, input_range=(P, Q), dtype="float64", return_report=True)
    assert isinstance(snn, TTFSModel)
    x = inputs(256, dtype="float64")
    z_relu = model.predict(x, verbose=0, batch_size=128)
    z_snn = snn.predict(x, verbose=0, batch_size=128)
    assert np.max(np.abs(z_relu)) > 0.1
    np.testing.assert_array_less(np.max(np.abs(z_snn - z_relu)), 1e-9)
    # every rule was exercised
    rules = " | ".join(r for layer in report["layers"] for r in layer["rules"])
    assert "absorbed affine of input range (-3, 3) with bias map" in rules
    assert "folded BatchNormalization 'batch_normalization_3' backward" in rules
    assert "sign-aware pool" in rules
    assert "pending affine tiled over 4 positions" in rules
    assert {"dropout_1 (Dropout)", "dropout_2 (Dropout)"} <= set(report["removed"])
    assert report["hidden_layers"] == ["conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "dense_1"]
    assert report["verification"]["max_abs_logit_diff"] <= 1e-9
    assert json.loads(json.dumps(report)) == report  # JSON-ready (the CLI writes it as _mapping.json)
    convs = {l.name: l for l in snn.layers if isinstance(l, TTFSConv2D)}
    assert convs["conv2d_1"].bias_map and convs["conv2d_2"].bias_map and convs["conv2d_3"].bias_map
    assert not convs["conv2d_4"].bias_map  # valid 1×1: no border taps, plain bias
    pools = [l for l in snn.layers if isinstance(l, TTFSMaxPool2D)]
    signs = pools[0].sign.numpy()
    assert signs[0] == -1 and signs[1] == 1  # negative γ → latest spike; γ = 0 → +1, never 0
    assert set(np.unique(pools[1].sign.numpy())) <= {-1.0, 1.0}


def test_every_rule_float32_agreement():
    model = every_rule_model("float32", seed=3)
    snn = relu_to_ttfs(model, input_range=(P, Q))
    assert snn.layers[1].compute_dtype == "float32"
    x = inputs(10000, seed=2)
    z_relu = model.predict(x, verbose=0, batch_size=1000)
    z_snn = snn.predict(x, verbose=0, batch_size=1000)
    agreement = np.mean(z_relu.argmax(-1) == z_snn.argmax(-1))
    assert agreement >= 0.9999, agreement
    assert np.max(np.abs(z_snn - z_relu)) < 1e-3 * max(1.0, np.max(np.abs(z_relu)))


def test_functional_nested_and_final_softmax():
    keras.config.set_floatx("float64")
    L = keras.layers
    block = keras.Sequential([keras.Input((8, 8, 2)), L.Conv2D(4, 3, padding="same"), L.ReLU(),
                              L.BatchNormalization()], name="block")
    inp = keras.Input((8, 8, 2))
    h = L.Rescaling(2.0, offset=-1.0)(inp)  # in-model input normalisation, folded with the input range
    h = block(h)
    h = L.MaxPooling2D(2)(h)
    h = L.Flatten()(h)
    h = L.Dense(12)(h)
    h = L.BatchNormalization()(h)
    h = L.Activation("relu")(h)
    out = L.Dense(5, activation="softmax")(h)
    model = keras.Model(inp, out)
    randomize_bn(model.layers[2], seed=4, zero_gamma=False)
    randomize_bn(model, seed=5, zero_gamma=False)
    snn = relu_to_ttfs(model, input_range=(0.0, 1.0), dtype="float64")
    x = np.random.default_rng(0).uniform(0, 1, (64, 8, 8, 2))
    logits = keras.Model(inp, model.layers[-1].input)  # pre-softmax
    pre = model.layers[-1]
    want = pre.kernel.numpy().T @ logits.predict(x, verbose=0).T
    want = want.T + pre.bias.numpy()
    np.testing.assert_array_less(np.max(np.abs(snn.predict(x, verbose=0) - want)), 1e-9)
    # bias_maps="all" gives every conv a bias-map weight (zero where no correction is needed), same logits
    snn_all = relu_to_ttfs(model, input_range=(0.0, 1.0), dtype="float64", bias_maps="all")
    assert all(l.bias_map for l in snn_all.layers if isinstance(l, TTFSConv2D))
    np.testing.assert_array_less(np.max(np.abs(snn_all.predict(x, verbose=0) - want)), 1e-9)


def test_unsupported_layers_listed_together():
    L = keras.layers
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, activation="relu", name="c1"),
                              L.AveragePooling2D(2, name="avg"), L.Conv2D(4, 3, name="c2"), L.LeakyReLU(name="leaky"),
                              L.Flatten(), L.Dense(3, activation="tanh", name="d_tanh"), L.Dense(2, name="out")])
    with pytest.raises(UnsupportedLayersError) as e:
        relu_to_ttfs(model)
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("avg (AveragePooling2D)", "leaky (LeakyReLU)", "d_tanh (Dense: activation 'tanh'"):
        assert part in msg
    assert isinstance(e.value, UserError)


def test_structural_errors():
    L = keras.layers
    inp = keras.Input((6,))
    a, b = L.Dense(4, activation="relu")(inp), L.Dense(4, activation="relu")(inp)
    branched = keras.Model(inp, L.Dense(2)(L.Add()([a, b])))
    with pytest.raises(UnsupportedLayersError):
        relu_to_ttfs(branched)
    no_relu = keras.Sequential([keras.Input((6,)), L.Dense(4, name="hidden"), L.Dense(2, name="out")])
    with pytest.raises(UnsupportedLayersError, match="'out' follows 'hidden' without a ReLU"):
        relu_to_ttfs(no_relu)
    ends_relu = keras.Sequential([keras.Input((6,)), L.Dense(4, activation="relu")])
    with pytest.raises(UnsupportedLayersError, match="ends with a ReLU"):
        relu_to_ttfs(ends_relu)
    with pytest.raises(UserError, match="not built"):
        relu_to_ttfs(keras.Sequential([L.Dense(2)]))


@keras.saving.register_keras_serializable(package="tfspike_test")
class DoublingDense(keras.layers.Dense):
    """A Dense subclass whose call differs from Dense: the Dense rule applies, the check must catch it."""

    def call(self, x):
        return 2.0 * super().call(x)


def test_verification_names_first_differing_layer():
    L = keras.layers
    model = keras.Sequential([keras.Input((6,)), L.Dense(5, activation="relu", name="fine"),
                              DoublingDense(4, activation="relu", name="odd"), L.Dense(2, name="out")])
    model.layers[1].set_weights([model.layers[1].kernel.numpy(), np.ones(4, "float32")])
    with pytest.raises(MappingCheckError, match="'odd'") as e:
        relu_to_ttfs(model)
    assert e.value.exit_code == 1
    relu_to_ttfs(model, verify=False)  # without the check it converts (and would be wrong)


def test_roundtrip_and_windows(tmp_path):
    model = every_rule_model("float32", seed=7)
    snn = relu_to_ttfs(model, input_range=(P, Q))
    x = inputs(32, seed=3)
    z = snn.predict(x, verbose=0)
    assert snn.latency() == 1.0 + 5 * 1500.0
    snn.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), z)
    snn.save_weights(tmp_path / "m.weights.h5")
    twin = relu_to_ttfs(every_rule_model("float32", seed=8), input_range=(P, Q))
    twin.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(twin.predict(x, verbose=0), z)


def folded_relu_forward(snn, x):
    """The converted network run as a plain ReLU network on its folded parameters, with TensorFlow ops
    and none of the TTFS layer code: u = (x − p)/(q − p), conv/dense + bias (+ bias map) → ReLU,
    sign-aware max-pool s·maxpool(s·h), flatten, readout without ReLU."""
    import tensorflow as tf

    h = (tf.constant(x) - P) / (Q - P)
    for layer in snn.layers:
        if isinstance(layer, TTFSConv2D):
            h = tf.nn.conv2d(h, layer.kernel, strides=(1,) + layer.strides + (1,), padding=layer.padding.upper())
            h = h + layer.bias + (layer.bias_correction if layer.bias_map else 0.0)
        elif isinstance(layer, TTFSDense):
            h = tf.matmul(h, layer.kernel) + layer.bias
        elif isinstance(layer, TTFSMaxPool2D):
            h = layer.sign * tf.nn.max_pool2d(layer.sign * h, layer.pool_size, layer.strides, layer.padding.upper())
        elif isinstance(layer, keras.layers.Flatten):
            h = tf.reshape(h, (tf.shape(h)[0], -1))
        if isinstance(layer, (TTFSConv2D, TTFSDense)) and layer.spiking:
            h = tf.nn.relu(h)
    return h


def test_fine_tune_step_matches_relu_gradients():
    """One SGD step on the converted model (Keras fit, TTFS layers) moves every trainable weight exactly
    like one step on the ReLU network with the same folded parameters; the bias maps stay fixed."""
    import tensorflow as tf

    keras.config.set_floatx("float64")
    snn = relu_to_ttfs(every_rule_model("float64", seed=9), input_range=(P, Q), dtype="float64")
    x, y = inputs(64, dtype="float64", seed=4), np.random.default_rng(0).integers(0, 10, 64)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    lr = 0.05
    np.testing.assert_allclose(folded_relu_forward(snn, x).numpy(), snn.predict(x, verbose=0), rtol=0, atol=1e-9)
    with tf.GradientTape() as tape:
        relu_loss = loss(y, folded_relu_forward(snn, x))
    grads = tape.gradient(relu_loss, snn.trainable_weights)
    assert all(g is not None for g in grads)
    want = [w.numpy() - lr * g.numpy() for w, g in zip(snn.trainable_weights, grads)]
    snn.compile(optimizer=keras.optimizers.SGD(lr), loss=loss)
    hist = snn.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert hist.history["loss"][0] == pytest.approx(float(relu_loss), rel=1e-12)
    for w, g, expected in zip(snn.trainable_weights, grads, want):
        assert np.abs(g.numpy()).max() > 0, w.path  # every parameter moves
        np.testing.assert_allclose(w.numpy(), expected, rtol=0, atol=1e-12 * max(1.0, np.abs(expected).max()),
                                   err_msg=w.path)
    assert not any("bias_correction" in w.path for w in snn.trainable_weights)


def test_measure_x_n_and_json(tmp_path):
    keras.config.set_floatx("float64")
    model = every_rule_model("float64", seed=11)
    snn = relu_to_ttfs(model, input_range=(P, Q), dtype="float64")
    x = inputs(100, dtype="float64", seed=5)
    got = measure_x_n(snn, x, batch_size=32)
    relu_names = ["conv2d_1", "re_lu_1", "activation_1", "re_lu_2", "dense_1"]
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in relu_names])
    want = [float(a.max()) for a in probe.predict(x, verbose=0)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    path = write_x_n_json(os.path.join(tmp_path, "FMNIST-VGG_X_n.json"), snn, got, dataset="FMNIST")
    with open(path) as f:
        saved = json.load(f)
    assert saved == {"layers": ["conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "dense_1"], "x_n": got,
                     "dataset": "FMNIST", "split": "train"}
    with pytest.raises(UserError, match="not finite"):
        write_x_n_json(os.path.join(tmp_path, "bad.json"), snn, [float("nan")] + got[1:])
    snn.reset_windows(got)
    np.testing.assert_allclose(snn.deltas(), 1.5 * np.array(want), rtol=1e-12)


def test_normalization_layer_and_uint8_inputs():
    """In-model input normalisation: a Normalization layer on raw uint8-range pixels, folded with (p, q)."""
    keras.config.set_floatx("float64")
    L = keras.layers
    model = keras.Sequential([keras.Input((5, 5, 2)), L.Normalization(mean=[120.0, 90.0], variance=[4000.0, 900.0]),
                              L.Conv2D(3, 3, padding="same", activation="relu"), L.Flatten(), L.Dense(2)])
    rng = np.random.default_rng(3)
    conv = model.layers[1]
    conv.set_weights([rng.normal(size=conv.kernel.shape), rng.normal(size=3)])
    snn, report = relu_to_ttfs(model, input_range=(0.0, 255.0), dtype="float64", return_report=True)
    assert report["layers"][0]["bias_map"]
    x = rng.uniform(0, 255, (32, 5, 5, 2)).round()
    np.testing.assert_allclose(snn.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=1e-9)


def test_plan_emits_typed_specs():
    """conv(relu) → BN → pool → flatten → dense: the planner's typed specs, checked against hand-folded
    values: the pool sign is sign(γ) of the BN before it, the dense layer absorbs the BN (W′ = κ ⊙ W,
    b′ = b + βᵀ W with β the BN shift tiled over the 2×2 positions), and the dense layer is the readout."""
    keras.config.set_floatx("float64")
    L = keras.layers
    model = keras.Sequential([keras.Input((4, 4, 1)), L.Conv2D(2, 3, padding="same", activation="relu", name="c"),
                              L.BatchNormalization(epsilon=0.0, name="bn"), L.MaxPooling2D(2, name="p"),
                              L.Flatten(name="f"), L.Dense(3, name="d")])
    gamma, beta, mean, var = np.array([-2.0, 0.5]), np.array([0.25, -1.0]), np.array([1.0, 2.0]), np.array([4.0, 1.0])
    model.get_layer("bn").set_weights([gamma, beta, mean, var])
    specs = plan(model, (0.0, 1.0)).specs
    assert [type(s) for s in specs] == [ConvSpec, PoolSpec, FlattenSpec, DenseSpec]
    conv, pool, _, dense = specs
    assert (conv.readout, conv.compare_with, conv.correction) == (False, "c", None)  # (0, 1) input: no map
    assert (conv.kernel_size, conv.strides, conv.padding) == ((3, 3), (1, 1), "same")
    assert (pool.pool_size, pool.strides, pool.padding) == ((2, 2), (2, 2), "valid")
    np.testing.assert_array_equal(pool.sign, [-1.0, 1.0])
    assert dense.readout and dense.sources == ("d",)
    kappa = np.array([-1.0, 0.5])  # γ / sqrt(var)
    shift = np.array([0.25 + 1.0, -1.0 - 1.0])  # β − mean·κ
    w, b = model.get_layer("d").kernel.numpy(), model.get_layer("d").bias.numpy()
    np.testing.assert_allclose(dense.kernel, np.tile(kappa, 4)[:, None] * w, rtol=0, atol=1e-15)
    np.testing.assert_allclose(dense.bias, b + np.tile(shift, 4) @ w, rtol=0, atol=1e-14)
    assert dense.rules == ("dense", "absorbed affine of bn", "readout (logits)")


class TimesThree(keras.layers.Layer):
    """A custom layer y = 3·x + 1 that the converter does not know."""

    def call(self, x):
        return 3.0 * x + 1.0


def test_register_rule_extends_the_converter():
    L = keras.layers
    model = keras.Sequential([keras.Input((5,)), L.Dense(4, activation="relu", name="h"), TimesThree(name="t3"),
                              L.Dense(2, name="out")])
    with pytest.raises(UnsupportedLayersError, match=r"t3 \(TimesThree\)"):
        relu_to_ttfs(model)

    @register_rule(TimesThree)
    def _times_three(layer):
        return [AffineOp(layer=layer, scale=np.array([3.0]), shift=np.array([1.0]), note="TimesThree")]

    try:
        snn, report = relu_to_ttfs(model, return_report=True)
    finally:
        del RULES[TimesThree]
    assert report["layers"][-1]["rules"] == ["dense", "absorbed affine of t3", "readout (logits)"]
    x = np.random.default_rng(0).uniform(0, 1, (16, 5)).astype("float32")
    np.testing.assert_allclose(snn.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=1e-5)
