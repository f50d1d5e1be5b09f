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


def cell_arguments(cell):
    """A cell's constructor arguments without the base-layer keys, for a sequence layer's config
    (the sequence layer builds its own cell from the same arguments)."""
    config = cell.get_config()
    for k in ("name", "trainable", "dtype"):
        config.pop(k, None)
    return config


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


def recurrent_sequence_manual_bptt(update, currents_tm, recurrent_kernel, coefficients, n_states):
    """Spikes ``(T, B, H)`` of a recurrent spiking layer, with a hand-written backward pass through time.

    ``update(current, states, coefficients) -> (z, new_states)`` is the cell's pure step, ``states[0]``
    the previous spikes, all states zero at t = -1; ``current_t = currents_tm[t] + z_{t-1} @ K_rec``.
    The forward loop stores the states and currents of every step. The backward loop walks back in
    time and takes the vector-Jacobian product of one step with a GradientTape (so any surrogate,
    custom-gradient or FGI, is honoured exactly); the recurrent weight gradient is one big matmul
    after the loop. Gradients equal plain autodiff through the loop, but XLA compiles this form to
    linear time in T (autodiff through ``tf.while_loop`` under XLA copies its per-step stacks).
    """
    coefficients = tuple(coefficients)

    @tf.custom_gradient
    def run(currents_tm, recurrent_kernel, *coefficients):
        steps = currents_tm.shape[0]
        batch = tf.shape(currents_tm)[1]
        units = recurrent_kernel.shape[-1]
        zero = tf.zeros((batch, units), currents_tm.dtype)
        dtype = currents_tm.dtype

        def fwd_body(t, states, z_ta, cur_ta, prev_tas):
            current = currents_tm[t] + tf.matmul(states[0], recurrent_kernel)
            z, new_states = update(current, states, coefficients)
            prev_tas = tuple(ta.write(t, st) for ta, st in zip(prev_tas, states))
            return t + 1, tuple(new_states), z_ta.write(t, z), cur_ta.write(t, current), prev_tas

        tas = lambda: tf.TensorArray(dtype, size=steps, element_shape=(None, units))  # noqa: E731
        _, _, z_ta, cur_ta, prev_tas = tf.while_loop(
            lambda t, *_: t < steps, fwd_body,
            (tf.constant(0), (zero,) * n_states, tas(), tas(), tuple(tas() for _ in range(n_states))),
            maximum_iterations=steps)
        spikes_tm = z_ta.stack()
        currents_all = cur_ta.stack()
        prev_all = tuple(ta.stack() for ta in prev_tas)

        def grad(d_spikes_tm):
            k_t = tf.transpose(recurrent_kernel)

            def bwd_body(i, g_states, g_coef, d_cur_ta):
                t = steps - 1 - i
                prev = tuple(a[t] for a in prev_all)
                current = currents_all[t]
                with tf.GradientTape() as tape:
                    tape.watch((current,) + prev + coefficients)
                    z, new_states = update(current, prev, coefficients)
                    # z is also new_states[0]: its gradient arrives once, via d_spikes + g_states[0]
                    outputs = list(new_states)
                    seeds = [g_states[0] + d_spikes_tm[t]] + list(g_states[1:])
                    seeded = tf.add_n([tf.reduce_sum(o * tf.stop_gradient(s)) for o, s in zip(outputs, seeds)])
                grads = tape.gradient(seeded, (current,) + prev + coefficients,
                                      unconnected_gradients=tf.UnconnectedGradients.ZERO)
                d_current = grads[0]
                d_prev = list(grads[1:1 + n_states])
                d_prev[0] = d_prev[0] + tf.matmul(d_current, k_t)
                g_coef = tuple(a + b for a, b in zip(g_coef, grads[1 + n_states:]))
                return i + 1, tuple(d_prev), g_coef, d_cur_ta.write(t, d_current)

            _, _, g_coef, d_cur_ta = tf.while_loop(
                lambda i, *_: i < steps, bwd_body,
                (tf.constant(0), (zero,) * n_states, tuple(tf.zeros_like(c) for c in coefficients), tas()),
                maximum_iterations=steps)
            d_currents = d_cur_ta.stack()
            z_prev = prev_all[0]
            d_kernel = tf.matmul(tf.reshape(z_prev, (-1, units)), tf.reshape(d_currents, (-1, units)),
                                 transpose_a=True)
            return (d_currents, d_kernel) + tuple(g_coef)

        return spikes_tm, grad

    return run(currents_tm, recurrent_kernel, *coefficients)


def leaky_integrator_sequence(currents_tm, alpha):
    """``o_t = alpha o_{t-1} + (1 - alpha) h_t`` over time (o_{-1} = 0), with a closed-form backward pass.

    Backward: ``g_t = do_t + alpha g_{t+1}``, ``dh_t = (1 - alpha) g_t``,
    ``dalpha = sum_t g_t (o_{t-1} - h_t)``.
    """

    @tf.custom_gradient
    def run(currents_tm, alpha):
        steps = currents_tm.shape[0]
        zero = tf.zeros_like(currents_tm[0])

        def body(t, o, ta):
            o = alpha * o + (1.0 - alpha) * currents_tm[t]
            return t + 1, o, ta.write(t, o)

        _, _, ta = tf.while_loop(lambda t, *_: t < steps, body,
                                 (tf.constant(0), zero, tf.TensorArray(currents_tm.dtype, size=steps)),
                                 maximum_iterations=steps)
        out = ta.stack()

        def grad(d_out):
            def bwd(i, g, ta):
                t = steps - 1 - i
                g = d_out[t] + alpha * g
                return i + 1, g, ta.write(t, g)

            _, _, gta = tf.while_loop(lambda i, *_: i < steps, bwd,
                                      (tf.constant(0), zero, tf.TensorArray(currents_tm.dtype, size=steps)),
                                      maximum_iterations=steps)
            g_all = gta.stack()
            o_prev = tf.concat([zero[None], out[:-1]], axis=0)
            d_alpha = tf.reduce_sum(g_all * (o_prev - currents_tm), axis=[0, 1])
            return (1.0 - alpha) * g_all, d_alpha

        return out, grad

    return run(currents_tm, alpha)


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
            raise ValueError(f"bptt must be 'manual' or 'autodiff', got {bptt!r}")
        self.return_state = bool(return_state)
        self.bptt = bptt
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
        coefficients = self.cell.coefficients()
        currents_tm = tf.transpose(self.cell.input_current(inputs), (1, 0, 2))
        cell = self.cell
        # Inference (training=False) runs the plain loop: nothing is stored for a backward pass.
        if (training and self.bptt == "manual" and initial_state is None and not self.return_state
                and inputs.shape[1] is not None):
            spikes_tm = recurrent_sequence_manual_bptt(cell.update, currents_tm, cell.kernel[cell.input_dim:],
                                                       coefficients, cell.n_states)
            return tf.transpose(spikes_tm, (1, 0, 2))
        spikes, final = self._plain_loop(currents_tm, coefficients, initial_state, batch)
        if self.return_state:
            return [spikes] + list(final)
        return spikes

    def run(self, inputs, initial_state=None):
        """``(spikes (B, T, H), final_states)`` from ``initial_state`` (zeros if None) through the plain
        loop, whose gradient is plain autodiff: the building block of truncated BPTT, where the states
        carry from one chunk to the next."""
        inputs = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
        currents_tm = tf.transpose(self.cell.input_current(inputs), (1, 0, 2))
        return self._plain_loop(currents_tm, self.cell.coefficients(), initial_state, tf.shape(inputs)[0])

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
