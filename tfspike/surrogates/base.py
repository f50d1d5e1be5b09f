"""The shape every spike surrogate shares: a strict Heaviside forward pass and a pluggable derivative.

A surrogate is a small serialisable object (sinabs style): ``spike = Triangle(width=2.0)`` then
``z = spike(v - threshold)``. Subclasses of :class:`Surrogate` define only ``gradient(x)`` (the
derivative used in the backward pass) and ``get_config``; ``__call__`` wraps them in one
``tf.custom_gradient`` of a stateless tensor function, so a surrogate works the same eagerly, in a
``tf.function``, under XLA and inside a ``GradientTape`` taken by a hand-written BPTT.

Example:
    >>> class Rectangle(Surrogate):
    ...     def __init__(self, width=1.0):
    ...         self.width = float(width)
    ...     def gradient(self, x):
    ...         return tf.cast(tf.abs(x) < self.width / 2, x.dtype) / self.width
    ...     def get_config(self):
    ...         return {"width": self.width}
"""

import tensorflow as tf


def heaviside(x):
    """Strict Heaviside step in the dtype of ``x``: 1 where ``x > 0``, else 0 (so H(0) = 0)."""
    return tf.cast(x > 0, x.dtype)


def backward_is_gradient(spike):
    """True when ``spike`` is a :class:`Surrogate` whose backward pass is exactly ``dy * spike.gradient(x)``
    (:meth:`Surrogate.backward_is_gradient`): hand-written backward passes (the FS neuron's division-free
    forward, the BRF/RF closed-form VJPs) may then call ``gradient()`` instead of differentiating the spike.
    False for any other callable."""
    return isinstance(spike, Surrogate) and spike.backward_is_gradient()


class Surrogate:
    """Base of the spike surrogates: ``surrogate(x)`` is H(x) forward and ``dy * gradient(x)`` backward.

    Subclasses implement ``gradient(x)`` and ``get_config()`` (constructor keywords);
    ``from_config(config)`` calls ``cls(**config)``. Two surrogates are equal when they are of the
    same class with the same config.
    """

    def gradient(self, x):
        """The surrogate derivative dH/dx used in the backward pass (a tensor like ``x``)."""
        raise NotImplementedError(f"{type(self).__name__} must define gradient(x)")

    def backward_is_gradient(self):
        """True when the derivative that ``__call__`` backpropagates is exactly ``gradient(x)``.

        Hand-written backward passes (a cell's closed-form VJP) then call ``gradient()`` instead of
        differentiating the spike. True for the base ``__call__``; a subclass that overrides
        ``__call__`` gets False unless it overrides this too.
        """
        return type(self).__call__ is Surrogate.__call__

    def __call__(self, x):
        x = tf.convert_to_tensor(x)
        gradient = self.gradient

        @tf.custom_gradient
        def spike(x):
            def grad(dy):
                return dy * gradient(x)

            return heaviside(x), grad

        return spike(x)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()) + ")"
