"""Reference (PyTorch) RSNN checkpoints → a built :class:`~tfspike.rsnn.model.RSNN`: the published
``.pt`` files themselves (read without PyTorch, :mod:`tfspike.io.torch_pt`) or their ``.npz`` export.

Layout (``shared/golden/brf/README.md``): every tensor of the torch ``model_state_dict`` unchanged,
float32, torch layout, the state-dict name with "." replaced by "/". The synapses are common to all
neurons; the neuron's own keys come from its descriptor (``NeuronSpec.reference_keys``).

Example:
    >>> model = build_rsnn("BRF", "ECG")
    >>> import_reference(model, "shared/golden/brf/pt/ecg_brf.pt")     # or .../ecg_brf.npz
    {'epoch': 360}
"""

import os

import numpy as np

from tfspike.errors import WeightMismatchError
from tfspike.io.torch_pt import state_dict_arrays
from tfspike.rsnn.neurons import neuron_spec
from tfspike.utils.files import open_npz, require_keys

REFERENCE_HINT = ("give the reference's .pt checkpoint or a .npz exported from its model_state_dict "
                  "(shared/golden/brf/README.md)")
TORCH_SUFFIXES = (".pt", ".pth")


def read_reference_arrays(path, what="reference checkpoint"):
    """The flat ``{"hidden/omega": array, ..., "epoch": ...}`` arrays of a reference checkpoint: a
    PyTorch ``.pt``/``.pth`` file (its ``model_state_dict``) or the equivalent ``.npz``."""
    if os.fspath(path).endswith(TORCH_SUFFIXES):
        return state_dict_arrays(path)
    return open_npz(path, what, REFERENCE_HINT)


def _assign(variable, value, key, path):
    value = np.asarray(value, dtype=np.float32)
    if tuple(variable.shape) != value.shape:
        raise WeightMismatchError(f"{path}: {key} has shape {value.shape}, the model's {variable.path} "
                                  f"needs {tuple(variable.shape)}")
    variable.assign(value)


def import_reference(model, path):
    """Load a reference checkpoint ``path`` (PyTorch ``.pt``/``.pth`` or its ``.npz`` export) into the
    built RSNN ``model``.

    Keys: ``hidden/linear/weight`` (H, I+H) → kernel = W.T; ``out/linear/weight`` (O, H) → readout
    kernel = W_out.T; the neuron's ``reference_keys`` (BRF/RF ``hidden/omega``, ``hidden/b_offset``;
    ALIF ``hidden/tau_mem``, ``hidden/tau_adp``) and ``out/tau_mem`` copied raw; optional
    ``hidden/linear/bias`` and ``out/linear/bias``; ``epoch`` returned; ``hidden/linear/mask`` must be all
    ones (an unpruned network, as in every published checkpoint).
    Returns ``{"epoch": ...}`` when the file records it.
    """
    what = f"{model.neuron} reference checkpoint"
    data = read_reference_arrays(path, what)
    spec = neuron_spec(model.neuron)
    cell, readout = model.hidden.cell, model.readout.cell
    required = ["hidden/linear/weight", "out/linear/weight", "out/tau_mem"] + list(spec.reference_keys)
    require_keys(path, what, data, required, REFERENCE_HINT, WeightMismatchError)
    mask = data.get("hidden/linear/mask")
    if mask is not None and not np.all(mask == 1):  # the reference's pruning mask: all ones when unpruned
        raise WeightMismatchError(f"{path}: hidden/linear/mask prunes {int(np.sum(mask != 1))} weights; "
                                  f"tfspike has no weight mask, so only unpruned (all-ones mask) checkpoints load")
    _assign(cell.kernel, data["hidden/linear/weight"].T, "hidden/linear/weight (transposed)", path)
    for key, weight in spec.reference_keys.items():
        _assign(getattr(cell, weight), data[key], key, path)
    _assign(readout.kernel, data["out/linear/weight"].T, "out/linear/weight (transposed)", path)
    _assign(readout.tau_mem, data["out/tau_mem"], "out/tau_mem", path)
    for key, layer in (("hidden/linear/bias", cell), ("out/linear/bias", readout)):
        if key in data:
            if layer.bias is None:
                raise WeightMismatchError(f"{path} has {key} but the model was built without a bias (use_bias=False)")
            _assign(layer.bias, data[key], key, path)
        elif layer.bias is not None:
            raise WeightMismatchError(f"{path} has no {key} but the model was built with use_bias=True")
    return {k: int(data[k]) for k in ("epoch",) if k in data}


import_reference_npz = import_reference  # the older name: it has always been the same loader
