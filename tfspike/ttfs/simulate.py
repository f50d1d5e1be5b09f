"""A time-stepped simulator of the B1 membrane equations (spec §1.4), to check the closed form.

For hidden layer n with input spikes at absolute times t_j ∈ [t_min⁽ⁿ⁻¹⁾, t_min⁽ⁿ⁾]:

- phase 1, t ∈ [t_min⁽ⁿ⁻¹⁾, t_min⁽ⁿ⁾): a non-leaky integrator, each input spike switches on a constant
  current W_ji: dV_i/dt = Σ_j W_ji·H(t − t_j);
- phase 2, t ≥ t_min⁽ⁿ⁾: the input currents are replaced by a fixed slope dV_i/dt = 1 (B1);
  neuron i fires once, when V_i reaches ϑ_i = Δ⁽ⁿ⁾ − D_i, or stays silent until t_max⁽ⁿ⁾.

Integrated with forward Euler at step ``dt`` (exact for piecewise-constant currents up to the grid),
so the simulated spike times agree with the closed form t_i = t_max − ReLU(Wᵀx + D) within ``dt``.
"""

import numpy as np


def simulate_dense_layer(t_in, kernel, bias, t_min_prev, t_min, t_max, dt=1e-3):
    """Simulate one dense TTFS layer.

    Args:
        t_in: (batch, n_in) absolute input spike times (t_min = silent input).
        kernel: (n_in, n_out) weights W; bias: (n_out,) D.
        t_min_prev, t_min, t_max: the input window start and this layer's window.
        dt: integration step.

    Returns:
        (batch, n_out) absolute spike times; t_max for neurons that did not fire.
    """
    t_in = np.asarray(t_in, np.float64)
    w = np.asarray(kernel, np.float64)
    theta = (t_max - t_min) - np.asarray(bias, np.float64)
    v = np.zeros((t_in.shape[0], w.shape[1]))
    spike = np.full_like(v, t_max)
    fired = np.zeros(v.shape, bool)
    # Phase 1 on a grid that ends exactly at t_min; each step integrates the piecewise-constant input
    # currents exactly (an input spiking inside a step contributes for the part of the step after it).
    n1 = max(1, int(np.ceil((t_min - t_min_prev) / dt)))
    h1 = (t_min - t_min_prev) / n1
    for k in range(n1):
        t = t_min_prev + k * h1
        v = v + np.clip(t + h1 - t_in, 0.0, h1) @ w
    # A neuron already above threshold when the window opens fires at t_min (a window violation).
    cross = v >= theta
    spike[cross], fired = t_min, cross
    # Phase 2: constant slope 1; a crossing is reported at the end of the step in which it happens.
    for k in range(int(np.ceil((t_max - t_min) / dt))):
        t_next = min(t_min + (k + 1) * dt, t_max)
        v = v + (t_next - (t_min + k * dt))
        cross = (~fired) & (v >= theta)
        spike[cross] = t_next
        fired |= cross
    return spike
