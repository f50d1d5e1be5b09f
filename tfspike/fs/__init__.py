"""Few-Spike (FS) neurons (Stöckl & Maass 2021) and TBPI initialisation (Jeong et al. 2024).

    from tfspike.fs import FewSpike, get_params
    layer = FewSpike(params="stoeckl_swish_k16", voltage_scaling="abs_plus_one", trainable_params=False)

Submodules (``targets``, ``param_set``, ``trends``, ``params`` and ``pipeline`` import without
TensorFlow):

- ``targets``: target activations, :data:`~tfspike.fs.targets.TARGETS`, default grids, ``grid_mse``;
- ``param_set``: ``FSParams`` and the ``pre_to_post``/``post_to_pre`` ordering converters;
- ``params``: sets by name: presets (``get_params``, ``save_preset``, ``$TFSPIKE_FS_PRESETS``),
  ``load_params``, ``fs_relu``;
- ``trends``: the TBPI trend lines (published and fitted);
- ``pipeline``: the three-stage TBPI pipeline (``run``, ``polish_record``, ``INITS``, ``PAPER_TABLE``);
- ``dynamics`` (``fs_forward``), ``layer`` (``FewSpike``), ``fit`` (``fit_fs``, ``TorchAdam``,
  ``fit_best``), ``stats`` (``count_fs_neurons``, ``spike_stats``), ``plots``.

Names are loaded lazily (PEP 562), so ``import tfspike.fs.targets`` does not load TensorFlow.
"""

import importlib

_EXPORTS = {
    "fs_forward": "tfspike.fs.dynamics",
    "fs_relu_fast": "tfspike.fs.dynamics",
    "FewSpike": "tfspike.fs.layer",
    "FSParams": "tfspike.fs.param_set",
    "post_to_pre": "tfspike.fs.param_set",
    "pre_to_post": "tfspike.fs.param_set",
    "fs_relu": "tfspike.fs.params",
    "get_params": "tfspike.fs.params",
    "load_params": "tfspike.fs.params",
    "save_preset": "tfspike.fs.params",
    "count_fs_neurons": "tfspike.fs.stats",
    "spike_stats": "tfspike.fs.stats",
}


def __getattr__(name):  # lazy: only the submodule that holds ``name`` is imported
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tfspike.fs' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
