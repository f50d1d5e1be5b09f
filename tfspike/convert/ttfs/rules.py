"""Conversion rules: Keras layer class → primitive operations (:mod:`tfspike.convert.ttfs.ops`).

:data:`RULES` maps a layer class to ``rule(layer) -> list[Op]``; :func:`rule_for` looks a layer up by
its class, then by its bases (a subclass with a different ``call`` is caught by the float64 check).
A rule refuses a layer by raising :class:`RuleRefusal` with the reason; the planner collects every
refusal into one :class:`UnsupportedLayersError`. Extend the converter with :func:`register_rule`.
"""

import keras
import numpy as np

from tfspike.convert.ttfs.ops import (AffineOp, ConvGeometry, FlattenOp, IdentityOp, LinearOp, PoolOp, ReluOp,
                                      SoftmaxOp)

RULES = {}


class RuleRefusal(Exception):
    """Raised by a rule: the layer cannot be mapped; the message says why."""


def register_rule(*classes):
    """Decorator: ``fn(layer) -> list[Op]`` maps layers of these classes (raise :class:`RuleRefusal` to refuse).

    Example:
        >>> @register_rule(MyScale)
        ... def _my_scale(layer):
        ...     return [AffineOp(layer=layer, scale=np.array([layer.factor]), shift=np.zeros(1), note="MyScale")]
    """

    def deco(fn):
        for c in classes:
            RULES[c] = fn
        return fn

    return deco


def rule_for(layer):
    """The rule for ``layer``: its exact class first, then its bases; None when there is none."""
    for cls in type(layer).__mro__:
        if cls in RULES:
            return RULES[cls]
    return None


def supported_layer_names():
    return sorted({c.__name__ for c in RULES})


def f64(v):
    """A Keras variable or tensor as a float64 NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64)


def activation_name(layer):
    """The ``activation`` of a layer's config as a name (serialized function objects included)."""
    act = layer.get_config().get("activation")
    if isinstance(act, dict):
        act = act.get("config", act.get("class_name"))
    return act


def _activation_ops(layer, name):
    if name == "relu":
        return [ReluOp(layer=layer, note="activation='relu'")]
    if name == "softmax":
        return [SoftmaxOp(layer=layer, note="activation='softmax'")]
    if name in ("linear", None):
        return []
    raise RuleRefusal(f"activation {name!r} (only relu, linear, or a final softmax)")


@register_rule(keras.layers.Dense)
def _dense_rule(layer):
    if len(layer.input.shape) != 2:
        raise RuleRefusal(f"Dense on a rank-{len(layer.input.shape)} input (put a Flatten before it)")
    bias = f64(layer.bias) if layer.use_bias else np.zeros(layer.units)
    return [LinearOp(layer=layer, kernel=f64(layer.kernel), bias=bias, note="dense")] + \
        _activation_ops(layer, activation_name(layer))


@register_rule(keras.layers.Conv2D)
def _conv_rule(layer):
    cfg = layer.get_config()
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise RuleRefusal("data_format='channels_first' (TTFS layers are channels last)")
    if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1):
        raise RuleRefusal(f"dilation_rate={cfg['dilation_rate']}")
    if cfg.get("groups", 1) != 1:
        raise RuleRefusal(f"groups={cfg['groups']}")
    if cfg["padding"] not in ("same", "valid"):
        raise RuleRefusal(f"padding={cfg['padding']!r}")
    kernel = f64(layer.kernel)
    bias = f64(layer.bias) if layer.use_bias else np.zeros(kernel.shape[-1])
    conv = ConvGeometry(size=tuple(kernel.shape[:2]), strides=tuple(cfg["strides"]), padding=cfg["padding"])
    return [LinearOp(layer=layer, kernel=kernel, bias=bias, conv=conv, note="conv2d")] + \
        _activation_ops(layer, activation_name(layer))


@register_rule(keras.layers.ReLU)
def _relu_rule(layer):
    cfg = layer.get_config()
    if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
        raise RuleRefusal("ReLU with max_value/negative_slope/threshold (only the plain ReLU maps to spikes)")
    return [ReluOp(layer=layer, note="ReLU layer")]


@register_rule(keras.layers.Activation)
def _activation_layer_rule(layer):
    return _activation_ops(layer, activation_name(layer)) or [IdentityOp(layer=layer, note="linear activation")]


@register_rule(keras.layers.Softmax)
def _softmax_rule(layer):
    return [SoftmaxOp(layer=layer, note="Softmax layer")]


def _last_axis(layer, axis):
    rank = len(layer.input.shape)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return len(axes) == 1 and axes[0] in (-1, rank - 1)


@register_rule(keras.layers.BatchNormalization)
def _bn_rule(layer):
    if not _last_axis(layer, layer.axis):
        raise RuleRefusal(f"BatchNormalization over axis {layer.axis} (only the channel axis, -1)")
    var = f64(layer.moving_variance)
    gamma = f64(layer.gamma) if layer.scale else np.ones_like(var)
    beta = f64(layer.beta) if layer.center else np.zeros_like(var)
    kappa = gamma / np.sqrt(var + float(layer.epsilon))
    shift = beta - f64(layer.moving_mean) * kappa
    return [AffineOp(layer=layer, scale=kappa, shift=shift, note="BatchNormalization")]


@register_rule(keras.layers.Rescaling)
def _rescaling_rule(layer):
    scale, offset = np.ravel(f64(layer.scale)), np.ravel(f64(layer.offset))
    return [AffineOp(layer=layer, scale=scale, shift=offset, note="Rescaling")]


@register_rule(keras.layers.Normalization)
def _normalization_rule(layer):
    if layer.get_config().get("invert"):
        raise RuleRefusal("Normalization(invert=True)")
    mean, var = f64(layer.mean), f64(layer.variance)
    if any(d != 1 for d in mean.shape[:-1]):
        raise RuleRefusal("Normalization over non-channel axes")
    # Keras: (x − mean) / max(sqrt(var), epsilon)
    std = np.maximum(np.sqrt(np.ravel(var)), keras.config.epsilon())
    return [AffineOp(layer=layer, scale=1.0 / std, shift=-np.ravel(mean) / std, note="Normalization")]


@register_rule(keras.layers.MaxPooling2D)
def _maxpool_rule(layer):
    cfg = layer.get_config()
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise RuleRefusal("data_format='channels_first'")
    strides = cfg["strides"] if cfg["strides"] is not None else cfg["pool_size"]
    pool = ConvGeometry(size=tuple(cfg["pool_size"]), strides=tuple(strides), padding=cfg["padding"])
    return [PoolOp(layer=layer, pool=pool, note="MaxPooling2D")]


@register_rule(keras.layers.Flatten)
def _flatten_rule(layer):
    if layer.get_config().get("data_format", "channels_last") != "channels_last":
        raise RuleRefusal("data_format='channels_first'")
    return [FlattenOp(layer=layer, note="Flatten")]


_IDENTITIES = [keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
               keras.layers.SpatialDropout3D, keras.layers.GaussianDropout, keras.layers.GaussianNoise,
               keras.layers.AlphaDropout, keras.layers.ActivityRegularization, keras.layers.Identity]


@register_rule(*_IDENTITIES)
def _identity_rule(layer):
    return [IdentityOp(layer=layer, note="inference-time identity, removed")]
