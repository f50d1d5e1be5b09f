"""The energy bar chart written beside a run's results (``--energy``)."""


def plot_energy(report, path, profile="45nm_fp32", title="energy per sample"):
    """Energy per layer (joules per sample under ``profile``): the spiking network beside its ANN twin.
    Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tfspike.energy.profiles import get_profile
    from tfspike.utils.io import save_figure_atomic

    p = get_profile(profile)
    names = [layer.name for layer in report.layers]
    snn = [layer.joules(p) for layer in report.layers]
    ann_by_name = {layer.name: layer.joules(p) for layer in report.ann_layers}
    ann = [ann_by_name.get(name, 0.0) for name in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(names) + 3), 4))
    ax.bar(x - 0.2, snn, 0.4, label=f"SNN ({report.joules(p):.3g} J)")
    ax.bar(x + 0.2, ann, 0.4, label=f"ANN twin ({report.ann_joules(p):.3g} J)")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(f"joules per sample ({p.name})")
    ax.set_yscale("log" if any(v > 0 for v in snn + ann) else "linear")
    ax.set_title(f"{title}: SNN / ANN = {report.ratio_vs_ann(p):.3g}")
    ax.legend()
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=100)
