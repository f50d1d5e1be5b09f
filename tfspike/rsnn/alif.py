"""Adaptive LIF neuron in the form of Yin, Corradi & Bohte (2021), dt = 1, as the BRF paper's baseline.

::

    alpha = exp(-1/|tau_mem|),  rho = exp(-1/|tau_adp|)
    a_t   = rho a_{t-1} + (1 - rho) z_{t-1}          (the PREVIOUS spike)
    th_t  = theta0 + beta a_t
    u~_t  = alpha u_{t-1} + (1 - alpha) I_t
    z_t   = H(u~_t - th_t)
    u_t   = u~_t - z_t th_t                          (soft reset by the current threshold, not detached)
"""

import math
from typing import NamedTuple

import keras
import tensorflow as tf

from tfspike.rsnn.base import SpikingCellBase, SpikingSequenceBase, float_pair
from tfspike.surrogates.double_gaussian import DoubleGaussian


class ALIFParameters(NamedTuple):
    theta0: float = 0.01
    beta: float = 1.8


class ALIFState(NamedTuple):
    z: tf.Tensor
    u: tf.Tensor
    a: tf.Tensor


def alif_coefficients(tau_mem, tau_adp):
    """Loop-invariant decays (alpha, rho) from the raw time constants (abs applied)."""
    return tf.exp(-1.0 / tf.abs(tau_mem)), tf.exp(-1.0 / tf.abs(tau_adp))


def alif_update(current, state, coefficients, params=ALIFParameters(), spike=None):
    spike = spike or DoubleGaussian()
    z_prev, u, a = state
    alpha, rho = coefficients
    a_new = rho * a + (1.0 - rho) * z_prev
    threshold = params.theta0 + params.beta * a_new
    u_tilde = alpha * u + (1.0 - alpha) * current
    z = spike(u_tilde - threshold)
    u_new = u_tilde - z * threshold
    return z, ALIFState(z, u_new, a_new)


def alif_step(current, state, tau_mem, tau_adp, params=ALIFParameters(), spike=None):
    """One ALIF step with raw ``tau_mem`` and ``tau_adp``. Returns ``(z_t, ALIFState)``."""
    return alif_update(current, state, alif_coefficients(tau_mem, tau_adp), params, spike)


@keras.saving.register_keras_serializable(package="tfspike")
class ALIFCell(SpikingCellBase):
    """Adaptive LIF cell (Yin et al. 2021 form) for ``keras.layers.RNN``.

    Args:
        units: number of neurons H.
        theta0: base threshold (0.01).
        beta: adaptation strength (1.8).
        tau_mem_init: (mean, std) of the normal init of raw ``tau_mem`` (20, 0.5 for ECG).
        tau_adp_init: (mean, std) of the normal init of raw ``tau_adp`` (7, 0.2 for ECG).
        use_bias: add a bias, init U(+-1/sqrt(I+H)) as torch (False).
        kernel_bound: joint kernel init bound (None: sqrt(6 / (I + 2H))).
        surrogate: spike function (default ``DoubleGaussian()``).

    Input shape: ``(batch, I)``. Output shape: ``(batch, H)``. States ``[z, u, a]``.

    Example:
        >>> layer = keras.layers.RNN(ALIFCell(36), return_sequences=True)
    """

    n_states = 3

    def __init__(self, units, theta0=0.01, beta=1.8, tau_mem_init=(20.0, 5.0), tau_adp_init=(200.0, 50.0),
                 **kwargs):
        super().__init__(units, **kwargs)
        self.theta0, self.beta = float(theta0), float(beta)
        self.tau_mem_init = float_pair(tau_mem_init, f"{type(self).__name__} tau_mem_init")
        self.tau_adp_init = float_pair(tau_adp_init, f"{type(self).__name__} tau_adp_init")
        self.params = ALIFParameters(self.theta0, self.beta)

    def _bias_initializer(self, n_in):
        bound = 1.0 / math.sqrt(n_in + self.units)
        return keras.initializers.RandomUniform(-bound, bound)

    def _build_neuron_weights(self):
        self.tau_mem = self.add_weight(name="tau_mem", shape=(self.units,),
                                       initializer=keras.initializers.RandomNormal(*self.tau_mem_init))
        self.tau_adp = self.add_weight(name="tau_adp", shape=(self.units,),
                                       initializer=keras.initializers.RandomNormal(*self.tau_adp_init))

    def coefficients(self):
        return alif_coefficients(self.tau_mem, self.tau_adp)

    def update(self, current, states, coefficients):
        return alif_update(current, ALIFState(*states), coefficients, self.params, self.surrogate)

    def get_config(self):
        config = super().get_config()
        config.update({"theta0": self.theta0, "beta": self.beta, "tau_mem_init": list(self.tau_mem_init),
                       "tau_adp_init": list(self.tau_adp_init)})
        return config


@keras.saving.register_keras_serializable(package="tfspike")
class ALIF(SpikingSequenceBase):
    """ALIF sequence layer around :class:`ALIFCell`.

    Input shape: ``(batch, T, I)``. Output shape: ``(batch, T, H)`` spikes.

    Example:
        >>> spikes = ALIF(36, tau_mem_init=(20, 0.5), tau_adp_init=(7, 0.2))(tf.zeros((2, 1300, 4)))
    """

    cell_class = ALIFCell
