"""Folding affine maps into linear layers, in float64 NumPy (spec §3.3, §5.1).

- an affine *after* a linear layer (BN before ReLU) folds backward into it (:func:`fold_backward`);
- an affine after a ReLU (BN after ReLU) stays *pending* (:class:`PendingAffine`, composed with
  :func:`compose`) until the next linear layer absorbs it (:func:`absorb`): W′ = a ⊙ W along input
  channels, plus the bias map of :func:`conv_bias_correction` that corrects zero padding.
"""

import dataclasses

import numpy as np

from tfspike.convert.ttfs.errors import UnsupportedLayersError


@dataclasses.dataclass(frozen=True, eq=False)
class PendingAffine:
    """An affine map v ↦ scale·v + shift on the current tensor, not yet absorbed by a linear layer."""

    scale: np.ndarray
    shift: np.ndarray
    sources: tuple  # what it came from, for the report: layer names or "input range (p, q)"


@dataclasses.dataclass(eq=False)
class LinearDraft:
    """A linear layer being assembled: folded kernel, per-channel bias, optional bias correction map."""

    op: object  # the LinearOp it started from
    kernel: np.ndarray
    bias: np.ndarray
    correction: np.ndarray  # (H_out, W_out, C_out) or None
    sources: list
    rules: list


def _same_pad(n, k, s):
    """TensorFlow 'SAME': leading pad for size n, kernel k, stride s (and the output size)."""
    n_out = -(-n // s)
    total = max((n_out - 1) * s + k - n, 0)
    return total // 2, n_out


def _tap_mask(n, k, s, padding):
    """inside[i, h] = True when kernel tap i of output position h lands inside the n-long input."""
    if padding == "same":
        pad, n_out = _same_pad(n, k, s)
    else:
        pad, n_out = 0, (n - k) // s + 1
    idx = np.arange(n_out)[None, :] * s + np.arange(k)[:, None] - pad
    return (idx >= 0) & (idx < n)


def conv_bias_correction(kernel, shift, input_hw, strides=(1, 1), padding="same"):
    """Bias-map correction E (H_out, W_out, C_out) of spec §3.3 for a conv whose input went through a ⋅ v + s.

    The original network zero-pads *after* the affine map, the SNN pads the raw activation with 0, so
    each output loses the padded taps' share of the shift: E[h,w,o] = −Σ_{taps outside} Σ_c s_c W[i,j,c,o].
    With this E the full bias map is B = (b + Σ_{all taps,c} s_c W) + E, zero correction in the interior.

    Args:
        kernel: the *original* (unscaled) kernel, (kh, kw, c_in, c_out).
        shift: s per input channel (or a scalar).
        input_hw: (H, W) of the conv's input.
        strides, padding: the conv's strides and padding ("same" or "valid").

    Returns:
        E as a float64 array (H_out, W_out, c_out); all zeros for "valid" padding.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    kh, kw, c_in, _ = kernel.shape
    s = np.broadcast_to(np.asarray(shift, dtype=np.float64), (c_in,))
    w_shift = np.einsum("ijco,c->ijo", kernel, s)  # Σ_c s_c W[i,j,c,o]
    rows = _tap_mask(int(input_hw[0]), kh, int(strides[0]), padding)  # (kh, H_out)
    cols = _tap_mask(int(input_hw[1]), kw, int(strides[1]), padding)  # (kw, W_out)
    outside = 1.0 - rows[:, None, :, None] * cols[None, :, None, :]  # (kh, kw, H_out, W_out)
    return -np.einsum("ijhw,ijo->hwo", outside, w_shift)


def broadcast_channels(v, n, what, layer):
    """A scalar or per-channel vector as n float64 values (names the layer when the count differs)."""
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    if v.size == 1:
        return np.full(n, v[0])
    if v.size != n:
        raise UnsupportedLayersError(f"{what} of layer {layer.name!r} has {v.size} values for {n} channels")
    return v


def absorb(op, pending, in_shape):
    """Fold the pending affine (a, s) on the input into linear op ``op``: W′ = a ⊙ W, bias (map)."""
    kernel, bias = op.kernel.copy(), op.bias.copy()
    rules = [op.note]
    correction = None
    if pending is not None:
        c_in = kernel.shape[-2]
        a = broadcast_channels(pending.scale, c_in, "pending scale", op.layer)
        s = broadcast_channels(pending.shift, c_in, "pending shift", op.layer)
        if op.conv is None:
            bias = bias + s @ kernel
            kernel = a[:, None] * kernel
        else:
            bias = bias + np.einsum("ijco,c->o", kernel, s)
            if np.any(s != 0):
                correction = conv_bias_correction(kernel, s, in_shape[1:3], op.conv.strides, op.conv.padding)
                if not np.any(correction):
                    correction = None  # valid padding: no border taps are missing
            kernel = kernel * a[None, None, :, None]
        rules.append(f"absorbed affine of {', '.join(pending.sources)}"
                     + (" with bias map" if correction is not None else ""))
    return LinearDraft(op, kernel, bias, correction, [op.layer.name], rules)


def fold_backward(lin, op):
    """linear → affine (BN before ReLU): W′[..., o] = κ_o W[..., o], B′ = κ B + β′ (bias map too)."""
    c_out = lin.kernel.shape[-1]
    k = broadcast_channels(op.scale, c_out, "scale", op.layer)
    b = broadcast_channels(op.shift, c_out, "shift", op.layer)
    lin.kernel = lin.kernel * k
    lin.bias = k * lin.bias + b
    if lin.correction is not None:
        lin.correction = lin.correction * k
    lin.sources.append(op.layer.name)
    lin.rules.append(f"folded {op.note} {op.layer.name!r} backward (before ReLU)")


def compose(pending, op, n_channels):
    """pending (a, s) followed by affine op (k, b): v ↦ k(a v + s) + b."""
    k = broadcast_channels(op.scale, n_channels, "scale", op.layer)
    b = broadcast_channels(op.shift, n_channels, "shift", op.layer)
    if pending is None:
        return PendingAffine(k, b, (op.layer.name,))
    a = broadcast_channels(pending.scale, n_channels, "pending scale", op.layer)
    s = broadcast_channels(pending.shift, n_channels, "pending shift", op.layer)
    return PendingAffine(k * a, k * s + b, pending.sources + (op.layer.name,))


def tile_over_positions(pending, n_channels, n_positions, layer):
    """The pending affine of a (…, C) tensor for its channels-last flattening: index (h·W + w)·C + c."""
    a = broadcast_channels(pending.scale, n_channels, "pending scale", layer)
    s = broadcast_channels(pending.shift, n_channels, "pending shift", layer)
    return dataclasses.replace(pending, scale=np.tile(a, n_positions), shift=np.tile(s, n_positions))


def pool_signs(pending, n_channels, layer):
    """Sign per channel of a max-pool after the pending affine: −1 where its scale is negative (spec §4)."""
    if pending is None:
        return np.ones(n_channels)
    a = broadcast_channels(pending.scale, n_channels, "pending scale", layer)
    return np.where(a < 0, -1.0, 1.0)  # κ = 0 → +1, the next weights are 0 there
