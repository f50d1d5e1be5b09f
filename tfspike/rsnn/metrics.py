"""Loss, prediction and statistics of the resonate-and-fire RSNNs (spec section 3).

* Training loss: ``L = sum over kept steps of the batch-mean NLL`` (the gradient is taken of this sum);
  the logged loss is ``L / |kept steps|``.
* Prediction: per step (ECG) ``argmax o_t``; sequence tasks ``argmax`` of the time-mean of the raw
  potentials over the kept steps (with ``label_last`` the last step only).
* SOP: hidden spikes over all T steps per sample; SOP/step = SOP/T; firing rate = SOP/(T H).
"""

import keras
import tensorflow as tf


def expand_targets(y, kept_logits, per_step_labels, label_last, sub_seq_length):
    """Integer targets with the shape of ``kept_logits`` minus the class axis."""
    y = tf.cast(y, tf.int32)
    if per_step_labels:
        if label_last:
            return y[:, -1]
        return y[:, sub_seq_length:]
    if label_last:
        return y
    return tf.broadcast_to(y[:, None], tf.shape(kept_logits)[:2])


def step_nll(kept_logits, targets):
    """Per-(sample, step) negative log-likelihood, natural log."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=kept_logits)


def summed_loss(nll):
    """Sum over kept steps of the batch-mean NLL, and the number of kept steps."""
    if nll.shape.rank == 1:  # label_last: a single step
        return tf.reduce_mean(nll), 1
    return tf.reduce_sum(tf.reduce_mean(nll, axis=0)), nll.shape[1]


def correct_and_total(kept_logits, targets, per_step_labels, label_last):
    """(number correct, number counted) in this batch, as float32 scalars."""
    if per_step_labels or label_last:
        pred = tf.argmax(kept_logits, axis=-1, output_type=tf.int32)
        hits = tf.cast(tf.equal(pred, targets), tf.float32)
    else:  # sequence label: argmax of the mean raw potential over kept steps
        pred = tf.argmax(tf.reduce_mean(kept_logits, axis=1), axis=-1, output_type=tf.int32)
        hits = tf.cast(tf.equal(pred, targets[:, 0]), tf.float32)
    return tf.reduce_sum(hits), tf.cast(tf.size(hits), tf.float32)


@keras.saving.register_keras_serializable(package="tfspike")
class CountAccuracy(keras.metrics.Metric):
    """Accuracy accumulated as (correct, total) sums over batches: exact over a whole epoch."""

    def __init__(self, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, correct, total):
        self.correct.assign_add(tf.cast(correct, self.dtype))
        self.total.assign_add(tf.cast(total, self.dtype))

    def result(self):
        return tf.math.divide_no_nan(self.correct, self.total)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)


def derived_stats(sop, steps, hidden_units):
    """SOP per step and firing rate from SOP per sample."""
    return {"sop_per_step": sop / steps, "firing_rate": sop / (steps * hidden_units)}
