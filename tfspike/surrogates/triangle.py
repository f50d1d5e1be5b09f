"""Triangular surrogate gradient for a Heaviside spike, H(s) = 1 iff s > 0 (strict).

Forward: the exact step. Backward (straight-through): dz/ds = peak * max(0, 1 - |s| / width);
width = peak = 1 is the Few-Spike / TBPI choice (spec fs.md §1.4) and the default surrogate of
:class:`tfspike.fs.FewSpike`. Registered as ``"triangle"`` for :func:`tfspike.surrogates.get`.
"""

import keras
import tensorflow as tf

from tfspike.errors import UserError
from tfspike.surrogates.base import Surrogate
from tfspike.surrogates.registry import register


@register("triangle")
@keras.saving.register_keras_serializable(package="tfspike")
class Triangle(Surrogate):
    """Pluggable triangular surrogate: ``Triangle(width, peak)(s)`` is H(s) with gradient
    ``peak * max(0, 1 - |s| / width)``.

    Args:
        width: half-width of the triangle's support (|s| < width gets gradient), > 0.
        peak: gradient at s = 0.

    Example:
        >>> z = Triangle()(tf.constant([-0.5, 0.25]))   # [0., 1.], gradient [0.5, 0.75]
    """

    def __init__(self, width=1.0, peak=1.0):
        if not width > 0:
            raise UserError(f"Triangle width must be > 0, got {width}")
        self.width = float(width)
        self.peak = float(peak)

    def gradient(self, s):
        return self.peak * tf.nn.relu(1.0 - tf.abs(s) / self.width)

    def get_config(self):
        return {"width": self.width, "peak": self.peak}


def heaviside_triangle(s, width=1.0, peak=1.0):
    """Strict Heaviside of ``s`` with a triangular surrogate gradient: ``Triangle(width, peak)(s)``."""
    return Triangle(width, peak)(s)
