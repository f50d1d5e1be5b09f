"""ReLU → TTFS conversion: a trained Keras ReLU network → its exact B1 time-to-first-spike twin (spec §5).

The converter walks a Sequential or single-path Functional model through the public Keras API and
maps each layer with a rule looked up by layer class (:data:`RULES`, extensible with
:func:`register_rule`). Every rule turns a layer into a few primitive operations:

- ``linear``  — Dense / Conv2D (weights read in float64);
- ``relu``    — ``activation="relu"``, ``ReLU()`` or ``Activation("relu")``;
- ``affine``  — a per-channel map a·v + s: BatchNormalization (inference form), Rescaling, Normalization;
- ``pool``    — MaxPooling2D;  ``flatten`` — Flatten;
- ``identity`` — inference-time identities (Dropout & co.), removed;  ``softmax`` — a final softmax, removed.

The walk then applies the algorithm of spec §5.1: an affine *after* a linear layer (BN before ReLU)
folds backward into it; an affine after a ReLU (BN after ReLU, as in cifar-vgg) becomes a *pending*
affine that the next linear layer absorbs (W′ = a ⊙ W along input channels, bias map of §3.3 that
corrects zero padding); max-pools in between become sign-aware (§4); Flatten tiles the pending affine
in channels-last order. The input range (p, q) is the first pending affine, x = (q − p)·u + p.

The result is a :class:`tfspike.ttfs.TTFSModel` that takes the original model's inputs (it encodes
them as spike times with ``TTFSInput("value", p, q)``) and returns the original logits. All folding
is done in float64 NumPy; the mapped model is checked in float64 against the original, layer by
layer, before it is returned (``verify=True``).
"""

import dataclasses
import logging
import math

import keras
import numpy as np

from tfspike.errors import UserError
from tfspike.ttfs import TTFSConv2D, TTFSDense, TTFSInput, TTFSMaxPool2D, TTFSModel
from tfspike.ttfs.base import TTFSSpikingLayer

log = logging.getLogger(__name__)

__all__ = ["relu_to_ttfs", "measure_x_n", "write_x_n_json", "conv_bias_correction", "register_rule", "RULES",
           "MappingCheckError", "UnsupportedLayersError", "VERIFY_ATOL"]

VERIFY_ATOL = 1e-9  # spec §2: float64 max |Δz| ≤ 1e-9, or 1e-11·max|z| for logits beyond 10²
VERIFY_RTOL = 1e-11


class UnsupportedLayersError(UserError):
    """The model contains layers (or a graph shape) the converter cannot map exactly."""


class MappingCheckError(UserError):
    """The mapped model's float64 outputs differ from the original's (spec §5.1 step 9; exit status 1)."""

    exit_code = 1


# ------------------------------------------------------------------------------------------------
# primitive operations and the rule registry
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Op:
    """One primitive operation produced by a rule (see module docstring)."""

    kind: str
    layer: object
    kernel: np.ndarray = None  # linear: (n_in, n_out) or (kh, kw, c_in, c_out)
    bias: np.ndarray = None
    conv: dict = None  # linear conv: kernel_size, strides, padding
    scale: np.ndarray = None  # affine: a (scalar or per channel)
    shift: np.ndarray = None  # affine: s
    pool: dict = None  # pool: pool_size, strides, padding
    note: str = ""


RULES = {}


def register_rule(*classes):
    """Decorator: ``fn(layer) -> list[Op]`` maps layers of these classes (raise ``_Unsupported`` to refuse)."""

    def deco(fn):
        for c in classes:
            RULES[c] = fn
        return fn

    return deco


class _Unsupported(Exception):
    """Raised by a rule: the layer cannot be mapped; the message says why."""


def _rule_for(layer):
    for cls in type(layer).__mro__:  # exact class first, then its bases (subclasses are verified anyway)
        if cls in RULES:
            return RULES[cls]
    return None


def _f64(v):
    return np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64)


def _activation_ops(layer, name):
    if name == "relu":
        return [Op("relu", layer, note="activation='relu'")]
    if name == "softmax":
        return [Op("softmax", layer, note="activation='softmax'")]
    if name in ("linear", None):
        return []
    raise _Unsupported(f"activation {name!r} (only relu, linear, or a final softmax)")


