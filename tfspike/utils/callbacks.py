"""Training callbacks shared by every family: atomic checkpoints, NaN stop with the last good weights
kept, resumable training and TensorBoard logs."""

import math
import os

import keras
import numpy as np

from tfspike.utils.io import save_model_atomic, save_weights_atomic


def _finite_logs(logs):
    return all(math.isfinite(float(v)) for v in (logs or {}).values() if np.ndim(v) == 0)


def _finite_weights(model):
    return all(np.all(np.isfinite(w)) for w in model.get_weights() if np.issubdtype(np.asarray(w).dtype, np.floating))


class SafeCheckpoint(keras.callbacks.Callback):
    """Save the model at the end of each epoch, atomically, only while losses and weights are finite.

    Args:
        weights_path: ``.weights.h5`` file (optional).
        keras_path: ``.keras`` file (optional).
        monitor: a log key; when given only improvements are saved (``mode`` "min" or "max").

    After a NaN (see :class:`keras.callbacks.TerminateOnNaN`) nothing is overwritten, and
    :meth:`restore` puts the last good weights back into the model.
    """

    def __init__(self, weights_path=None, keras_path=None, monitor=None, mode="min"):
        super().__init__()
        self.weights_path, self.keras_path = weights_path, keras_path
        self.monitor, self.mode = monitor, mode
        self.best = math.inf if mode == "min" else -math.inf
        self.saved_epoch = None
        self.saw_nan = False

    def on_epoch_end(self, epoch, logs=None):
        if not _finite_logs(logs) or not _finite_weights(self.model):
            self.saw_nan = True
            self.model.stop_training = True
            return
        if self.monitor is not None:
            value = (logs or {}).get(self.monitor)
            if value is None:
                return
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = float(value)
        if self.weights_path:
            save_weights_atomic(self.model, self.weights_path)
        if self.keras_path:
            save_model_atomic(self.model, self.keras_path)
        self.saved_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.saw_nan = True

    def restore(self):
        """Load the last saved weights back (after NaN, or to use the best epoch). Returns True if done."""
        if self.weights_path and os.path.exists(self.weights_path):
            self.model.load_weights(self.weights_path)
            return True
        return False


def standard_callbacks(logging_dir, prefix, checkpoint=None, resume=True):
    """Progress-safe callbacks: NaN stop, optional checkpoint, resumable backup, TensorBoard.

    ``BackupAndRestore`` keeps ``<logging_dir>/backup/<prefix>`` while a run is in progress, so an
    interrupted ``fit`` resumes at the last finished epoch when the same command runs again.
    """
    cbs = [keras.callbacks.TerminateOnNaN()]
    if checkpoint is not None:
        cbs.append(checkpoint)
    if resume:
        # double_checkpoint: a run killed while saving its backup resumes from the one before
        cbs.append(keras.callbacks.BackupAndRestore(os.path.join(logging_dir, "backup", prefix), double_checkpoint=True))
    cbs.append(keras.callbacks.TensorBoard(os.path.join(logging_dir, "tensorboard", prefix),
                                           write_graph=False, profile_batch=0))
    return cbs


def backup_epoch(backup_dir):
    """Epochs finished by the interrupted ``fit`` whose ``BackupAndRestore`` folder is ``backup_dir``
    (from its ``training_metadata.json``; ``fit`` resumes after them), or None when there is none."""
    import json

    try:
        with open(os.path.join(backup_dir, "training_metadata.json")) as f:
            return int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resume_point(logging_dir, prefix):
    """:func:`backup_epoch` of the backup ``<logging_dir>/backup/<prefix>``."""
    return backup_epoch(os.path.join(logging_dir, "backup", prefix))
