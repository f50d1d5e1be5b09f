"""Converters from ANN models to spiking twins.

- :func:`relu_to_ttfs` — a Keras ReLU model → its exact TTFS spiking twin (``tfspike.convert.ttfs``).
- :func:`activations_to_fewspike` — replace activations by Few-Spike neurons (``tfspike.convert.fewspike``).
"""

import importlib

_EXPORTS = {
    "relu_to_ttfs": "tfspike.convert.ttfs",
    "activations_to_fewspike": "tfspike.convert.fewspike",
}


def __getattr__(name):  # lazy: each converter pulls in TensorFlow only when used
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tfspike.convert' has no attribute {name!r}")


__all__ = list(_EXPORTS)
