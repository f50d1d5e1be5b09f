"""Training recipes of the resonate-and-fire RSNNs (spec §4.1).

* Adam (beta 0.9/0.999, eps 1e-8), global-norm clipping where the recipe has it;
* linear per-epoch decay ``lr_e = lr0 (1 - e/E)`` with E the full recipe's epoch count, even in a
  shortened run;
* epoch loop: evaluate val and test before the first epoch and after every epoch, keep the weights of
  the lowest validation loss (atomic ``.weights.h5``), report the test metrics of those weights;
* TerminateOnNaN (the best weights stand), BackupAndRestore (rerun the command to resume),
  TensorBoard logs, a JSON history.
"""

import json
import math
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from tfspike import distribute
from tfspike.data import pipeline
from tfspike.errors import UserError
from tfspike.rsnn.metrics import derived_stats
from tfspike.utils.callbacks import SafeCheckpoint, standard_callbacks
from tfspike.utils.io import save_model_atomic, save_weights_atomic, write_json_atomic


def make_optimizer(learning_rate, clipnorm=None):
    """Adam with eps = 1e-8 and, for (P)S-MNIST, global-norm clipping of the summed-loss gradient."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                                 global_clipnorm=clipnorm or None)


def linear_decay(learning_rate, total_epochs):
    """``epoch -> lr0 * (1 - epoch / E)`` (epoch 0-based; the last epoch runs at lr0 / E)."""
    def schedule(epoch, lr=None):
        return float(learning_rate * (1.0 - epoch / total_epochs))
    return schedule


def make_dataset(x, y, batch_size, shuffle=False, seed=0, max_batches=None):
    """A batched, prefetched float32 ``tf.data`` pipeline (:func:`tfspike.data.pipeline.make_dataset`);
    the last partial batch is kept."""
    return pipeline.make_dataset(x, y, batch_size, shuffle=shuffle, seed=seed, dtype=tf.float32,
                                 max_batches=max_batches)


def evaluate(model, x, y, batch_size, max_batches=None, dataset=None):
    """Test-set statistics: loss (mean over batches of the per-step NLL), accuracy, SOP, SOP/step, rate.

    ``dataset``: an already built ``make_dataset(x, y, batch_size, max_batches=max_batches)`` to reuse.
    """
    if dataset is None:
        dataset = make_dataset(x, y, batch_size, max_batches=max_batches)
    logs = distribute.evaluate(model, dataset)
    steps = int(x.shape[1])
    out = {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"]), "sop": float(logs["sop"])}
    out.update(derived_stats(out["sop"], steps, model.hidden_units))
    return out


class BestValCheckpoint(SafeCheckpoint):
    """Keeps the weights of the lowest ``val_loss`` (atomic) and records value and epoch in a JSON file,
    so a resumed run keeps comparing against the right best value."""

    def __init__(self, weights_path, state_path):
        super().__init__(weights_path=weights_path, monitor="val_loss", mode="min")
        self.state_path = state_path
        self.best_epoch = None
        if os.path.exists(state_path):
            with open(state_path) as f:
                state = json.load(f)
            self.best, self.best_epoch = float(state["best_val_loss"]), int(state["best_epoch"])

    def record_initial(self, model, val_loss):
        """Epoch 0 (untrained net): the first 'best'."""
        self.set_model(model)
        if math.isfinite(val_loss) and val_loss < self.best:
            self.best = val_loss
            self.best_epoch = 0
            save_weights_atomic(model, self.weights_path)
            write_json_atomic(self.state_path, {"best_val_loss": self.best, "best_epoch": 0})

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.saved_epoch == epoch:
            self.best_epoch = epoch + 1  # evaluation index: epochs trained so far
            write_json_atomic(self.state_path, {"best_val_loss": self.best, "best_epoch": self.best_epoch})


class EpochEvaluation(keras.callbacks.Callback):
    """After every epoch: evaluate the test set, add ``test_*`` and the learning rate to the logs
    (TensorBoard shows them) and append the row to a JSON history that survives resumption."""

    def __init__(self, x_test, y_test, batch_size, history_path, max_batches=None):
        super().__init__()
        self.x, self.y, self.batch_size, self.max_batches = x_test, y_test, batch_size, max_batches
        self.dataset = make_dataset(x_test, y_test, batch_size, max_batches=max_batches)  # built once
        self.history_path = history_path
        self.rows = []
        if os.path.exists(history_path):
            with open(history_path) as f:
                self.rows = json.load(f)

    def add_row(self, row):
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        write_json_atomic(self.history_path, self.rows)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        test = evaluate(self.model, self.x, self.y, self.batch_size, self.max_batches, dataset=self.dataset)
        logs.update({f"test_{k}": v for k, v in test.items() if k in ("loss", "accuracy", "sop")})
        lr = self.model.optimizer.learning_rate
        row = {"epoch": epoch + 1, "lr": float(lr.numpy() if hasattr(lr, "numpy") else lr)}
        row.update({k: float(v) for k, v in logs.items() if np.ndim(v) == 0})
        self.add_row(row)


def fit_recipe(model, train, val, test, *, learning_rate, total_epochs, epochs, batch_size, val_batch_size,
               test_batch_size, clipnorm=None, logging_dir="logs", prefix="run", seed=0, jit_compile=True,
               max_batches=None, logger=None, verbose=1, extra_callbacks=(), final_evaluation=None):
    """Train ``model`` with the reference protocol; returns ``(test_stats_of_best, info)``.

    ``final_evaluation(model, x, y)`` replaces the closing test evaluation of the best weights (e.g.
    :func:`tfspike.energy.rsnn.evaluate_and_count`, which also counts operations in the same pass); it
    returns the stats dict of :func:`evaluate`.

    ``train``, ``val``, ``test`` are ``(x, y)`` numpy pairs. ``epochs`` may be smaller than
    ``total_epochs`` (E of the LR schedule). The best-val weights are loaded into ``model`` on return.
    """
    log = logger.info if logger is not None else print
    if not 0 <= epochs <= total_epochs:
        raise UserError(f"epochs must be in [0, {total_epochs}] (the schedule's E), got {epochs}")
    os.makedirs(logging_dir, exist_ok=True)
    if not model.built:
        model.build((None,) + tuple(train[0].shape[1:]))
    model.compile(optimizer=make_optimizer(learning_rate, clipnorm), jit_compile=jit_compile)
    best_path = os.path.join(logging_dir, f"{prefix}_best.weights.h5")
    ckpt = BestValCheckpoint(best_path, os.path.join(logging_dir, f"{prefix}_best.json"))
    history = EpochEvaluation(*test, test_batch_size, os.path.join(logging_dir, f"{prefix}_history.json"),
                              max_batches)
    backup_dir = os.path.join(logging_dir, "backup", prefix)
    resuming = os.path.isdir(backup_dir) and os.listdir(backup_dir)
    if not resuming:
        ckpt.best, ckpt.best_epoch = math.inf, None
        history.rows = []
        val0 = evaluate(model, *val, val_batch_size, max_batches)
        test0 = evaluate(model, *test, test_batch_size, max_batches)
        history.add_row({"epoch": 0, "val_loss": val0["loss"], "val_accuracy": val0["accuracy"],
                         "val_sop": val0["sop"], **{f"test_{k}": v for k, v in test0.items()
                                                    if k in ("loss", "accuracy", "sop")}})
        log(f"epoch 0 (untrained): val loss {val0['loss']:.4f} acc {val0['accuracy']:.4f} | "
            f"test loss {test0['loss']:.4f} acc {test0['accuracy']:.4f} SOP {test0['sop']:.1f}")
        ckpt.record_initial(model, val0["loss"])
    else:
        log(f"resuming from {backup_dir} (best val loss so far {ckpt.best:.4f} at epoch {ckpt.best_epoch})")
    nan_stop = False
    if epochs > 0:
        callbacks = [history, keras.callbacks.LearningRateScheduler(linear_decay(learning_rate, total_epochs))]
        callbacks += standard_callbacks(logging_dir, prefix, checkpoint=ckpt) + list(extra_callbacks)
        train_ds = make_dataset(*train, batch_size, shuffle=True, seed=seed, max_batches=max_batches)
        val_ds = make_dataset(*val, val_batch_size, max_batches=max_batches)
        distribute.fit(model, train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=verbose,
                       shuffle=False)
        nan_stop = ckpt.saw_nan
        if nan_stop:
            log("training stopped on a non-finite loss; the best weights so far are kept")
    if os.path.exists(best_path):
        with warnings.catch_warnings():  # the file also holds optimizer slots of another step count
            warnings.simplefilter("ignore", UserWarning)
            model.load_weights(best_path)
    if final_evaluation is not None:
        stats = final_evaluation(model, *test)
    else:
        stats = evaluate(model, *test, test_batch_size, max_batches)
    info = {"best_epoch": ckpt.best_epoch, "best_val_loss": ckpt.best, "epochs_run": len(history.rows) - 1,
            "nan_stop": nan_stop, "history": history.rows, "best_weights": best_path}
    return stats, info


def save_best_model(model, path):
    """The best model as a ``.keras`` file (atomic)."""
    save_model_atomic(model, path)
    return path
