"""Plots of FS fits (PNG, written atomically with their numbers beside them where useful):
the TBPI trend lines, an FS approximation against its target, and the loss curves of a run."""

import numpy as np
import tensorflow as tf

from tfspike.fs.dynamics import fs_forward
from tfspike.fs.targets import make_grid, target_numpy
from tfspike.fs.trends import PARAM_NAMES, eval_curve
from tfspike.utils.io import save_figure_atomic, write_text_atomic

DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_trends(record, path):
    """h(t), d(t), T(t) of the trained stage-1 neuron (markers; dead h[K-1] hollow) with the fitted
    curves (dashed) over t in [1, K]; also writes the plotted numbers as CSV next to the PNG."""
    plt = _pyplot()
    trend = record["trend"]
    K = trend["K"]
    pts = record["stages"]["random"]["params_after"]
    t = np.arange(1, K + 1)
    tt = np.linspace(1, K, 100)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    rows = []
    for ax, p in zip(axes, PARAM_NAMES):
        form, c = trend["forms"][p], trend["coeffs"][p]
        curve = (c[0] * tt ** 2 + c[1] * tt + c[2]) if form == "quadratic" else (c[0] * np.log(tt) + c[1])
        vals = np.asarray(pts[p])
        ax.plot(t[:K - 1] if p == "h" else t, vals[:K - 1] if p == "h" else vals, "o", label=f"trained {p}")
        if p == "h":
            ax.plot([K], [vals[-1]], "o", mfc="none", label="h[K-1] (dead)")
        coeff = ", ".join(f"{v:.4g}" for v in c)
        ax.plot(tt, curve, "--", label=f"{form}: ({coeff})")
        ax.set_xticks(t)
        ax.set_xlabel("t = k + 1")
        ax.set_title(f"{p}(t), K = {K}")
        ax.legend(fontsize=7)
        fitted = eval_curve(form, c, K)
        rows += [(p, int(ti), float(v), float(f)) for ti, v, f in zip(t, vals, fitted)]
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=DPI)
    write_text_atomic(str(path)[:-4] + ".csv", "param,t,trained,curve\n"
                      + "".join(f"{p},{ti},{v:.8g},{c:.8g}\n" for p, ti, v, c in rows))
    return path


def plot_fit(params, target, grid, path, title=""):
    """FS approximation against the target on the fitting grid (and the error below)."""
    plt = _pyplot()
    x = make_grid(grid)
    y = target_numpy(target, x)
    out = fs_forward(tf.constant(x), params.h, params.d, params.T).numpy()
    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    a.plot(x, y, label=str(target))
    a.plot(x, out, label=f"FS K={params.K}", lw=1)
    a.set_title(title or f"{params.name}: MSE {np.mean((out - y) ** 2):.3e}")
    a.legend()
    b.plot(x, out - y, lw=0.8)
    b.set_xlabel("x")
    b.set_ylabel("FS - target")
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=DPI)


def plot_losses(record, path):
    """Loss (log scale) against step for every trained stage; stage-1 then the retrains after it."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = record["config"]["steps"]
    for name, st in record["stages"].items():
        if "curve" not in st:
            continue
        c = np.asarray(st["curve"], np.float64)
        offset = 0 if name in ("random", "published") else steps
        ax.plot(c[:, 0] + offset, c[:, 1], label=f"{name} (final {st['reported_loss']:.3e})")
    if "random" in record["stages"] and len(record["stages"]) > 1:
        ax.axvline(steps, color="gray", ls=":", label="stage boundary")
    ax.set_yscale("log")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("MSE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=DPI)
