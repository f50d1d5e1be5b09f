"""Plumbing shared by the recurrent spiking cells: the joint synapse, zero states, the time loop and the
thin sequence-layer wrapper.

A cell keeps one joint kernel ``K`` of shape ``(I + H, H)`` acting on ``[x_t, z_{t-1}]`` (inputs in the
first I rows). Sequence layers hoist the input half out of the time loop (one big matmul ``x @ K[:I]``
for all steps) and keep only ``z_{t-1} @ K[I:]`` inside it; the cell's own ``call`` (for
``keras.layers.RNN``) does the same sum step by step.
"""

import math

import keras
import tensorflow as tf

from tfspike.surrogates.double_gaussian import get_surrogate


def joint_glorot_bound(n_in, n_hidden):
    """Glorot-uniform bound of the joint ``(I + H) x H`` matrix: ``sqrt(6 / (I + 2H))``."""
    return math.sqrt(6.0 / (n_in + 2 * n_hidden))


def _pair(value, what):
    v = [float(a) for a in value]
    if len(v) != 2:
        raise ValueError(f"{what} must be a pair of numbers, got {value!r}")
    return v


def run_time_loop(step, inputs_tm, initial_states, output_dtype=tf.float32):
    """``tf.while_loop`` over the leading (time) axis of ``inputs_tm``.

    ``step(x_t, states) -> (out_t, new_states)``. Returns ``(outputs_tm, final_states)`` with
    ``outputs_tm`` of shape ``(T, B, ...)``. Inputs are read through a TensorArray, whose gradient is a
    write per step (a plain ``inputs_tm[t]`` slice would build a full-size gradient every step).
    """
    steps = inputs_tm.shape[0]
    if steps is None:
        steps = tf.shape(inputs_tm)[0]
    in_ta = tf.TensorArray(inputs_tm.dtype, size=steps, clear_after_read=True).unstack(inputs_tm)
    out_ta = tf.TensorArray(output_dtype, size=steps)

    def body(t, states, out_ta):
        out, new_states = step(in_ta.read(t), states)
        return t + 1, tuple(new_states), out_ta.write(t, out)

    _, final_states, out_ta = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), tuple(initial_states), out_ta),
        maximum_iterations=steps)
    return out_ta.stack(), final_states


class SpikingCellBase(keras.layers.Layer):
    """Base of the hidden spiking cells: joint kernel, optional bias, zero states, surrogate.

    Subclasses define ``n_states``, ``_build_neuron_weights()``, ``coefficients()`` (loop-invariant
    tensors computed once per sequence) and ``update(current, states, coefficients)``.
    """

    n_states = 1

    def __init__(self, units, use_bias=False, kernel_bound=None, surrogate=None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # dt*omega products and thresholds are not safe in float16
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"units must be >= 1, got {units}")
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.kernel_bound = None if kernel_bound is None else float(kernel_bound)
        self.surrogate = get_surrogate(surrogate)
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
    """

    cell_class = None

    def __init__(self, units, return_state=False, **kwargs):
        base_keys = ("name", "trainable", "dtype")
        base = {k: kwargs.pop(k) for k in base_keys if k in kwargs}
        base.setdefault("dtype", "float32")
        super().__init__(**base)
        self.return_state = bool(return_state)
        self.cell = self.cell_class(units, **kwargs)
        self.units = self.cell.units

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} expects (batch, time, features), got shape {tuple(input_shape)}")
        self.cell.build((input_shape[0], input_shape[-1]))
        self.built = True

    def call(self, inputs, initial_state=None, training=None):
        inputs = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
        batch = tf.shape(inputs)[0]
        states = initial_state if initial_state is not None else self.cell.get_initial_state(batch)
        coefficients = self.cell.coefficients()
        currents_tm = tf.transpose(self.cell.input_current(inputs), (1, 0, 2))
        cell = self.cell

        def step(current_in, states):
            current = current_in + cell.recurrent_current(states[0])
            return cell.update(current, states, coefficients)

        spikes_tm, final = run_time_loop(step, currents_tm, tuple(states), self.compute_dtype)
        spikes = tf.transpose(spikes_tm, (1, 0, 2))
        if self.return_state:
            return [spikes] + list(final)
        return spikes

    def compute_output_shape(self, input_shape):
        out = (input_shape[0], input_shape[1], self.units)
        if self.return_state:
            return [out] + [(input_shape[0], self.units)] * self.cell.n_states
        return out

    def get_config(self):
        config = super().get_config()
        cell_config = self.cell.get_config()
        for k in ("name", "trainable", "dtype"):
            cell_config.pop(k, None)
        config.update(cell_config)
        config["return_state"] = self.return_state
        return config
