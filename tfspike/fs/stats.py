"""Counting FS neurons and spikes in Keras models (spec fs.md §4.3–4.4), by instrumentation only:
no layer output or training behaviour changes."""

import keras
import numpy as np
import tensorflow as tf

from tfspike.errors import UserError
from tfspike.fs.dynamics import fs_forward
from tfspike.fs.layer import FewSpike


def fs_sites(model):
    """(path, layer, input KerasTensor) for every FS call site of a functional model, recursing into
    nested functional models. Counted from the built graph once, never on traces."""
    sites = []
    for layer in model.layers:
        if isinstance(layer, FewSpike):
            try:
                inp = layer.input
            except (AttributeError, ValueError) as e:
                raise UserError(f"FS layer {layer.name!r} has no single input node in the built graph "
                                f"(shared layers are not supported by the counter): {e}") from None
            sites.append((layer.name, layer, inp))
        elif hasattr(layer, "layers") and hasattr(layer, "inputs"):  # a nested functional model
            sites += [(f"{layer.name}/{p}", l, i) for p, l, i in fs_sites(layer)]
    return sites


def count_fs_neurons(model):
    """Σ over FS call sites of the product of the non-batch input shape."""
    total = 0
    for _, _, inp in fs_sites(model):
        shape = inp.shape[1:]
        if any(s is None for s in shape):
            raise UserError(f"cannot count FS neurons with unknown input dimensions {tuple(inp.shape)}")
        total += int(np.prod(shape))
    return total


def spike_stats(model, data, max_batches=None, batch_size=64):
    """Spikes per neuron per sample of every FS site of ``model`` on ``data``.

    ``data``: a numpy array / tensor of model inputs, a ``(x, y)`` tuple or a ``tf.data.Dataset``.
    A probe model outputs each FS site's input; :func:`fs_forward` counts the spikes. Totals are
    accumulated in float64 (float32 loses integers above 2^24).

    Returns ``{"sites": {name: {...}}, "total": {...}}`` with n_neurons, n_samples, spikes,
    spikes_per_neuron, input mean/std pooled over all values and averaged over calls.
    """
    sites = [(n, l, i) for n, l, i in fs_sites(model) if "/" not in n]
    if not sites:
        raise UserError("the model has no (top-level) FewSpike layers")
    probe = keras.Model(model.inputs, [i for _, _, i in sites])
    site_params = [layer.current_params() for _, layer, _ in sites]  # read once, outside the trace

    @tf.function
    def count(*inputs):
        outs = probe(inputs if len(inputs) > 1 else inputs[0], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        res = []
        for (_, layer, _), (h, d, T), a in zip(sites, site_params, outs):
            a = tf.cast(a, tf.float32)
            _, n = fs_forward(a, h, d, T, layer.voltage_scaling, return_spike_count=True)
            res.append((tf.reduce_sum(tf.cast(n, tf.float64)), tf.reduce_sum(tf.cast(a, tf.float64)),
                        tf.reduce_sum(tf.square(tf.cast(a, tf.float64))), tf.reduce_mean(a),
                        tf.math.reduce_std(a)))
        return res, tf.shape(outs[0])[0]

    if isinstance(data, tf.data.Dataset):
        batches = data
    else:
        x = data[0] if isinstance(data, tuple) else data
        batches = tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    acc = {n: {"spikes": 0.0, "sum": 0.0, "sumsq": 0.0, "means": [], "stds": []} for n, _, _ in sites}
    n_samples = 0
    for b, batch in enumerate(batches):
        if max_batches is not None and b >= max_batches:
            break
        if isinstance(batch, tuple) and len(model.inputs) == 1:
            batch = batch[0]
        inputs = batch if isinstance(batch, (list, tuple)) else (batch,)
        res, nb = count(*inputs)
        n_samples += int(nb)
        for (name, _, _), (sp, s, ss, m, sd) in zip(sites, res):
            a = acc[name]
            a["spikes"] += float(sp)
            a["sum"] += float(s)
            a["sumsq"] += float(ss)
            a["means"].append(float(m))
            a["stds"].append(float(sd))
    out = {"sites": {}, "total": {}}
    tot_neurons = tot_spikes = 0.0
    for name, _, inp in sites:
        a = acc[name]
        n_neurons = int(np.prod(inp.shape[1:]))
        count_v = n_neurons * n_samples
        mean = a["sum"] / count_v
        out["sites"][name] = {
            "n_neurons": n_neurons, "n_samples": n_samples, "spikes": a["spikes"],
            "spikes_per_neuron": a["spikes"] / count_v,
            "input_mean": mean, "input_std": float(np.sqrt(max(a["sumsq"] / count_v - mean ** 2, 0.0))),
            "input_mean_of_calls": float(np.mean(a["means"])), "input_std_of_calls": float(np.mean(a["stds"])),
        }
        tot_neurons += n_neurons
        tot_spikes += a["spikes"]
    out["total"] = {"n_neurons": int(tot_neurons), "n_samples": n_samples, "spikes": tot_spikes,
                    "spikes_per_neuron": tot_spikes / max(tot_neurons * n_samples, 1)}
    return out
