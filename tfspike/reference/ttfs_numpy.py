"""Reference-semantics TTFS evaluator (spec §2): float64 NumPy, absolute spike times, §1.3 verbatim.

This is the time-domain description of the paper, used by tests to check that the Keras TTFS layers
(which pass deadline-relative times r = t_max − t) compute the same network:

- input window [0, 1]: t⁽⁰⁾ = 1 − u;
- hidden layer n, window [t_min, t_max]: ϑ_i = Δ − D_i, V_i = Σ_j W_ji (t_min − t_j),
  t̃_i = t_min + ϑ_i − V_i, t_i = min(t̃_i, t_max) (no lower clamp);
- convolutions pad the spike-time map with t_min of the layer (the reference's choice);
- max-pool = earliest spike (min over times), or the latest spike where the pool sign is −1;
- readout: z_k = D_k + Σ_j W_jk (t_min⁽ᴺ⁺¹⁾ − t_j) with t_min⁽ᴺ⁺¹⁾ = t_max⁽ᴺ⁾.

It also holds the reference's 9-region conv bias formula (``utils.Conv2DWithBias.set_bias`` of
IBM/equivalent-training-ReLUnetwork-SNN v1.0.0), for the bias-map test A5.
"""

import numpy as np

from tfspike.errors import UserError

REGIONS = ("interior", "top-left", "top", "top-right", "right", "bottom-right", "bottom", "bottom-left", "left")


def _np(v):
    return np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float64)


