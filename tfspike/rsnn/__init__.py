"""Resonate-and-fire recurrent SNNs (Higuchi et al., ICML 2024): BRF, RF and ALIF cells, the LI
readout, the benchmark RSNN with its presets, and the reference training recipes.

Modules: ``neurons`` (the neuron registry, TensorFlow-free), ``tasks`` (task shapes), ``presets``
(presets, recipes, :func:`build_rsnn`), ``model`` (:class:`RSNN`, truncated-BPTT schedule),
``reference_io`` (reference ``.pt`` / ``.npz`` checkpoints), ``brf`` / ``alif`` / ``readout`` (the cells),
``base`` (cell and sequence-layer base classes), ``engines`` (the time loops), ``metrics``,
``train``, ``plots``. Names are loaded lazily: ``import tfspike.rsnn.neurons`` does not load
TensorFlow.

Example:
    >>> from tfspike.rsnn import build_rsnn
    >>> model = build_rsnn("BRF", "ECG")
"""

import importlib

_EXPORTS = {
    "ALIF": "tfspike.rsnn.alif", "ALIFCell": "tfspike.rsnn.alif", "alif_step": "tfspike.rsnn.alif",
    "BRF": "tfspike.rsnn.brf", "RF": "tfspike.rsnn.brf", "BRFCell": "tfspike.rsnn.brf", "RFCell": "tfspike.rsnn.brf",
    "BRFParameters": "tfspike.rsnn.brf", "BRFState": "tfspike.rsnn.brf", "RFState": "tfspike.rsnn.brf",
    "brf_step": "tfspike.rsnn.brf", "rf_step": "tfspike.rsnn.brf", "divergence_boundary": "tfspike.rsnn.brf",
    "LICell": "tfspike.rsnn.readout", "LIReadout": "tfspike.rsnn.readout",
    "RSNN": "tfspike.rsnn.model", "tbptt_chunks": "tfspike.rsnn.model",
    "build_rsnn": "tfspike.rsnn.presets", "preset": "tfspike.rsnn.presets", "recipe": "tfspike.rsnn.presets",
    "import_reference": "tfspike.rsnn.reference_io", "import_reference_npz": "tfspike.rsnn.reference_io",
    "TASKS": "tfspike.rsnn.tasks",
    "NeuronFlag": "tfspike.rsnn.neurons", "NeuronSpec": "tfspike.rsnn.neurons",
    "register_neuron": "tfspike.rsnn.neurons", "unregister_neuron": "tfspike.rsnn.neurons",
    "neuron_spec": "tfspike.rsnn.neurons", "neuron_names": "tfspike.rsnn.neurons",
    "neuron_flags": "tfspike.rsnn.neurons", "add_neuron_arguments": "tfspike.rsnn.neurons",
    "neuron_overrides": "tfspike.rsnn.neurons",
}


def __getattr__(name):  # lazy: the cells and the model pull in TensorFlow only when used
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tfspike.rsnn' has no attribute {name!r}")


__all__ = list(_EXPORTS)
