"""Read legacy Keras 2 ``.h5`` weight files (such as geifmany/cifar-vgg's ``cifar10vgg.h5``) into Keras 3 models.

Route B of spec §5.8, with h5py only. A Keras 2 ``save_weights`` file has

- a root attribute ``layer_names`` listing every layer, weightless ones included (chunked as
  ``layer_names0``, ``layer_names1``, … when it exceeds the HDF5 object-header limit);
- one group per layer with an attribute ``weight_names`` (same chunking), e.g. ``conv2d_1/kernel:0``;
- one dataset per weight at ``f[layer_name][weight_name]`` (the ``/`` in the name nests a group).

A whole saved model (``model.save("x.h5")`` in Keras 2) holds the same layout under the group
``model_weights``. The reader keeps the layers with weights, matches them to the target model's
weighted layers by name when every name matches, otherwise in order (as Keras' topological loading),
checks every shape *before* assigning anything, and casts to the variables' dtype.
"""

import logging
import os
import warnings

import numpy as np

from tfspike.errors import UserError, WeightMismatchError
from tfspike.utils.files import check_file, load_weights_file, open_h5
from tfspike.utils.io import sha256_file

log = logging.getLogger(__name__)

# Published identity of cifar10vgg.h5 (Git-LFS pointer in uwdb/DeepEverest, spec §5.8).
CIFAR10VGG_NAME = "cifar10vgg.h5"
CIFAR10VGG_SIZE = 60_134_600
CIFAR10VGG_SHA256 = "b8bcf9cb5d353e4192acd0e087cbd2948a5edbc5ce682de543e5f08a3bc7b7ad"
WEIGHT_HINT = "download it again or rerun the command that wrote it"


def _decode(v):
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def read_attribute_list(group, name):
    """A Keras 2 list attribute, whole or chunked as ``name0``, ``name1``, … (``load_attributes_from_hdf5_group``)."""
    if name in group.attrs:
        return [_decode(v) for v in np.atleast_1d(group.attrs[name])]
    out, k = [], 0
    while f"{name}{k}" in group.attrs:
        out.extend(_decode(v) for v in np.atleast_1d(group.attrs[f"{name}{k}"]))
        k += 1
    return out


def _has_attribute_list(group, name):
    return name in group.attrs or f"{name}0" in group.attrs


def _weights_root(f):
    if "model_weights" in f and _has_attribute_list(f["model_weights"], "layer_names"):
        return f["model_weights"]  # whole saved model
    if _has_attribute_list(f, "layer_names"):
        return f
    return None


def is_keras2_h5(path, what="weight", hint=WEIGHT_HINT):
    """True if ``path`` is an HDF5 file in the Keras 2 weight layout (weights-only or whole model).

    A missing, empty or non-HDF5 file is a one-line :class:`UserError` naming ``what``.
    """
    with open_h5(path, what, hint) as f:
        return _weights_root(f) is not None


def read_keras2_h5(path, what="Keras 2 weight", hint=WEIGHT_HINT):
    """``[(layer name, [(weight name, array), ...]), ...]`` for every layer of the file, in file order."""
    with open_h5(path, what, hint) as f:
        root = _weights_root(f)
        if root is None:
            raise WeightMismatchError(f"{path} is not a Keras 2 weight file (no 'layer_names' attribute)")
        layers = []
        for name in read_attribute_list(root, "layer_names"):
            if name not in root:
                raise WeightMismatchError(f"{path}: layer {name!r} is listed in layer_names but has no group")
            group = root[name]
            weights = []
            for wname in read_attribute_list(group, "weight_names"):
                if wname not in group:
                    raise WeightMismatchError(f"{path}: layer {name!r} lists weight {wname!r} but it is missing")
                weights.append((wname, np.asarray(group[wname])))
            layers.append((name, weights))
        return layers


def file_identity(path):
    """(size in bytes, sha256 hex) of a file."""
    return os.path.getsize(path), sha256_file(path)


def _check_identity(path):
    size, sha = file_identity(path)
    log.info("weights %s: %d bytes, sha256 %s", path, size, sha)
    if os.path.basename(path) == CIFAR10VGG_NAME and (size, sha) != (CIFAR10VGG_SIZE, CIFAR10VGG_SHA256):
        msg = (f"{path} differs from the published cifar10vgg.h5 ({size:,} bytes, sha256 {sha[:12]}…; expected "
               f"{CIFAR10VGG_SIZE:,} bytes, sha256 {CIFAR10VGG_SHA256[:12]}…); loading it anyway")
        log.warning(msg)
        warnings.warn(msg, stacklevel=3)
    return size, sha


