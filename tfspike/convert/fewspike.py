"""Replace the activations of a Keras model by Few-Spike neurons, by cloning (spec fs.md §4.2).

Nothing is monkey-patched and the original model is never modified:

- a layer with an ``activation`` attribute whose (serialised) activation is mapped is re-created
  from its config with ``activation="linear"`` and an FS layer is applied to its output;
- an ``Activation`` layer with a mapped name, or a ``ReLU`` layer with default arguments, is
  replaced by a ``FewSpike`` layer;
- everything else is cloned unchanged; weights are copied pairwise afterwards.
"""

import keras
import numpy as np

from tfspike.errors import UserError
from tfspike.fs.layer import FewSpike
from tfspike.fs.params import fs_relu, get_params
from tfspike.fs.stats import spike_stats

DEFAULT_MAPPING = {"relu": ("relu", {"K": 10, "alpha": 25.0}),
                   "silu": "stoeckl_swish_k16",
                   "sigmoid": "stoeckl_sigmoid_k12"}


def _activation_name(act):
    if act is None:
        return None
    name = keras.activations.serialize(act) if not isinstance(act, str) else act
    if isinstance(name, dict):  # Keras 3 may serialise to {"class_name": ..., "config": ...}
        name = name.get("config", name.get("class_name"))
        if isinstance(name, dict):
            name = name.get("name")
    name = str(name).lower()
    return {"swish": "silu"}.get(name, name)


def _resolve(spec):
    """A mapping value → (FSParams, label)."""
    if isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "relu":
        kw = dict(spec[1])
        p = fs_relu(kw.get("K", 10), kw.get("alpha", 25.0))
        return p, p.name
    p = get_params(spec)
    return p, p.name


def activations_to_fewspike(model, mapping=None, voltage_scaling="abs_plus_one", trainable_params=False,
                            copy_weights=True, data=None, max_batches=None):
    """Clone ``model`` with its mapped activations replaced by :class:`~tfspike.fs.FewSpike` layers.

    Args:
        model: a functional or Sequential Keras model (subclassed models: put ``FewSpike`` into the
            architecture directly).
        mapping: activation name → FS set (a name/path/dict/tuple accepted by ``get_params`` or
            ``("relu", {"K": .., "alpha": ..})``). Keys are serialised Keras names: ``"relu"``,
            ``"silu"`` (``"swish"`` is an alias), ``"sigmoid"``, ... Default: :data:`DEFAULT_MAPPING`.
        voltage_scaling, trainable_params: passed to every FS layer.
        copy_weights: copy every original layer's weights to its clone.
        data: optional model inputs; if given, the report includes :func:`spike_stats` on them.

    Returns:
        ``(new_model, report)``; ``report["sites"]`` lists per replaced site the original layer,
        the FS layer, the preset, the output shape and n_neurons; ``report["n_fs_neurons"]``.
    """
    if mapping is None:
        mapping = DEFAULT_MAPPING
    mapping = {_activation_name(k): v for k, v in mapping.items()}
    resolved = {k: _resolve(v) for k, v in mapping.items()}
    if isinstance(model, keras.Sequential):
        model = _sequential_to_functional(model)
    elif not _is_functional(model):
        raise UserError(f"activations_to_fewspike needs a functional or Sequential model; {type(model).__name__} "
                        f"is subclassed: put tfspike.fs.FewSpike into its architecture directly")

    originals = {}
    marked = {}
    sites = []

    def new_fs(act_name, orig_name):
        params, label = resolved[act_name]
        return FewSpike(params, voltage_scaling=voltage_scaling, trainable_params=trainable_params,
                        params_name=label, name=f"{orig_name}_fs"), label

    def clone_function(layer):
        if isinstance(layer, FewSpike) or isinstance(layer, keras.Model):
            return layer.__class__.from_config(layer.get_config())
        config = layer.get_config()
        if isinstance(layer, keras.layers.Activation):
            act = _activation_name(config.get("activation"))
            if act in resolved:
                fs, label = new_fs(act, layer.name)
                sites.append({"original": layer.name, "fs_layer": fs.name, "preset": label, "activation": act})
                return fs
        if isinstance(layer, keras.layers.ReLU) and "relu" in resolved and _default_relu(config):
            fs, label = new_fs("relu", layer.name)
            sites.append({"original": layer.name, "fs_layer": fs.name, "preset": label, "activation": "relu"})
            return fs
        act = _activation_name(config.get("activation")) if "activation" in config else None
        if act is not None and act in resolved and not isinstance(layer, keras.layers.Activation):
            config = dict(config)
            config["activation"] = "linear"
            clone = layer.__class__.from_config(config)
            fs, label = new_fs(act, layer.name)
            marked[id(clone)] = fs
            sites.append({"original": layer.name, "fs_layer": fs.name, "preset": label, "activation": act})
        else:
            clone = layer.__class__.from_config(config)
        originals[id(clone)] = layer
        return clone

    def call_function(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        fs = marked.get(id(layer))
        return fs(out) if fs is not None else out

    new_model = keras.models.clone_model(model, clone_function=clone_function, call_function=call_function,
                                         recursive=True)
    if copy_weights:
        by_name = {l.name: l for l in _all_layers(model)}
        for layer in _all_layers(new_model):
            src = originals.get(id(layer)) or by_name.get(layer.name)
            if src is not None and not isinstance(layer, FewSpike) and src.weights:
                if [w.shape for w in src.weights] != [w.shape for w in layer.weights]:
                    raise UserError(f"weight shapes of {src.name} do not match its clone")
                layer.set_weights(src.get_weights())
    fs_layers = {l.name: l for l in _all_layers(new_model) if isinstance(l, FewSpike)}
    n_total = 0
    for s in sites:
        layer = fs_layers.get(s["fs_layer"])
        shape = tuple(layer.input.shape) if layer is not None else None
        s["output_shape"] = shape
        s["n_neurons"] = int(np.prod(shape[1:])) if shape is not None else None
        n_total += s["n_neurons"] or 0
    report = {"sites": sites, "n_sites": len(sites), "n_fs_neurons": n_total,
              "mapping": {k: lab for k, (_, lab) in resolved.items()}}
    if data is not None:
        report["spike_stats"] = spike_stats(new_model, data, max_batches=max_batches)
    return new_model, report


def _is_functional(model):
    """keras.Model(inputs, outputs) (and keras.applications) build ``Functional`` instances."""
    return isinstance(model, keras.Model) and type(model).__name__ == "Functional"


def _default_relu(config):
    return (config.get("max_value") is None and not config.get("negative_slope")
            and not config.get("threshold"))


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _sequential_to_functional(model):
    if not model.built or not model.inputs:
        raise UserError("build the Sequential model (give it an Input) before converting it")
    inputs = keras.Input(shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    x = inputs
    for layer in model.layers:
        x = layer(x)
    return keras.Model(inputs, x, name=model.name + "_functional")

