"""Tiny dataset files in the real on-disk formats, for loader and CLI tests."""

import gzip
import os
import pickle
import struct

import numpy as np


def write_mnist_npz(root, n_train=200, n_test=100, seed=0):
    """``root/mnist/mnist.npz`` with Keras' keys; images are class-dependent blobs so models can learn."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "mnist"), exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):  # a bright bar whose position encodes the class
            x[i, 2 + 2 * c:5 + 2 * c, 4:24] = 250
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    np.savez(os.path.join(root, "mnist", "mnist.npz"), **arrays)
    return arrays


def write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist(root, n_train=120, n_test=60, seed=1):
    rng = np.random.default_rng(seed)
    d = os.path.join(root, "fashion-mnist")
    os.makedirs(d, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        y = rng.integers(0, 10, n).astype(np.uint8)
        write_idx(os.path.join(d, f"{prefix}-images-idx3-ubyte.gz"), x)
        write_idx(os.path.join(d, f"{prefix}-labels-idx1-ubyte.gz"), y)
        out[f"x_{split}"], out[f"y_{split}"] = x, y
    return out


def write_cifar10(root, per_batch=20, seed=2):
    """``cifar-10-batches-py`` pickles: b"data" (N, 3072) uint8 channel-planar, b"labels" list."""
    rng = np.random.default_rng(seed)
    d = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(d, exist_ok=True)
    images, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (per_batch, 3, 32, 32)).astype(np.uint8)
        y = rng.integers(0, 10, per_batch).tolist()
        with open(os.path.join(d, name), "wb") as f:
            pickle.dump({b"data": x.reshape(per_batch, 3072), b"labels": y, b"batch_label": name.encode()}, f)
        images.append(x.transpose(0, 2, 3, 1))
        labels.append(np.array(y))
    return images, labels


def write_cifar100(root, n=30, seed=3):
    rng = np.random.default_rng(seed)
    d = os.path.join(root, "cifar-100-python")
    os.makedirs(d, exist_ok=True)
    out = {}
    for split in ("train", "test"):
        x = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.uint8)
        y = rng.integers(0, 100, n).tolist()
        with open(os.path.join(d, split), "wb") as f:
            pickle.dump({b"data": x.reshape(n, 3072), b"fine_labels": y, b"coarse_labels": [0] * n}, f)
        out[split] = (x.transpose(0, 2, 3, 1), np.array(y))
    return out
