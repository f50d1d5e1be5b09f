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


def write_qtdb(root, n_train=4, n_test=2, seed=4):
    """``root/ecg/QTDB_{train,test}.mat`` in the QTDB layout: ``x`` int16 (N, 1301, 4) level-crossing spikes
    with the padded last step -1, ``y`` uint8 (N, 1301, 6) one-hot."""
    import scipy.io

    rng = np.random.default_rng(seed)
    d = os.path.join(root, "ecg")
    os.makedirs(d, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 2, (n, 1301, 4)).astype(np.int16)
        x[:, -1] = -1
        y = np.eye(6, dtype=np.uint8)[rng.integers(0, 6, (n, 1301))]
        scipy.io.savemat(os.path.join(d, f"QTDB_{split}.mat"), {"x": x, "y": y})
        out[split] = (x, y)
    return out


def write_shd(root, n_train=3, n_test=2, seed=5):
    """``root/shd/shd_{train,test}.h5`` in the SHD layout: variable-length ``spikes/times`` (s) and
    ``spikes/units`` (0..699), and ``labels`` (0..19)."""
    import h5py

    rng = np.random.default_rng(seed)
    d = os.path.join(root, "shd")
    os.makedirs(d, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        with h5py.File(os.path.join(d, f"shd_{split}.h5"), "w") as f:
            times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.dtype(np.float32)))
            units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype(np.uint16)))
            for i in range(n):
                k = int(rng.integers(5, 50))
                times[i] = np.sort(rng.random(k)).astype(np.float32)
                units[i] = rng.integers(0, 700, k).astype(np.uint16)
            f.create_dataset("labels", data=rng.integers(0, 20, n).astype(np.int64))


def truncate_file(path, keep=0.5):
    """Cut ``path`` to the first ``keep`` fraction of its bytes (an interrupted copy). Returns ``path``."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))
    return path


def overwrite_bytes(path, offset=0, n=64, value=b"\xa5"):
    """Overwrite ``n`` bytes of ``path`` from ``offset`` (negative: from the end) with ``value`` (bit rot)."""
    size = os.path.getsize(path)
    start = offset if offset >= 0 else size + offset
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(value * min(n, size - start))
    return path
