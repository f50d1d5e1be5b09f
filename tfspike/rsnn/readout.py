"""Leaky-integrator (LI) readout: never spikes, its potentials are the logits.

::

    alpha_o = exp(-1/|tau_mem|)
    o_t     = alpha_o o_{t-1} + (1 - alpha_o) (z_t K_out)      (the CURRENT step's hidden spikes)
"""

import math

import keras
import tensorflow as tf

from tfspike.errors import UserError
from tfspike.rsnn.base import cell_arguments, float_pair
from tfspike.rsnn.engines import leaky_integrator_sequence, run_time_loop


def li_update(current, o, alpha):
    """One LI step: ``o_t = alpha o_{t-1} + (1 - alpha) current``."""
    return alpha * o + (1.0 - alpha) * current


@keras.saving.register_keras_serializable(package="tfspike")
class LICell(keras.layers.Layer):
    """Leaky-integrator readout cell for ``keras.layers.RNN``.

    Args:
        units: number of classes O.
        tau_mem_init: (mean, std) of the normal init of raw ``tau_mem`` (20, 5).
        use_bias: add a bias (zeros init) to the input current (False).
        kernel_bound: uniform init bound of ``kernel`` (None: Glorot sqrt(6 / (H + O))).

    Input shape: ``(batch, H)``. Output shape: ``(batch, O)`` potentials. State ``[o]``.

    Example:
        >>> readout = keras.layers.RNN(LICell(6), return_sequences=True)
    """

    def __init__(self, units, tau_mem_init=(20.0, 5.0), use_bias=False, kernel_bound=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(units) < 1:
            raise UserError(f"LICell: units must be >= 1, got {units}")
        self.units = int(units)
        self.tau_mem_init = float_pair(tau_mem_init, "LICell tau_mem_init")
        self.use_bias = bool(use_bias)
        self.kernel_bound = None if kernel_bound is None else float(kernel_bound)
        self.state_size = [self.units]
        self.output_size = self.units

    def build(self, input_shape):
        n_in = int(input_shape[-1])
        bound = self.kernel_bound if self.kernel_bound is not None else math.sqrt(6.0 / (n_in + self.units))
        self.kernel = self.add_weight(name="kernel", shape=(n_in, self.units),
                                      initializer=keras.initializers.RandomUniform(-bound, bound))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros") if self.use_bias else None
        self.tau_mem = self.add_weight(name="tau_mem", shape=(self.units,),
                                       initializer=keras.initializers.RandomNormal(*self.tau_mem_init))
        self.built = True

    def get_initial_state(self, batch_size):
        return [tf.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def alpha(self):
        return tf.exp(-1.0 / tf.abs(self.tau_mem))

    def input_current(self, z):
        out = tf.tensordot(z, self.kernel, axes=1) if len(z.shape) > 2 else tf.matmul(z, self.kernel)
        return out + self.bias if self.bias is not None else out

    def call(self, inputs, states, training=None):
        o = states[0] if isinstance(states, (list, tuple)) else states
        o_new = li_update(self.input_current(inputs), o, self.alpha())
        return o_new, [o_new]

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "tau_mem_init": list(self.tau_mem_init), "use_bias": self.use_bias,
                       "kernel_bound": self.kernel_bound})
        return config


@keras.saving.register_keras_serializable(package="tfspike")
class LIReadout(keras.layers.Layer):
    """LI readout over a sequence: hidden spikes ``(B, T, H)`` → potentials ``(B, T, O)``.

    Args: ``units`` and every :class:`LICell` argument.

    Input shape: ``(batch, T, H)``. Output shape: ``(batch, T, O)``.

    Example:
        >>> logits = LIReadout(6, tau_mem_init=(20, 1))(spikes)
    """

    def __init__(self, units, **kwargs):
        base = {k: kwargs.pop(k) for k in ("name", "trainable", "dtype") if k in kwargs}
        base.setdefault("dtype", "float32")
        super().__init__(**base)
        self.cell = LICell(units, **kwargs)
        self.units = self.cell.units

    def build(self, input_shape):
        self.cell.build((input_shape[0], input_shape[-1]))
        self.built = True

    def call(self, inputs, training=None):
        inputs = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
        alpha = self.cell.alpha()
        currents_tm = tf.transpose(self.cell.input_current(inputs), (1, 0, 2))
        if inputs.shape[1] is not None:
            return tf.transpose(leaky_integrator_sequence(currents_tm, alpha), (1, 0, 2))

        return self._plain_loop(currents_tm, alpha, None, tf.shape(inputs)[0])[0]

    def run(self, inputs, initial_state=None):
        """``(potentials (B, T, O), final potential (B, O))`` from ``initial_state`` (zeros if None),
        through the plain loop (autodiff gradients; used by truncated BPTT)."""
        inputs = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
        currents_tm = tf.transpose(self.cell.input_current(inputs), (1, 0, 2))
        return self._plain_loop(currents_tm, self.cell.alpha(), initial_state, tf.shape(inputs)[0])

    def _plain_loop(self, currents_tm, alpha, initial_state, batch):
        def step(current, states):
            o = li_update(current, states[0], alpha)
            return o, (o,)

        o0 = initial_state if initial_state is not None else self.cell.get_initial_state(batch)[0]
        out_tm, final = run_time_loop(step, currents_tm, (o0,), self.compute_dtype)
        return tf.transpose(out_tm, (1, 0, 2)), final[0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(cell_arguments(self.cell))
        return config
