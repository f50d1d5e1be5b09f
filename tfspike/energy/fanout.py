"""Exact synaptic fan-out: how many synapses of a layer one input element drives.

A dense layer: every input element reaches all ``units`` neurons. A 2-D convolution: an input position
reaches ``filters`` output channels at every output position whose window covers it — fewer at the
borders under ``valid`` padding or strides, and never the zero padding of ``same``. The per-axis counts
multiply, so the map is exact and cheap (NumPy, no TensorFlow).
"""

import numpy as np

from tfspike.errors import UserError


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(x) for x in v)


def _axis_cover(n, k, s, d, padding):
    """For each of the ``n`` input indices along one axis: the output indices whose window covers it."""
    k_eff = (k - 1) * d + 1
    if padding == "valid":
        out, pad = (n - k_eff) // s + 1, 0
    elif padding == "same":
        out = -(-n // s)
        pad = max((out - 1) * s + k_eff - n, 0) // 2  # TensorFlow puts the odd pixel at the end
    else:
        raise UserError(f"padding must be 'valid' or 'same', got {padding!r}")
    counts = np.zeros(n, dtype=np.int64)
    for o in range(max(out, 0)):
        taps = o * s - pad + d * np.arange(k)
        taps = taps[(taps >= 0) & (taps < n)]
        counts[taps] += 1
    return counts


def conv2d_fanout(input_hw, kernel_size, strides=(1, 1), padding="valid", filters=1, dilation_rate=(1, 1)):
    """``(H, W)`` map: synapses driven by one element at each input position of a ``Conv2D``
    (channels-last; the same for every input channel)."""
    (h, w), (kh, kw), (sh, sw), (dh, dw) = _pair(input_hw), _pair(kernel_size), _pair(strides), _pair(dilation_rate)
    padding = str(padding).lower()
    return np.outer(_axis_cover(h, kh, sh, dh, padding), _axis_cover(w, kw, sw, dw, padding)) * int(filters)


def dense_fanout(units):
    """Synapses driven by one input element of a ``Dense`` layer."""
    return int(units)
