"""Plots for people: a hidden-layer spike raster (matplotlib, Agg, PNG); the training curves are
:func:`tfspike.utils.plots.plot_history`."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tfspike.utils.io import save_figure_atomic  # noqa: E402


def plot_spike_raster(spikes, path, title="hidden spikes", labels=None, logits=None):
    """Raster of one sample's hidden spikes ``(T, H)``; optional per-step labels / predictions below."""
    spikes = np.asarray(spikes)
    rows = 2 if labels is not None or logits is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(10, 5 if rows == 2 else 4), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1][:rows]})
    t, n = np.nonzero(spikes)
    ax = axes[0, 0]
    ax.scatter(t, n, s=2, marker="|", color="k")
    ax.set_ylabel("neuron")
    ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
    ax.set_title(f"{title}: {int(spikes.sum())} spikes, rate {spikes.mean():.3f}")
    if rows == 2:
        ax2 = axes[1, 0]
        if labels is not None and np.ndim(labels) == 1:
            ax2.plot(labels, label="label", lw=1)
        if logits is not None:
            ax2.plot(np.argmax(logits, axis=-1), label="prediction", lw=1, alpha=0.7)
        ax2.set_ylabel("class")
        ax2.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time step")
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=100)
