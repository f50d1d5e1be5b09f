"""Few-Spike (FS) neurons (Stöckl & Maass 2021) and TBPI initialisation (Jeong et al. 2024).

    from tfspike.fs import FewSpike, get_params
    layer = FewSpike(params="stoeckl_swish_k16", voltage_scaling="abs_plus_one", trainable_params=False)

Submodules: ``dynamics`` (``fs_forward``), ``layer`` (``FewSpike``), ``params`` (presets, loaders,
``pre_to_post``/``post_to_pre``), ``fit`` (``fit_fs``, ``TorchAdam``), ``tbpi`` (trend fits and the
three-stage pipeline), ``stats`` (``count_fs_neurons``, ``spike_stats``).
"""

from tfspike.fs.dynamics import fs_forward, fs_relu_fast
from tfspike.fs.layer import FewSpike
from tfspike.fs.params import FSParams, fs_relu, get_params, load_params, post_to_pre, pre_to_post
from tfspike.fs.stats import count_fs_neurons, spike_stats

__all__ = ["FewSpike", "FSParams", "count_fs_neurons", "fs_forward", "fs_relu", "fs_relu_fast", "get_params",
           "load_params", "post_to_pre", "pre_to_post", "spike_stats"]
