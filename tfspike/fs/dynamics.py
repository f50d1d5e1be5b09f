"""The Few-Spike neuron as a pure tensor function (spec fs.md §1).

Canonical "post" ordering, for an analog input x applied elementwise:

    v_0 = x, out = 0
    for k in 0..K-1:  z_k = H(v_k - T[k]);  out += d[k] z_k;  v_{k+1} = v_k - h[k] z_k

``fs_forward`` is the single implementation used by the layer, the fitter (loss, voltage
regulariser, spike patterns) and the spike counters.
"""

import tensorflow as tf

from tfspike.errors import UserError
from tfspike.surrogates.triangle import heaviside_triangle

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
    spike = surrogate or heaviside_triangle
    x = tf.cast(x, tf.float32)
    h = tf.cast(h, tf.float32)
    d = tf.cast(d, tf.float32)
    T = tf.cast(T, tf.float32)
    K = h.shape[0]
    if K is None:
        raise UserError(f"fs_forward needs a static K (the length of h), got h of shape {h.shape}")
    v = x
    out = tf.zeros_like(x)
    n_spikes = tf.zeros_like(x) if return_spike_count else None
    trace = {"v": [], "s": [], "z": []} if return_trace else None
    # Unrolled in Python: K <= 24 in every published use, and XLA fuses the whole chain.
    for k in range(K):
        diff = v - T[k]
        s = diff if voltage_scaling == "none" else diff / (tf.abs(v) + 1.0)
        z = spike(s)
        if return_trace:  # Python-level: adds nothing to the graph of the other callers
            trace["v"].append(v)
            trace["s"].append(s)
            trace["z"].append(z)
        out = out + d[k] * z
        if return_spike_count:
            n_spikes = n_spikes + tf.stop_gradient(z)
        if k < K - 1:  # h[K-1] would act after the last step: it is dead (zero gradient)
            v = v - h[k] * z
    results = (out,) + ((n_spikes,) if return_spike_count else ()) + ((trace,) if return_trace else ())
    return results if len(results) > 1 else out


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
