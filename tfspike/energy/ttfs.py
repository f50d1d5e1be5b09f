"""Operation counts of a TTFS network (B1 model, spec ``ttfs.md``), measured from its actual spikes.

Counting rule (per sample, averaged over the evaluated inputs; every layer passes relative spike times
r = t_max − t, and r = 0 is the "no spike" sentinel t = t_max):

- **Input** (``TTFSInput``): input element i spikes iff its relative time r⁽⁰⁾ᵢ ≠ 0, i.e. iff its input
  spike time t⁽⁰⁾ᵢ ≠ 1. For inputs inside the range [p, q] that is u = (x − p)/(q − p) > 0, i.e. x > p:
  on MNIST/FMNIST (p = 0 on x/255) exactly the nonzero pixels; on CIFAR (p = −3 on the standardised
  image) every pixel. With ``time_bits`` an input quantised to r = 0 is silent. The TTFS input is
  spikes, not analog values: the first weight layer does accumulates (synops), no MACs.
- **Hidden TTFS neurons** (``TTFSDense``, ``TTFSConv2D``; every (h, w, c) of a conv map is a neuron)
  fire at most once. A neuron's spike is counted iff the relative time it emits is ≠ 0. In the default
  configuration that is r = ReLU(Wᵀx + D) > 0: a neuron spikes iff its ReLU activation is positive,
  the firing indicator :func:`tfspike.ttfs.evaluate_ttfs` counts. With the robustness options the
  count is what the next layer receives: a spike quantised to r = 0 (``time_bits``) is silence, and
  reference-mode noise (which jitters silent neurons too, r = −ε) makes every neuron deliver an event.
- **Synops** of a weight layer (hidden or readout): Σ over the spikes arriving at its input of each
  spike's fan-out into this layer — dense: ``units``; conv: the output positions × filters whose window
  covers that input position under the layer's padding and strides
  (:func:`tfspike.energy.fanout.conv2d_fanout`, so borders and zero padding count exactly).
- **Routing** (``TTFSMaxPool2D``, ``Flatten``, ``Reshape``, ``Dropout``) costs nothing and has no
  neurons. A max-pool output spikes iff the earliest spike of its window exists (any input spikes;
  with a sign-aware channel s_c = −1, iff all inputs spike): the *pooled* spikes are what the next
  weight layer counts.
- **Neuron updates**, event-driven: one per neuron per sample, firing or not (each hidden neuron
  integrates its input events and resolves its threshold crossing once). The readout does not spike:
  its accumulates are its synops, and each readout neuron counts one update per sample (its
  potential is read once, at t_min⁽ᴺ⁺¹⁾). The input encoder and routing layers have none.
- **ANN twin**: the ReLU network of the same shapes, counted from the TTFS model's layer shapes: dense
  MACs = n_in × units; conv MACs = Σ over input positions of the fan-out map × C_in, i.e. only the taps
  that touch real inputs (the zero-padding taps of ``same`` are not counted). Biases and activations
  are not counted on either side.

All counts come from one XLA-compiled streaming pass (per-batch sums; nothing per sample is stored).
:func:`count_ttfs` runs its own pass; ``tfspike.ttfs.evaluate_ttfs(..., energy=True)`` counts inside
the evaluation pass, at a fraction of its cost.
"""

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from tfspike.energy.fanout import conv2d_fanout, dense_fanout
from tfspike.energy.report import EnergyReport, LayerCount
from tfspike.errors import UserError
from tfspike.ttfs.base import TTFSSpikingLayer
from tfspike.ttfs.conv import TTFSConv2D
from tfspike.ttfs.dense import TTFSDense
from tfspike.ttfs.encoding import TTFSInput
from tfspike.ttfs.model import TTFSModel
from tfspike.ttfs.pool import TTFSMaxPool2D

RULE = ("TTFS: an input element spikes iff t0 != 1 (r0 != 0); each hidden neuron fires at most once, iff its "
        "emitted relative time is != 0 (= ReLU activation > 0); synops = sum over arriving spikes of their "
        "fan-out (dense: units; conv: exact covered outputs x filters); pooling/flatten route for free; one "
        "neuron update per neuron (readout included) per sample; ANN twin = ReLU MACs over real-input taps")

