"""The closed-form backward step of BRF / RF (a cell's ``closed_form_vjp``: the spike part, then the Euler
part) against autodiff.

Oracles: a GradientTape of one ``brf_update`` / ``rf_update`` step, and plain autodiff through the
time loop (``bptt="autodiff"``) for whole networks (inputs and every trainable, loss through the
readout), with spikes firing, some omegas beyond the clamp and both DoubleGaussian forms.
"""

import numpy as np
import pytest
import keras
import tensorflow as tf

from tfspike.rsnn.brf import (BRFCell, BRFParameters, BRFState, RFCell, RFState, brf_coefficients, brf_update,
                              rf_coefficients, rf_update)
from tfspike.rsnn.engines import StepVJP
from tfspike.rsnn.model import RSNN
from tfspike.surrogates import DoubleGaussian, Triangle

B, T, I, H, O = 3, 60, 5, 7, 3


def _close(actual, expected, rtol=1e-5, what=""):
    """float32 agreement, the absolute floor scaled to the gradient's magnitude."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=rtol * float(np.max(np.abs(expected))),
                               err_msg=what)


def _random_step(neuron, seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *shape: tf.constant(rng.normal(size=shape).astype("float32"))  # noqa: E731
    n = 4 if neuron == "BRF" else 3
    state = [tf.constant((rng.random((B, H)) < 0.5).astype("float32"))] + [f(B, H) for _ in range(n - 1)]
    # u near the threshold, so that the surrogate derivative is well away from zero
    state[1] = 1.0 + 0.3 * state[1]
    current = 30.0 * f(B, H)
    omega = tf.constant([3.0, 8.0, 20.0, 150.0, -120.0, 40.0, -7.0])  # 150, -120 beyond 0.999/dt
    b_offset = f(H)
    seeds = [f(B, H) for _ in range(n)]
    return state, current, omega, b_offset, seeds


@pytest.mark.parametrize("form", ["custom_gradient", "fgi"])
@pytest.mark.parametrize("neuron", ["BRF", "RF"])
def test_step_vjp_equals_a_tape_of_the_update(neuron, form):
    spike = DoubleGaussian(form=form)
    state, current, omega, b_offset, seeds = _random_step(neuron)
    if neuron == "BRF":
        params, cls, update, cell = BRFParameters(), BRFState, brf_update, BRFCell
        coefficients = brf_coefficients(omega, b_offset, params)
    else:
        params = BRFParameters(gamma=0.0, max_omega_dt=None)
        cls, update, cell = RFState, rf_update, RFCell
        coefficients = rf_coefficients(omega, b_offset, params)
    with tf.GradientTape() as tape:
        tape.watch([current] + state + list(coefficients))
        _, new = update(current, cls(*state), coefficients, params, spike)
        seeded = tf.add_n([tf.reduce_sum(a * s) for a, s in zip(new, seeds)])
    expected = tape.gradient(seeded, [current] + state + list(coefficients),
                             unconnected_gradients=tf.UnconnectedGradients.ZERO)
    states_tm = tuple(tf.stack([a, b]) for a, b in zip(state, new))  # t = -1 and t = 0
    residuals, spike_vjp, state_vjp = cell.vjp_parts  # chained as the cell's closed_form_vjp chains them
    (s,) = residuals(states_tm, params, spike)
    assert float(tf.reduce_mean(tf.cast(s > 1e-3, tf.float32))) > 0.3  # the surrogate is exercised
    folded = spike_vjp(seeds[0], tuple(seeds[1:]), (s[0],), params)
    d_current, d_prev, terms = state_vjp(folded, cls(*state), coefficients, params)
    assert d_prev[0] is None  # the previous spikes reach the step only through the current
    _close(d_current, expected[0], 1e-6)
    for got, want in zip(d_prev[1:], expected[2:2 + len(state) - 1]):
        _close(got, want, 1e-6)
    for term, want in zip(terms, expected[1 + len(state):]):
        _close(tf.reduce_sum(term, axis=0), want, 1e-6)


def _network(neuron, surrogate, bptt, spy=None):
    keras.utils.set_random_seed(4)
    hidden = dict(bptt=bptt, kernel_bound=40.0, surrogate=surrogate)  # 13 % (BRF), 42 % (RF) firing
    if neuron == "RF":
        hidden["max_omega_dt"] = 0.5  # RF has no clamp by default; limit 50
    model = RSNN(neuron, H, O, per_step_labels=True, hidden_config=hidden)
    model.build((None, T, I))
    cell = model.hidden.cell
    cell.omega.assign([3.0, 8.0, 20.0, 150.0, -120.0, 40.0, -7.0])
    if spy is not None:
        real = cell.closed_form_vjp()
        assert real is not None

        def step(*args):
            spy.append(1)
            return real.step(*args)

        cell.closed_form_vjp = lambda: StepVJP(real.residuals, real.spike, step)
    return model


def _gradients(model):
    x = tf.constant((np.random.default_rng(4).random((B, T, I)) < 0.3).astype("float32"))
    y = tf.constant(np.random.default_rng(5).integers(0, O, (B, T)))

    @tf.function(jit_compile=True)
    def run(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss, _, _, _, counts = model.loss_and_stats(x, y, training=True)
        return loss, tf.reduce_sum(counts), tape.gradient(loss, [x] + model.trainable_variables)

    loss, spikes, grads = run(x, y)
    return float(loss), float(spikes), [g.numpy() for g in grads]


@pytest.mark.parametrize("surrogate", [DoubleGaussian(), DoubleGaussian(form="fgi"), Triangle(width=1.0)],
                         ids=["double_gaussian", "fgi", "triangle"])
@pytest.mark.parametrize("neuron", ["BRF", "RF"])
def test_closed_form_bptt_equals_autodiff_through_the_loop(neuron, surrogate):
    calls = []
    model = _network(neuron, surrogate, "manual", spy=calls)
    loss, spikes, grads = _gradients(model)
    assert calls  # the closed-form step was traced, not the tape
    cell = model.hidden.cell
    limit = cell.max_omega_dt / cell.dt
    assert 0 < np.sum(np.abs(cell.omega.numpy()) > limit) < H  # the clamp is active for some units only
    assert 0.05 < spikes / (B * T * H) < 0.9  # spikes occur, not everywhere
    ref_loss, ref_spikes, ref_grads = _gradients(_network(neuron, surrogate, "autodiff"))
    assert loss == ref_loss and spikes == ref_spikes
    names = ["x"] + [v.path for v in model.trainable_variables]
    assert len(grads) == len(ref_grads) == 6
    for name, got, want in zip(names, grads, ref_grads):
        assert np.max(np.abs(want)) > 0, name
        _close(got, want, what=name)
    omega_grad = grads[names.index(cell.omega.path)]
    clamped = np.abs(cell.omega.numpy()) > limit
    assert np.all(omega_grad[clamped] == 0) and np.all(omega_grad[~clamped] != 0)


class _WrappedSpike(DoubleGaussian):
    """A surrogate whose ``__call__`` is its own: its derivative is not known to be ``gradient()``."""

    def __call__(self, x):
        return super().__call__(x)


def test_the_tape_path_remains_for_other_surrogates_and_alif():
    assert DoubleGaussian().backward_is_gradient() and DoubleGaussian(form="fgi").backward_is_gradient()
    assert Triangle().backward_is_gradient() and not _WrappedSpike().backward_is_gradient()
    model = _network("BRF", _WrappedSpike(), "manual")
    assert model.hidden.cell.closed_form_vjp() is None
    _, _, grads = _gradients(model)
    _, _, ref_grads = _gradients(_network("BRF", _WrappedSpike(), "autodiff"))
    for got, want in zip(grads, ref_grads):
        _close(got, want)
    alif = RSNN("ALIF", H, O, per_step_labels=True)
    alif.build((None, T, I))
    assert alif.hidden.cell.closed_form_vjp() is None
