"""Double-Gaussian surrogate gradient of the Heaviside spike (Yin et al. 2021; Higuchi et al. 2024).

Forward: ``H(x) = 1 if x > 0 else 0`` (strict, so ``H(0) = 0``). Backward, as the BRF reference
implements it, with *normalised* Gaussian densities ``N(x; s)``::

    g(x) = gamma * ((1 + h) * N(x; sigma) - 2 * h * N(x; scale * sigma))

With the defaults ``g(x) = 0.45878362 exp(-2 x^2) - 0.01994711 exp(-x^2 / 18)``, ``g(0) = 0.438837``.

Two equivalent forms are offered: ``form="custom_gradient"`` (``tf.custom_gradient`` on a stateless
function of the tensor only) and ``form="fgi"`` (forward gradient injection, Otte 2024:
``y = g*x - stop_gradient(g*x) + stop_gradient(H(x))`` with ``g = stop_gradient(surrogate(x))``).
Both give the same value and the same first derivative. Registered as ``"double_gaussian"`` for
:func:`tfspike.surrogates.get`.

Example:
    >>> spike = DoubleGaussian()
    >>> z = spike(tf.constant([-0.5, 0.0, 0.3]))   # [0., 0., 1.]
"""

import math

import keras
import tensorflow as tf

from tfspike.errors import UserError
from tfspike.surrogates.base import Surrogate, heaviside
from tfspike.surrogates.registry import register

FORMS = ("custom_gradient", "fgi")


@register("double_gaussian")
@keras.saving.register_keras_serializable(package="tfspike")
class DoubleGaussian(Surrogate):
    """Heaviside forward, double-Gaussian surrogate backward (registered as ``"double_gaussian"``).

    Args:
        h: weight of the negative side lobes (0.15).
        sigma: width of the central Gaussian (0.5).
        scale: ratio of the side-lobe width to ``sigma`` (6, so sigma_2 = 3).
        gamma: overall gain (0.5).
        form: ``"custom_gradient"`` (default) or ``"fgi"`` (forward gradient injection).
    """

    def __init__(self, h=0.15, sigma=0.5, scale=6.0, gamma=0.5, form="custom_gradient"):
        if form not in FORMS:
            raise UserError(f"DoubleGaussian form must be one of {FORMS}, got {form!r}")
        if sigma <= 0 or scale <= 0:
            raise UserError(f"DoubleGaussian needs sigma > 0 and scale > 0, got sigma={sigma}, scale={scale}")
        self.h, self.sigma, self.scale, self.gamma, self.form = float(h), float(sigma), float(scale), float(gamma), form
        # g(x) = c1 exp(-x^2 / (2 s1^2)) - c2 exp(-x^2 / (2 s2^2)), constants folded once.
        s1, s2 = self.sigma, self.sigma * self.scale
        norm = 1.0 / math.sqrt(2.0 * math.pi)
        self._c1 = self.gamma * (1.0 + self.h) * norm / s1
        self._c2 = self.gamma * 2.0 * self.h * norm / s2
        self._k1 = -1.0 / (2.0 * s1 * s1)
        self._k2 = -1.0 / (2.0 * s2 * s2)

    def gradient(self, x):
        """The surrogate derivative g(x)."""
        x2 = tf.square(x)
        return self._c1 * tf.exp(self._k1 * x2) - self._c2 * tf.exp(self._k2 * x2)

    def backward_is_gradient(self):
        # both forms backpropagate dy * gradient(x): the FGI term g*x with g held constant has dx-derivative g
        return type(self).__call__ is DoubleGaussian.__call__

    def __call__(self, x):
        if self.form == "custom_gradient":
            return super().__call__(x)
        x = tf.convert_to_tensor(x)
        g = tf.stop_gradient(self.gradient(x))
        gx = g * x
        return gx - tf.stop_gradient(gx) + tf.stop_gradient(heaviside(x))

    def get_config(self):
        return {"h": self.h, "sigma": self.sigma, "scale": self.scale, "gamma": self.gamma, "form": self.form}
