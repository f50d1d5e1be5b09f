"""Exactness: a TTFS network and its ReLU twin (same weights) give the same logits, predictions and
gradients, and follow the same training trajectory (spec §2, §10 A1/A2/A6/A7)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfspike.models.ttfs_zoo import INPUT_RANGES, build_relu_model, build_snn_model, copy_weights_by_name
from tfspike.ttfs import TTFSConv2D, TTFSDense, TTFSInput, TTFSMaxPool2D, TTFSModel


def twins(model_name, data_name, dtype, input_is="value", seed=0):
    keras.utils.set_random_seed(seed)
    relu = build_relu_model(model_name, data_name, dtype=dtype)
    snn = build_snn_model(model_name, data_name, dtype=dtype, input_is=input_is)
    copy_weights_by_name(relu, snn)
    return relu, snn


def small_conv_twins(dtype, seed=0):
    """A 3-layer conv net (conv-pool-conv-flatten-dense-readout) and its TTFS twin."""
    keras.utils.set_random_seed(seed)
    kw = dict(dtype=dtype)
    relu = keras.Sequential([
        keras.Input((10, 10, 2), dtype=dtype),
        keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1", **kw),
        keras.layers.MaxPooling2D(2, **kw),
        keras.layers.Conv2D(5, 3, padding="valid", activation="relu", name="c2", **kw),
        keras.layers.Flatten(**kw),
        keras.layers.Dense(8, activation="relu", name="d1", **kw),
        keras.layers.Dense(4, name="out", **kw)])
    snn = TTFSModel([
        keras.Input((10, 10, 2), dtype=dtype), TTFSInput("value", **kw),
        TTFSConv2D(6, 3, padding="same", name="c1", **kw), TTFSMaxPool2D(2, **kw),
        TTFSConv2D(5, 3, padding="valid", name="c2", **kw), keras.layers.Flatten(**kw),
        TTFSDense(8, name="d1", **kw), TTFSDense(4, output=True, name="out", **kw)])
    copy_weights_by_name(relu, snn)
    return relu, snn


def logits(model, x, batch=1000):
    """Direct calls: Keras' predict() would cast float64 arrays to floatx (float32)."""
    return np.concatenate([model(tf.constant(x[i:i + batch]), training=False).numpy()
                           for i in range(0, len(x), batch)])


def random_inputs(shape, n, dtype, seed=1):
    x = np.random.default_rng(seed).uniform(0, 1, (n,) + tuple(shape))
    x[x < 0.3] = 0.0  # silent pixels, as black MNIST pixels
    return x.astype(dtype)


def test_fc2_logits_equal_relu_float64():
    relu, snn = twins("FC2", "MNIST", "float64")
    x = random_inputs((784,), 512, "float64")
    dz = np.abs(logits(snn, x) - logits(relu, x)).max()
    assert dz <= 1e-9


def test_fc2_time_input_logits_equal_relu_float64():
    relu, snn = twins("FC2", "MNIST", "float64", input_is="time")
    x = random_inputs((784,), 256, "float64")
    dz = np.abs(logits(snn, 1.0 - x) - logits(relu, x)).max()
    assert dz <= 1e-9


@pytest.mark.parametrize("data_name", ["MNIST", "CIFAR10"])
def test_vgg16_logits_equal_relu_float64(data_name):
    relu, snn = twins("VGG", data_name, "float64")
    shape = (28, 28, 1) if data_name == "MNIST" else (32, 32, 3)
    x = random_inputs(shape, 8, "float64")
    p, q = INPUT_RANGES[data_name]
    x = p + (q - p) * x  # the SNN takes the network input and encodes u = (x − p)/(q − p) ...
    z_relu = logits(relu, (x - p) / (q - p))  # ... which is what its ReLU twin sees (spec §6.5)
    dz = np.abs(logits(snn, x) - z_relu).max()
    assert dz <= max(1e-9, 1e-11 * np.abs(z_relu).max())


def test_fc2_float32_prediction_agreement():
    relu, snn = twins("FC2", "MNIST", "float32")
    x = random_inputs((784,), 10000, "float32")
    agree = (logits(snn, x).argmax(-1) == logits(relu, x).argmax(-1)).mean()
    assert agree >= 0.9999


def test_small_conv_logits_equal_relu_float64():
    relu, snn = small_conv_twins("float64")
    x = random_inputs((10, 10, 2), 64, "float64")
    assert np.abs(logits(snn, x) - logits(relu, x)).max() <= 1e-9


def _grads(model, x, y):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    return [g.numpy() for g in tape.gradient(loss, model.trainable_weights)]


