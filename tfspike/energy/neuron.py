"""The cost of one Few-Spike neuron on its own, for ``main.py --model_type=FS --energy``.

An FS neuron fitted to an activation has no network around it, so it is counted per neuron and per
unit of fan-out, averaged over the fitting grid: K state updates (one per step, whatever it spikes),
one synaptic accumulate per spike (each spike of step k reaches every synapse of the next layer; with
fan-out 1 that is one AC per spike). Its ANN twin is the analog activation feeding the same synapse:
one multiply-accumulate per unit of fan-out. Multiply a layer's fan-out by these per-neuron figures to
get its synops and MACs.
"""

import numpy as np

from tfspike.energy.report import EnergyReport, LayerCount


def count_fs_neuron(params, grid, name="fs_neuron"):
    """:class:`EnergyReport` of one FS neuron with parameter set ``params`` (a :class:`FSParams`) on the
    inputs ``linspace(*grid)``, per input and per unit of fan-out."""
    import tensorflow as tf

    from tfspike.fs.dynamics import fs_forward
    from tfspike.fs.targets import make_grid

    x = tf.constant(make_grid(grid))
    _, spikes = fs_forward(x, params.h, params.d, params.T, return_spike_count=True)
    mean_spikes = float(np.mean(spikes.numpy(), dtype=np.float64))
    layers = [LayerCount(name, "fs", spikes=mean_spikes, synops=mean_spikes, neuron_updates=float(params.K))]
    ann = [LayerCount(name, "analog", macs=1.0)]
    rule = ("one FS neuron per input, fan-out 1: K state updates, one AC per spike; "
            "ANN twin: one MAC per unit of fan-out")
    return EnergyReport(layers, ann, n_samples=int(x.shape[0]), rule=rule, meta={"K": int(params.K)})
