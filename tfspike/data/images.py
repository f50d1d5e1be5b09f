"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 as raw uint8 arrays.

Local layouts (as in ``shared/data``):

- ``mnist/mnist.npz`` — Keras npz keys ``x_train, y_train, x_test, y_test``;
- ``fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` — gzip IDX files;
- ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` — the python pickle batches;
- ``cifar-100-python/{train,test}`` — the python pickles (fine labels).

Each loader returns ``(x_train, y_train), (x_test, y_test)`` with images ``(N, H, W)`` (grey) or
``(N, H, W, 3)`` uint8 and labels ``(N,)`` int64. Model-specific preprocessing lives with the models.
"""

import gzip
import os
import pickle
import struct

import numpy as np

from tfspike.data.paths import load_or_download
from tfspike.errors import MissingDataError

MNIST_FILE = "mnist/mnist.npz"
FMNIST_DIR = "fashion-mnist"
FMNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"


def _labels(y):
    return np.asarray(y).reshape(-1).astype(np.int64)


def read_mnist_npz(path):
    with np.load(path, allow_pickle=False) as f:
        return (f["x_train"], _labels(f["y_train"])), (f["x_test"], _labels(f["y_test"]))


def read_idx(path):
    """Read a (gzip) IDX file: magic (0, 0, dtype, ndim), ndim big-endian uint32 sizes, then data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise MissingDataError(f"{path} is not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    shape = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise MissingDataError(f"{path} is truncated: header says {shape}, found {data.size} bytes")
    return data.reshape(shape)


def read_fmnist_dir(directory):
    paths = [os.path.join(directory, f) for f in FMNIST_FILES]
    for p in paths:
        if not os.path.exists(p):
            raise MissingDataError(f"Fashion-MNIST file missing: {p}")
    xtr, ytr, xte, yte = (read_idx(p) for p in paths)
    return (xtr, _labels(ytr)), (xte, _labels(yte))


def _unpickle(path):
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _cifar_images(d):
    x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return x.transpose(0, 2, 3, 1)  # channels last, as keras.datasets


def read_cifar10_dir(directory):
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for n in names:
        if not os.path.exists(os.path.join(directory, n)):
            raise MissingDataError(f"CIFAR-10 file missing: {os.path.join(directory, n)}")
    batches = [_unpickle(os.path.join(directory, n)) for n in names]
    xtr = np.concatenate([_cifar_images(b) for b in batches[:5]])
    ytr = np.concatenate([_labels(b[b"labels"]) for b in batches[:5]])
    return (xtr, ytr), (_cifar_images(batches[5]), _labels(batches[5][b"labels"]))


def read_cifar100_dir(directory):
    out = []
    for n in ("train", "test"):
        p = os.path.join(directory, n)
        if not os.path.exists(p):
            raise MissingDataError(f"CIFAR-100 file missing: {p}")
        b = _unpickle(p)
        out.append((_cifar_images(b), _labels(b[b"fine_labels"])))
    return tuple(out)


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
