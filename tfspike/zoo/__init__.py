"""The model zoo: pretrained spiking networks by name, each with a model card.

    >>> import tfspike.zoo as zoo
    >>> zoo.list_presets()                      # names
    >>> zoo.card("ttfs_fc2_mnist")["metrics"]   # the card: task, metrics, training command, SHA-256, ...
    >>> model = zoo.load("ttfs_fc2_mnist")      # a compiled Keras model with the preset's weights

``main.py --list_presets`` prints the table; ``main.py --preset=NAME`` evaluates (``--epochs=0``, the
default there), fine-tunes (``--epochs=N``) or exports (``--export DIR``) a preset in its family.
Cards and files: :mod:`tfspike.zoo.registry`; building the models: :mod:`tfspike.zoo.loading`.
"""

__all__ = ["card", "list_presets", "load", "preset_files", "presets_table"]

from tfspike.zoo.registry import card, list_presets, preset_files, presets_table  # noqa: E402  (TF-free)

_LAZY = {"load": "tfspike.zoo.loading"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfspike.zoo' has no attribute {name!r}")
