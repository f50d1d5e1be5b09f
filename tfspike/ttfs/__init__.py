"""Time-to-first-spike (TTFS) networks: the B1 model of Stanojevic et al. (2024).

Layers pass relative spike times r = t_max − t, which equal the ReLU activations, so a TTFS network and
its ReLU twin with the same weights give the same logits and the same gradients.

Window calibration (measure X_n, read and write the X_n JSON) lives in :mod:`tfspike.ttfs.windows`.
Names are loaded lazily (PEP 562), so ``tfspike.ttfs.windows`` and ``tfspike.ttfs.simulate`` can be
imported without TensorFlow.
"""

import importlib

_EXPORTS = {
    "TTFSSpikingLayer": "tfspike.ttfs.base",
    "TTFSConv2D": "tfspike.ttfs.conv",
    "TTFSDense": "tfspike.ttfs.dense",
    "TTFSInput": "tfspike.ttfs.encoding",
    "TTFSMaxPool2D": "tfspike.ttfs.pool",
    "TTFSModel": "tfspike.ttfs.model",
    "evaluate_ttfs": "tfspike.ttfs.metrics",
}

# Importing a layer module registers its class with Keras. A saved TTFS model holds several layer classes,
# so asking for any name registers all: keras.saving.load_model then finds every "tfspike>TTFS…" class.
_LAYER_MODULES = ("tfspike.ttfs.conv", "tfspike.ttfs.dense", "tfspike.ttfs.encoding", "tfspike.ttfs.pool",
                  "tfspike.ttfs.model")


def __getattr__(name):  # lazy: TensorFlow loads on the first layer, model or metric asked for
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tfspike.ttfs' has no attribute {name!r}")
    for module in _LAYER_MODULES:
        importlib.import_module(module)
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = list(_EXPORTS)
