"""Spiking DDIM: the keras-io diffusion model with FS-Swish block activations (spec fs.md §5)."""
