"""The RSNN of Higuchi et al. (2024): input → one fully recurrent BRF | RF | ALIF layer → LI readout.

``build_rsnn(neuron, task, **overrides)`` builds the network of a task preset (spec §4.2/§4.3);
``recipe(neuron, task, **overrides)`` gives the training hyperparameters; ``import_reference_npz``
loads a reference PyTorch checkpoint saved as ``.npz`` (layout of ``shared/golden/brf/README.md``).

Example:
    >>> model = build_rsnn("BRF", "ECG")          # 4-36-6, 1,734 parameters
    >>> logits = model(x)                          # (batch, 1300, 6)
    >>> logits, spikes = model.forward(x)          # all steps, plus hidden spikes (batch, 1300, 36)
"""

import copy
import os

import keras
import numpy as np
import tensorflow as tf

from tfspike.errors import UserError, WeightMismatchError
from tfspike.rsnn.alif import ALIF
from tfspike.rsnn.brf import BRF, RF
from tfspike.rsnn.metrics import CountAccuracy, correct_and_total, expand_targets, step_nll, summed_loss
from tfspike.rsnn.readout import LIReadout

NEURONS = {"BRF": BRF, "RF": RF, "ALIF": ALIF}
TASKS = ("SMNIST", "PSMNIST", "ECG", "SHD")

# Network shape and initialisation per task (spec §4.2; RF shares the BRF column).
_SHAPES = {
    "SMNIST": dict(input_units=1, hidden_units=256, output_units=10, steps=784, per_step_labels=False),
    "PSMNIST": dict(input_units=1, hidden_units=256, output_units=10, steps=784, per_step_labels=False),
    "ECG": dict(input_units=4, hidden_units=36, output_units=6, steps=1300, per_step_labels=True),
    "SHD": dict(input_units=700, hidden_units=128, output_units=20, steps=250, per_step_labels=False),
}
_RESONATOR = {
    "SMNIST": dict(omega_init=(15.0, 50.0), b_offset_init=(0.1, 1.0), tau_out_init=(20.0, 5.0), label_last=True,
                   sub_seq_length=0, learning_rate=0.1, batch_size=256, val_batch_size=256, test_batch_size=256,
                   epochs=300, clipnorm=1.0),
    "PSMNIST": dict(omega_init=(15.0, 85.0), b_offset_init=(0.1, 1.0), tau_out_init=(20.0, 1.0), label_last=False,
                    sub_seq_length=0, learning_rate=0.1, batch_size=256, val_batch_size=256, test_batch_size=256,
                    epochs=300, clipnorm=1.0),
    "ECG": dict(omega_init=(3.0, 5.0), b_offset_init=(0.1, 1.0), tau_out_init=(20.0, 1.0), label_last=False,
                sub_seq_length=0, learning_rate=0.1, batch_size=16, val_batch_size=61, test_batch_size=141,
                epochs=400, clipnorm=None),
    "SHD": dict(omega_init=(5.0, 10.0), b_offset_init=(2.0, 3.0), tau_out_init=(20.0, 5.0), label_last=False,
                sub_seq_length=0, learning_rate=0.075, batch_size=32, val_batch_size=256, test_batch_size=256,
                epochs=20, clipnorm=None),
}
_ALIF = {
    # (P)S-MNIST ALIF trains with the reference's TBPTT(50): 17 Adam updates per minibatch (spec §4.3).
    "SMNIST": dict(tau_mem_init=(20.0, 5.0), tau_adp_init=(200.0, 50.0), tau_out_init=(20.0, 5.0), label_last=True,
                   sub_seq_length=0, learning_rate=1e-3, batch_size=256, val_batch_size=256, test_batch_size=256,
                   epochs=300, clipnorm=None, tbptt=50),
    "PSMNIST": dict(tau_mem_init=(20.0, 5.0), tau_adp_init=(200.0, 50.0), tau_out_init=(20.0, 5.0), label_last=False,
                    sub_seq_length=0, learning_rate=1e-3, batch_size=256, val_batch_size=256, test_batch_size=256,
                    epochs=300, clipnorm=None, tbptt=50),
    "ECG": dict(tau_mem_init=(20.0, 0.5), tau_adp_init=(7.0, 0.2), tau_out_init=(20.0, 0.5), label_last=False,
                sub_seq_length=10, learning_rate=0.05, batch_size=64, val_batch_size=61, test_batch_size=141,
                epochs=400, clipnorm=None),
    "SHD": dict(tau_mem_init=(20.0, 5.0), tau_adp_init=(150.0, 10.0), tau_out_init=(20.0, 5.0), label_last=False,
                sub_seq_length=10, learning_rate=0.075, batch_size=32, val_batch_size=256, test_batch_size=256,
                epochs=20, clipnorm=None),
}
_NETWORK_KEYS = ("input_units", "hidden_units", "output_units", "steps", "per_step_labels", "label_last",
                 "sub_seq_length", "omega_init", "b_offset_init", "tau_mem_init", "tau_adp_init", "tau_out_init",
                 "use_bias", "dt", "gamma", "theta", "max_omega_dt", "theta0", "beta", "surrogate", "bptt", "tbptt")
