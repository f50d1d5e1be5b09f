"""NumPy oracle for Few-Spike (FS) neurons, written from ``shared/specs/fs.md`` §1–§2.

Float32 forward pass in both orderings ("post" is canonical, "pre" is Stöckl's fitting-script
ordering), a hand-written reverse pass for the triangular surrogate (both voltage scalings), the
MSE loss gradient, and the PyTorch-form Adam update. Tests compare the TensorFlow code against it.
"""

import numpy as np

from tfspike.errors import UserError

F32 = np.float32


def _as32(*arrays):
    return [np.asarray(a, dtype=F32) for a in arrays]


def forward_post(x, h, d, T, return_trace=False):
    """Post ordering: z_k = H(v_k - T_k); out += d_k z_k; v_{k+1} = v_k - h_k z_k (H strict)."""
    x, h, d, T = _as32(x, h, d, T)
    v = x.copy()
    out = np.zeros_like(x)
    n = np.zeros_like(x)
    vs, zs = [], []
    K = h.shape[0]
    for k in range(K):
        z = ((v - T[k]) > 0).astype(F32)
        vs.append(v)
        zs.append(z)
        out = out + d[k] * z
        n = n + z
        if k < K - 1:
            v = v - h[k] * z
    if return_trace:
        return out, n, vs, zs
    return out, n


def forward_pre(x, h, d, T):
    """Pre ordering (find_coeffs.py): v -= h_k z_{k-1}; z_k = H(v - T_k); out += d_k z_k."""
    x, h, d, T = _as32(x, h, d, T)
    v = x.copy()
    out = np.zeros_like(x)
    n = np.zeros_like(x)
    z = np.zeros_like(x)
    for k in range(h.shape[0]):
        if k > 0:
            v = v - h[k] * z
        z = ((v - T[k]) > 0).astype(F32)
        out = out + d[k] * z
        n = n + z
    return out, n


def backward_post(x, h, d, T, grad_out, voltage_scaling="none", dtype=np.float64):
    """Reverse pass of :func:`forward_post` with the triangular surrogate max(0, 1 - |s|).

    ``grad_out`` is dL/dout per element. Returns (dL/dx, dL/dh, dL/dd, dL/dT); the parameter
    gradients are summed over elements. ``dtype`` is the accumulation type of the reverse pass.
    """
    x32, h32, d32, T32 = _as32(x, h, d, T)
    _, _, vs, zs = forward_post(x32, h32, d32, T32, return_trace=True)
    h, d, T = (a.astype(dtype) for a in (h32, d32, T32))
    g_out = np.asarray(grad_out, dtype=dtype)
    K = h.shape[0]
    gh, gd, gT = np.zeros(K, dtype), np.zeros(K, dtype), np.zeros(K, dtype)
    gv = np.zeros_like(g_out)  # dL/dv_{k+1}
    for k in reversed(range(K)):
        v = vs[k].astype(dtype)
        z = zs[k].astype(dtype)
        gd[k] = np.sum(g_out * z)
        gz = g_out * d[k]
        if k < K - 1:  # v_{k+1} = v_k - h_k z_k
            gh[k] = -np.sum(gv * z)
            gz = gz - gv * h[k]
        diff = v - T[k]
        if voltage_scaling == "none":
            s = diff
            ds_dv, ds_dT = 1.0, -1.0
        elif voltage_scaling == "abs_plus_one":
            a = np.abs(v) + 1.0
            s = diff / a
            ds_dv = 1.0 / a - diff * np.sign(v) / (a * a)
            ds_dT = -1.0 / a
        else:
            raise UserError(f"voltage_scaling must be 'none' or 'abs_plus_one', got {voltage_scaling!r}")
        gs = gz * np.maximum(0.0, 1.0 - np.abs(s))
        gT[k] = np.sum(gs * ds_dT)
        gv = gv + gs * ds_dv
    return gv, gh, gd, gT


def voltage_reg_and_grads(x, h, d, T):
    """Stöckl's voltage regulariser (spec §1.4) and its gradients w.r.t. (h, T), in float64.

    v_reg = Σ_k m_k², m_k = mean_x max(0, |s_k| - 1), s_k = (v_k - T_k)/(|v_k| + 1) (the scaled
    form, squared after the mean), v_k the potentials of :func:`forward_post`. The spikes carry no
    gradient here (the potentials follow them; only h, T and x enter the chain), so
    dv_k/dh_j = -z_j for j < k. d does not enter v_reg (its gradient is 0). Returns (reg, gh, gT).
    """
    _, _, vs, zs = forward_post(x, h, d, T, return_trace=True)
    K = len(vs)
    T64 = np.asarray(T, F32).astype(np.float64)
    reg = 0.0
    gh, gT = np.zeros(K), np.zeros(K)
    for k in range(K):
        v = vs[k].astype(np.float64)
        a = np.abs(v) + 1.0
        s = (v - T64[k]) / a
        excess = np.maximum(np.abs(s) - 1.0, 0.0)
        m = np.mean(excess)
        reg += m * m
        gs = 2.0 * m * np.sign(s) * (excess > 0) / s.size  # d reg / d s_k, per element
        gT[k] = np.sum(gs * (-1.0 / a))
        gv = gs * (1.0 / a - (v - T64[k]) * np.sign(v) / (a * a))  # d reg / d v_k through s_k
        for j in range(k):
            gh[j] -= np.sum(gv * zs[j])
    return reg, gh, gT


def mse_and_grads(x, y, h, d, T, voltage_scaling="none"):
    """MSE of the post-ordering FS output against ``y`` and its gradients w.r.t. (h, d, T)."""
    out, _ = forward_post(x, h, d, T)
    err = out.astype(np.float64) - np.asarray(y, np.float64)
    loss = np.mean(err * err)
    grad_out = 2.0 * err / err.size
    _, gh, gd, gT = backward_post(x, h, d, T, grad_out, voltage_scaling)
    return loss, gh, gd, gT


def torch_adam_step(theta, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """One PyTorch-form Adam step (spec §2.1), t >= 1. Returns (theta, m, v) as new arrays."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    theta = theta - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v) / np.sqrt(1 - beta2 ** t) + eps)
    return theta, m, v


def fs_relu_params(K=10, alpha=25.0):
    p = (alpha * 2.0 ** -(np.arange(K) + 1)).astype(F32)
    return p.copy(), p.copy(), p.copy()


def swish(x):
    x = np.asarray(x, F32)
    return (x / (F32(1) + np.exp(-x))).astype(F32)


def sigmoid(x):
    x = np.asarray(x, F32)
    return (F32(1) / (F32(1) + np.exp(-x))).astype(F32)