ROUTING_LAYERS = (TTFSMaxPool2D, keras.layers.Flatten, keras.layers.Reshape, keras.layers.Dropout)


@dataclass
class _LayerPlan:
    """What is counted for one layer of the model: static fan-out, neuron count and ANN-twin MACs."""

    name: str
    kind: str
    emits_spikes: bool = False  # count the spikes of its output (input encoder, hidden neurons)
    fanout: object = None  # int (dense) or (H, W) float64 array (conv): synapses per input element
    neurons: int = 0
    ann_macs: float = 0.0


def _layer_plan(layer, in_shape, out_shape):
    if isinstance(layer, TTFSInput):
        return _LayerPlan(layer.name, "input", emits_spikes=True)
    if isinstance(layer, ROUTING_LAYERS):
        return _LayerPlan(layer.name, "pool" if isinstance(layer, TTFSMaxPool2D) else "route")
    kind = "readout" if isinstance(layer, TTFSSpikingLayer) and layer.readout else None
    if isinstance(layer, TTFSConv2D):
        if len(in_shape) != 4 or None in in_shape[1:]:
            raise UserError(f"count_ttfs: conv layer {layer.name!r} needs a known (H, W, C) input, got {in_shape}")
        fanout = conv2d_fanout(in_shape[1:3], layer.kernel_size, layer.strides, layer.padding,
                               layer.filters).astype(np.float64)
        return _LayerPlan(layer.name, kind or "conv", emits_spikes=kind is None, fanout=fanout,
                          neurons=int(np.prod(out_shape[1:])), ann_macs=float(fanout.sum() * in_shape[-1]))
    if isinstance(layer, TTFSDense):
        n_in = int(np.prod(in_shape[1:]))
        return _LayerPlan(layer.name, kind or "dense", emits_spikes=kind is None, fanout=dense_fanout(layer.units),
                          neurons=int(np.prod(out_shape[1:])), ann_macs=float(n_in * layer.units))
    raise UserError(f"count_ttfs: layer {layer.name!r} ({type(layer).__name__}) has no TTFS counting rule; "
                    f"supported: TTFSInput, TTFSDense, TTFSConv2D, TTFSMaxPool2D, Flatten, Reshape, Dropout")


def _require_built_ttfs_model(model):
    if not isinstance(model, TTFSModel):
        raise UserError(f"count_ttfs needs a tfspike.ttfs.TTFSModel, got {type(model).__name__}")
    if not model.built or not model.inputs:
        raise UserError(f"count_ttfs: model {model.name!r} is not built (give it a keras.Input)")


def spike_map(r):
    """Nonzero elements of ``r`` (spikes) summed over the batch, exactly (int32 within a sample, float64
    across samples): an (H, W) map for a (batch, H, W, C) tensor, a scalar otherwise."""
    nonzero = tf.cast(tf.not_equal(r, 0), tf.int32)
    if r.shape.rank == 4:
        return tf.reduce_sum(tf.cast(tf.reduce_sum(nonzero, axis=3), tf.float64), axis=0)
    per_sample = tf.reduce_sum(nonzero, axis=list(range(1, r.shape.rank)))
    return tf.reduce_sum(tf.cast(per_sample, tf.float64))


