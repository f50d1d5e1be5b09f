"""The closed-form TTFS spike times equal a time-stepped simulation of the B1 membrane equations."""

import numpy as np

from tfspike.ttfs import TTFSDense, TTFSInput, TTFSModel
from tfspike.ttfs.simulate import simulate_dense_layer

import keras


def test_closed_form_spike_times_match_simulation_within_dt():
    rng = np.random.default_rng(0)
    model = TTFSModel([keras.Input((12,), dtype="float64"), TTFSInput(dtype="float64"),
                       TTFSDense(7, x_n=2.0, dtype="float64", name="h"),
                       TTFSDense(3, output=True, dtype="float64")])
    hidden = model.layers[1]
    hidden.kernel.assign(rng.normal(0, 0.4, (12, 7)))
    hidden.bias.assign(rng.normal(0, 0.2, 7))
    t0 = rng.uniform(0, 1, (20, 12))
    t0[rng.uniform(size=t0.shape) < 0.3] = 1.0  # silent pixels
    (name, closed), = model.spike_times(t0)
    (t_min, t_max), = model.windows()
    dt = 1e-3
    sim = simulate_dense_layer(t0, hidden.kernel.numpy(), hidden.bias.numpy(), 0.0, t_min, t_max, dt=dt)
    fired = closed < t_max
    assert 0.2 < fired.mean() < 0.9  # both firing and silent neurons are exercised
    np.testing.assert_array_equal(sim < t_max, fired)
    assert np.abs(sim - closed).max() <= 2 * dt
