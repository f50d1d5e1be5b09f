"""Weight-file readers: legacy Keras 2 ``.h5`` files (``tfspike.io.keras2_h5``), a dispatcher over
Keras 3 ``.weights.h5`` / ``.keras`` / Keras 2 ``.h5`` (:func:`load_relu_weights`), and PyTorch ``.pt``
checkpoints read without PyTorch by a restricted unpickler (``tfspike.io.torch_pt``).

Names are loaded lazily (PEP 562): importing ``tfspike.io`` loads neither h5py nor TensorFlow.
"""

import importlib

_EXPORTS = {
    "CIFAR10VGG_SHA256": "tfspike.io.keras2_h5",
    "CIFAR10VGG_SIZE": "tfspike.io.keras2_h5",
    "load_keras2_h5": "tfspike.io.keras2_h5",
    "load_relu_weights": "tfspike.io.keras2_h5",
    "read_pt": "tfspike.io.torch_pt",
    "state_dict_arrays": "tfspike.io.torch_pt",
    "read_permutation_pt": "tfspike.io.torch_pt",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tfspike.io' has no attribute {name!r}")


__all__ = list(_EXPORTS)
