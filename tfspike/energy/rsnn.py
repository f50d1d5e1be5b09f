"""Operation counts of the resonate-and-fire RSNNs (any registered neuron: BRF, RF, ALIF, ...), measured
from the hidden spikes of one compiled pass over the given inputs, against a non-spiking RNN twin.

The network (:class:`tfspike.rsnn.model.RSNN`) is input (I) → one fully recurrent spiking layer (H) →
LI readout (O), run for T steps t = 0 … T−1. The hidden layer's synapse is one joint kernel K of shape
(I + H, H) acting on ``[x_t, z_{t−1}]``: rows 0 … I−1 are the input synapses, rows I … I+H−1 the
recurrent synapses, self-connections included (nothing is masked, spec §1.1). The readout's kernel
(H, O) acts on the *current* step's spikes z_t. Per sample (averaged over the samples):

* **input synapses** (booked on the hidden layer):

  - spike input (every value of ``x`` is 0 or 1: SHD, and ECG-QTDB, whose 4 level-crossing channels are
    binary, spec §4.4): ``synops = Σ_t Σ_i x_{t,i} · H`` — each input spike drives its H synapses;
  - analog input (S-MNIST / PS-MNIST pixel intensities, or any non-binary data):
    ``macs = T · I · H``. Every value multiplies every weight at every step, a value of 0 included: an
    analog stream is not an event code, so nothing tells the synapse that a value is zero without
    reading and multiplying it (a code that skips zeros is a spike code: pass binary data);
  - ``input_is="auto"`` (default) decides from the data: spikes iff *every* value of ``x`` is 0 or 1;
    ``"spikes"`` insists (non-binary values raise :class:`~tfspike.errors.UserError`), ``"analog"``
    counts MACs whatever the values.

* **recurrent synapses** (booked on the hidden layer): ``synops = Σ_{t=1}^{T−1} Σ_j z_{t−1,j} · H`` —
  each hidden spike drives its H recurrent synapses at the next step; z_{−1} = 0, and the spikes of the
  last step t = T−1 reach no further step, so they cost no recurrent synop.
* **readout synapses** (booked on the readout): ``synops = Σ_t Σ_j z_{t,j} · O``. The LI readout never
  spikes.
* **neuron updates**: ``T · H`` hidden (every neuron every step, whatever it spikes) and ``T · O`` readout
  (the LI integration). A bias (ALIF's optional one) is part of the neuron update, not a synop.
* **spikes**: the hidden layer's spikes are the paper's SOP (hidden spikes over all T steps per sample,
  :mod:`tfspike.rsnn.metrics`; the same ``reduce_sum`` of ``model.forward``'s spikes as the ``sop``
  that :func:`tfspike.rsnn.train.evaluate` reports).

**ANN twin**: a non-spiking RNN of the same shape and sequence length, ``h_t = f([x_t, h_{t−1}] K)``
with a dense (LI) readout, all synapses as MACs every step: hidden ``macs = T · (I·H + H·H)`` and
``T · H`` neuron updates, readout ``macs = T · H · O`` and ``T · O`` neuron updates.

Speed: the counts need only the hidden spikes; :func:`count_rsnn` is one compiled pass (the readout is
pruned from it). A caller that evaluates anyway gets the evaluation statistics *and* the counts from the
same pass with :func:`evaluate_and_count`, so counting adds no second pass over the test set.

Example:
    >>> from tfspike.energy import count_rsnn
    >>> report = count_rsnn(model, x_test, batch_size=141)   # an EnergyReport, per sample
    >>> report.to_dict("45nm_fp32")["per_sample"], report.ratio_vs_ann("loihi")
"""

import weakref

import numpy as np
import tensorflow as tf

from tfspike.energy.report import EnergyReport, LayerCount
from tfspike.errors import UserError
from tfspike.rsnn.metrics import correct_and_total, derived_stats
from tfspike.rsnn.model import RSNN

