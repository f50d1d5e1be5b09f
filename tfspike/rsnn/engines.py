"""The time-loop engines of the recurrent spiking layers (forward loops and their backward passes).

* :func:`run_time_loop`: a ``tf.while_loop`` over time; its gradient is plain autodiff (inference,
  truncated BPTT chunks, ``bptt="autodiff"``).
* :func:`recurrent_sequence_manual_bptt`: a recurrent spiking layer with a hand-written backward loop
  (same gradients as autodiff, linear time in T under XLA); with a cell's :class:`StepVJP` the backward
  step is the cell's closed form, otherwise a GradientTape of the step.
* :func:`leaky_integrator_sequence`: the LI readout over time with a closed-form backward pass.
"""

from typing import Callable, NamedTuple

import tensorflow as tf


class StepVJP(NamedTuple):
    """A cell's closed-form backward pass of one step, for :func:`recurrent_sequence_manual_bptt`.

    The step is split in two: the state update, ``(states_{t-1}, I_t) -> states_t`` without the
    spike, and the spike ``z_t`` read from the new states. A closed-form cell's update must not read
    the previous spikes other than through the current (``states[0]`` is the spike output).

    ``residuals(states_tm, coefficients) -> tuple``: per-step tensors ``(T, ...)`` the backward pass
    needs (e.g. the surrogate derivative), computed once after the forward loop, vectorised over
    time. ``states_tm[k]`` (k >= 1) is state k at t = -1 .. T-1, shape ``(T + 1, B, H)`` (zeros
    first), so ``states_tm[k][t]`` is the state before step t and ``states_tm[k][t + 1]`` the state
    after it; ``states_tm[0]`` (the spikes) is None.

    ``spike(g_z, g_states, residuals_t) -> g_states``: folds ``g_z``, the gradient of the spike
    output ``z_t``, into ``g_states``, the gradients of the other new states ``states_t[1:]``; the
    result is what ``step`` takes (the cell chooses its meaning, e.g. the gradient of ``u_t`` through
    the spike).

    ``step(g_states, prev_states, coefficients) -> (d_current, d_prev_states, d_terms)``: the rest of
    the step's vector-Jacobian product: the gradients of the current and of ``prev_states[1:]`` (in
    the form ``spike`` takes them, not yet folded), and one tensor per coefficient whose sum over its
    leading axes (batch, and time by the engine) is that coefficient's gradient.
    """

    residuals: Callable
    spike: Callable
    step: Callable


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


def recurrent_sequence_manual_bptt(update, currents_tm, recurrent_kernel, coefficients, n_states, vjp=None,
                                   batch_major=False):
    """Spikes ``(T, B, H)`` of a recurrent spiking layer, with a hand-written backward pass through time.

    ``update(current, states, coefficients) -> (z, new_states)`` is the cell's pure step, ``states[0]``
    the previous spikes, all states zero at t = -1; ``current_t = currents_tm[t] + z_{t-1} @ K_rec``.
    The forward loop stores the states and currents of every step. The backward loop walks back in
    time and takes the vector-Jacobian product of one step with a GradientTape (so any surrogate,
    custom-gradient or FGI, is honoured exactly); the recurrent weight gradient is one big matmul
    after the loop. Gradients equal plain autodiff through the loop, but XLA compiles this form to
    linear time in T (autodiff through ``tf.while_loop`` under XLA copies its per-step stacks).

    With ``vjp`` (a :class:`StepVJP`, from a cell that knows its step's derivative in closed form) the
    backward loop runs ``vjp.step`` instead of the tape: no recomputed forward step, the per-step
    residuals computed vectorised after the forward loop, the coefficient gradients accumulated per
    (batch, unit) and reduced once after the loop (see :func:`_closed_form_bptt`).
    ``batch_major=True`` returns the spikes as ``(B, T, H)``: the backward loop then reads their
    gradient in that layout, with no transposed copy of it.
    """
    coefficients = tuple(coefficients)
    if vjp is not None:
        return _closed_form_bptt(update, vjp, currents_tm, recurrent_kernel, coefficients, n_states, batch_major)

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

    spikes_tm = run(currents_tm, recurrent_kernel, *coefficients)
    return tf.transpose(spikes_tm, (1, 0, 2)) if batch_major else spikes_tm


