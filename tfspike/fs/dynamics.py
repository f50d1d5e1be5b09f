"""The Few-Spike neuron as a pure tensor function (spec fs.md §1).

Canonical "post" ordering, for an analog input x applied elementwise:

    v_0 = x, out = 0
    for k in 0..K-1:  z_k = H(v_k - T[k]);  out += d[k] z_k;  v_{k+1} = v_k - h[k] z_k

``fs_forward`` is the single implementation used by the layer, the fitter (loss, voltage
regulariser, spike patterns) and the spike counters.
"""

import tensorflow as tf

from tfspike.errors import UserError
from tfspike.surrogates.base import backward_is_gradient
from tfspike.surrogates.triangle import Triangle

VOLTAGE_SCALINGS = ("none", "abs_plus_one")


def check_voltage_scaling(voltage_scaling):
    if voltage_scaling not in VOLTAGE_SCALINGS:
        raise UserError(f"voltage_scaling must be one of {VOLTAGE_SCALINGS}, got {voltage_scaling!r}")
    return voltage_scaling


def fs_forward(x, h, d, T, voltage_scaling="none", return_spike_count=False, surrogate=None, return_trace=False):
    """Few-Spike output Σ_k d[k]·z_k of every element of ``x`` (float32, same shape as ``x``).

    Args:
        x: input tensor of any shape (cast to float32).
        h, d, T: K-vectors (reset amounts, output weights, thresholds), post ordering.
        voltage_scaling: ``"none"`` (surrogate on v - T) or ``"abs_plus_one"`` (on (v - T)/(|v| + 1),
            Stöckl). The forward value is the same for both.
        return_spike_count: also return Σ_k z_k (float32, same shape as ``x``).
        surrogate: a callable ``s -> H(s)`` with a surrogate gradient (default: triangle, width 1).
        return_trace: also return the per-step trace ``{"v": [v_k], "s": [s_k], "z": [z_k]}``
            (K tensors each, shaped like ``x``): the potential before step k, the surrogate argument
            (scaled by ``voltage_scaling``) and the spike.

    Returns:
        ``out``, then ``n_spikes`` if ``return_spike_count``, then ``trace`` if ``return_trace``
        (a tuple when more than one is returned).
    """
    check_voltage_scaling(voltage_scaling)
    spike = Triangle() if surrogate is None else surrogate
    x = tf.cast(x, tf.float32)
    h = tf.cast(h, tf.float32)
    d = tf.cast(d, tf.float32)
    T = tf.cast(T, tf.float32)
    K = h.shape[0]
    if K is None:
        raise UserError(f"fs_forward needs a static K (the length of h), got h of shape {h.shape}")
    out = tf.zeros_like(x)
    n_spikes = tf.zeros_like(x) if return_spike_count else None
    trace = {"v": [], "s": [], "z": []} if return_trace else None
    for k, (v, s, z) in enumerate(_steps(x, h, T, voltage_scaling, spike, return_trace)):
        if return_trace:  # Python-level: adds nothing to the graph of the other callers
            trace["v"].append(v)
            trace["s"].append(s)
            trace["z"].append(z)
        out = out + d[k] * z
        if return_spike_count:
            n_spikes = n_spikes + tf.stop_gradient(z)
    results = (out,) + ((n_spikes,) if return_spike_count else ()) + ((trace,) if return_trace else ())
    return results if len(results) > 1 else out


def _steps(x, h, T, voltage_scaling, spike, return_trace):
    """The K steps of the FS neuron: yields (v_k, s_k, z_k); ``s_k`` is ``None`` unless ``return_trace``
    or a surrogate whose backward pass is not its ``gradient()``
    (:func:`tfspike.surrogates.base.backward_is_gradient`)."""
    K = h.shape[0]
    scaled = voltage_scaling == "abs_plus_one"
    fused = scaled and not return_trace and backward_is_gradient(spike)
    v = x
    # Unrolled in Python: K <= 24 in every published use, and XLA fuses the whole chain.
    for k in range(K):
        diff = v - T[k]
        if fused:  # the division only shapes the gradient: computed in the backward pass alone
            # v through an Identity: its two gradient terms then reach v in autodiff's order (the
            # difference's, then |v|'s), so the sum over v's uses rounds as for the quotient
            s, z = None, _scaled_spike(spike.gradient)(diff, tf.identity(v))
        else:
            s = diff / (tf.abs(v) + 1.0) if scaled else diff
            z = spike(s)
        yield v, s, z
        if k < K - 1:  # h[K-1] would act after the last step: it is dead (zero gradient)
            v = v - h[k] * z


def _scaled_spike(gradient):
    """H((v - T)/(|v| + 1)) as a function of (diff, v), diff = v - T, with the surrogate derivative
    ``gradient`` of the quotient.

    Forward: the strict Heaviside of diff, except that v = +inf never spikes. Exact for every float32 v:
    the divisor |v| + 1 is >= 1 (no sign change, and a nonzero quotient cannot underflow: a denormal
    diff needs a tiny |v|, where the divisor rounds to 1), NaN and -inf give no spike in both forms, and
    v = +inf gives inf/inf = NaN. Backward: autodiff of the quotient, replicating TensorFlow's RealDiv
    and Abs gradients operation by operation (the same values bit for bit)."""

    @tf.custom_gradient
    def spike(diff, v):
        z = tf.cast(tf.logical_and(diff > 0, tf.not_equal(v, float("inf"))), tf.float32)

        def grad(dz):
            y = tf.abs(v) + 1.0
            ds = dz * gradient(diff / y)  # Surrogate.__call__'s backward
            # RealDiv: d/dx = g / y, d/dy = g * ((-x / y) / y); Abs: d/dv = g * sign(v)
            return ds / y, ds * ((-diff / y) / y) * tf.sign(v)

        return z, grad

    return spike


def fs_relu_fast(x, K=10, alpha=25.0):
    """Closed-form FS-ReLU (Stöckl's fast path with its bit count set to K): floor(x/q)·q clipped
    to [0, alpha - q], q = alpha·2^-K.

    Equals the spiking loop except on exact multiples of q, which the loop (strict thresholds) maps
    one step down. x/q is formed in float64 so that no float32 rounding moves a non-multiple onto
    a multiple.
    """
    x = tf.cast(tf.cast(x, tf.float32), tf.float64)
    q = float(alpha) * 2.0 ** -K
    levels = tf.clip_by_value(tf.math.floor(x / q), 0.0, 2.0 ** K - 1.0)
    return tf.cast(levels * q, tf.float32)