def _activation_name(layer):
    act = layer.get_config().get("activation")
    if isinstance(act, dict):  # serialized function object
        act = act.get("config", act.get("class_name"))
    return act


@register_rule(keras.layers.Dense)
def _dense_rule(layer):
    if len(layer.input.shape) != 2:
        raise _Unsupported(f"Dense on a rank-{len(layer.input.shape)} input (put a Flatten before it)")
    bias = _f64(layer.bias) if layer.use_bias else np.zeros(layer.units)
    return [Op("linear", layer, kernel=_f64(layer.kernel), bias=bias, note="dense")] + \
        _activation_ops(layer, _activation_name(layer))


@register_rule(keras.layers.Conv2D)
def _conv_rule(layer):
    cfg = layer.get_config()
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise _Unsupported("data_format='channels_first' (TTFS layers are channels last)")
    if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1):
        raise _Unsupported(f"dilation_rate={cfg['dilation_rate']}")
    if cfg.get("groups", 1) != 1:
        raise _Unsupported(f"groups={cfg['groups']}")
    if cfg["padding"] not in ("same", "valid"):
        raise _Unsupported(f"padding={cfg['padding']!r}")
    kernel = _f64(layer.kernel)
    bias = _f64(layer.bias) if layer.use_bias else np.zeros(kernel.shape[-1])
    conv = dict(kernel_size=tuple(kernel.shape[:2]), strides=tuple(cfg["strides"]), padding=cfg["padding"])
    return [Op("linear", layer, kernel=kernel, bias=bias, conv=conv, note="conv2d")] + \
        _activation_ops(layer, _activation_name(layer))


@register_rule(keras.layers.ReLU)
def _relu_rule(layer):
    cfg = layer.get_config()
    if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
        raise _Unsupported("ReLU with max_value/negative_slope/threshold (only the plain ReLU maps to spikes)")
    return [Op("relu", layer, note="ReLU layer")]


@register_rule(keras.layers.Activation)
def _activation_layer_rule(layer):
    return _activation_ops(layer, _activation_name(layer)) or [Op("identity", layer, note="linear activation")]


@register_rule(keras.layers.Softmax)
def _softmax_rule(layer):
    return [Op("softmax", layer, note="Softmax layer")]


def _last_axis(layer, axis):
    rank = len(layer.input.shape)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return len(axes) == 1 and axes[0] in (-1, rank - 1)


@register_rule(keras.layers.BatchNormalization)
def _bn_rule(layer):
    if not _last_axis(layer, layer.axis):
        raise _Unsupported(f"BatchNormalization over axis {layer.axis} (only the channel axis, -1)")
    var = _f64(layer.moving_variance)
    gamma = _f64(layer.gamma) if layer.scale else np.ones_like(var)
    beta = _f64(layer.beta) if layer.center else np.zeros_like(var)
    kappa = gamma / np.sqrt(var + float(layer.epsilon))
    shift = beta - _f64(layer.moving_mean) * kappa
    return [Op("affine", layer, scale=kappa, shift=shift, note="BatchNormalization")]


@register_rule(keras.layers.Rescaling)
def _rescaling_rule(layer):
    scale, offset = np.ravel(_f64(layer.scale)), np.ravel(_f64(layer.offset))
    return [Op("affine", layer, scale=scale, shift=offset, note="Rescaling")]


@register_rule(keras.layers.Normalization)
def _normalization_rule(layer):
    if layer.get_config().get("invert"):
        raise _Unsupported("Normalization(invert=True)")
    mean, var = _f64(layer.mean), _f64(layer.variance)
    if any(d != 1 for d in mean.shape[:-1]):
        raise _Unsupported("Normalization over non-channel axes")
    # Keras: (x − mean) / max(sqrt(var), epsilon)
    std = np.maximum(np.sqrt(np.ravel(var)), keras.config.epsilon())
    return [Op("affine", layer, scale=1.0 / std, shift=-np.ravel(mean) / std, note="Normalization")]


@register_rule(keras.layers.MaxPooling2D)
def _maxpool_rule(layer):
    cfg = layer.get_config()
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise _Unsupported("data_format='channels_first'")
    strides = cfg["strides"] if cfg["strides"] is not None else cfg["pool_size"]
    return [Op("pool", layer, pool=dict(pool_size=tuple(cfg["pool_size"]), strides=tuple(strides),
                                        padding=cfg["padding"]), note="MaxPooling2D")]