def _closed_form_bptt(update, vjp, currents_tm, recurrent_kernel, coefficients, n_states, batch_major):
    """:func:`recurrent_sequence_manual_bptt` with the cell's closed-form step VJP (same contract).

    The forward loop stores the spikes ``(T, B, H)`` and every other state after each step in a
    ``(T + 1, B, H)`` stack whose row 0 is the zero initial state, so one stack serves as "before
    step t" (row t) and "after step t" (row t + 1); the currents are not stored.

    Backward step t carries the gradients of step t's new states with the spike already folded in
    (``vjp.spike``), runs ``vjp.step``, the ``(B, H) @ (H, H)`` recurrent matmul, and folds the spike
    of step t - 1 right after it: XLA fuses each output of the step on its own and re-reads the
    inputs of every shared subexpression, so the carried, folded gradients keep those fusions short.
    The recurrent-kernel gradient ``z_{t-1}^T dI_t`` is accumulated per step (a matmul of the same
    size; one ``(H, T B) @ (T B, H)`` product after the loop would need shifted copies of both
    stacks). The coefficient terms are summed per (batch, unit) and reduced once after the loop.
    """

    @tf.custom_gradient
    def run(currents_tm, recurrent_kernel, *coefficients):
        steps = currents_tm.shape[0]
        batch = tf.shape(currents_tm)[1]
        units = recurrent_kernel.shape[-1]
        dtype = currents_tm.dtype
        zero = tf.zeros((batch, units), dtype)
        ta = lambda size: tf.TensorArray(dtype, size=size, element_shape=(None, units))  # noqa: E731

        def fwd_body(t, states, z_ta, state_tas):
            current = currents_tm[t] + tf.matmul(states[0], recurrent_kernel)
            z, new_states = update(current, states, coefficients)
            new_states = tuple(new_states)
            state_tas = tuple(a.write(t + 1, st) for a, st in zip(state_tas, new_states[1:]))
            return t + 1, new_states, z_ta.write(t, z), state_tas

        state_tas = tuple(ta(steps + 1).write(0, zero) for _ in range(n_states - 1))
        _, _, z_ta, state_tas = tf.while_loop(
            lambda t, *_: t < steps, fwd_body, (tf.constant(0), (zero,) * n_states, ta(steps), state_tas),
            maximum_iterations=steps)
        spikes_tm = z_ta.stack()
        states_tm = (None,) + tuple(a.stack() for a in state_tas)  # the spikes: spikes_tm

        def grad(d_spikes):
            residuals = tuple(vjp.residuals(states_tm, coefficients))
            d_spikes_at = (lambda t: d_spikes[:, t]) if batch_major else (lambda t: d_spikes[t])  # noqa: E731
            last = steps - 1
            g_last = vjp.spike(d_spikes_at(last), (zero,) * (n_states - 1), tuple(r[last] for r in residuals))

            def bwd_body(i, g_states, terms, d_kernel, d_cur_ta):
                t = steps - 1 - i
                prev = tuple(a[t] for a in states_tm[1:])
                d_current, d_prev, d_terms = vjp.step(g_states, (None,) + prev, coefficients)
                # t - 1 clamps to 0 at t = 0, where the mask zeroes z_{-1}; the fold there is unused
                s = tf.maximum(t - 1, 0)
                z_prev = spikes_tm[s] * tf.cast(t > 0, dtype)
                g_z = tf.matmul(d_current, recurrent_kernel, transpose_b=True) + d_spikes_at(s)
                g_states = vjp.spike(g_z, tuple(d_prev[1:]), tuple(r[s] for r in residuals))
                d_kernel = d_kernel + tf.matmul(z_prev, d_current, transpose_a=True)
                terms = tuple(a + b for a, b in zip(terms, d_terms))
                return i + 1, tuple(g_states), terms, d_kernel, d_cur_ta.write(t, d_current)

            term0 = tuple(tf.zeros(tf.broadcast_dynamic_shape(tf.shape(zero), tf.shape(c)), dtype)
                          for c in coefficients)
            _, _, terms, d_kernel, d_cur_ta = tf.while_loop(
                lambda i, *_: i < steps, bwd_body,
                (tf.constant(0), tuple(g_last), term0, tf.zeros_like(recurrent_kernel), ta(steps)),
                maximum_iterations=steps)
            # one reduction per coefficient after the loop, not one per step
            d_coef = tuple(tf.reshape(tf.reduce_sum(a, axis=list(range(a.shape.rank - c.shape.rank))), tf.shape(c))
                           for a, c in zip(terms, coefficients))
            return (d_cur_ta.stack(), d_kernel) + d_coef

        return (tf.transpose(spikes_tm, (1, 0, 2)) if batch_major else spikes_tm), grad

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
