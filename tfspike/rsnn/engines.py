"""The time-loop engines of the recurrent spiking layers (forward loops and their backward passes).

* :func:`run_time_loop`: a ``tf.while_loop`` over time; its gradient is plain autodiff (inference,
  truncated BPTT chunks, ``bptt="autodiff"``).
* :func:`recurrent_sequence_manual_bptt`: a recurrent spiking layer with a hand-written backward loop
  (same gradients as autodiff, linear time in T under XLA).
* :func:`leaky_integrator_sequence`: the LI readout over time with a closed-form backward pass.
"""

import tensorflow as tf


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
