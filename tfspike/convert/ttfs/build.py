"""Building the TTFS model from the planner's typed layer specs and assigning the folded weights."""

import keras
import numpy as np

from tfspike.convert.ttfs.spec import ConvSpec, DenseSpec, FlattenSpec, LinearSpec, PoolSpec
from tfspike.ttfs import TTFSConv2D, TTFSDense, TTFSInput, TTFSMaxPool2D, TTFSModel


def _layer(spec, dtype, bias_maps):
    if isinstance(spec, DenseSpec):
        return TTFSDense(spec.units, output=spec.readout, name=spec.name, dtype=dtype)
    if isinstance(spec, ConvSpec):
        use_map = bias_maps == "all" or spec.correction is not None
        return TTFSConv2D(spec.units, spec.kernel_size, spec.strides, spec.padding, bias_map=use_map,
                          output=spec.readout, name=spec.name, dtype=dtype)
    if isinstance(spec, PoolSpec):
        return TTFSMaxPool2D(spec.pool_size, spec.strides, spec.padding, name=spec.name, dtype=dtype)
    if isinstance(spec, FlattenSpec):
        return keras.layers.Flatten(name=spec.name, dtype=dtype)
    raise TypeError(f"no TTFS layer for spec {type(spec).__name__}")  # the planner makes only the four above


def build_ttfs_model(specs, input_shape, input_dtype, input_range, dtype, bias_maps, name):
    """A :class:`TTFSModel` ``Input → TTFSInput("value", p, q) → specs…`` of ``dtype`` with the specs' weights.

    Integer inputs (uint8 pixels) keep their dtype at the ``Input``; ``TTFSInput`` casts them.
    ``bias_maps="all"`` gives every conv a (zero where unneeded) bias-map weight.
    """
    p, q = (float(v) for v in input_range)
    in_dtype = input_dtype if input_dtype and not str(input_dtype).startswith("float") else dtype
    layers = [keras.Input(shape=tuple(input_shape[1:]), dtype=in_dtype),
              TTFSInput("value", p=p, q=q, name="ttfs_input", dtype=dtype)]
    layers += [_layer(s, dtype, bias_maps) for s in specs]
    model = TTFSModel(layers, name=name)
    for s, layer in zip(specs, model.layers[1:]):
        if isinstance(s, LinearSpec):
            layer.kernel.assign(s.kernel.astype(layer.kernel.dtype))
            layer.bias.assign(s.bias.astype(layer.bias.dtype))
            if getattr(layer, "bias_map", False):
                corr = s.correction if s.correction is not None else np.zeros(layer.bias_correction.shape)
                layer.bias_correction.assign(corr.astype(layer.bias_correction.dtype))
        elif isinstance(s, PoolSpec):
            layer.sign.assign(s.sign.astype(layer.sign.dtype))
    return model
