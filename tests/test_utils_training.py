"""Nothing is lost: atomic files, NaN stops keep the last good checkpoint, interrupted fits resume."""

import json
import os

import keras
import numpy as np
import pytest

from tfspike.utils.callbacks import SafeCheckpoint, standard_callbacks
from tfspike.utils.io import save_weights_atomic, write_json_atomic


def tiny_model():
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return m


def test_atomic_json_replaces_whole_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "r.json"
    write_json_atomic(p, {"a": np.float32(1.5), "nan": float("nan"), "arr": np.arange(3)})
    assert json.loads(p.read_text()) == {"a": 1.5, "nan": None, "arr": [0, 1, 2]}
    assert os.listdir(tmp_path) == ["r.json"]


def test_failed_atomic_write_keeps_the_previous_checkpoint(tmp_path):
    m = tiny_model()
    p = tmp_path / "m.weights.h5"
    save_weights_atomic(m, p)
    before = p.read_bytes()

    class Broken:
        def save_weights(self, path):
            with open(path, "wb") as f:
                f.write(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError):
        save_weights_atomic(Broken(), p)
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.weights.h5"]


def test_nan_stops_training_and_restores_last_good_weights(tmp_path):
    m = tiny_model()
    x = np.ones((8, 3), "float32")
    ckpt = SafeCheckpoint(weights_path=str(tmp_path / "good.weights.h5"))

    class PoisonAtEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                self.model.layers[0].kernel.assign(np.full((3, 2), np.nan, "float32"))

    m.fit(x, np.zeros((8, 2)), epochs=5, verbose=0,
          callbacks=[PoisonAtEpoch()] + standard_callbacks(str(tmp_path), "run", ckpt))
    assert ckpt.saw_nan and ckpt.saved_epoch == 1
    assert ckpt.restore()
    assert np.isfinite(m.layers[0].kernel.numpy()).all()


def test_interrupted_fit_resumes_from_last_epoch(tmp_path):
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    m = tiny_model()
    with pytest.raises(KeyboardInterrupt):
        m.fit(x, y, epochs=4, verbose=0, callbacks=[Record(), *standard_callbacks(str(tmp_path), "run"), Interrupt()])
    m2 = tiny_model()
    m2.fit(x, y, epochs=4, verbose=0, callbacks=[Record(), *standard_callbacks(str(tmp_path), "run")])
    assert seen == [0, 1, 2, 3]  # the second run starts at epoch 2
    assert not os.path.exists(tmp_path / "backup" / "run" / "training_metadata.json")