@register_rule(keras.layers.Flatten)
def _flatten_rule(layer):
    if layer.get_config().get("data_format", "channels_last") != "channels_last":
        raise _Unsupported("data_format='channels_first'")
    return [Op("flatten", layer, note="Flatten")]


_IDENTITIES = [keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
               keras.layers.SpatialDropout3D, keras.layers.GaussianDropout, keras.layers.GaussianNoise,
               keras.layers.AlphaDropout, keras.layers.ActivityRegularization, keras.layers.Identity]


@register_rule(*_IDENTITIES)
def _identity_rule(layer):
    return [Op("identity", layer, note="inference-time identity, removed")]


# ------------------------------------------------------------------------------------------------
# graph → layer list
# ------------------------------------------------------------------------------------------------
def _linearize(model):
    """The layers of a Sequential or single-path Functional model in order (nested models flattened)."""
    if isinstance(model, keras.Sequential):
        layers = list(model.layers)
    else:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise UnsupportedLayersError(
                f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                "only single-input, single-output chains can be converted")
        layers, previous = [], model.inputs[0]
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            try:
                inp = layer.input
            except (AttributeError, ValueError) as e:
                raise UnsupportedLayersError(f"layer {layer.name!r} is shared or not connected ({e})") from None
            if isinstance(inp, (list, tuple, dict)) or inp is not previous:
                raise UnsupportedLayersError(
                    f"layer {layer.name!r} ({type(layer).__name__}) branches or merges the graph; "
                    "only single-path models can be converted")
            layers.append(layer)
            previous = layer.output
        if previous is not model.outputs[0]:
            raise UnsupportedLayersError(f"model {model.name!r} is not a single chain from input to output")
    out = []
    for layer in layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            out.extend(_linearize(layer))
        else:
            out.append(layer)
    return out


