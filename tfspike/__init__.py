"""tfspike: a Keras 3 / TensorFlow model zoo of spiking neurons.

Subpackages are imported lazily so that ``import tfspike`` (and ``python main.py --help``) stays fast;
TensorFlow is loaded by the modules that need it. ``tfspike.export(model, directory)`` (a SavedModel of
any family, :mod:`tfspike.export`) loads on first use.
"""

import importlib

__version__ = "0.1.0"

from tfspike.errors import MissingDataError, UserError, WeightMismatchError  # noqa: F401,E402

_EXPORTS = {"export": "tfspike.export"}  # the package is callable: tfspike.export(model, directory)


def __getattr__(name):  # lazy (PEP 562): nothing heavy loads on ``import tfspike``
    if name in _EXPORTS:
        return importlib.import_module(_EXPORTS[name])
    raise AttributeError(f"module 'tfspike' has no attribute {name!r}")
