"""The benchmark RSNN of Higuchi et al. (2024): input → one fully recurrent spiking layer → LI readout,
with the reference loss, statistics and truncated-BPTT training step (and its schedule,
:func:`tbptt_chunks`). Presets and the builder are in :mod:`tfspike.rsnn.presets`.

Example:
    >>> model = RSNN("BRF", 36, 6, per_step_labels=True, hidden_config=dict(omega_init=(3, 5)))
    >>> model.build((None, 1300, 4))
    >>> logits, spikes = model.forward(x)          # (batch, 1300, 6), (batch, 1300, 36)
"""

import keras
import tensorflow as tf

from tfspike.distribute import batch_share
from tfspike.errors import UserError
from tfspike.rsnn.metrics import CountAccuracy, correct_and_total, expand_targets, step_nll, summed_loss
from tfspike.rsnn.neurons import neuron_spec
from tfspike.rsnn.readout import LIReadout


def tbptt_chunks(steps, every, first_kept=0):
    """Inclusive ``(start, end)`` time chunks of the reference's truncated BPTT (spec §4.3).

    An update fires at every kept step t (t >= ``first_kept``) with ``t % every == 0`` and at the last
    step; each chunk runs from the step after the previous update to the next one. T = 784, every = 50
    gives 17 chunks: (0, 0), (1, 50), (51, 100), ..., (701, 750), (751, 783).
    """
    steps, every, first_kept = int(steps), int(every), int(first_kept)
    if every < 1:
        raise UserError(f"tbptt must be >= 1 to truncate (0 = full BPTT), got {every}")
    if not 0 <= first_kept < steps:
        raise UserError(f"sub_seq_length {first_kept} leaves no kept step in {steps} steps")
    updates = sorted({t for t in range(first_kept, steps) if t % every == 0} | {steps - 1})
    chunks, start = [], 0
    for u in updates:
        chunks.append((start, u))
        start = u + 1
    return chunks