# ------------------------------------------------------------------------------------------------
# folding
# ------------------------------------------------------------------------------------------------
def _same_pad(n, k, s):
    """TensorFlow 'SAME': leading pad for size n, kernel k, stride s (and the output size)."""
    n_out = -(-n // s)
    total = max((n_out - 1) * s + k - n, 0)
    return total // 2, n_out


def _tap_mask(n, k, s, padding):
    """inside[i, h] = True when kernel tap i of output position h lands inside the n-long input."""
    if padding == "same":
        pad, n_out = _same_pad(n, k, s)
    else:
        pad, n_out = 0, (n - k) // s + 1
    idx = np.arange(n_out)[None, :] * s + np.arange(k)[:, None] - pad
    return (idx >= 0) & (idx < n)


def conv_bias_correction(kernel, shift, input_hw, strides=(1, 1), padding="same"):
    """Bias-map correction E (H_out, W_out, C_out) of spec §3.3 for a conv whose input went through a ⋅ v + s.

    The original network zero-pads *after* the affine map, the SNN pads the raw activation with 0, so
    each output loses the padded taps' share of the shift: E[h,w,o] = −Σ_{taps outside} Σ_c s_c W[i,j,c,o].
    With this E the full bias map is B = (b + Σ_{all taps,c} s_c W) + E, zero correction in the interior.
    ``kernel`` is the *original* (unscaled) kernel; ``shift`` is s per input channel (or a scalar).
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    kh, kw, c_in, _ = kernel.shape
    s = np.broadcast_to(np.asarray(shift, dtype=np.float64), (c_in,))
    w_shift = np.einsum("ijco,c->ijo", kernel, s)  # Σ_c s_c W[i,j,c,o]
    rows = _tap_mask(int(input_hw[0]), kh, int(strides[0]), padding)  # (kh, H_out)
    cols = _tap_mask(int(input_hw[1]), kw, int(strides[1]), padding)  # (kw, W_out)
    outside = 1.0 - rows[:, None, :, None] * cols[None, :, None, :]  # (kh, kw, H_out, W_out)
    return -np.einsum("ijhw,ijo->hwo", outside, w_shift)


@dataclasses.dataclass
class _Linear:
    """A linear layer being assembled: folded kernel, per-channel bias, optional bias correction map."""

    op: Op
    kernel: np.ndarray
    bias: np.ndarray
    correction: np.ndarray  # (H_out, W_out, C_out) or None
    sources: list
    rules: list


def _channels(shape):
    return int(shape[-1])


def _broadcast(v, n, what, layer):
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    if v.size == 1:
        return np.full(n, v[0])
    if v.size != n:
        raise UnsupportedLayersError(f"{what} of layer {layer.name!r} has {v.size} values for {n} channels")
    return v


def _absorb(op, pending, in_shape):
    """Fold the pending affine (a, s) on the input into linear op ``op``: W′ = a ⊙ W, bias (map)."""
    kernel, bias = op.kernel.copy(), op.bias.copy()
    rules = [op.note]
    correction = None
    if pending is not None:
        a, s = pending["scale"], pending["shift"]
        c_in = kernel.shape[-2]
        a = _broadcast(a, c_in, "pending scale", op.layer)
        s = _broadcast(s, c_in, "pending shift", op.layer)
        if op.conv is None:
            bias = bias + s @ kernel
            kernel = a[:, None] * kernel
        else:
            bias = bias + np.einsum("ijco,c->o", kernel, s)
            if np.any(s != 0):
                correction = conv_bias_correction(kernel, s, in_shape[1:3], op.conv["strides"], op.conv["padding"])
                if not np.any(correction):
                    correction = None  # valid padding: no border taps are missing
            kernel = kernel * a[None, None, :, None]
        rules.append(f"absorbed affine of {', '.join(pending['sources'])}"
                     + (" with bias map" if correction is not None else ""))
    return _Linear(op, kernel, bias, correction, [op.layer.name], rules)


def _fold_backward(lin, op):
    """linear → affine (BN before ReLU): W′[..., o] = κ_o W[..., o], B′ = κ B + β′ (bias map too)."""
    c_out = lin.kernel.shape[-1]
    k = _broadcast(op.scale, c_out, "scale", op.layer)
    b = _broadcast(op.shift, c_out, "shift", op.layer)
    lin.kernel = lin.kernel * k
    lin.bias = k * lin.bias + b
    if lin.correction is not None:
        lin.correction = lin.correction * k
    lin.sources.append(op.layer.name)
    lin.rules.append(f"folded {op.note} {op.layer.name!r} backward (before ReLU)")


def _compose(pending, op, n_channels):
    """pending (a, s) followed by affine op (k, b): v ↦ k(a v + s) + b."""
    k = _broadcast(op.scale, n_channels, "scale", op.layer)
    b = _broadcast(op.shift, n_channels, "shift", op.layer)
    if pending is None:
        return {"scale": k, "shift": b, "sources": [op.layer.name]}
    a = _broadcast(pending["scale"], n_channels, "pending scale", op.layer)
    s = _broadcast(pending["shift"], n_channels, "pending shift", op.layer)
    return {"scale": k * a, "shift": k * s + b, "sources": pending["sources"] + [op.layer.name]}


def _plan(model, input_range):
    """Rules → primitive ops → a list of TTFS layer specs with float64 weights, plus the report."""
    layers = _linearize(model)
    unsupported, ops = [], []
    for layer in layers:
        rule = _rule_for(layer)
        if rule is None:
            unsupported.append(f"{layer.name} ({type(layer).__name__})")
            continue
        try:
            ops.extend(rule(layer))
        except _Unsupported as e:
            unsupported.append(f"{layer.name} ({type(layer).__name__}: {e})")
    if unsupported:
        raise UnsupportedLayersError("cannot convert to TTFS, unsupported layers: " + "; ".join(unsupported)
                                     + f". Supported: {', '.join(sorted({c.__name__ for c in RULES}))}")

    p, q = (float(v) for v in input_range)
    if not q > p:
        raise UserError(f"input_range needs q > p, got ({p}, {q})")
    pending = None
    if (p, q) != (0.0, 1.0):
        pending = {"scale": np.array([q - p]), "shift": np.array([p]), "sources": [f"input range ({p:g}, {q:g})"]}

    shapes = {}  # layer name → (input shape, output shape); batch dim None
    for layer in layers:
        shapes[layer.name] = (tuple(layer.input.shape), tuple(layer.output.shape))

    # A final softmax may only be followed by identities.
    effective = [o for o in ops if o.kind != "identity"]
    for i, o in enumerate(effective):
        if o.kind == "softmax" and i != len(effective) - 1:
            raise UnsupportedLayersError(f"softmax in layer {o.layer.name!r} is not the last operation")

    specs, removed = [], []
    lin = None  # the linear layer being assembled
    after_relu = False  # the current tensor is a ReLU activation (non-negative, no pending map)
    for op in ops:
        in_shape, _ = shapes[op.layer.name]
        if op.kind == "identity":
            removed.append(f"{op.layer.name} ({type(op.layer).__name__})")
        elif op.kind == "softmax":
            removed.append(f"{op.layer.name} (final softmax)")
        elif op.kind == "linear":
            if lin is not None:
                raise UnsupportedLayersError(
                    f"layer {op.layer.name!r} follows {lin.op.layer.name!r} without a ReLU in between; only the "
                    "last Dense/Conv2D may lack a ReLU")
            lin = _absorb(op, pending, in_shape)
            pending, after_relu = None, False
        elif op.kind == "affine":
            if lin is not None:
                _fold_backward(lin, op)
            else:
                pending = _compose(pending, op, _channels(in_shape))
                after_relu = False
        elif op.kind == "relu":
            if lin is not None:
                if op.layer.name not in lin.sources:
                    lin.sources.append(op.layer.name)
                lin.rules.append("ReLU → spiking layer" + (f" ({op.note})" if op.note else ""))
                specs.append(_linear_spec(lin, readout=False, relu_layer=op.layer.name))
                lin, after_relu = None, True
            elif after_relu and pending is None:
                removed.append(f"{op.layer.name} (repeated ReLU)")
            else:
                raise UnsupportedLayersError(
                    f"ReLU {op.layer.name!r} does not follow a Dense/Conv2D layer (or a BatchNormalization "
                    "folded into one), so it cannot be a spiking layer")
        elif op.kind == "pool":
            if lin is not None:
                raise UnsupportedLayersError(f"MaxPooling2D {op.layer.name!r} follows {lin.op.layer.name!r} "
                                             "without a ReLU")
            c = _channels(in_shape)
            sign = np.ones(c)
            rule = "max-pool (earliest spike)"
            if pending is not None:
                a = _broadcast(pending["scale"], c, "pending scale", op.layer)
                sign = np.where(a < 0, -1.0, 1.0)  # κ = 0 → +1 (spec §4), the next weights are 0 there
                if np.any(sign < 0):
                    rule = f"sign-aware pool: {int((sign < 0).sum())} of {c} channels take the latest spike"
            specs.append({"kind": "pool", "name": op.layer.name, "pool": op.pool, "sign": sign,
                          "sources": [op.layer.name], "rules": [rule], "compare_with": None})
        elif op.kind == "flatten":
            if lin is not None:
                raise UnsupportedLayersError(f"Flatten {op.layer.name!r} follows {lin.op.layer.name!r} without a ReLU")
            spatial = int(np.prod(in_shape[1:-1]))
            rules = ["flatten"]
            if pending is not None:
                c = _channels(in_shape)
                a = _broadcast(pending["scale"], c, "pending scale", op.layer)
                s = _broadcast(pending["shift"], c, "pending shift", op.layer)
                # channels-last order: flat index (h·W + w)·C + c
                pending = dict(pending, scale=np.tile(a, spatial), shift=np.tile(s, spatial))
                rules.append(f"pending affine tiled over {spatial} positions")
            specs.append({"kind": "flatten", "name": op.layer.name, "sources": [op.layer.name], "rules": rules,
                          "compare_with": None})
        else:  # pragma: no cover - registry produces only the kinds above
            raise UnsupportedLayersError(f"unknown operation {op.kind!r} from {op.layer.name!r}")
    if lin is None:
        raise UnsupportedLayersError("the model must end with a Dense/Conv2D layer without ReLU (the logits); "
                                     + ("it ends with an unabsorbed affine map" if pending is not None
                                        else "it ends with a ReLU"))
    if pending is not None:  # pragma: no cover - a pending affine is always cleared by the last linear
        raise UnsupportedLayersError("an affine map after the last linear layer cannot be converted")
    specs.append(_linear_spec(lin, readout=True, relu_layer=None))
    if not any(s["kind"] in ("dense", "conv") and not s["readout"] for s in specs):
        log.warning("the model has no hidden spiking layer: the TTFS model is a plain readout")
    return specs, removed, layers


def _linear_spec(lin, readout, relu_layer):
    kind = "conv" if lin.op.conv is not None else "dense"
    spec = {"kind": kind, "name": lin.op.layer.name, "kernel": lin.kernel, "bias": lin.bias,
            "correction": lin.correction, "readout": readout, "sources": list(lin.sources),
            "rules": list(lin.rules) + (["readout (logits)"] if readout else []),
            "compare_with": relu_layer}
    if kind == "conv":
        spec.update(lin.op.conv)
    return spec


# ------------------------------------------------------------------------------------------------
# building the TTFS model
# ------------------------------------------------------------------------------------------------
def _build(specs, input_shape, input_dtype, input_range, dtype, bias_maps, name):
    p, q = (float(v) for v in input_range)
    in_dtype = input_dtype if input_dtype and not str(input_dtype).startswith("float") else dtype
    layers = [keras.Input(shape=tuple(input_shape[1:]), dtype=in_dtype),
              TTFSInput("value", p=p, q=q, name="ttfs_input", dtype=dtype)]
    for s in specs:
        if s["kind"] == "dense":
            layers.append(TTFSDense(s["kernel"].shape[-1], output=s["readout"], name=s["name"], dtype=dtype))
        elif s["kind"] == "conv":
            use_map = bias_maps == "all" or s["correction"] is not None
            layers.append(TTFSConv2D(s["kernel"].shape[-1], s["kernel_size"], s["strides"], s["padding"],
                                     bias_map=use_map, output=s["readout"], name=s["name"], dtype=dtype))
        elif s["kind"] == "pool":
            layers.append(TTFSMaxPool2D(s["pool"]["pool_size"], s["pool"]["strides"], s["pool"]["padding"],
                                        name=s["name"], dtype=dtype))
        else:
            layers.append(keras.layers.Flatten(name=s["name"], dtype=dtype))
    model = TTFSModel(layers, name=name)
    for s, layer in zip(specs, model.layers[1:]):
        if s["kind"] in ("dense", "conv"):
            if tuple(layer.kernel.shape) != s["kernel"].shape:  # pragma: no cover - shapes come from the original
                raise UnsupportedLayersError(f"layer {s['name']!r}: kernel {s['kernel'].shape} does not fit "
                                             f"the TTFS layer {tuple(layer.kernel.shape)}")
            layer.kernel.assign(s["kernel"].astype(layer.kernel.dtype))
            layer.bias.assign(s["bias"].astype(layer.bias.dtype))
            if getattr(layer, "bias_map", False):
                corr = s["correction"] if s["correction"] is not None else np.zeros(layer.bias_correction.shape)
                layer.bias_correction.assign(corr.astype(layer.bias_correction.dtype))
        elif s["kind"] == "pool":
            layer.sign.assign(s["sign"].astype(layer.sign.dtype))
    return model


# ------------------------------------------------------------------------------------------------
# verification (float64, layer by layer)
# ------------------------------------------------------------------------------------------------
def _float64_clone(layer, strip_softmax):
    cfg = dict(layer.get_config(), dtype="float64")
    if strip_softmax and cfg.get("activation") == "softmax":
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


def _original_float64(layers, x):
    """Run the original layers as float64 copies (softmax stripped); return {layer name: output}."""
    outs, h = {}, keras.ops.convert_to_tensor(np.asarray(x, dtype=np.float64))
    for layer in layers:
        if not (isinstance(layer, keras.layers.Softmax) or (
                isinstance(layer, keras.layers.Activation) and _activation_name(layer) == "softmax")):
            h = _float64_clone(layer, strip_softmax=True)(h, training=False)
        outs[layer.name] = h
    return outs, keras.ops.convert_to_numpy(h)


def _tolerance(ref):
    return max(VERIFY_ATOL, VERIFY_RTOL * float(np.max(np.abs(ref)))) if np.size(ref) else VERIFY_ATOL


def _verify(ttfs64, specs, layers, x):
    ref, logits = _original_float64(layers, x)
    h = keras.ops.convert_to_tensor(np.asarray(x, dtype=np.float64))
    per_layer = []
    for s, layer in zip([None] + specs, ttfs64.layers):
        h = layer(h, training=False) if isinstance(layer, TTFSSpikingLayer) else layer(h)
        if s is None:
            continue
        target = s["compare_with"] if not s.get("readout") else None
        if s.get("readout"):
            want = logits
        elif target is not None:
            want = keras.ops.convert_to_numpy(ref[target])
        else:
            continue
        got = keras.ops.convert_to_numpy(h)
        diff = float(np.max(np.abs(got - want))) if got.size else 0.0
        tol = _tolerance(want)
        per_layer.append({"layer": s["name"], "max_abs_diff": diff, "tolerance": tol})
        if not diff <= tol:  # also catches NaN
            raise MappingCheckError(
                f"mapping check failed at layer {s['name']!r} (from {', '.join(s['sources'])}): float64 "
                f"max |Δ| = {diff:.3g} > {tol:.1g} against the original network")
    got = keras.ops.convert_to_numpy(h)
    return {"n_inputs": int(len(x)), "max_abs_logit_diff": float(np.max(np.abs(got - logits))),
            "agreement": float(np.mean(got.argmax(-1) == logits.argmax(-1))),
            "max_abs_logit": float(np.max(np.abs(logits))), "per_layer": per_layer}


def synthetic_inputs(input_shape, input_range, n=16, seed=0):
    """Uniform inputs in [p, q] with the model's input shape (batch dimension ``n``)."""
    p, q = input_range
    rng = np.random.default_rng(seed)
    return rng.uniform(p, q, size=(n,) + tuple(int(d) for d in input_shape[1:]))


# ------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------
def relu_to_ttfs(model, input_range=(0.0, 1.0), dtype=None, verify=True, return_report=False,
                 verify_inputs=None, verify_batch=16, bias_maps="auto", name=None):
    """Convert a trained Keras ReLU network into its exact TTFS twin (spec §5).

    Args:
        model: a built ``keras.Sequential`` or single-path Functional model (nested models are
            flattened). Supported layers: Dense and Conv2D (ReLU as ``activation=`` or as a separate
            ``ReLU``/``Activation`` layer, a final softmax is dropped), BatchNormalization before or
            after the ReLU, Rescaling/Normalization, MaxPooling2D, Flatten, Dropout & co. (removed).
        input_range: (p, q), the range of the model's inputs mapped to input spike times,
            u = (x − p)/(q − p) (MNIST 0, 1 on x/255; CIFAR −3, 3 on standardised images).
        dtype: dtype of the TTFS model (default: the original model's variable dtype).
        verify: run original and mapped model in float64 on ``verify_inputs`` (default: ``verify_batch``
            uniform inputs in [p, q]) and raise :class:`MappingCheckError` naming the first layer whose
            outputs differ by more than max(1e-9, 1e-11·max|value|).
        return_report: also return the mapping report (a JSON-ready dict).
        bias_maps: "auto" (a bias-map weight only on convs that need a border correction) or "all".
        name: the TTFS model's name (default ``<model name>_ttfs``).

    Returns:
        a :class:`tfspike.ttfs.TTFSModel` taking the same inputs as ``model`` and returning its logits
        (and the report if ``return_report``). Windows are the defaults (X_n = 1000); use
        :func:`measure_x_n` and ``TTFSModel.reset_windows`` to size them from data.

    Raises:
        UnsupportedLayersError: one message listing every unsupported layer by name and class, or the
            place where the graph is not a single ReLU chain.
        MappingCheckError: the float64 check failed (exit status 1 from ``main.py``).

    Example:
        >>> snn = relu_to_ttfs(relu_model, input_range=(-3, 3))
        >>> np.testing.assert_allclose(snn.predict(x), relu_model.predict(x), atol=1e-4)
    """
    if bias_maps not in ("auto", "all"):
        raise UserError(f"bias_maps must be 'auto' or 'all', got {bias_maps!r}")
    if not isinstance(model, keras.Model):
        raise UserError(f"relu_to_ttfs needs a keras.Model, got {type(model).__name__}")
    if not model.built or not model.inputs:
        raise UserError(f"model {model.name!r} is not built: give it an Input (or call it once) before converting")
    specs, removed, layers = _plan(model, input_range)
    input_shape = tuple(model.inputs[0].shape)
    input_dtype = model.inputs[0].dtype
    if dtype is None:
        ws = [w for w in model.weights if "float" in str(w.dtype)]
        dtype = str(ws[0].dtype) if ws else keras.config.floatx()
    name = name or f"{model.name}_ttfs"
    ttfs = _build(specs, input_shape, input_dtype, input_range, dtype, bias_maps, name)
    check = None
    if verify:
        ttfs64 = ttfs if dtype == "float64" else _build(specs, input_shape, input_dtype, input_range, "float64",
                                                         bias_maps, name + "_f64")
        x = verify_inputs if verify_inputs is not None else synthetic_inputs(input_shape, input_range,
                                                                             verify_batch)
        check = _verify(ttfs64, specs, layers, x)
        log.info("TTFS mapping verified on %d inputs: float64 max |Δz| = %.3g", check["n_inputs"],
                 check["max_abs_logit_diff"])
    if not return_report:
        return ttfs
    report = {
        "model": model.name,
        "input_range": [float(v) for v in input_range],
        "dtype": dtype,
        "layers": [{"ttfs_layer": s["name"], "kind": s["kind"] + ("_readout" if s.get("readout") else ""),
                    "sources": s["sources"], "rules": s["rules"],
                    "bias_map": s.get("correction") is not None,
                    "negative_pool_signs": int((s["sign"] < 0).sum()) if s["kind"] == "pool" else None}
                   for s in specs],
        "removed": removed,
        "hidden_layers": [l.name for l in ttfs.spiking_layers()],
        "verification": check,
    }
    return ttfs, report


def _hidden_max_fn(model):
    import tensorflow as tf

    @tf.function(jit_compile=True, reduce_retracing=True)
    def step(x):
        r, maxima = x, []
        for layer in model.layers:
            if isinstance(layer, TTFSSpikingLayer):
                pre = layer.linear(r)
                if layer.readout:
                    r = pre
                    continue
                r = tf.nn.relu(pre)  # the ReLU activation itself (no noise, no quantisation)
                maxima.append(tf.cast(tf.reduce_max(r), tf.float64))
            else:
                r = layer(r, training=False)
        return tf.stack(maxima)

    return step


def measure_x_n(ttfs_model, x, batch_size=256):
    """X_n of spec §5.6: the largest ReLU activation of each hidden layer over the inputs ``x``.

    Streaming (one max per layer and batch, XLA-compiled). Returns a list of floats, one per
    ``ttfs_model.spiking_layers()``; pass it to ``ttfs_model.reset_windows`` for the "measured" window
    initialisation, and to :func:`write_x_n_json` to save it.
    """
    import tensorflow as tf

    n_layers = len(ttfs_model.spiking_layers())
    if not n_layers:
        return []
    if len(x) == 0:
        raise UserError("measure_x_n needs at least one input")
    step = ttfs_model.compiled_step("hidden_max", _hidden_max_fn)
    in_dtype = ttfs_model.inputs[0].dtype
    best = np.full(n_layers, -np.inf)
    for start in range(0, len(x), batch_size):
        xb = tf.convert_to_tensor(np.asarray(x[start:start + batch_size]), dtype=in_dtype)
        best = np.maximum(best, step(xb).numpy())
    return [float(v) for v in best]


def write_x_n_json(path, layers, x_n, dataset=None, split="train"):
    """Write X_n as JSON (spec §5.6), atomically: ``{"layers", "x_n", "dataset", "split"}``.

    ``layers`` is a list of hidden-layer names or the TTFS model itself.
    """
    from tfspike.utils.io import write_json_atomic

    if hasattr(layers, "spiking_layers"):
        layers = [l.name for l in layers.spiking_layers()]
    layers, x_n = list(layers), [float(v) for v in x_n]
    if len(layers) != len(x_n):
        raise UserError(f"X_n has {len(x_n)} values for {len(layers)} hidden layers")
    bad = [n for n, v in zip(layers, x_n) if not math.isfinite(v)]
    if bad:
        raise UserError(f"X_n is not finite for layers {bad}")
    write_json_atomic(path, {"layers": layers, "x_n": x_n, "dataset": dataset, "split": split})
    return path
