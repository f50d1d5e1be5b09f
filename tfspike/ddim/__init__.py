"""Spiking DDIM: the keras-io diffusion model with FS-Swish block activations (spec fs.md §5).

Submodules: ``choices`` (``FS_PARAM_SETS``, ``ACTIVATIONS``; no TensorFlow), ``unet`` (``residual_unet``),
``diffusion`` (``DiffusionModel``, ``sample_fs_spike_stats``), ``kid`` (``kid``, ``KID``, the feature
extractors), ``data`` (Flowers and the offline datasets), ``callbacks`` (results JSON, image grids).
"""
