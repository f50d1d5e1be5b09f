"""Synaptic-operation and energy accounting, measured from the actual spikes, for every family.

    from tfspike.energy import count_ttfs
    report = count_ttfs(snn, x_test)              # an EnergyReport
    report.to_dict("45nm_fp32"), report.joules("loihi"), report.ratio_vs_ann()

Modules: ``profiles`` (energy per operation, registry), ``report`` (``LayerCount``, ``EnergyReport``),
``fanout`` (exact synaptic fan-out of dense and convolutional layers), and one module per family with
its counting rule (``ttfs``, ``fs``, ``rsnn``, ``ddim``).
"""

import importlib

_EXPORTS = {
    "EnergyProfile": "tfspike.energy.profiles", "PROFILES": "tfspike.energy.profiles",
    "get_profile": "tfspike.energy.profiles", "register_profile": "tfspike.energy.profiles",
    "LayerCount": "tfspike.energy.report", "EnergyReport": "tfspike.energy.report",
    "DEFAULT_PROFILE": "tfspike.energy.report",
    "count_ttfs": "tfspike.energy.ttfs", "count_fs": "tfspike.energy.fs", "count_rsnn": "tfspike.energy.rsnn",
    "count_ddim": "tfspike.energy.ddim", "evaluate_and_count": "tfspike.energy.rsnn",
}


def __getattr__(name):  # lazy: the counters pull in TensorFlow only when used
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tfspike.energy' has no attribute {name!r}")


__all__ = list(_EXPORTS)