@pytest.mark.parametrize("make", ["fc2", "conv"])
def test_gradients_equal_relu_float64(make):
    if make == "fc2":
        relu, snn = twins("FC2", "MNIST", "float64")
        x = random_inputs((784,), 32, "float64")
        y = np.arange(32) % 10
    else:
        relu, snn = small_conv_twins("float64")
        x = random_inputs((10, 10, 2), 32, "float64")
        y = np.arange(32) % 4
    g_relu, g_snn = _grads(relu, x, y), _grads(snn, x, y)
    assert len(g_relu) == len(g_snn)
    scale = max(1.0, max(np.abs(g).max() for g in g_relu))
    for a, b in zip(g_relu, g_snn):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1e-9 * scale
    assert any(np.abs(g).max() > 0 for g in g_snn)


def test_training_trajectory_equals_relu_float64():
    relu, snn = twins("FC2", "MNIST", "float64")
    for m in (relu, snn):
        m.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(3)
    for _ in range(50):
        x = random_inputs((784,), 16, "float64", seed=int(rng.integers(1 << 30)))
        y = rng.integers(0, 10, 16)
        relu.train_on_batch(tf.constant(x), tf.constant(y))
        snn.train_on_batch(tf.constant(x), tf.constant(y))
    diff = max(np.abs(a.numpy() - b.numpy()).max() for a, b in zip(relu.trainable_weights, snn.trainable_weights))
    assert diff <= 1e-8
    moved = max(np.abs(a.numpy()).max() for a in snn.trainable_weights[1::2])
    assert moved > 0  # biases left zero: training really happened


def test_spike_gradient_is_the_relu_jacobian_without_surrogate():
    """Spec §1.6: plain autodiff through r = max(Wᵀx + D, 0). Hand-computed gradients of L = Σ c_i r_i for
    pre-activations (1.5, −0.5, 0.001, −0.001, 0): an active neuron passes exactly 1 (∂r/∂W_ji = x_j,
    ∂r/∂D_i = 1), a silent one exactly 0, and so does the boundary pre = 0 (TF's ReLU gradient). A surrogate
    or straight-through estimator would give non-zero values for the silent neurons next to threshold."""
    layer = TTFSDense(5, dtype="float64")
    layer.build((None, 3))
    layer.kernel.assign([[1.0, 0.0, 1.0, 1.0, 0.0],
                         [0.0, -1.0, 1.0, 1.0, 0.0],
                         [1.0, 2.0, 0.0, 0.0, 0.0]])
    layer.bias.assign([0.0, 0.5, -2.999, -3.001, 0.0])
    x = tf.constant([[1.0, 2.0, 0.5]], tf.float64)
    c = tf.constant([1.0, 2.0, 3.0, 4.0, 5.0], tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        r = layer(x, training=True)
        loss = tf.reduce_sum(c * r)
    np.testing.assert_allclose(r.numpy(), [[1.5, 0.0, 0.001, 0.0, 0.0]], rtol=0, atol=1e-12)
    d_kernel, d_bias, d_x = tape.gradient(loss, [layer.kernel, layer.bias, x])
    np.testing.assert_array_equal(d_bias.numpy(), [1.0, 0.0, 3.0, 0.0, 0.0])
    np.testing.assert_array_equal(d_kernel.numpy(), [[1.0, 0.0, 3.0, 0.0, 0.0],
                                                     [2.0, 0.0, 6.0, 0.0, 0.0],
                                                     [0.5, 0.0, 1.5, 0.0, 0.0]])
    np.testing.assert_array_equal(d_x.numpy(), [[4.0, 3.0, 1.0]])  # Σ_i W_ji c_i over the active i = 0, 2
    # the window weights are non-trainable and get no gradient (spec §1.6)
    assert not any(w.trainable for w in (layer.t_min, layer.t_max, layer.batch_max))
    assert tape.gradient(loss, [layer.t_min, layer.t_max]) == [None, None]


def test_logits_do_not_depend_on_windows():
    """Windows cancel in relative time: the logits' gradient with respect to every t_min/t_max is zero."""
    _, snn = small_conv_twins("float64")
    x = tf.constant(random_inputs((10, 10, 2), 4, "float64"))
    windows = [v for l in snn.spiking_layers() for v in (l.t_min, l.t_max)]
    with tf.GradientTape() as tape:
        z = tf.reduce_sum(snn(x, training=False) ** 2)
    grads = tape.gradient(z, windows)
    assert len(grads) == 2 * len(snn.spiking_layers()) == 6
    assert all(g is None or float(tf.abs(g)) == 0.0 for g in grads)  # None: not on the path at all
