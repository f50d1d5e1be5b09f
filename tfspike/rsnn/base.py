"""Base classes of the recurrent spiking cells and their sequence layers: the joint synapse, zero
states, the surrogate and the thin sequence-layer wrapper (the time loops are in
:mod:`tfspike.rsnn.engines`).

A cell keeps one joint kernel ``K`` of shape ``(I + H, H)`` acting on ``[x_t, z_{t-1}]`` (inputs in the
first I rows). Sequence layers hoist the input half out of the time loop (one big matmul ``x @ K[:I]``
for all steps) and keep only ``z_{t-1} @ K[I:]`` inside it; the cell's own ``call`` (for
``keras.layers.RNN``) does the same sum step by step.
"""

import math

import keras
import tensorflow as tf

from tfspike.errors import UserError
from tfspike.rsnn.engines import recurrent_sequence_manual_bptt, run_time_loop
from tfspike import surrogates


def joint_glorot_bound(n_in, n_hidden):
    """Glorot-uniform bound of the joint ``(I + H) x H`` matrix: ``sqrt(6 / (I + 2H))``."""
    return math.sqrt(6.0 / (n_in + 2 * n_hidden))


def float_pair(value, what):
    """``value`` as a list of two floats (an init range or a (mean, std)); ``what`` names the argument
    in the error."""
    try:
        pair = [float(a) for a in value]
    except (TypeError, ValueError):
        pair = None
    if pair is None or len(pair) != 2:
        raise UserError(f"{what} must be a pair of numbers, got {value!r}")
    return pair


def cell_arguments(cell):
    """A cell's constructor arguments without the base-layer keys, for a sequence layer's config
    (the sequence layer builds its own cell from the same arguments)."""
    config = cell.get_config()
    for k in ("name", "trainable", "dtype"):
        config.pop(k, None)
    return config


class SpikingCellBase(keras.layers.Layer):
    """Base of the hidden spiking cells: joint kernel, optional bias, zero states, surrogate.

    Subclasses define ``n_states``, ``_build_neuron_weights()``, ``coefficients()`` (loop-invariant
    tensors computed once per sequence) and ``update(current, states, coefficients)``; optionally
    ``closed_form_vjp()``, a :class:`~tfspike.rsnn.engines.StepVJP` of ``update`` for the hand-written
    BPTT (None, the default: the backward step is a GradientTape of ``update``).
    """

    n_states = 1

    def __init__(self, units, use_bias=False, kernel_bound=None, surrogate=None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # dt*omega products and thresholds are not safe in float16
        super().__init__(**kwargs)
        if int(units) < 1:
            raise UserError(f"{type(self).__name__}: units must be >= 1, got {units}")
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.kernel_bound = None if kernel_bound is None else float(kernel_bound)
        self.surrogate = surrogates.get(surrogate, default="double_gaussian")
        self.state_size = [self.units] * self.n_states
        self.output_size = self.units

    def build(self, input_shape):
        n_in = int(input_shape[-1])
        self.input_dim = n_in
        bound = self.kernel_bound if self.kernel_bound is not None else joint_glorot_bound(n_in, self.units)
        self.kernel = self.add_weight(name="kernel", shape=(n_in + self.units, self.units),
                                      initializer=keras.initializers.RandomUniform(-bound, bound))
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer=self._bias_initializer(n_in))
        else:
            self.bias = None
        self._build_neuron_weights()
        self.built = True

    def _bias_initializer(self, n_in):
        return "zeros"

    def _build_neuron_weights(self):
        raise NotImplementedError

    def get_initial_state(self, batch_size):
        return [tf.zeros((batch_size, self.units), dtype=self.compute_dtype) for _ in range(self.n_states)]

    def input_current(self, x):
        """``x @ K[:I]`` (+ bias) for ``x`` of shape ``(..., I)``: the input half of the synapse."""
        k_in = self.kernel[: self.input_dim]
        out = tf.tensordot(x, k_in, axes=1) if len(x.shape) > 2 else tf.matmul(x, k_in)
        return out + self.bias if self.bias is not None else out

    def recurrent_current(self, z):
        return tf.matmul(z, self.kernel[self.input_dim:])

    def call(self, inputs, states, training=None):
        """One step for ``keras.layers.RNN``: ``I_t = [x_t, z_{t-1}] K`` then the neuron update."""
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        current = tf.matmul(tf.concat([inputs, states[0]], axis=-1), self.kernel)
        if self.bias is not None:
            current = current + self.bias
        z, new_states = self.update(current, tuple(states), self.coefficients())
        return z, list(new_states)

    def coefficients(self):
        raise NotImplementedError

    def closed_form_vjp(self):
        """The step's closed-form backward pass (:class:`~tfspike.rsnn.engines.StepVJP`), or None."""
        return None

    def update(self, current, states, coefficients):
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "use_bias": self.use_bias, "kernel_bound": self.kernel_bound,
                       "surrogate": keras.saving.serialize_keras_object(self.surrogate)})
        return config


