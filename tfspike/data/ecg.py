"""ECG-QTDB (Yin et al. 2021 preprocessing): 4 binary level-crossing channels, 6 per-step classes.

Files: ``<data_dir>/ecg/QTDB_train.mat`` and ``QTDB_test.mat`` (MATLAB 5, read with scipy):
``x`` int16 (N, 1301, 4), ``y`` uint8 (N, 1301, 6) one-hot. The last step is padding (x = -1) and is
dropped, so T = 1300. Labels are the argmax of the one-hot row; all-zero rows (unlabeled steps, about
10 % of test steps) become class 0 by default, as in the reference (``unlabeled="class0"``), or -1
with ``unlabeled="mask"`` (callers must then drop them).
"""

import numpy as np

from tfspike.data.paths import load_or_download
from tfspike.errors import MissingDataError, UserError
from tfspike.utils.files import file_error, read_mat

ECG_FILES = {"train": "ecg/QTDB_train.mat", "test": "ecg/QTDB_test.mat"}
RELEASE = "github.com/byin-cwi/Efficient-spiking-networks"
RECOPY = f"copy it again from the Yin et al. release ({RELEASE})"
STEPS = 1300
N_CLASSES = 6


def read_qtdb_mat(path, unlabeled="class0"):
    """``(x float32 (N, 1300, 4), y int64 (N, 1300))`` from one QTDB .mat file."""
    if unlabeled not in ("class0", "mask"):
        raise UserError(f"unlabeled must be 'class0' or 'mask', got {unlabeled!r}")
    mat = read_mat(path, "ECG-QTDB", RECOPY, required=("x", "y"), error=MissingDataError)
    x, y = mat["x"], mat["y"]
    if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != y.shape[:2] or x.shape[1] < STEPS + 1:
        raise file_error(path, "ECG-QTDB", f"unexpected shapes x {x.shape}, y {y.shape} (expected (N, "
                         f"{STEPS + 1}, 4) and (N, {STEPS + 1}, 6))", RECOPY, MissingDataError)
    x = x[:, :STEPS, :].astype(np.float32)
    onehot = y[:, :STEPS, :]
    labels = np.argmax(onehot, axis=-1).astype(np.int64)  # first maximum: all-zero rows → class 0
    if unlabeled == "mask":
        labels[onehot.max(axis=-1) == 0] = -1
    return x, labels


def load_ecg(data_dir=None, unlabeled="class0"):
    """``(x_train, y_train), (x_test, y_test)``: 618 and 141 sequences of 1300 steps."""
    out = []
    for split in ("train", "test"):
        rel = ECG_FILES[split]
        out.append(load_or_download("ECG-QTDB", rel, data_dir, lambda p: read_qtdb_mat(p, unlabeled),
                                    _no_download(rel)))
    return tuple(out)


def _no_download(rel):
    def download():
        raise MissingDataError(f"ECG-QTDB has no public download in tfspike; copy {rel} from the Yin et al. "
                               f"release ({RELEASE})")
    return download


def split_train_val(n, n_val, seed=0):
    """Seeded split of ``range(n)``: ``(train_idx, val_idx)``, val = the first ``n_val`` of a permutation."""
    perm = np.random.RandomState(seed).permutation(n)
    return perm[n_val:], perm[:n_val]
