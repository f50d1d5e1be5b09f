"""Operation counts of the spiking DDIM, per generated image, measured on the real sampling trajectory.

The rule: one generated image costs ``diffusion_steps`` calls of the EMA U-Net (deterministic DDIM,
η = 0). In every call the FS-Swish sites are counted as in :mod:`tfspike.energy.fs` (K neuron updates
per FS neuron; each spike reaches the exact fan-out of the block's second 3×3 convolution, ``same``
padding, so border pixels reach fewer synapses); every other weight layer of the U-Net — the input 1×1
convolution on the noisy pixels, the first 3×3 convolution of each block (fed by the batch-normalised
block input), the residual 1×1 projections, the output convolution — receives analog values and costs
MACs = its connections; the batch normalisations one MAC per element. The sinusoidal embedding, the
upsamplings, the concatenations, the residual adds and the sampler's per-pixel update arithmetic have no
synapses and are not counted. Counts are summed over the ``diffusion_steps`` calls and averaged over the
images. ANN twin: the swish U-Net of the same widths (every weight layer as MACs, × diffusion_steps).

The sampler is the model's own: :meth:`~tfspike.ddim.diffusion.DiffusionModel.reverse_step` with
``network=`` a counting replay of the EMA network (its first output is the predicted noise, like
:func:`~tfspike.ddim.diffusion.fs_spike_probe`), from the same seeded noise as
:func:`~tfspike.ddim.diffusion.sample_fs_spike_stats`, so both see the same trajectory.

Example:
    >>> from tfspike.energy import count_ddim
    >>> report = count_ddim(model, num_images=16, diffusion_steps=20, seed=0)
    >>> report.to_dict("loihi")["ratio_vs_ann"]
"""

import numpy as np
import tensorflow as tf

from tfspike.ddim.diffusion import seeded_trajectories
from tfspike.energy.fs import FSCounter
from tfspike.errors import UserError

RULE = ("DDIM: per generated image = diffusion_steps EMA U-Net calls; FS sites as in FS (K updates per neuron, "
        "spikes x exact conv fan-out of the next conv); every other U-Net weight layer as MACs; batch "
        "normalisation 1 MAC per element; ANN twin: the swish U-Net, all MACs x diffusion_steps")


def count_ddim(model, num_images=16, diffusion_steps=20, seed=0, batch_size=None):
    """Per-image operation counts of a spiking :class:`~tfspike.ddim.diffusion.DiffusionModel` and of its
    swish twin, over ``num_images`` images generated in ``diffusion_steps`` DDIM steps from noise drawn
    with ``numpy.random.default_rng(seed)`` (``batch_size`` images at a time, default all).

    The passes are compiled with XLA unless the model was compiled with ``jit_compile=False``. Returns an
    :class:`~tfspike.energy.report.EnergyReport` (``n_samples`` = images; ``meta`` holds the steps).
    """
    if not hasattr(model, "ema_network") or not hasattr(model, "reverse_step"):
        raise UserError(f"count_ddim needs a tfspike DiffusionModel, got {type(model).__name__}")
    num_images, diffusion_steps = int(num_images), int(diffusion_steps)
    if num_images < 1 or diffusion_steps < 1:
        raise UserError(f"count_ddim needs num_images >= 1 and diffusion_steps >= 1, got {num_images}, "
                        f"{diffusion_steps}")
    jit = bool(model.jit_compile) if model.compiled else True
    counter = FSCounter(model.ema_network, jit_compile=jit)
    if not counter.fs_sites:
        raise UserError(f"the DDIM {model.name!r} has no FewSpike layers (activation {model.activation_name!r}): "
                        f"its energy is the ANN twin's")

    def network(inputs, training=False):  # the probe interface of reverse_step: [pred_noises, extras...]
        outputs, counts = counter(inputs, training=training)
        return [outputs] + counts

    step_size = 1.0 / diffusion_steps

    @tf.function(jit_compile=jit)
    def sampling_step(noisy_images, diffusion_times):
        next_noisy_images, _, counts = model.reverse_step(noisy_images, diffusion_times, step_size, network)
        return next_noisy_images, counts

    totals = counter.zero_totals()
    # the trajectories of sample_fs_spike_stats(seed=...)
    for counts in seeded_trajectories(model, sampling_step, num_images, diffusion_steps, seed, batch_size):
        for acc, c in zip(totals, counts):
            acc += np.asarray(c, np.float64)
    return counter.report(totals, num_images, calls_per_sample=diffusion_steps, rule=RULE,
                          meta={"diffusion_steps": diffusion_steps, "num_images": num_images, "seed": seed,
                                "network": "ema_network"})