_TRAIN_KEYS = ("learning_rate", "batch_size", "val_batch_size", "test_batch_size", "epochs", "clipnorm")


def _check_neuron(neuron):
    if neuron not in NEURONS:
        raise UserError(f"unknown neuron {neuron!r}; choose from {', '.join(NEURONS)}")


def _check(neuron, task):
    _check_neuron(neuron)
    if task not in _SHAPES:
        raise UserError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")


def preset(neuron, task, **overrides):
    """The full preset (network and training) of ``neuron`` on ``task`` with ``overrides`` applied."""
    _check(neuron, task)
    p = dict(_SHAPES[task])
    p.update(copy.deepcopy((_ALIF if neuron == "ALIF" else _RESONATOR)[task]))
    p["use_bias"] = False
    p.setdefault("tbptt", 0)
    unknown = set(overrides) - set(_NETWORK_KEYS) - set(_TRAIN_KEYS)
    if unknown:
        raise UserError(f"unknown preset override(s): {', '.join(sorted(unknown))}")
    p.update({k: v for k, v in overrides.items() if v is not None})
    p["neuron"], p["task"] = neuron, task
    return p


def recipe(neuron, task, **overrides):
    """Training hyperparameters of the preset (learning rate, batch sizes, epochs E, global clip norm)."""
    p = preset(neuron, task, **overrides)
    return {k: p[k] for k in _TRAIN_KEYS}


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
        neuron: ``"BRF"``, ``"RF"`` or ``"ALIF"``.
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
    """

    def __init__(self, neuron="BRF", hidden_units=36, output_units=6, hidden_config=None, readout_config=None,
                 per_step_labels=False, label_last=False, sub_seq_length=0, tbptt=0, **kwargs):
        super().__init__(**kwargs)
        _check_neuron(neuron)
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
        self.hidden = NEURONS[neuron](self.hidden_units, name="hidden", **self.hidden_config)
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
        logits, spikes = self.forward(x, training=training)
        kept = self.keep(logits)
        targets = expand_targets(y, kept, self.per_step_labels, self.label_last, self.sub_seq_length)
        loss_sum, n_kept = summed_loss(step_nll(kept, targets))
        return loss_sum, n_kept, kept, targets, tf.reduce_sum(spikes, axis=[1, 2])

    def _update_metrics(self, loss_sum, n_kept, kept, targets, counts):
        self.loss_tracker.update_state(loss_sum / n_kept)
        self.accuracy_tracker.update_state(*correct_and_total(kept, targets, self.per_step_labels, self.label_last))
        self.sop_tracker.update_state(counts)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, y = data[0], data[1]
        if self.tbptt:
            return self._tbptt_train_step(x, y)
        with tf.GradientTape() as tape:
            loss_sum, n_kept, kept, targets, counts = self.loss_and_stats(x, y, training=True)
        grads = tape.gradient(loss_sum, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return self._update_metrics(loss_sum, n_kept, kept, targets, counts)

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
            grads = tape.gradient(loss_sum, self.trainable_variables)
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
        return self._update_metrics(logged_sum, n_kept, kept, targets, counts)

    def test_step(self, data):
        x, y = data[0], data[1]
        return self._update_metrics(*self.loss_and_stats(x, y, training=False))

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


def count_parameters(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def build_rsnn(neuron, task, **overrides):
    """The RSNN of ``neuron`` (BRF | RF | ALIF) for ``task`` (SMNIST | PSMNIST | ECG | SHD), built.

    ``overrides`` replace preset entries, e.g. ``hidden_units=64``, ``omega_init=(3, 5)``,
    ``sub_seq_length=10``, ``use_bias=True`` or ``surrogate=DoubleGaussian(form="fgi")``.
    """
    p = preset(neuron, task, **overrides)
    hidden = {"use_bias": p["use_bias"]}
    if neuron == "ALIF":
        hidden.update(tau_mem_init=p["tau_mem_init"], tau_adp_init=p["tau_adp_init"])
        for k in ("theta0", "beta"):
            if k in p:
                hidden[k] = p[k]
    else:
        hidden.update(omega_init=p["omega_init"], b_offset_init=p["b_offset_init"])
        keys = ("dt", "theta", "max_omega_dt") + (("gamma",) if neuron == "BRF" else ())
        hidden.update({k: p[k] for k in keys if k in p})
    for k in ("surrogate", "bptt"):
        if k in p:
            hidden[k] = p[k]
    readout = {"tau_mem_init": p["tau_out_init"], "use_bias": p["use_bias"] and neuron == "ALIF"}
    model = RSNN(neuron, p["hidden_units"], p["output_units"], hidden_config=hidden, readout_config=readout,
                 per_step_labels=p["per_step_labels"], label_last=p["label_last"],
                 sub_seq_length=p["sub_seq_length"], tbptt=p["tbptt"], name=f"{task.lower()}_{neuron.lower()}_rsnn")
    model.build((None, p["steps"], p["input_units"]))
    return model


def _assign(variable, value, key, path):
    value = np.asarray(value, dtype=np.float32)
    if tuple(variable.shape) != value.shape:
        raise WeightMismatchError(f"{path}: {key} has shape {value.shape}, the model's {variable.path} "
                                  f"needs {tuple(variable.shape)}")
    variable.assign(value)


def import_reference_npz(model, path):
    """Load a reference (PyTorch) checkpoint stored as ``.npz`` into a built :class:`RSNN`.

    Keys: ``hidden/linear/weight`` (H, I+H) → kernel = W.T; ``out/linear/weight`` (O, H) → readout
    kernel = W_out.T; ``hidden/omega``, ``hidden/b_offset`` (BRF/RF) or ``hidden/tau_mem``,
    ``hidden/tau_adp`` (ALIF) and ``out/tau_mem`` copied raw; optional ``hidden/linear/bias`` and
    ``out/linear/bias``; ``hidden/linear/mask`` and ``epoch`` ignored.
    """
    if not os.path.exists(path):
        raise UserError(f"reference checkpoint not found: {path}")
    try:
        data = dict(np.load(path, allow_pickle=False))
    except Exception as e:  # noqa: BLE001 - any unreadable file is one clear line
        raise UserError(f"cannot read reference checkpoint {path}: {e}") from e
    cell, readout = model.hidden.cell, model.readout.cell
    neuron_keys = {"BRF": ("omega", "b_offset"), "RF": ("omega", "b_offset"), "ALIF": ("tau_mem", "tau_adp")}
    required = ["hidden/linear/weight", "out/linear/weight", "out/tau_mem"]
    required += [f"hidden/{k}" for k in neuron_keys[model.neuron]]
    missing = [k for k in required if k not in data]
    if missing:
        raise WeightMismatchError(f"{path} is not a {model.neuron} reference checkpoint: missing {', '.join(missing)} "
                                  f"(has {', '.join(sorted(data))})")
    _assign(cell.kernel, data["hidden/linear/weight"].T, "hidden/linear/weight (transposed)", path)
    for k in neuron_keys[model.neuron]:
        _assign(getattr(cell, k), data[f"hidden/{k}"], f"hidden/{k}", path)
    _assign(readout.kernel, data["out/linear/weight"].T, "out/linear/weight (transposed)", path)
    _assign(readout.tau_mem, data["out/tau_mem"], "out/tau_mem", path)
    for key, layer in (("hidden/linear/bias", cell), ("out/linear/bias", readout)):
        if key in data:
            if layer.bias is None:
                raise WeightMismatchError(f"{path} has {key} but the model was built without a bias (use_bias=False)")
            _assign(layer.bias, data[key], key, path)
        elif layer.bias is not None:
            raise WeightMismatchError(f"{path} has no {key} but the model was built with use_bias=True")
    return {k: int(data[k]) for k in ("epoch",) if k in data}
