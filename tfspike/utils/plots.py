"""Plots shared by every family (PNG, written atomically)."""


def plot_history(history, path, title="training", epochs=None, metrics=None):
    """Curves per epoch from a Keras-style history ``{"loss": [...], "val_loss": [...], ...}``.

    One panel per base metric (``metrics``, default every base name in ``history``), with the train,
    ``val_`` and ``test_`` curves that are present; ``None`` entries (epochs without that metric) are
    skipped. ``epochs``: the epoch number of each entry (default 1, 2, ...; e.g. 0 for an untrained row,
    or k+1, ... for a run resumed after epoch k). Returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfspike.utils.io import save_figure_atomic

    bases = list(metrics or [])
    for key in history if metrics is None else ():
        base = key.split("_", 1)[1] if key.startswith(("val_", "test_")) else key
        if base not in bases:
            bases.append(base)
    fig, axes = plt.subplots(1, max(len(bases), 1), figsize=(5.5 * max(len(bases), 1), 4), squeeze=False)
    for base, ax in zip(bases, axes[0]):
        for prefix in ("", "val_", "test_"):
            values = history.get(prefix + base)
            if values is None:
                continue
            xs = range(1, len(values) + 1) if epochs is None else epochs
            points = [(epoch, v) for epoch, v in zip(xs, values) if v is not None]
            if points:
                ax.plot(*zip(*points), marker=".", label=prefix + base)
        ax.set_xlabel("epoch")
        ax.set_ylabel(base)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=100)
