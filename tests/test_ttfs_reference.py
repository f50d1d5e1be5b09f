"""The absolute-time reference evaluator (spec §2) against the Keras TTFS layers, and the bias map of
spec §3.3 against the reference's 9-region formula (acceptance test A5)."""

import keras
import numpy as np
import pytest

from tfspike.convert.ttfs import conv_bias_correction, relu_to_ttfs
from tfspike.reference.ttfs_numpy import (assemble_region_map, reference_forward, reference_region_biases,
                                          region_slices)
from tfspike.ttfs import TTFSConv2D


def _bias_map(kernel, bias, shift, h, w, strides=(1, 1), padding="same"):
    """The converter's full bias map B = (b + Σ s W) + E for a conv whose input went through a·v + s."""
    interior = bias + np.einsum("ijco,c->o", kernel, np.broadcast_to(shift, (kernel.shape[2],)))
    return interior + conv_bias_correction(kernel, shift, (h, w), strides, padding)


def _direct_bias_map(kernel, bias, shift, h, w, strides, padding):
    """B[h,w,o] = b_o + conv2d(S, W)[h,w,o] with the constant image S = s (spec §3.3), via TensorFlow."""
    import tensorflow as tf

    s_img = np.broadcast_to(shift, (1, h, w, kernel.shape[2])).astype(np.float64)
    conv = tf.nn.conv2d(s_img, kernel, strides=(1,) + tuple(strides) + (1,), padding=padding.upper())
    return bias + conv.numpy()[0]


@pytest.mark.parametrize("h", [2, 3, 4, 32])
def test_a5_bias_map_equals_reference_nine_regions(h):
    rng = np.random.default_rng(h)
    kernel, bias, shift = rng.normal(size=(3, 3, 5, 7)), rng.normal(size=7), rng.normal(size=5)
    ours = _bias_map(kernel, bias, shift, h, h)
    regions = reference_region_biases(kernel, bias, shift)
    for k, (rs, cs) in enumerate(region_slices(h, h)):
        block = ours[rs, cs]
        if block.size:
            np.testing.assert_allclose(block, np.broadcast_to(regions[k], block.shape), rtol=0, atol=1e-12)
    if h >= 3:
        np.testing.assert_allclose(ours, assemble_region_map(regions, h, h), rtol=0, atol=1e-12)
    # the general formula: conv of the constant image S with the original kernel
    np.testing.assert_allclose(ours, _direct_bias_map(kernel, bias, shift, h, h, (1, 1), "same"), atol=1e-12)


def test_a5_one_by_one_map_is_centre_tap_only():
    rng = np.random.default_rng(0)
    kernel, bias, shift = rng.normal(size=(3, 3, 4, 6)), rng.normal(size=6), rng.normal(size=4)
    ours = _bias_map(kernel, bias, shift, 1, 1)
    np.testing.assert_allclose(ours[0, 0], bias + shift @ kernel[1, 1], rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        region_slices(1, 1)  # the reference's 9-region split is undefined there


@pytest.mark.parametrize("k,stride,padding,hw", [(5, 1, "same", (7, 6)), (3, 2, "same", (9, 8)), (3, 2, "same", (8, 8)),
                                                 (5, 2, "valid", (9, 9)), (1, 1, "same", (4, 4))])
def test_general_bias_map_other_kernels_and_strides(k, stride, padding, hw):
    rng = np.random.default_rng(k * 10 + stride)
    kernel, bias, shift = rng.normal(size=(k, k, 3, 4)), rng.normal(size=4), rng.normal(size=3)
    ours = _bias_map(kernel, bias, shift, *hw, (stride, stride), padding)
    np.testing.assert_allclose(ours, _direct_bias_map(kernel, bias, shift, *hw, (stride, stride), padding), atol=1e-12)
    if padding == "valid" or k == 1:
        assert np.all(conv_bias_correction(kernel, shift, hw, (stride, stride), padding) == 0)


def _net(dtype="float64"):
    """A conv net whose last conv runs at 1×1 after a BN-after-ReLU fold, with a pool between BN and conv."""
    L = keras.layers
    model = keras.Sequential([
        keras.Input((6, 6, 2), dtype=dtype),
        L.Conv2D(4, 3, padding="same", activation="relu", dtype=dtype),
        L.BatchNormalization(dtype=dtype),
        L.MaxPooling2D(3, dtype=dtype),  # 6 → 2
        L.Conv2D(5, 3, padding="same", activation="relu", dtype=dtype),
        L.BatchNormalization(dtype=dtype),
        L.MaxPooling2D(2, dtype=dtype),  # 2 → 1
        L.Conv2D(6, 3, padding="same", activation="relu", dtype=dtype),  # 1×1: centre tap only
        L.BatchNormalization(dtype=dtype),
        L.Flatten(dtype=dtype),
        L.Dense(3, dtype=dtype),
    ])
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if isinstance(layer, (L.Conv2D, L.Dense)):
            layer.set_weights([rng.normal(size=layer.kernel.shape) * 0.5, rng.normal(size=layer.bias.shape) * 0.3])
        elif isinstance(layer, L.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.normal(size=c), rng.normal(size=c), rng.normal(size=c), rng.uniform(.5, 2, c)])
    return model


def test_reference_evaluator_matches_keras_and_original():
    keras.config.set_floatx("float64")
    model = _net()
    snn = relu_to_ttfs(model, input_range=(-2.0, 5.0), dtype="float64")
    assert [l.bias_map for l in snn.layers if isinstance(l, TTFSConv2D)] == [True, True, True]
    x = np.random.default_rng(1).uniform(-2, 5, (128, 6, 6, 2))
    z = model.predict(x, verbose=0)
    z_ref, times = reference_forward(snn, x, return_times=True)
    np.testing.assert_allclose(z_ref, z, rtol=0, atol=1e-9)
    np.testing.assert_allclose(snn.predict(x, verbose=0), z_ref, rtol=0, atol=1e-9)
    # absolute times agree with TTFSModel.spike_times (t = t_max − r) and respect the windows' upper end
    keras_times = snn.spike_times(x[:8])
    for (name, t_ref), (name2, t_keras), (t_min, t_max) in zip(times, keras_times, snn.windows()):
        assert name == name2
        np.testing.assert_allclose(t_ref[:8], t_keras, rtol=0, atol=1e-9)
        assert np.all(t_ref <= t_max)
        silent = t_ref == t_max
        assert 0 < silent.mean() < 1  # some neurons fire, some stay silent


def test_reference_evaluator_after_window_growth():
    """Windows cancel: other (chained) widths give the same logits in absolute time."""
    keras.config.set_floatx("float64")
    model = _net()
    snn = relu_to_ttfs(model, input_range=(-2.0, 5.0), dtype="float64")
    snn.reset_windows([3.0, 7000.0, 12.5])
    x = np.random.default_rng(2).uniform(-2, 5, (32, 6, 6, 2))
    np.testing.assert_allclose(reference_forward(snn, x), model.predict(x, verbose=0), rtol=0, atol=1e-9)


def test_reference_evaluator_refuses_robustness_options():
    keras.config.set_floatx("float64")
    snn = relu_to_ttfs(_net(), input_range=(-2.0, 5.0), dtype="float64")
    snn.layers[1].noise = 0.1
    with pytest.raises(ValueError, match="noise"):
        reference_forward(snn, np.zeros((1, 6, 6, 2)))