def weighted_layers(model):
    """Layers of ``model`` that own weights, in order, nested models flattened."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(weighted_layers(layer))
        elif layer.weights:
            out.append(layer)
    return out


def _short(name):
    return name.split("/")[-1].split(":")[0]


def _pair_weights(file_layer, file_weights, layer, path):
    """Match a file layer's arrays to the layer's variables: by short name (kernel, gamma, …) or in legacy order."""
    variables = list(layer.trainable_weights) + list(layer.non_trainable_weights)
    if len(file_weights) != len(variables):
        raise WeightMismatchError(
            f"{path}: layer {file_layer!r} has {len(file_weights)} weights "
            f"({', '.join(_short(n) for n, _ in file_weights)}), model layer {layer.name!r} expects {len(variables)} "
            f"({', '.join(_short(v.name) for v in variables)})")
    file_short = [_short(n) for n, _ in file_weights]
    var_short = [_short(v.name) for v in variables]
    if sorted(file_short) == sorted(var_short) and len(set(var_short)) == len(var_short):
        by_name = dict(zip(file_short, file_weights))
        return [(v, by_name[_short(v.name)]) for v in variables]
    return list(zip(variables, file_weights))


def load_keras2_h5(model, path, by_name=None, check_identity=True):
    """Load a Keras 2 ``.h5`` weight file (weights-only or whole model) into a built Keras 3 model.

    Args:
        model: the target model, e.g. the cifar-vgg VGG_BN with 13 conv, 14 BN and 2 dense layers.
        path: the ``.h5`` file.
        by_name: match file layers to model layers by name (True), in order (False), or by name when every
            name matches and in order otherwise (None, default).
        check_identity: log size and sha256, and warn when a file named ``cifar10vgg.h5`` differs from the
            published one.

    Returns a summary dict: ``layers``, ``parameters``, ``matched_by``, ``size``, ``sha256``.

    Raises:
        WeightMismatchError: the file does not fit (message names the first layer and both shapes);
            nothing is assigned in that case.
    """
    path = check_file(path, "Keras 2 weight", WEIGHT_HINT)
    size, sha = _check_identity(path) if check_identity else (os.path.getsize(path), None)
    file_layers = [(n, w) for n, w in read_keras2_h5(path) if w]
    targets = weighted_layers(model)
    if not targets:
        raise UserError(f"model {model.name!r} has no weights yet: build it before loading {path}")
    names = {l.name: l for l in targets}
    if by_name is None:
        by_name = len(file_layers) == len(targets) and all(n in names for n, _ in file_layers)
    if by_name:
        missing = [n for n, _ in file_layers if n not in names]
        if missing:
            raise WeightMismatchError(f"{path}: layers {missing} are not in model {model.name!r}")
        unused = sorted(set(names) - {n for n, _ in file_layers})
        if unused:
            raise WeightMismatchError(f"{path}: no weights for model layers {unused}")
        pairs = [(n, w, names[n]) for n, w in file_layers]
    else:
        if len(file_layers) != len(targets):
            raise WeightMismatchError(
                f"{path} has {len(file_layers)} layers with weights, model {model.name!r} has {len(targets)} "
                f"(file: {', '.join(n for n, _ in file_layers[:3])}…; model: "
                f"{', '.join(l.name for l in targets[:3])}…)")
        pairs = [(n, w, l) for (n, w), l in zip(file_layers, targets)]

    plan = []
    for file_name, weights, layer in pairs:
        for var, (wname, arr) in _pair_weights(file_name, weights, layer, path):
            if tuple(arr.shape) != tuple(var.shape):
                raise WeightMismatchError(
                    f"{path}: layer {file_name!r} does not fit model layer {layer.name!r}: {_short(wname)} has shape "
                    f"{tuple(arr.shape)} in the file, the model expects {tuple(var.shape)}")
            if not np.all(np.isfinite(arr)):
                raise WeightMismatchError(f"{path}: layer {file_name!r} weight {_short(wname)} is not finite")
            plan.append((var, arr))
    for var, arr in plan:
        var.assign(arr.astype(var.dtype))
    n_params = int(sum(arr.size for _, arr in plan))
    log.info("loaded %d layers (%d parameters) from %s, matched by %s", len(pairs), n_params, path,
             "name" if by_name else "order")
    return {"layers": len(pairs), "parameters": n_params, "matched_by": "name" if by_name else "order",
            "size": size, "sha256": sha}


def load_relu_weights(model, path, what="ReLU weight", hint=WEIGHT_HINT):
    """Load ReLU weights from any supported file into ``model``, dispatching on the file type.

    - ``*.weights.h5`` (Keras 3 ``save_weights``) and ``*.keras`` (Keras 3 archive): ``model.load_weights``;
    - any other ``.h5``/``.hdf5`` in the Keras 2 layout (weights-only or whole model): :func:`load_keras2_h5`.

    Errors are one line naming the file and ``what`` it should be, ending with ``hint``: a missing,
    empty, truncated or corrupt file (:class:`UserError`), or a file that does not fit the model
    (:class:`WeightMismatchError`).
    """
    path = check_file(path, what, hint)
    if path.endswith(".weights.h5") or path.endswith(".keras"):
        load_weights_file(model, path, what, hint)
        return {"matched_by": "keras3", "size": os.path.getsize(path)}
    if path.endswith(".h5") or path.endswith(".hdf5"):
        if not is_keras2_h5(path, what, hint):
            raise WeightMismatchError(f"{path} is neither a Keras 2 weight file nor a Keras 3 '.weights.h5' file; "
                                      f"{hint}")
        return load_keras2_h5(model, path)
    raise UserError(f"unsupported weight file {path}: expected .weights.h5, .keras or a Keras 2 .h5")