INPUT_KINDS = ("auto", "spikes", "analog")
RULE = ("RSNN, per sample over T steps: input spikes x H synops (analog input: T*I*H MACs), hidden spikes "
        "at t-1 x H recurrent synops, hidden spikes x O readout synops, T*(H+O) neuron updates; ANN twin: "
        "RNN of the same shape, T*(I*H+H*H+H*O) MACs, T*(H+O) neuron updates")

# model -> {with_labels: compiled pass}; the passes hold the model only weakly.
_PASSES = weakref.WeakKeyDictionary()


def _compiled_pass(model, with_labels, jit_compile):
    cache = _PASSES.setdefault(model, {})
    key = (with_labels, bool(jit_compile))
    if key in cache:
        return cache[key]
    ref = weakref.ref(model)

    def last_step(spikes):  # the last step's spikes reach no later step: no recurrent synops
        return tf.reduce_sum(spikes[:, -1], axis=-1)

    if with_labels:
        def run(x, y):
            m = ref()
            logits, spikes = m.forward(x, training=False)
            loss_sum, n_kept, kept, targets, counts = m.stats_of(logits, spikes, y)  # the evaluation's own
            correct, total = correct_and_total(kept, targets, m.per_step_labels, m.label_last)
            return counts, last_step(spikes), loss_sum / n_kept, correct, total
    else:
        def run(x):
            spikes = ref().forward(x, training=False)[1]  # the unused readout is pruned
            return tf.reduce_sum(spikes, axis=[1, 2]), last_step(spikes)

    cache[key] = tf.function(run, jit_compile=bool(jit_compile), reduce_retracing=True)
    return cache[key]


def _check(model, x, input_is, batch_size):
    if not isinstance(model, RSNN):
        raise UserError(f"count_rsnn expects a tfspike.rsnn.RSNN, got {type(model).__name__}")
    if input_is not in INPUT_KINDS:
        raise UserError(f"input_is must be one of {', '.join(INPUT_KINDS)}, got {input_is!r}")
    if int(batch_size) < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    x = np.asarray(x)
    if not model.built:
        model.build((None,) + tuple(x.shape[1:]))
    n_in = int(model.hidden.cell.input_dim)
    if x.ndim != 3 or x.shape[-1] != n_in or x.shape[0] < 1 or x.shape[1] < 1:
        raise UserError(f"count_rsnn: model {model.name} expects inputs (samples, T, {n_in}), got shape {x.shape}")
    return x


def _run(model, x, y, batch_size, input_is, jit_compile):
    """One pass: per-sample sums (float64) of the hidden spikes and last-step spikes, the input's sum
    and whether it is binary, and with ``y`` the per-batch loss and correct/total counts."""
    run = _compiled_pass(model, y is not None, jit_compile)
    spikes = last = input_sum = 0.0
    binary = True
    losses, correct, total = [], 0.0, 0.0
    for start in range(0, len(x), int(batch_size)):
        xb = x[start:start + int(batch_size)]
        binary = binary and bool(np.all((xb == 0) | (xb == 1)))
        input_sum += float(np.sum(xb, dtype=np.float64))
        xt = tf.constant(xb, tf.float32)
        if y is None:
            s, l = run(xt)
        else:
            s, l, loss, c, n = run(xt, tf.constant(y[start:start + int(batch_size)]))
            losses.append(float(loss))
            correct, total = correct + float(c), total + float(n)
        spikes += float(np.sum(s.numpy(), dtype=np.float64))
        last += float(np.sum(l.numpy(), dtype=np.float64))
    if input_is == "spikes" and not binary:
        raise UserError(f"count_rsnn: input_is='spikes' needs inputs of 0s and 1s, but {model.name}'s inputs "
                        f"of shape {x.shape} hold other values (pass input_is='analog' or 'auto')")
    kind = input_is if input_is != "auto" else ("spikes" if binary else "analog")
    evaluation = None if y is None else (float(np.mean(losses)), correct / total if total else 0.0)
    return kind, spikes, last, input_sum, evaluation


