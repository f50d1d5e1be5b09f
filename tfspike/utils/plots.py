"""Plots shared by every family (PNG, written atomically)."""


def plot_history(history, path, title="training"):
    """Loss and accuracy per epoch from a Keras-style history ``{"loss": [...], "val_loss": [...], ...}``.

    One panel per metric (``loss``, ``accuracy``, and any other base name), with the train, ``val_`` and
    ``test_`` curves that are present; ``None`` entries (epochs without that metric) are skipped.
    Returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfspike.utils.io import save_figure_atomic

    bases = []
    for key in history:
        base = key.split("_", 1)[1] if key.startswith(("val_", "test_")) else key
        if base not in bases:
            bases.append(base)
    fig, axes = plt.subplots(1, max(len(bases), 1), figsize=(5.5 * max(len(bases), 1), 4), squeeze=False)
    for base, ax in zip(bases, axes[0]):
        for prefix in ("", "val_", "test_"):
            values = history.get(prefix + base)
            if values is None:
                continue
            points = [(epoch, v) for epoch, v in enumerate(values, start=1) if v is not None]
            if points:
                ax.plot(*zip(*points), marker=".", label=prefix + base)
        ax.set_xlabel("epoch")
        ax.set_ylabel(base)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=100)
