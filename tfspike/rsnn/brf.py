"""Balanced resonate-and-fire (BRF) and vanilla resonate-and-fire (RF) neurons (Higuchi et al., ICML 2024).

Each neuron is a damped oscillator c = u + i v, integrated with explicit Euler (both updates read the
previous (u, v); the input enters u only, scaled by dt)::

    BRF:  b_t = p(w) - |b'| - q_{t-1}
          u_t = u + dt (b_t u - w v + I_t);   v_t = v + dt (w u + b_t v)
          z_t = H(u_t - theta - q_{t-1});     q_t = gamma q_{t-1} + z_t
    RF:   the same rotation with the constant b = -|b'|, threshold theta, no q and no reset.

``w = min(|omega|, max_omega_dt / dt)``: the guard keeps dt*w < 1, where the divergence boundary
``p(w) = -dt w^2 / (1 + sqrt(1 - (dt w)^2))`` exists (the reference returns NaN beyond).

The step functions are pure: ``brf_step(current, state, omega, b_offset, params, spike)``.
Their backward steps in closed form (derived by hand from the updates above) come in two parts, the spike
(``brf_spike_vjp`` / ``rf_spike_vjp``) then the Euler update (``brf_state_vjp`` / ``rf_state_vjp``); the
hand-written BPTT chains them (a cell's ``closed_form_vjp``) when the surrogate's derivative is ``gradient()``.
``BRFCell`` / ``RFCell`` are ``keras.layers.RNN`` cells; ``BRF`` / ``RF`` are the sequence layers.
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from tfspike.errors import UserError
from tfspike.rsnn.base import SpikingCellBase, SpikingSequenceBase, float_pair
from tfspike.rsnn.engines import StepVJP
from tfspike.surrogates.base import backward_is_gradient
from tfspike.surrogates.double_gaussian import DoubleGaussian


class BRFParameters(NamedTuple):
    """Constants of the BRF/RF neuron: Euler step, threshold, refractory decay and the omega guard."""

    dt: float = 0.01
    theta: float = 1.0
    gamma: float = 0.9
    max_omega_dt: float = 0.999


class BRFState(NamedTuple):
    z: tf.Tensor  # spikes of the previous step (the recurrent input)
    u: tf.Tensor  # real part of the membrane
    v: tf.Tensor  # imaginary part
    q: tf.Tensor  # refractory trace (raises threshold and damping)


class RFState(NamedTuple):
    z: tf.Tensor
    u: tf.Tensor
    v: tf.Tensor


def divergence_boundary(omega, dt):
    """p(omega) = (-1 + sqrt(1 - (dt omega)^2)) / dt, in the cancellation-free form.

    The largest damping b for which the Euler map |1 + dt (b + i omega)| <= 1. Needs |dt omega| < 1.
    """
    omega = tf.convert_to_tensor(omega)
    x = dt * omega
    return -dt * tf.square(omega) / (1.0 + tf.sqrt(1.0 - tf.square(x)))


def effective_omega(omega, dt, max_omega_dt):
    """|omega| clamped to max_omega_dt / dt (zero gradient while clamped); no clamp if max_omega_dt is None."""
    w = tf.abs(omega)
    return w if max_omega_dt is None else tf.minimum(w, max_omega_dt / dt)


def brf_coefficients(omega, b_offset, params=BRFParameters()):
    """Loop-invariant part of a BRF step: (w, p(w) - |b'|)."""
    w = effective_omega(omega, params.dt, params.max_omega_dt)
    return w, divergence_boundary(w, params.dt) - tf.abs(b_offset)


def brf_update(current, state, coefficients, params=BRFParameters(), spike=None):
    """One BRF step from precomputed coefficients ``(w, p(w) - |b'|)``. Returns ``(z_t, BRFState)``."""
    spike = spike or DoubleGaussian()
    _, u, v, q = state
    w, base_damping = coefficients
    b = base_damping - q
    dt = params.dt
    u_new = u + dt * (b * u - w * v + current)
    v_new = v + dt * (w * u + b * v)  # the OLD u: explicit Euler
    z = spike(u_new - params.theta - q)
    q_new = params.gamma * q + z
    return z, BRFState(z, u_new, v_new, q_new)


def brf_residuals(states_tm, params, spike):
    """Per-step residuals of the BRF backward pass, vectorised over time: ``(s,)``, the surrogate
    derivative ``s_t = spike.gradient(u_t - theta - q_{t-1})``.

    Args:
        states_tm: the :class:`BRFState` stacks over t = -1 .. T-1, each ``(T + 1, B, H)``.
        params: :class:`BRFParameters`.
        spike: a surrogate whose backward pass is ``dy * spike.gradient(x)``.

    Returns:
        A 1-tuple with the ``(T, B, H)`` derivatives.
    """
    _, u, _, q = states_tm
    return (spike.gradient(u[1:] - params.theta - q[:-1]),)


def brf_spike_vjp(g_z, g_states, residuals, params=BRFParameters()):
    """Folds the gradient of the spike ``z_t = H(u_t - theta - q_{t-1})`` into the other states.

    ``q_t = gamma q_{t-1} + z_t`` passes ``g_q`` on to ``z_t``; the spike's ``dx = (g_z + g_q) s``
    goes to ``u_t`` (+) and ``q_{t-1}`` (-).

    Args:
        g_z: gradient of ``z_t`` (B, H).
        g_states: gradients ``(g_u, g_v, g_q)`` of ``(u_t, v_t, q_t)``.
        residuals: ``(s_t,)`` from :func:`brf_residuals` at this step.
        params: :class:`BRFParameters`.

    Returns:
        ``(a, g_v, g_qp)``: the gradients of ``u_t`` and ``v_t`` and the part of the gradient of
        ``q_{t-1}`` that goes through the spike and ``q_t``, as :func:`brf_state_vjp` takes them.
    """
    g_u, g_v, g_q = g_states
    (s,) = residuals
    dx = (g_z + g_q) * s
    return g_u + dx, g_v, params.gamma * g_q - dx


def brf_state_vjp(folded, state, coefficients, params=BRFParameters()):
    """Vector-Jacobian product of the Euler part of :func:`brf_update`, from :func:`brf_spike_vjp`'s
    folded gradients ``(a, g_v, g_qp)``. With ``b = base - q``::

        dI = dt a
        du = (1 + dt b) a + dt w g_v;   dv = (1 + dt b) g_v - dt w a
        db = dt (a u + g_v v);          dw = dt (g_v u - a v);   dq = g_qp - db

    Args:
        folded: ``(a, g_v, g_qp)``, each (B, H).
        state: the previous :class:`BRFState` (its z is not read).
        coefficients: ``(w, base_damping)`` as :func:`brf_coefficients` returns them.
        params: :class:`BRFParameters`.

    Returns:
        ``(d_current, (None, du, dv, dq), (dw, dbase))``: None for the previous spikes (they enter
        only the current); the coefficient terms are per (batch, unit), to be summed over the batch.
    """
    a, g_v, g_qp = folded
    _, u, v, q = state
    w, base_damping = coefficients
    dt = params.dt
    keep = 1.0 + dt * (base_damping - q)
    dwv = dt * w
    db = dt * (a * u + g_v * v)
    return (dt * a, BRFState(None, keep * a + dwv * g_v, keep * g_v - dwv * a, g_qp - db),
            (dt * (g_v * u - a * v), db))


def brf_step(current, state, omega, b_offset, params=BRFParameters(), spike=None):
    """One BRF step with raw parameters ``omega`` and ``b_offset`` (abs applied here)."""
    return brf_update(current, state, brf_coefficients(omega, b_offset, params), params, spike)


def rf_coefficients(omega, b_offset, params=BRFParameters(max_omega_dt=None)):
    """Loop-invariant part of an RF step: (w, -|b'|)."""
    return effective_omega(omega, params.dt, params.max_omega_dt), -tf.abs(b_offset)


def rf_update(current, state, coefficients, params=BRFParameters(max_omega_dt=None), spike=None):
    """One vanilla RF step (no divergence boundary, no refractory trace, no reset)."""
    spike = spike or DoubleGaussian()
    _, u, v = state
    w, b = coefficients
    dt = params.dt
    u_new = u + dt * (b * u - w * v + current)
    v_new = v + dt * (w * u + b * v)
    z = spike(u_new - params.theta)
    return z, RFState(z, u_new, v_new)


def rf_residuals(states_tm, params, spike):
    """Per-step residuals of the RF backward pass: ``(s,)`` with ``s_t = spike.gradient(u_t - theta)``.

    Args: as :func:`brf_residuals` (``states_tm`` are the :class:`RFState` stacks).

    Returns:
        A 1-tuple with the ``(T, B, H)`` derivatives.
    """
    _, u, _ = states_tm
    return (spike.gradient(u[1:] - params.theta),)


def rf_spike_vjp(g_z, g_states, residuals, params=BRFParameters(max_omega_dt=None)):
    """Folds the gradient of ``z_t = H(u_t - theta)`` into that of ``u_t``: ``(g_u + g_z s, g_v)``."""
    g_u, g_v = g_states
    (s,) = residuals
    return g_u + g_z * s, g_v


def rf_state_vjp(folded, state, coefficients, params=BRFParameters(max_omega_dt=None)):
    """Vector-Jacobian product of the Euler part of :func:`rf_update`: :func:`brf_state_vjp` with the
    constant ``b`` and no q.

    Returns:
        ``(d_current, (None, du, dv), (dw, db))``.
    """
    a, g_v = folded
    _, u, v = state
    w, b = coefficients
    dt = params.dt
    keep = 1.0 + dt * b
    dwv = dt * w
    return (dt * a, RFState(None, keep * a + dwv * g_v, keep * g_v - dwv * a),
            (dt * (g_v * u - a * v), dt * (a * u + g_v * v)))


def rf_step(current, state, omega, b_offset, params=BRFParameters(max_omega_dt=None), spike=None):
    """One RF step with raw parameters."""
    return rf_update(current, state, rf_coefficients(omega, b_offset, params), params, spike)


class _ResonatorCellBase(SpikingCellBase):
    default_max_omega_dt = 0.999
    vjp_parts = None  # (residuals, spike_vjp, state_vjp) of the neuron's closed-form backward step

    def __init__(self, units, dt=0.01, theta=1.0, omega_init=(3.0, 5.0), b_offset_init=(0.1, 1.0),
                 max_omega_dt="default", **kwargs):
        super().__init__(units, **kwargs)
        self.dt, self.theta = float(dt), float(theta)
        if self.dt <= 0:
            raise UserError(f"{type(self).__name__}: dt must be > 0, got {dt}")
        self.max_omega_dt = self.default_max_omega_dt if max_omega_dt == "default" else (
            None if max_omega_dt is None else float(max_omega_dt))
        if self.max_omega_dt is not None and not 0 < self.max_omega_dt < 1:
            raise UserError(f"{type(self).__name__}: max_omega_dt must be in (0, 1), got {max_omega_dt}")
        self.omega_init = float_pair(omega_init, f"{type(self).__name__} omega_init")
        self.b_offset_init = float_pair(b_offset_init, f"{type(self).__name__} b_offset_init")
        limit = None if self.max_omega_dt is None else self.max_omega_dt / self.dt
        if limit is not None and max(abs(a) for a in self.omega_init) > limit:
            raise UserError(f"{type(self).__name__}: omega_init {self.omega_init} exceeds max_omega_dt/dt = {limit:g}: "
                             f"the divergence boundary p(omega) needs dt*|omega| < 1 (dt={self.dt:g})")

    def _build_neuron_weights(self):
        self.omega = self.add_weight(name="omega", shape=(self.units,),
                                     initializer=keras.initializers.RandomUniform(*self.omega_init))
        self.b_offset = self.add_weight(name="b_offset", shape=(self.units,),
                                        initializer=keras.initializers.RandomUniform(*self.b_offset_init))

    def get_config(self):
        config = super().get_config()
        config.update({"dt": self.dt, "theta": self.theta, "omega_init": list(self.omega_init),
                       "b_offset_init": list(self.b_offset_init), "max_omega_dt": self.max_omega_dt})
        return config

    def closed_form_vjp(self):
        """The :class:`~tfspike.rsnn.engines.StepVJP` of this neuron's update, or None when the
        surrogate's backward pass is not its ``gradient()`` (then the engine takes a GradientTape)."""
        if not backward_is_gradient(self.surrogate):
            return None
        (residuals, spike_vjp, state_vjp), params, spike = self.vjp_parts, self.params, self.surrogate
        return StepVJP(lambda states_tm, coefficients: residuals(states_tm, params, spike),
                       lambda g_z, g_states, res: spike_vjp(g_z, g_states, res, params),
                       lambda folded, state, coefficients: state_vjp(folded, state, coefficients, params))


@keras.saving.register_keras_serializable(package="tfspike")
class BRFCell(_ResonatorCellBase):
    """Balanced resonate-and-fire cell for ``keras.layers.RNN``.

    Args:
        units: number of neurons H.
        dt: Euler step (0.01 for every task).
        theta: base threshold (1).
        gamma: decay of the refractory trace q (0.9).
        omega_init: (low, high) of the uniform init of raw ``omega``.
        b_offset_init: (low, high) of the uniform init of raw ``b_offset``.
        max_omega_dt: guard kappa: |omega| is clamped to kappa/dt (0.999); init ranges beyond raise.
        use_bias: add a bias to the input current (False, as in the paper).
        kernel_bound: uniform init bound of the joint kernel (None: sqrt(6 / (I + 2H))).
        surrogate: spike function with surrogate gradient (default ``DoubleGaussian()``).

    Input shape: ``(batch, I)`` per step. Output shape: ``(batch, H)`` spikes z_t.
    States: ``[z, u, v, q]``, zeros at the start.

    Example:
        >>> layer = keras.layers.RNN(BRFCell(36, omega_init=(3, 5)), return_sequences=True)
        >>> z = layer(tf.zeros((2, 100, 4)))   # (2, 100, 36)
    """

    n_states = 4
    vjp_parts = (brf_residuals, brf_spike_vjp, brf_state_vjp)

    def __init__(self, units, gamma=0.9, **kwargs):
        super().__init__(units, **kwargs)
        self.gamma = float(gamma)
        self.params = BRFParameters(self.dt, self.theta, self.gamma, self.max_omega_dt)

    def coefficients(self):
        return brf_coefficients(self.omega, self.b_offset, self.params)

    def update(self, current, states, coefficients):
        return brf_update(current, BRFState(*states), coefficients, self.params, self.surrogate)

    def get_config(self):
        config = super().get_config()
        config["gamma"] = self.gamma
        return config


@keras.saving.register_keras_serializable(package="tfspike")
class RFCell(_ResonatorCellBase):
    """Vanilla resonate-and-fire cell (the paper's unstable "RF" baseline: b = -|b'|, no reset).

    Args: as :class:`BRFCell` without ``gamma``; ``max_omega_dt`` defaults to None (no clamp, as the
    reference: RF has no divergence boundary to protect).

    Input shape: ``(batch, I)`` per step. Output shape: ``(batch, H)``. States ``[z, u, v]``.

    Example:
        >>> layer = keras.layers.RNN(RFCell(36), return_sequences=True)
    """

    n_states = 3
    default_max_omega_dt = None
    vjp_parts = (rf_residuals, rf_spike_vjp, rf_state_vjp)

    def __init__(self, units, **kwargs):
        super().__init__(units, **kwargs)
        self.params = BRFParameters(self.dt, self.theta, 0.0, self.max_omega_dt)

    def coefficients(self):
        return rf_coefficients(self.omega, self.b_offset, self.params)

    def update(self, current, states, coefficients):
        return rf_update(current, RFState(*states), coefficients, self.params, self.surrogate)



@keras.saving.register_keras_serializable(package="tfspike")
class BRF(SpikingSequenceBase):
    """BRF sequence layer: a compiled loop over time around :class:`BRFCell`.

    Args: ``units``, ``return_state``, ``bptt`` ("manual" | "autodiff", see
    :class:`~tfspike.rsnn.base.SpikingSequenceBase`) and every :class:`BRFCell` argument.

    Input shape: ``(batch, T, I)``. Output shape: ``(batch, T, H)`` spikes (plus the final
    ``[z, u, v, q]`` with ``return_state=True``).

    Example:
        >>> spikes = BRF(36, omega_init=(3, 5))(tf.zeros((2, 1300, 4)))
    """

    cell_class = BRFCell


@keras.saving.register_keras_serializable(package="tfspike")
class RF(SpikingSequenceBase):
    """Vanilla RF sequence layer around :class:`RFCell`.

    Input shape: ``(batch, T, I)``. Output shape: ``(batch, T, H)``.

    Example:
        >>> spikes = RF(36)(tf.zeros((2, 1300, 4)))
    """

    cell_class = RFCell