def _report(model, x, kind, spikes, last, input_sum):
    n, steps, n_in = (int(d) for d in x.shape)
    h, o = int(model.hidden_units), int(model.output_units)
    sop, input_spikes = spikes / n, input_sum / n
    recurrent_synops = (spikes - last) / n * h
    input_synops = input_spikes * h if kind == "spikes" else 0.0
    input_macs = float(steps * n_in * h) if kind == "analog" else 0.0
    layers = [
        LayerCount(model.hidden.name, str(model.neuron).lower(), spikes=sop, synops=input_synops + recurrent_synops,
                   macs=input_macs, neuron_updates=float(steps * h)),
        LayerCount(model.readout.name, "readout", spikes=0.0, synops=sop * o, neuron_updates=float(steps * o)),
    ]
    ann_layers = [
        LayerCount(model.hidden.name, "rnn", macs=float(steps * (n_in * h + h * h)), neuron_updates=float(steps * h)),
        LayerCount(model.readout.name, "dense", macs=float(steps * h * o), neuron_updates=float(steps * o)),
    ]
    meta = {"family": "rsnn", "neuron": str(model.neuron), "steps": steps, "input_is": kind,
            "sop": sop, "synapses": {"input": {"spikes": input_spikes if kind == "spikes" else 0.0,
                                               "synops": input_synops, "macs": input_macs},
                                     "recurrent": {"synops": recurrent_synops},
                                     "readout": {"synops": sop * o}}}
    return EnergyReport(layers, ann_layers, n_samples=n, rule=RULE, meta=meta)


def count_rsnn(model, x, batch_size=256, input_is="auto", jit_compile=True):
    """Per-sample operation counts of an :class:`~tfspike.rsnn.model.RSNN` on the inputs ``x`` and of
    its RNN twin (the rule is in the module docstring).

    Args:
        model: a built (or buildable) RSNN with any registered hidden neuron.
        x: inputs ``(samples, T, I)``, spikes (0/1) or analog values.
        batch_size: samples per compiled pass.
        input_is: ``"auto"`` (spikes iff every value is 0 or 1), ``"spikes"`` or ``"analog"``.
        jit_compile: compile the pass with XLA (as ``fit_recipe`` compiles the model).

    Returns:
        An :class:`~tfspike.energy.report.EnergyReport` with the layers ``hidden`` (its spikes = SOP;
        input + recurrent synops, or input MACs) and ``readout``; ``meta`` holds ``input_is``, ``steps``,
        ``sop`` and the input / recurrent / readout split under ``synapses``.
    """
    x = _check(model, x, input_is, batch_size)
    kind, spikes, last, input_sum, _ = _run(model, x, None, batch_size, input_is, jit_compile)
    return _report(model, x, kind, spikes, last, input_sum)


def evaluate_and_count(model, x, y, batch_size=256, input_is="auto", jit_compile=True):
    """The test statistics of :func:`tfspike.rsnn.train.evaluate` and :func:`count_rsnn`'s report from
    **one** pass over ``(x, y)``: ``(stats, report)``.

    ``stats`` has the keys of ``evaluate``: ``loss`` (the mean over batches of the per-step NLL, as
    ``model.evaluate`` logs it), ``accuracy``, ``sop``, ``sop_per_step``, ``firing_rate``.
    """
    x = _check(model, x, input_is, batch_size)
    y = np.asarray(y)
    if len(y) != len(x):
        raise UserError(f"evaluate_and_count: {len(x)} input sequences but {len(y)} labels")
    kind, spikes, last, input_sum, (loss, accuracy) = _run(model, x, y, batch_size, input_is, jit_compile)
    report = _report(model, x, kind, spikes, last, input_sum)
    stats = {"loss": loss, "accuracy": accuracy, "sop": report.meta["sop"]}
    stats.update(derived_stats(stats["sop"], int(x.shape[1]), model.hidden_units))
    return stats, report