def _same_pad(n, k, s):
    n_out = -(-n // s)
    total = max((n_out - 1) * s + k - n, 0)
    return total // 2, total - total // 2, n_out


def _pad2d(t, kernel_size, strides, padding, value):
    """Pad (B, H, W, C) like TF's 'SAME'/'VALID' with a constant ``value``."""
    if padding == "valid":
        return t
    (kh, kw), (sh, sw) = kernel_size, strides
    top, bottom, _ = _same_pad(t.shape[1], kh, sh)
    left, right, _ = _same_pad(t.shape[2], kw, sw)
    return np.pad(t, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _windows(t, kernel_size, strides):
    """(B, H_out, W_out, kh, kw, C) strided views of a padded map."""
    (kh, kw), (sh, sw) = kernel_size, strides
    v = np.lib.stride_tricks.sliding_window_view(t, (kh, kw), axis=(1, 2))  # (B, H', W', C, kh, kw)
    v = v[:, ::sh, ::sw]
    return np.moveaxis(v, 3, 5)


def _check_plain(layer):
    for attr in ("noise", "time_bits", "weight_bits"):
        if getattr(layer, attr, 0):
            raise UserError(f"reference evaluator: layer {layer.name!r} uses {attr}; only the plain model is modelled")
    if getattr(layer, "clamp_to_window", False):
        raise UserError(f"reference evaluator: layer {layer.name!r} uses clamp_to_window")


def reference_forward(model, x, batch_size=32, return_times=False):
    """Evaluate a :class:`tfspike.ttfs.TTFSModel` with absolute spike times in float64.

    Args:
        model: the TTFS model (weights and windows are read from it; layer dtype does not matter).
        x: inputs as the model takes them.
        return_times: also return ``[(layer name, absolute times)]`` of every hidden spiking layer.

    Returns the logits (float64) and, optionally, the spike times (t = t_max means "no spike").
    """
    from tfspike.ttfs import TTFSConv2D, TTFSDense, TTFSInput, TTFSMaxPool2D

    x = np.asarray(x)
    logits, times = [], None
    for start in range(0, len(x), batch_size):
        t = np.asarray(x[start:start + batch_size], dtype=np.float64)
        t_prev_max = 1.0  # input window [0, 1]
        batch_times = []
        for layer in model.layers:
            if isinstance(layer, TTFSInput):
                _check_plain(layer)
                u = 1.0 - t if layer.input_is == "time" else (t - layer.p) / (layer.q - layer.p)
                t = 1.0 - u  # input spike times in [0, 1]
            elif isinstance(layer, (TTFSDense, TTFSConv2D)):
                _check_plain(layer)
                w, d = _np(layer.kernel), _np(layer.bias)
                if getattr(layer, "bias_map", False):
                    d = d + _np(layer.bias_correction)
                if layer.readout:
                    t_min = t_prev_max  # t_min^(N+1) = t_max^(N)
                else:
                    t_min, t_max = float(layer.t_min.numpy()), float(layer.t_max.numpy())
                if isinstance(layer, TTFSDense):
                    v = (t_min - t) @ w  # V_i = Σ_j W_ji (t_min − t_j)
                else:
                    padded = _pad2d(t, layer.kernel_size, layer.strides, layer.padding, t_min)
                    patches = _windows(padded, layer.kernel_size, layer.strides)
                    v = np.tensordot(t_min - patches, w, axes=([3, 4, 5], [0, 1, 2]))
                if layer.readout:
                    t = d + v  # membrane potential at t_min^(N+1): the logits
                else:
                    theta = (t_max - t_min) - d  # ϑ = Δ − D
                    t = np.minimum(t_min + theta - v, t_max)
                    t_prev_max = t_max
                    batch_times.append((layer.name, t))
            elif isinstance(layer, TTFSMaxPool2D):
                sign = _np(layer.sign)
                fill = np.where(sign < 0, -np.inf, np.inf)  # padded positions never win
                if layer.padding == "same":
                    (ph, pw), (sh, sw) = layer.pool_size, layer.strides
                    top, bottom, _ = _same_pad(t.shape[1], ph, sh)
                    left, right, _ = _same_pad(t.shape[2], pw, sw)
                    t = np.concatenate([np.pad(t[..., c:c + 1], ((0, 0), (top, bottom), (left, right), (0, 0)),
                                               constant_values=fill[c]) for c in range(t.shape[-1])], axis=-1)
                win = _windows(t, layer.pool_size, layer.strides)
                earliest, latest = win.min(axis=(3, 4)), win.max(axis=(3, 4))
                t = np.where(sign < 0, latest, earliest)  # s = +1: earliest spike; s = −1: latest
            elif layer.__class__.__name__ == "Flatten":
                t = t.reshape(len(t), -1)
            else:
                raise UserError(f"reference evaluator: unsupported layer {layer.name!r} ({type(layer).__name__})")
        logits.append(t)
        if return_times:
            times = batch_times if times is None else [(n, np.concatenate([a, b]))
                                                       for (n, a), (_, b) in zip(times, batch_times)]
    out = np.concatenate(logits)
    return (out, times) if return_times else out


# ------------------------------------------------------------------------------------------------
# the reference's 9-region bias (3×3 kernel, stride 1, 'same')
# ------------------------------------------------------------------------------------------------
def reference_region_biases(kernel, bias, shift):
    """The reference's 9 region biases, index order interior, TL, T, TR, R, BR, B, BL, L.

    ``kernel`` is the original 3×3 kernel (3, 3, C_in, C_out), ``bias`` the original bias, ``shift``
    the per-input-channel shift s of the folded affine map. Transcribed from
    ``Conv2DWithBias.set_bias``: b_fused = b + Σ s_c W (all taps), then each region subtracts the
    share of its zero-padded taps.
    """
    w = np.asarray(kernel, dtype=np.float64)
    s = np.broadcast_to(np.asarray(shift, dtype=np.float64), (w.shape[2],))
    b_fused = np.asarray(bias, dtype=np.float64) + np.einsum("c,ijco->o", s, w)
    w_sum = w.sum(axis=(0, 1))
    padded_taps = [
        np.zeros_like(w_sum),
        w_sum - w[1:, 1:].sum(axis=(0, 1)),
        w[:1, :].sum(axis=(0, 1)),
        w_sum - w[1:, :-1].sum(axis=(0, 1)),
        w[:, -1:].sum(axis=(0, 1)),
        w_sum - w[:-1, :-1].sum(axis=(0, 1)),
        w[-1:, :].sum(axis=(0, 1)),
        w_sum - w[:-1, 1:].sum(axis=(0, 1)),
        w[:, :1].sum(axis=(0, 1)),
    ]
    return np.stack([b_fused - s @ dw for dw in padded_taps])


def region_slices(h, w):
    """(row slice, column slice) of each of the 9 regions of an h×w map, as the reference concatenates them."""
    if h < 2 or w < 2:
        raise UserError("the 9-region split needs H, W >= 2 (spec §11.6)")
    top, mid, bot = slice(0, 1), slice(1, h - 1), slice(h - 1, h)
    left, centre, right = slice(0, 1), slice(1, w - 1), slice(w - 1, w)
    return [(mid, centre), (top, left), (top, centre), (top, right), (mid, right), (bot, right), (bot, centre),
            (bot, left), (mid, left)]


def assemble_region_map(regions, h, w):
    """Broadcast 9 region biases (9, C_out) into an (h, w, C_out) map the way the reference's call does."""
    out = np.full((h, w, regions.shape[1]), np.nan)
    for k, (rs, cs) in enumerate(region_slices(h, w)):
        out[rs, cs] = regions[k]
    return out
