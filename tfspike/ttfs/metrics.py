"""Streaming TTFS metrics (spec §8): spikes per neuron, window violations, accuracy, ReLU agreement."""

import numpy as np
import tensorflow as tf

from tfspike.energy.ttfs import TTFSCountPlan
from tfspike.ttfs.base import TTFSSpikingLayer
from tfspike.ttfs.encoding import TTFSInput


def _stats_fn(model, count_plan=None):
    """The compiled evaluation step; with a :class:`TTFSCountPlan` it also returns the per-layer
    (spikes, synops) sums of the energy count, from the same forward pass."""
    spiking = model.spiking_layers()

    @tf.function(jit_compile=True, reduce_retracing=True)
    def step(x):
        r = x
        fired, viol = [], []
        seen = [count_plan.observe(0, x)] if count_plan is not None else None
        n_input = tf.constant(0.0, tf.float64)
        for i, layer in enumerate(model.layers):
            if isinstance(layer, TTFSSpikingLayer):
                r, nf, nv = layer.call_with_stats(r)
                if nf is not None:
                    fired.append(nf)
                    viol.append(nv)
            else:
                r = layer(r, training=False)
                if isinstance(layer, TTFSInput):
                    n_input = tf.reduce_sum(tf.cast(r > 0, tf.float64))
            if count_plan is not None:
                seen.append(count_plan.observe(i + 1, r))
        out = (r, tf.stack(fired), tf.stack(viol), n_input)
        return out + (count_plan.layer_counts(seen),) if count_plan is not None else out

    return spiking, step


def _stats_energy_fn(model):
    plan = TTFSCountPlan(model)
    return plan, _stats_fn(model, plan)


def evaluate_ttfs(model, x, y=None, batch_size=256, reference_logits=None, energy=False):
    """Evaluate a :class:`TTFSModel` on arrays in batches; nothing per-sample is stored except logits'
    argmax.

    Args:
        x: inputs as the model takes them; y: integer labels (optional).
        reference_logits: a callable ``batch -> logits`` of the ReLU network (same inputs) for the
            agreement metric, or None.
        energy: also count spikes, synaptic operations and neuron updates in the same pass
            (:mod:`tfspike.energy.ttfs`); the result gets ``"energy"``: an
            :class:`tfspike.energy.EnergyReport` (the same counts as :func:`tfspike.energy.count_ttfs`;
            call ``.to_dict(profile)`` for the JSON block).

    Returns a dict: ``spikes_per_neuron`` (fraction of hidden neurons that fire, averaged over samples),
    ``spikes_per_layer``, ``input_spike_fraction``, ``window_violations``, ``latency``, ``windows``, and
    ``accuracy`` and ``loss`` (cross-entropy from logits) / ``agreement_with_relu`` / ``max_abs_logit_diff`` when labels / reference are given.
    """
    if energy:
        count_plan, (spiking, step) = model.compiled_step("stats_energy", _stats_energy_fn)
        counts = np.zeros((len(count_plan.layers), 2))
    else:
        spiking, step = model.compiled_step("stats", _stats_fn)  # compiled once per model and configure()
    n_layer = np.array([l.neurons_per_sample() for l in spiking], dtype=np.float64)
    n_in_per_sample = float(np.prod(model.input_shape[1:]))
    fired = np.zeros(len(spiking))
    viol = np.zeros(len(spiking))
    n_input, n, correct, agree, max_dz, nll = 0.0, 0, 0, 0, 0.0, 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        logits, f, v, ni, *layer_counts = step(tf.convert_to_tensor(xb, dtype=model.layers[0].compute_dtype))
        if energy:
            counts += layer_counts[0].numpy()
        logits = logits.numpy()
        fired += f.numpy()
        viol += v.numpy()
        n_input += float(ni)
        n += len(xb)
        pred = logits.argmax(-1)
        if y is not None:
            yb = np.asarray(y[start:start + batch_size]).reshape(-1)
            correct += int((pred == yb).sum())
            z = logits.astype(np.float64)
            z = z - z.max(-1, keepdims=True)  # cross-entropy from logits, stable log-softmax
            nll += float((np.log(np.exp(z).sum(-1)) - z[np.arange(len(yb)), yb]).sum())
        if reference_logits is not None:
            ref = np.asarray(reference_logits(xb))
            agree += int((ref.argmax(-1) == pred).sum())
            max_dz = max(max_dz, float(np.abs(ref.astype(np.float64) - logits.astype(np.float64)).max()))
    out = {
        "spikes_per_neuron": float(fired.sum() / (n * n_layer.sum())) if n_layer.sum() else 0.0,
        "spikes_per_layer": {l.name: float(fired[i] / (n * n_layer[i])) for i, l in enumerate(spiking)},
        "input_spike_fraction": n_input / (n * n_in_per_sample),
        "window_violations": int(viol.sum()),
        "hidden_neurons": model.n_hidden_neurons(),
        "latency": model.latency(),
        "windows": model.windows(),
        "n_samples": n,
    }
    if y is not None:
        out["accuracy"] = correct / n
        out["loss"] = nll / n
    if reference_logits is not None:
        out["agreement_with_relu"] = agree / n
        out["max_abs_logit_diff"] = max_dz
    if energy:
        out["energy"] = count_plan.report(counts, n)
    return out
