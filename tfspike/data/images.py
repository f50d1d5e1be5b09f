"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 as raw uint8 arrays.

Local layouts (as in ``shared/data``):

- ``mnist/mnist.npz`` — Keras npz keys ``x_train, y_train, x_test, y_test``;
- ``fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` — gzip IDX files;
- ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` — the python pickle batches;
- ``cifar-100-python/{train,test}`` — the python pickles (fine labels).

Each loader returns ``(x_train, y_train), (x_test, y_test)`` with images ``(N, H, W)`` (grey) or
``(N, H, W, 3)`` uint8 and labels ``(N,)`` int64. Model-specific preprocessing lives with the models.
"""

import os
import struct

import numpy as np

from tfspike.data.paths import load_or_download
from tfspike.errors import MissingDataError
from tfspike.utils.files import REDOWNLOAD, check_file, file_error, open_npz, read_gzip, read_pickle

MNIST_FILE = "mnist/mnist.npz"
FMNIST_DIR = "fashion-mnist"
FMNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"


def _labels(y):
    return np.asarray(y).reshape(-1).astype(np.int64)


# A file missing from a dataset folder: the folder is incomplete.
INCOMPLETE = "copy the whole folder again, or delete it so the dataset is downloaded again"


def _bad(path, what, problem):
    """A dataset file that is there but unusable (one line; re-downloading fixes it)."""
    return file_error(path, what, problem, REDOWNLOAD, MissingDataError)


def _same_length(path, what, x, y):
    if len(x) != len(y):
        raise _bad(path, what, f"{len(x)} images but {len(y)} labels")


def read_mnist_npz(path):
    f = open_npz(path, "MNIST", required=("x_train", "y_train", "x_test", "y_test"), error=MissingDataError)
    for split in ("train", "test"):
        _same_length(path, "MNIST", f[f"x_{split}"], f[f"y_{split}"])
    return (f["x_train"], _labels(f["y_train"])), (f["x_test"], _labels(f["y_test"]))


def read_idx(path, what="IDX"):
    """Read a (gzip) IDX file: magic (0, 0, dtype, ndim), ndim big-endian uint32 sizes, then data."""
    path = check_file(path, what, INCOMPLETE, MissingDataError)
    if path.endswith(".gz"):
        raw = read_gzip(path, what, error=MissingDataError)
    else:
        with open(path, "rb") as f:
            raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise _bad(path, what, f"not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise _bad(path, what, f"truncated IDX header ({len(raw)} bytes)")
    shape = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise _bad(path, what, f"truncated: the header says {shape}, found {data.size} bytes of data")
    return data.reshape(shape)


def read_fmnist_dir(directory):
    xtr, ytr, xte, yte = (read_idx(os.path.join(directory, f), "Fashion-MNIST") for f in FMNIST_FILES)
    _same_length(os.path.join(directory, FMNIST_FILES[1]), "Fashion-MNIST", xtr, ytr)
    _same_length(os.path.join(directory, FMNIST_FILES[3]), "Fashion-MNIST", xte, yte)
    return (xtr, _labels(ytr)), (xte, _labels(yte))


def _cifar_batch(path, what, label_key):
    """``(images (N, 32, 32, 3) uint8, labels (N,) int64)`` of one CIFAR python pickle."""
    check_file(path, what, INCOMPLETE, MissingDataError)
    d = read_pickle(path, what, required=(b"data", label_key), error=MissingDataError)
    x = np.asarray(d[b"data"], dtype=np.uint8)
    y = _labels(d[label_key])
    if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(x) != len(y):
        raise _bad(path, what, f"data of shape {x.shape} with {len(y)} labels; expected (N, 3072) and N labels")
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y  # channels last, as keras.datasets


def read_cifar10_dir(directory):
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for n in names:  # a missing batch is reported before any is read
        check_file(os.path.join(directory, n), "CIFAR-10", INCOMPLETE, MissingDataError)
    batches = [_cifar_batch(os.path.join(directory, n), "CIFAR-10", b"labels") for n in names]
    xtr = np.concatenate([x for x, _ in batches[:5]])
    ytr = np.concatenate([y for _, y in batches[:5]])
    return (xtr, ytr), batches[5]


def read_cifar100_dir(directory):
    return tuple(_cifar_batch(os.path.join(directory, n), "CIFAR-100", b"fine_labels") for n in ("train", "test"))


def _keras_download(name):
    import keras

    if name == "CIFAR100":
        (xtr, ytr), (xte, yte) = keras.datasets.cifar100.load_data(label_mode="fine")
    else:
        mod = {"MNIST": keras.datasets.mnist, "FMNIST": keras.datasets.fashion_mnist,
               "CIFAR10": keras.datasets.cifar10}[name]
        (xtr, ytr), (xte, yte) = mod.load_data()
    return (xtr, _labels(ytr)), (xte, _labels(yte))


# name -> (human name, local path relative to the data folder, reader)
IMAGE_DATASETS = {
    "MNIST": ("MNIST", MNIST_FILE, read_mnist_npz),
    "FMNIST": ("Fashion-MNIST", FMNIST_DIR + "/" + FMNIST_FILES[0], lambda p: read_fmnist_dir(os.path.dirname(p))),
    "CIFAR10": ("CIFAR-10", CIFAR10_DIR + "/data_batch_1", lambda p: read_cifar10_dir(os.path.dirname(p))),
    "CIFAR100": ("CIFAR-100", CIFAR100_DIR + "/train", lambda p: read_cifar100_dir(os.path.dirname(p))),
}
ALIASES = {"FashionMNIST": "FMNIST", "FASHION_MNIST": "FMNIST", "fashion_mnist": "FMNIST"}


def load_image_dataset(name, data_dir=None):
    """Raw ``(x_train, y_train), (x_test, y_test)`` for MNIST | FMNIST | CIFAR10 | CIFAR100."""
    name = ALIASES.get(name, name)
    if name not in IMAGE_DATASETS:
        raise MissingDataError(f"unknown image dataset {name!r}; choose from {sorted(IMAGE_DATASETS)}")
    human, rel, reader = IMAGE_DATASETS[name]
    return load_or_download(human, rel, data_dir, reader, lambda: _keras_download(name))
