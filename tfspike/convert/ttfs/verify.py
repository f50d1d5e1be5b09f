"""The float64 mapping check (spec §2, §5.1 step 9): original and TTFS model, layer by layer.

Both run as float64 copies: the original's layers are cloned with ``dtype="float64"`` (a final softmax
stripped), the TTFS model is built in float64. Every hidden TTFS layer must equal the ReLU output it
replaces and the readout the logits, within max(1e-9, 1e-11·max|value|).
"""

import keras
import numpy as np

from tfspike.convert.ttfs.errors import MappingCheckError
from tfspike.convert.ttfs.rules import activation_name
from tfspike.convert.ttfs.spec import LinearSpec
from tfspike.ttfs import TTFSSpikingLayer

VERIFY_ATOL = 1e-9  # spec §2: float64 max |Δz| ≤ 1e-9, or 1e-11·max|z| for logits beyond 10²
VERIFY_RTOL = 1e-11


def synthetic_inputs(input_shape, input_range, n=16, seed=0):
    """Uniform inputs in [p, q] with the model's input shape (batch dimension ``n``), float64."""
    p, q = input_range
    rng = np.random.default_rng(seed)
    return rng.uniform(p, q, size=(n,) + tuple(int(d) for d in input_shape[1:]))


def _float64_clone(layer):
    cfg = dict(layer.get_config(), dtype="float64")
    if cfg.get("activation") == "softmax":
        cfg["activation"] = "linear"
    clone = type(layer).from_config(cfg)
    clone.build(tuple(layer.input.shape))
    weights = layer.get_weights()
    if weights:
        clone.set_weights([np.asarray(w, dtype=np.float64) if np.issubdtype(np.asarray(w).dtype, np.floating)
                           else w for w in weights])
    if isinstance(clone, keras.layers.Normalization):
        clone.finalize_state()
    return clone


def _is_softmax_layer(layer):
    return isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and activation_name(layer) == "softmax")


def original_float64(layers, x):
    """Run the original layers as float64 copies (softmax stripped); ({layer name: output}, logits)."""
    outs, h = {}, keras.ops.convert_to_tensor(np.asarray(x, dtype=np.float64))
    for layer in layers:
        if not _is_softmax_layer(layer):
            h = _float64_clone(layer)(h, training=False)
        outs[layer.name] = h
    return outs, keras.ops.convert_to_numpy(h)


def tolerance(ref):
    """max(1e-9, 1e-11·max|ref|): the float64 agreement the closed form promises (spec §2)."""
    return max(VERIFY_ATOL, VERIFY_RTOL * float(np.max(np.abs(ref)))) if np.size(ref) else VERIFY_ATOL


def verify_mapping(ttfs64, specs, layers, x):
    """Compare the float64 TTFS model ``ttfs64`` (built from ``specs``) with the original ``layers`` on ``x``.

    Returns the report's ``verification`` entry: ``n_inputs``, ``max_abs_logit_diff``, ``agreement``,
    ``max_abs_logit`` and ``per_layer`` (layer, max_abs_diff, tolerance).

    Raises:
        MappingCheckError: names the first TTFS layer (and its source layers) whose output differs.
    """
    ref, logits = original_float64(layers, x)
    h = keras.ops.convert_to_tensor(np.asarray(x, dtype=np.float64))
    per_layer = []
    for s, layer in zip([None] + list(specs), ttfs64.layers):
        h = layer(h, training=False) if isinstance(layer, TTFSSpikingLayer) else layer(h)
        if not isinstance(s, LinearSpec):  # the input encoding, pools and flattens have no counterpart
            continue
        if s.readout:
            want = logits
        elif s.compare_with is not None:
            want = keras.ops.convert_to_numpy(ref[s.compare_with])
        else:
            continue
        got = keras.ops.convert_to_numpy(h)
        diff = float(np.max(np.abs(got - want))) if got.size else 0.0
        tol = tolerance(want)
        per_layer.append({"layer": s.name, "max_abs_diff": diff, "tolerance": tol})
        if not diff <= tol:  # also catches NaN
            raise MappingCheckError(
                f"mapping check failed at layer {s.name!r} (from {', '.join(s.sources)}): float64 "
                f"max |Δ| = {diff:.3g} > {tol:.1g} against the original network")
    got = keras.ops.convert_to_numpy(h)
    return {"n_inputs": int(len(x)), "max_abs_logit_diff": float(np.max(np.abs(got - logits))),
            "agreement": float(np.mean(got.argmax(-1) == logits.argmax(-1))),
            "max_abs_logit": float(np.max(np.abs(logits))), "per_layer": per_layer}
