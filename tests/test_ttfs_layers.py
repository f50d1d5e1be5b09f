"""Layer contract of every TTFS layer: build, shape, config, .keras/.weights.h5 round trip, a fit step."""

import numpy as np
import pytest

from layer_contract import check_layer_contract
from tfspike.errors import UserError
from tfspike.ttfs import TTFSConv2D, TTFSDense, TTFSInput, TTFSMaxPool2D

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("kwargs", [{}, {"output": True}, {"time_bits": 4, "weight_bits": 8}])
def test_ttfs_dense_contract(kwargs):
    x = RNG.uniform(0, 1, (8, 12)).astype("float32")
    check_layer_contract(lambda: TTFSDense(5, **kwargs), x, expected_output_shape=(8, 5))


@pytest.mark.parametrize("kwargs", [{}, {"bias_map": True}, {"padding": "valid", "strides": 2},
                                    {"bias_map": True, "bias_map_trainable": True, "kernel_size": 5}])
def test_ttfs_conv_contract(kwargs):
    x = RNG.uniform(0, 1, (4, 9, 9, 3)).astype("float32")
    k = kwargs.get("kernel_size", 3)
    s = kwargs.get("strides", 1)
    hw = 9 if kwargs.get("padding", "same") == "same" else (9 - k) // s + 1
    model = check_layer_contract(lambda: TTFSConv2D(6, **kwargs), x, expected_output_shape=(4, hw, hw, 6))
    layer = model.layers[-1]
    assert ("bias_correction" in [w.name for w in layer.weights]) == kwargs.get("bias_map", False)


def test_ttfs_maxpool_contract_and_sign():
    x = RNG.uniform(0, 1, (3, 6, 6, 4)).astype("float32")
    model = check_layer_contract(lambda: TTFSMaxPool2D(2), x, expected_output_shape=(3, 3, 3, 4))
    pool = model.layers[-1]
    np.testing.assert_array_equal(model.predict(x, verbose=0), x.reshape(3, 3, 2, 3, 2, 4).max(axis=(2, 4)))
    pool.sign.assign([1.0, -1.0, 1.0, -1.0])  # negative sign: the latest spike (smallest activation) wins
    y = model.predict(x, verbose=0)
    blocks = x.reshape(3, 3, 2, 3, 2, 4)
    np.testing.assert_array_equal(y[..., 1], blocks.min(axis=(2, 4))[..., 1])
    np.testing.assert_array_equal(y[..., 0], blocks.max(axis=(2, 4))[..., 0])


@pytest.mark.parametrize("kwargs", [{"input_is": "time"}, {"input_is": "value", "p": -3.0, "q": 3.0},
                                    {"time_bits": 3}])
def test_ttfs_input_contract(kwargs):
    x = RNG.uniform(0, 1, (5, 7)).astype("float32")
    model = check_layer_contract(lambda: TTFSInput(**kwargs), x, expected_output_shape=(5, 7))
    y = model.predict(x, verbose=0)
    if kwargs.get("input_is") == "value":
        np.testing.assert_allclose(y, (x + 3) / 6, rtol=1e-6)
    elif not kwargs.get("time_bits"):
        np.testing.assert_allclose(y, 1 - x, rtol=1e-6)
    else:  # t = 1 − x fake-quantised on [0, 1] with 3 bits: the grid k/7, rounding half up (spec §9)
        np.testing.assert_allclose(y, np.floor((1 - x) * 7 + 0.5) / 7, rtol=0, atol=1e-6)


@pytest.mark.parametrize("make,match", [
    (lambda: TTFSDense(3, time_bits=1), "time_bits"),
    (lambda: TTFSDense(3, weight_bits=17), "weight_bits"),
    (lambda: TTFSDense(3, noise_mode="loud"), "noise_mode"),
    (lambda: TTFSDense(3, noise=-0.1), "noise"),
    (lambda: TTFSDense(3, weight_bits=8, w_min=1.0, w_max=-1.0), "w_min"),
    (lambda: TTFSConv2D(3, padding="causal"), "padding"),
    (lambda: TTFSMaxPool2D(2, padding="full"), "padding"),
    (lambda: TTFSInput("spikes"), "input_is"),
    (lambda: TTFSInput("value", p=1.0, q=1.0), "q > p"),
])
def test_bad_options_raise_one_line_user_errors(make, match):
    with pytest.raises(UserError, match=match) as e:
        make()
    assert "\n" not in str(e.value)
