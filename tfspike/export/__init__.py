"""SavedModel export of every model family: ``tfspike.export(model, directory)``.

    import tfspike
    info = tfspike.export(model, "saved/ttfs_fc2")   # writes, reloads without tfspike, compares
    info["signatures"]["serve"]["outputs"]           # {"logits": {"shape": [None, 10], ...}}

Modules: ``savedmodel`` (:func:`export`, the check), ``endpoints`` (the signatures of each family),
``reload`` (the plain-TensorFlow child process of the check; imports no tfspike).

The package itself is callable, so ``tfspike.export(...)`` works whether ``tfspike.export`` was reached
as the package (after ``import tfspike.export``) or through ``tfspike``'s lazy attribute. Importing it
does not load TensorFlow; calling it does.
"""

import importlib
import sys
import types

_EXPORTS = {"export": "tfspike.export.savedmodel", "TOLERANCES": "tfspike.export.savedmodel"}


def __getattr__(name):  # lazy: TensorFlow loads on the first call
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tfspike.export' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    def __call__(self, model, directory, **kwargs):
        """``tfspike.export(model, directory, *, sample=None, verify=True)``: see
        :func:`tfspike.export.savedmodel.export`."""
        return getattr(self, "export")(model, directory, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
__all__ = list(_EXPORTS)
