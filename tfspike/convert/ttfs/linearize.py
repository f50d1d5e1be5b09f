"""Graph → layer list: a Sequential or single-path Functional model as its layers in order."""

import keras

from tfspike.convert.ttfs.errors import UnsupportedLayersError


def linearize(model):
    """The layers of a Sequential or single-path Functional model in order (nested models flattened).

    Raises:
        UnsupportedLayersError: the model has several inputs/outputs, or a layer branches, merges or
            is shared.
    """
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
            except (AttributeError, ValueError) as e:  # Keras' own errors for shared / unconnected layers
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
            out.extend(linearize(layer))
        else:
            out.append(layer)
    return out
