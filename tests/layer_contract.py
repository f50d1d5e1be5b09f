"""One helper that checks the contract every tfspike layer keeps (keras-team/keras style):
build, output shape, ``get_config`` round trip, ``.keras`` and ``.weights.h5`` save/load with
identical outputs, and one real ``fit`` step."""

import copy
import os
import tempfile

import keras
import numpy as np


def check_layer_contract(layer_fn, x, expected_output_shape=None, fit=True, rtol=0.0, atol=0.0,
                         loss="mse", call_kwargs=None, compare_fn=None):
    """``layer_fn()`` returns a fresh layer; ``x`` is a numpy batch (or list of batches).

    Returns the Keras model used, for extra checks.
    """
    call_kwargs = call_kwargs or {}
    xs = x if isinstance(x, (list, tuple)) else [x]
    layer = layer_fn()
    inputs = [keras.Input(shape=a.shape[1:], dtype=str(a.dtype)) for a in xs]
    out = layer(inputs if len(inputs) > 1 else inputs[0], **call_kwargs)
    model = keras.Model(inputs, out)
    assert layer.built
    y = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    ys = y if isinstance(y, (list, tuple)) else [y]
    if expected_output_shape is not None:
        exp = expected_output_shape if isinstance(expected_output_shape, list) else [expected_output_shape]
        for a, s in zip(ys, exp):
            assert tuple(a.shape) == tuple(s), f"output shape {a.shape} != {s}"

    # get_config round trip
    cfg = layer.get_config()
    clone = layer.__class__.from_config(copy.deepcopy(cfg))  # some from_config (keras.layers.RNN) mutate it
    assert clone.get_config() == cfg, "get_config/from_config does not round-trip"

    def same(a, b):
        for u, v in zip(a if isinstance(a, (list, tuple)) else [a], b if isinstance(b, (list, tuple)) else [b]):
            if compare_fn is not None:
                compare_fn(u, v)
            else:
                np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        same(y, loaded.predict(xs if len(xs) > 1 else xs[0], verbose=0))
        wpath = os.path.join(d, "m.weights.h5")
        model.save_weights(wpath)
        loaded.load_weights(wpath)
        same(y, loaded.predict(xs if len(xs) > 1 else xs[0], verbose=0))
        assert len(loaded.weights) == len(model.weights)

    if fit and model.trainable_weights:
        before = [w.numpy().copy() for w in model.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss)
        target = [np.random.default_rng(0).normal(size=a.shape).astype("float32") for a in ys]
        hist = model.fit(xs if len(xs) > 1 else xs[0], target if len(target) > 1 else target[0],
                         epochs=1, batch_size=len(xs[0]), verbose=0)
        assert np.isfinite(hist.history["loss"][0])
        after = [w.numpy() for w in model.trainable_weights]
        assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "fit step changed no weight"
    return model