@keras.saving.register_keras_serializable(package="tfspike")
class RSNN(keras.Model):
    """Input → one fully recurrent spiking layer → LI readout, with the reference loss and statistics.

    Args:
        neuron: a registered neuron name (``"BRF"``, ``"RF"``, ``"ALIF"``; see :mod:`tfspike.rsnn.neurons`).
        hidden_units: H.
        output_units: O (classes).
        hidden_config: extra arguments of the hidden sequence layer (init ranges, dt, surrogate, ...).
        readout_config: extra arguments of :class:`LIReadout` (``tau_mem_init``, ``use_bias``).
        per_step_labels: targets are ``(batch, T)`` per-step labels (ECG) instead of ``(batch,)``.
        label_last: loss, prediction and output use only the last step.
        sub_seq_length: the first s outputs are dropped from the loss, accuracy and output.
        tbptt: 0 (default) trains with full BPTT; N > 0 with the reference's truncated BPTT: within
            each minibatch the states carry over, are cut from the graph after each update, and an
            optimizer update fires at every kept t with t % N == 0 and at T - 1 (:func:`tbptt_chunks`).
            Each update uses the summed loss of its chunk's kept steps; with ``label_last`` only the
            loss of the update step itself (so label-last ALIF on S-MNIST trains on t = 0, 50, ..., 783).
            Evaluation is unchanged. The chunks are differentiated by plain autodiff through the
            hidden layer's loop (:meth:`run`), so the hidden ``bptt="manual"`` setting is not used
            when tbptt > 0.

    Input shape: ``(batch, T, I)``. Output shape: ``(batch, T - s, O)`` potentials, or ``(batch, O)``
    with ``label_last``. ``forward(x)`` returns all T potentials and the hidden spikes ``(batch, T, H)``.

    ``fit`` backpropagates the *sum* over kept steps of the batch-mean NLL and logs it divided by the
    number of kept steps as ``loss``; ``accuracy`` and ``sop`` (hidden spikes per sample) are logged too.
    Under a ``tf.distribute`` strategy each replica's loss is weighted by its share of the global batch
    (:func:`tfspike.distribute.batch_share`; the gradients are summed across replicas), so training and
    the logged metrics are those of the global batch, even when the last batch splits unevenly.
    """

    def __init__(self, neuron="BRF", hidden_units=36, output_units=6, hidden_config=None, readout_config=None,
                 per_step_labels=False, label_last=False, sub_seq_length=0, tbptt=0, **kwargs):
        super().__init__(**kwargs)
        spec = neuron_spec(neuron)
        if int(sub_seq_length) < 0:
            raise UserError(f"sub_seq_length must be >= 0, got {sub_seq_length}")
        self.neuron = neuron
        self.hidden_units, self.output_units = int(hidden_units), int(output_units)
        self.hidden_config = dict(hidden_config or {})
        self.readout_config = dict(readout_config or {})
        self.per_step_labels, self.label_last = bool(per_step_labels), bool(label_last)
        self.sub_seq_length = int(sub_seq_length)
        if int(tbptt) < 0:
            raise UserError(f"tbptt must be >= 0 (0 = full BPTT), got {tbptt}")
        self.tbptt = int(tbptt)
        self.hidden = spec.layer_class()(self.hidden_units, name="hidden", **self.hidden_config)
        self.readout = LIReadout(self.output_units, name="readout", **self.readout_config)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = CountAccuracy(name="accuracy")
        self.sop_tracker = keras.metrics.Mean(name="sop")

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.readout.build((input_shape[0], input_shape[1], self.hidden_units))
        self.built = True

    def forward(self, x, training=False):
        """All T readout potentials ``(B, T, O)`` and the hidden spikes ``(B, T, H)``."""
        spikes = self.hidden(x, training=training)
        return self.readout(spikes, training=training), spikes

    def keep(self, logits):
        """The kept outputs: ``o_{T-1}`` with label_last, else ``o_t`` for ``t >= sub_seq_length``."""
        if self.label_last:
            return logits[:, -1]
        return logits[:, self.sub_seq_length:] if self.sub_seq_length else logits

    def call(self, x, training=False):
        return self.keep(self.forward(x, training=training)[0])

    def loss_and_stats(self, x, y, training=False):
        """(summed loss L, kept steps, kept logits, targets, spike count per sample)."""
        return self.stats_of(*self.forward(x, training=training), y)

    def stats_of(self, logits, spikes, y):
        """:meth:`loss_and_stats` of a forward pass's ``(logits, spikes)`` (the energy counter reuses it)."""
        kept = self.keep(logits)
        targets = expand_targets(y, kept, self.per_step_labels, self.label_last, self.sub_seq_length)
        loss_sum, n_kept = summed_loss(step_nll(kept, targets))
        return loss_sum, n_kept, kept, targets, tf.reduce_sum(spikes, axis=[1, 2])

    def _update_metrics(self, loss_sum, n_kept, kept, targets, counts, share):
        # the loss metric is the mean over (global) batches, as the reference logs it: one value per batch
        self.loss_tracker.update_state(loss_sum / tf.cast(n_kept, loss_sum.dtype), sample_weight=share)
        self.accuracy_tracker.update_state(*correct_and_total(kept, targets, self.per_step_labels, self.label_last))
        self.sop_tracker.update_state(counts)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, y = data[0], data[1]
        if self.tbptt:
            return self._tbptt_train_step(x, y)
        share = batch_share(tf.shape(x)[0])  # under a strategy: this replica's part of the global batch
        grads, (loss_sum, n_kept, kept, targets, counts) = self._on_replica(self._gradients)(x, y, share)
        self.optimizer.apply(grads, self.trainable_variables)
        return self._update_metrics(loss_sum, n_kept, kept, targets, counts, share)

    def _gradients(self, x, y, share):
        """Gradients of the share-weighted summed loss, and the step's statistics."""
        with tf.GradientTape() as tape:
            stats = self.loss_and_stats(x, y, training=True)
            scaled = stats[0] * share  # the replicas' gradients sum to that of the global batch
        return tape.gradient(scaled, self.trainable_variables), stats

    def _on_replica(self, method):
        """``method`` (a bound method), XLA-compiled on its own when the model is compiled with
        ``jit_compile`` and runs on several replicas: the pass through time is compiled, the all-reduces
        and the optimizer update stay outside XLA (compiling the whole step fails under a strategy with
        Keras 3, keras-team/keras#19005). On one replica Keras compiles the whole step itself."""
        ctx = tf.distribute.get_replica_context()
        if not (self.jit_compile and ctx is not None and ctx.num_replicas_in_sync > 1):
            return method
        compiled = self.__dict__.setdefault("_xla_methods", {})
        if method.__name__ not in compiled:
            compiled[method.__name__] = tf.function(method, jit_compile=True)
        return compiled[method.__name__]

    def _chunk_targets(self, y, logits, start, end):
        """(logits, targets) of the loss terms of chunk [start, end] (logits cover the chunk)."""
        y = tf.cast(y, tf.int32)
        if self.label_last:  # only the update step itself
            return logits[:, -1], (y[:, end] if self.per_step_labels else y)
        lo = max(start, self.sub_seq_length)
        kept = logits[:, lo - start:]
        targets = y[:, lo:end + 1] if self.per_step_labels else tf.broadcast_to(y[:, None], tf.shape(kept)[:2])
        return kept, targets

    def _tbptt_train_step(self, x, y):
        steps = x.shape[1]
        if steps is None:
            raise UserError("truncated BPTT needs a static sequence length")
        batch = tf.shape(x)[0]
        share = batch_share(batch)
        states = tuple(self.hidden.cell.get_initial_state(batch))
        o = self.readout.cell.get_initial_state(batch)[0]
        counts = tf.zeros((batch,), x.dtype)
        logged_sum, kept_logits = 0.0, []
        for start, end in tbptt_chunks(steps, self.tbptt, self.sub_seq_length):
            with tf.GradientTape() as tape:
                spikes, new_states = self.hidden.run(x[:, start:end + 1], initial_state=states)
                logits, o_new = self.readout.run(spikes, initial_state=o)
                chunk_logits, targets = self._chunk_targets(y, logits, start, end)
                loss_sum, _ = summed_loss(step_nll(chunk_logits, targets))
                scaled = loss_sum * share
            grads = tape.gradient(scaled, self.trainable_variables)
            self.optimizer.apply(grads, self.trainable_variables)
            states = tuple(tf.stop_gradient(s) for s in new_states)
            o = tf.stop_gradient(o_new)
            counts = counts + tf.reduce_sum(spikes, axis=[1, 2])
            if not self.label_last or end == steps - 1:  # the terms of the full-BPTT loss, for the log
                logged_sum = logged_sum + loss_sum
                kept_logits.append(chunk_logits)
        kept = kept_logits[-1] if self.label_last else tf.concat(kept_logits, axis=1)
        targets = expand_targets(y, kept, self.per_step_labels, self.label_last, self.sub_seq_length)
        n_kept = 1 if self.label_last else kept.shape[1]
        return self._update_metrics(logged_sum, n_kept, kept, targets, counts, share)

    def test_step(self, data):
        x, y = data[0], data[1]
        stats = self._on_replica(self.loss_and_stats)(x, y, training=False)
        return self._update_metrics(*stats, batch_share(tf.shape(x)[0]))

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker, self.sop_tracker]

    def get_config(self):
        hidden = self.hidden.get_config()
        readout = self.readout.get_config()
        for cfg in (hidden, readout):
            for k in ("name", "trainable", "dtype", "units", "return_state"):
                cfg.pop(k, None)
        return {"name": self.name, "trainable": self.trainable, "neuron": self.neuron,
                "hidden_units": self.hidden_units, "output_units": self.output_units, "hidden_config": hidden,
                "readout_config": readout, "per_step_labels": self.per_step_labels, "label_last": self.label_last,
                "sub_seq_length": self.sub_seq_length, "tbptt": self.tbptt}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