class TTFSCountPlan:
    """The static part of the count of a :class:`tfspike.ttfs.TTFSModel` (one entry per model layer),
    and its in-graph part, for use inside a compiled forward pass: :meth:`observe` reduces each tensor
    of the chain once (the model input is tensor 0, the output of layer i is tensor i + 1) and
    :meth:`layer_counts` turns those reductions into per-layer (spikes, synops).

    Args:
        model: a built ``TTFSModel``.

    Example:
        >>> plan = TTFSCountPlan(snn)
        >>> # in a tf.function: seen = [plan.observe(0, x)]; after layer i: seen.append(plan.observe(i + 1, r))
        >>> # ... return plan.layer_counts(seen)        (sum it over the batches)
        >>> report = plan.report(summed_counts, n_samples)
    """

    def __init__(self, model):
        _require_built_ttfs_model(model)
        shape, self.layers = tuple(model.input_shape), []
        for layer in model.layers:
            out = tuple(layer.compute_output_shape(shape))
            self.layers.append(_layer_plan(layer, shape, out))
            shape = out
        # Tensor t is reduced only if it is the output of a spiking layer or the input of a weight layer.
        n = len(self.layers)
        self.needed = [(t > 0 and self.layers[t - 1].emits_spikes) or (t < n and self.layers[t].fanout is not None)
                       for t in range(n + 1)]

    def observe(self, position, r):
        """:func:`spike_map` of chain tensor ``position`` if the count needs it, else None (traced code)."""
        return spike_map(r) if self.needed[position] else None

    def layer_counts(self, seen):
        """Per-batch (spikes, synops) of every layer, a float64 (n_layers, 2) tensor, from the
        :meth:`observe` results of all n_layers + 1 chain tensors (traced code)."""
        zero, rows = tf.constant(0.0, tf.float64), []
        for i, p in enumerate(self.layers):
            spikes = tf.reduce_sum(seen[i + 1]) if p.emits_spikes else zero
            if p.fanout is None:
                synops = zero
            elif isinstance(p.fanout, int):
                synops = tf.reduce_sum(seen[i]) * float(p.fanout)
            else:  # arriving spikes per input position × that position's exact fan-out
                synops = tf.reduce_sum(seen[i] * tf.constant(p.fanout, tf.float64))
            rows.append(tf.stack([spikes, synops]))
        return tf.stack(rows)

    def report(self, sums, n_samples):
        """The :class:`EnergyReport` from the per-layer sums of :meth:`layer_counts` over ``n_samples`` inputs."""
        sums = np.asarray(sums, dtype=np.float64).reshape(len(self.layers), 2) / float(n_samples)
        layers = [LayerCount(p.name, p.kind, spikes=float(s), synops=float(a), neuron_updates=float(p.neurons))
                  for p, (s, a) in zip(self.layers, sums)]
        ann = [LayerCount(p.name, p.kind, macs=p.ann_macs) for p in self.layers if p.fanout is not None]
        return EnergyReport(layers, ann, int(n_samples), rule=RULE)


def _counting_fn(model):
    plan = TTFSCountPlan(model)

    @tf.function(jit_compile=True, reduce_retracing=True)
    def step(x):
        r, seen = x, [plan.observe(0, x)]
        for i, layer in enumerate(model.layers):
            r = layer(r, training=False)
            seen.append(plan.observe(i + 1, r))
        return plan.layer_counts(seen)

    return plan, step


def count_ttfs(model, x, batch_size=256):
    """Count spikes, synaptic operations and neuron updates of a TTFS network on inputs ``x``.

    The rule is the module docstring's: input elements spike iff t⁽⁰⁾ ≠ 1, hidden neurons fire at most
    once (iff their ReLU activation is > 0), a spike costs its exact fan-out into the next weight layer,
    pooling and flatten route for free, one neuron update per neuron per sample; the ANN twin is the
    ReLU network of the same shapes. One XLA-compiled streaming pass (compiled once per model and
    ``configure()``); for counts inside the evaluation pass use
    ``tfspike.ttfs.evaluate_ttfs(model, x, y, energy=True)["energy"]``.

    Args:
        model: a built :class:`tfspike.ttfs.TTFSModel`.
        x: model inputs (an array with a batch axis), as the model takes them.
        batch_size: inputs per compiled step (the counts do not depend on it).

    Returns:
        an :class:`tfspike.energy.EnergyReport`: one :class:`LayerCount` per model layer (input encoder,
        weight, pooling and routing layers; per sample) and the ReLU twin's MACs per weight layer.

    Raises:
        UserError: ``model`` is not a built TTFSModel, has a layer without a counting rule, or ``x`` is empty.

    Example:
        >>> report = count_ttfs(snn, x_test)
        >>> report.to_dict("45nm_fp32")["ratio_vs_ann"]
    """
    _require_built_ttfs_model(model)
    plan, step = model.compiled_step("energy", _counting_fn)
    if len(x) == 0:
        raise UserError("count_ttfs needs at least one input")
    in_dtype = model.inputs[0].dtype
    total = np.zeros((len(plan.layers), 2))
    for start in range(0, len(x), batch_size):
        total += step(tf.convert_to_tensor(np.asarray(x[start:start + batch_size]), dtype=in_dtype)).numpy()
    return plan.report(total, len(x))