class SpikingSequenceBase(keras.layers.Layer):
    """A thin sequence layer around one cell: ``(B, T, I)`` → spikes ``(B, T, H)``.

    The input current of all steps is one matmul before the loop; the loop runs the recurrent half
    and the neuron update. With ``return_state=True`` it returns ``[spikes, *final_states]``.

    ``bptt="manual"`` (default) trains through :func:`recurrent_sequence_manual_bptt` (same gradients,
    linear time under XLA); ``bptt="autodiff"`` differentiates the plain loop. Inference, a given
    ``initial_state`` or ``return_state=True`` always run the plain loop.
    """

    cell_class = None

    def __init__(self, units, return_state=False, bptt="manual", **kwargs):
        base_keys = ("name", "trainable", "dtype")
        base = {k: kwargs.pop(k) for k in base_keys if k in kwargs}
        base.setdefault("dtype", "float32")
        super().__init__(**base)
        if bptt not in ("manual", "autodiff"):
            raise UserError(f"{type(self).__name__}: bptt must be 'manual' or 'autodiff', got {bptt!r}")
        self.return_state = bool(return_state)
        self.bptt = bptt
        self.cell = self.cell_class(units, **kwargs)
        self.units = self.cell.units

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise UserError(f"{type(self).__name__} expects (batch, time, features), got shape {tuple(input_shape)}")
        self.cell.build((input_shape[0], input_shape[-1]))
        self.built = True

    def call(self, inputs, initial_state=None, training=None):
        inputs = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
        batch = tf.shape(inputs)[0]
        coefficients = self.cell.coefficients()
        currents_tm = self._input_currents_tm(inputs)
        cell = self.cell
        # Inference (training=False) runs the plain loop: nothing is stored for a backward pass.
        if (training and self.bptt == "manual" and initial_state is None and not self.return_state
                and inputs.shape[1] is not None):
            return recurrent_sequence_manual_bptt(cell.update, currents_tm, cell.kernel[cell.input_dim:],
                                                  coefficients, cell.n_states, vjp=cell.closed_form_vjp(),
                                                  batch_major=True)
        spikes, final = self._plain_loop(currents_tm, coefficients, initial_state, batch)
        if self.return_state:
            return [spikes] + list(final)
        return spikes

    def run(self, inputs, initial_state=None):
        """``(spikes (B, T, H), final_states)`` from ``initial_state`` (zeros if None) through the plain
        loop, whose gradient is plain autodiff: the building block of truncated BPTT, where the states
        carry from one chunk to the next."""
        inputs = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
        currents_tm = self._input_currents_tm(inputs)
        return self._plain_loop(currents_tm, self.cell.coefficients(), initial_state, tf.shape(inputs)[0])

    def _input_currents_tm(self, inputs):
        """The input currents of all steps, time-major ``(T, B, H)``; whichever of inputs and currents
        is smaller is transposed (with few inputs, as S-MNIST's one pixel, the big current tensor and
        its gradient are then never copied to another layout)."""
        if inputs.shape[-1] <= self.cell.units:
            return self.cell.input_current(tf.transpose(inputs, (1, 0, 2)))
        return tf.transpose(self.cell.input_current(inputs), (1, 0, 2))

    def _plain_loop(self, currents_tm, coefficients, initial_state, batch):
        cell = self.cell
        states = initial_state if initial_state is not None else cell.get_initial_state(batch)

        def step(current_in, states):
            current = current_in + cell.recurrent_current(states[0])
            return cell.update(current, states, coefficients)

        spikes_tm, final = run_time_loop(step, currents_tm, tuple(states), self.compute_dtype)
        return tf.transpose(spikes_tm, (1, 0, 2)), tuple(final)

    def compute_output_shape(self, input_shape):
        out = (input_shape[0], input_shape[1], self.units)
        if self.return_state:
            return [out] + [(input_shape[0], self.units)] * self.cell.n_states
        return out

    def get_config(self):
        config = super().get_config()
        config.update(cell_arguments(self.cell))
        config["return_state"] = self.return_state
        config["bptt"] = self.bptt
        return config
