"""The planner: the model's layers → primitive ops → typed TTFS layer specs (spec §5.1).

It walks the ops once, keeping the linear layer being assembled (:class:`LinearDraft`) and the
pending affine map (:class:`PendingAffine`); a ReLU closes a linear layer into a hidden spiking
layer, the last linear layer becomes the readout.
"""

import dataclasses
import logging

import numpy as np

from tfspike.convert.ttfs.errors import UnsupportedLayersError
from tfspike.convert.ttfs.fold import PendingAffine, absorb, compose, fold_backward, pool_signs, tile_over_positions
from tfspike.convert.ttfs.linearize import linearize
from tfspike.convert.ttfs.ops import AffineOp, FlattenOp, IdentityOp, LinearOp, PoolOp, ReluOp, SoftmaxOp
from tfspike.convert.ttfs.rules import RuleRefusal, rule_for, supported_layer_names
from tfspike.convert.ttfs.spec import ConvSpec, DenseSpec, FlattenSpec, LinearSpec, PoolSpec
from tfspike.errors import UserError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class ConversionPlan:
    """What the builder and the float64 check need: the specs, the removed layers, the original layers."""

    specs: tuple  # LayerSpec, in TTFS model order (after the input encoding)
    removed: tuple  # "name (why)" for every layer dropped (identities, final softmax, repeated ReLU)
    layers: tuple  # the original model's layers in order (nested models flattened)


def model_ops(layers):
    """Every layer's primitive ops; one :class:`UnsupportedLayersError` listing every refused layer."""
    unsupported, ops = [], []
    for layer in layers:
        rule = rule_for(layer)
        if rule is None:
            unsupported.append(f"{layer.name} ({type(layer).__name__})")
            continue
        try:
            ops.extend(rule(layer))
        except RuleRefusal as e:
            unsupported.append(f"{layer.name} ({type(layer).__name__}: {e})")
    if unsupported:
        raise UnsupportedLayersError("cannot convert to TTFS, unsupported layers: " + "; ".join(unsupported)
                                     + f". Supported: {', '.join(supported_layer_names())}")
    return ops


def input_affine(input_range):
    """The input encoding u = (x − p)/(q − p) seen from the network: x = (q − p)·u + p (None for (0, 1))."""
    p, q = (float(v) for v in input_range)
    if not q > p:
        raise UserError(f"input_range needs q > p, got ({p}, {q})")
    if (p, q) == (0.0, 1.0):
        return None
    return PendingAffine(np.array([q - p]), np.array([p]), (f"input range ({p:g}, {q:g})",))


def linear_spec(lin, readout, relu_layer):
    """Close a :class:`LinearDraft` into a :class:`DenseSpec` or :class:`ConvSpec`."""
    common = dict(name=lin.op.layer.name, kernel=lin.kernel, bias=lin.bias, readout=readout,
                  sources=tuple(lin.sources), rules=tuple(lin.rules) + (("readout (logits)",) if readout else ()),
                  compare_with=relu_layer)
    conv = lin.op.conv
    if conv is None:
        return DenseSpec(**common)
    return ConvSpec(**common, kernel_size=conv.size, strides=conv.strides, padding=conv.padding,
                    correction=lin.correction)


def plan(model, input_range):
    """Rules → primitive ops → a :class:`ConversionPlan` with float64 weights.

    Raises:
        UnsupportedLayersError: unsupported layers (all listed), or where the ops are not a ReLU chain
            (two linear layers without a ReLU, a ReLU without a linear layer, a softmax before the end, …).
        UserError: ``input_range`` with q ≤ p.
    """
    layers = linearize(model)
    ops = model_ops(layers)
    pending = input_affine(input_range)
    in_shapes = {layer.name: tuple(layer.input.shape) for layer in layers}  # batch dim None

    # A final softmax may only be followed by identities.
    effective = [o for o in ops if not isinstance(o, IdentityOp)]
    for i, o in enumerate(effective):
        if isinstance(o, SoftmaxOp) and i != len(effective) - 1:
            raise UnsupportedLayersError(f"softmax in layer {o.layer.name!r} is not the last operation")

    specs, removed = [], []
    lin = None  # the linear layer being assembled
    after_relu = False  # the current tensor is a ReLU activation (non-negative, no pending map)
    for op in ops:
        name, in_shape = op.layer.name, in_shapes[op.layer.name]
        if isinstance(op, IdentityOp):
            removed.append(f"{name} ({type(op.layer).__name__})")
        elif isinstance(op, SoftmaxOp):
            removed.append(f"{name} (final softmax)")
        elif isinstance(op, LinearOp):
            if lin is not None:
                raise UnsupportedLayersError(
                    f"layer {name!r} follows {lin.op.layer.name!r} without a ReLU in between; only the "
                    "last Dense/Conv2D may lack a ReLU")
            lin = absorb(op, pending, in_shape)
            pending, after_relu = None, False
        elif isinstance(op, AffineOp):
            if lin is not None:
                fold_backward(lin, op)
            else:
                pending = compose(pending, op, int(in_shape[-1]))
                after_relu = False
        elif isinstance(op, ReluOp):
            if lin is not None:
                if name not in lin.sources:
                    lin.sources.append(name)
                lin.rules.append("ReLU → spiking layer" + (f" ({op.note})" if op.note else ""))
                specs.append(linear_spec(lin, readout=False, relu_layer=name))
                lin, after_relu = None, True
            elif after_relu and pending is None:
                removed.append(f"{name} (repeated ReLU)")
            else:
                raise UnsupportedLayersError(
                    f"ReLU {name!r} does not follow a Dense/Conv2D layer (or a BatchNormalization "
                    "folded into one), so it cannot be a spiking layer")
        elif isinstance(op, PoolOp):
            if lin is not None:
                raise UnsupportedLayersError(f"MaxPooling2D {name!r} follows {lin.op.layer.name!r} "
                                             "without a ReLU")
            c = int(in_shape[-1])
            sign = pool_signs(pending, c, op.layer)
            rule = "max-pool (earliest spike)"
            if np.any(sign < 0):
                rule = f"sign-aware pool: {int((sign < 0).sum())} of {c} channels take the latest spike"
            specs.append(PoolSpec(name=name, sources=(name,), rules=(rule,), pool_size=op.pool.size,
                                  strides=op.pool.strides, padding=op.pool.padding, sign=sign))
        elif isinstance(op, FlattenOp):
            if lin is not None:
                raise UnsupportedLayersError(f"Flatten {name!r} follows {lin.op.layer.name!r} without a ReLU")
            spatial = int(np.prod(in_shape[1:-1]))
            rules = ["flatten"]
            if pending is not None:
                pending = tile_over_positions(pending, int(in_shape[-1]), spatial, op.layer)
                rules.append(f"pending affine tiled over {spatial} positions")
            specs.append(FlattenSpec(name=name, sources=(name,), rules=tuple(rules)))
        else:
            raise UnsupportedLayersError(f"layer {name!r}: its rule produced an unknown operation "
                                         f"{type(op).__name__} (rules return tfspike.convert.ttfs ops)")
    if lin is None:
        raise UnsupportedLayersError("the model must end with a Dense/Conv2D layer without ReLU (the logits); "
                                     + ("it ends with an unabsorbed affine map" if pending is not None
                                        else "it ends with a ReLU"))
    specs.append(linear_spec(lin, readout=True, relu_layer=None))
    if not any(isinstance(s, LinearSpec) and not s.readout for s in specs):
        log.warning("the model has no hidden spiking layer: the TTFS model is a plain readout")
    return ConversionPlan(tuple(specs), tuple(removed), tuple(layers))
