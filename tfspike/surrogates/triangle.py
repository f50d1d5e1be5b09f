"""Triangular surrogate gradient for a Heaviside spike, H(s) = 1 iff s > 0 (strict).

Forward: the exact step. Backward (straight-through): dz/ds = peak * max(0, 1 - |s| / width);
width = peak = 1 is the Few-Spike / TBPI choice (spec fs.md §1.4).
"""

import keras
import tensorflow as tf


def heaviside_triangle(s, width=1.0, peak=1.0):
    """Strict Heaviside of ``s`` with a triangular surrogate gradient (a stateless tensor function)."""
    width = float(width)
    peak = float(peak)

    @tf.custom_gradient
    def spike(s):
        z = tf.cast(s > 0, s.dtype)

        def grad(dz):
            return dz * (peak * tf.nn.relu(1.0 - tf.abs(s) / width))

        return z, grad

    return spike(s)


@keras.saving.register_keras_serializable(package="tfspike")
class Triangle:
    """Pluggable triangular surrogate: ``Triangle(width, peak)(s)`` is H(s) with gradient
    ``peak * max(0, 1 - |s| / width)``.

    Args:
        width: half-width of the triangle's support (|s| < width gets gradient).
        peak: gradient at s = 0.

    Example:
        >>> z = Triangle()(tf.constant([-0.5, 0.25]))   # [0., 1.], gradient [0.5, 0.75]
    """

    def __init__(self, width=1.0, peak=1.0):
        if not width > 0:
            raise ValueError(f"Triangle width must be > 0, got {width}")
        self.width = float(width)
        self.peak = float(peak)

    def __call__(self, s):
        return heaviside_triangle(s, self.width, self.peak)

    def get_config(self):
        return {"width": self.width, "peak": self.peak}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"Triangle(width={self.width}, peak={self.peak})"
