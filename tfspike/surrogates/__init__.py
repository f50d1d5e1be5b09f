"""Surrogate gradients: small pluggable, serialisable objects (sinabs style).

    from tfspike import surrogates
    spike = surrogates.get("triangle")                 # or a config dict, an object, None + default
    FewSpike("stoeckl_swish_k16", surrogate=surrogates.Triangle(width=2.0))

Every surrogate is a strict Heaviside forward pass with its own derivative backward
(:class:`Surrogate`), has ``get_config``/``from_config`` and is registered with Keras, so a layer
that takes ``surrogate=`` saves it in its config and restores it. Built-ins: ``"double_gaussian"``
(:class:`DoubleGaussian`, the RSNN default) and ``"triangle"`` (:class:`Triangle`, the Few-Spike
default). Add one with ``@surrogates.register("name")`` on a :class:`Surrogate` subclass.

Importing this package loads TensorFlow (the surrogate classes are tensor functions).
"""

from tfspike.surrogates.base import Surrogate, heaviside
from tfspike.surrogates.double_gaussian import DoubleGaussian
from tfspike.surrogates.registry import get, names, register
from tfspike.surrogates.triangle import Triangle

__all__ = ["DoubleGaussian", "Surrogate", "Triangle", "get", "heaviside", "names", "register"]
