"""Sequential MNIST (S-MNIST) and permuted sequential MNIST (PS-MNIST).

Each image is read pixel by pixel, row-major: ``x.reshape(N, 784, 1) / 255`` (raw intensity in
[0, 1], no normalisation, no spike coding), T = 784, I = 1. PS-MNIST applies one fixed permutation
along time to every split: ``x'[:, t] = x[:, perm[t]]`` with
``perm = np.random.RandomState(perm_seed).permutation(784)`` (default ``perm_seed = 0``, first entries
693, 85, 647, 392, ...), or an explicit permutation (e.g. the ``.npy`` saved next to a model, or the
reference's ``*_permuted_idx.pt``, which uses the same convention: ``x[permuted_idx]`` along time).
"""

import os

import numpy as np

from tfspike.data.images import load_image_dataset
from tfspike.errors import UserError
from tfspike.io.torch_pt import read_permutation_pt
from tfspike.utils.files import check_file, file_error, read_npy

STEPS = 784
PERMUTATION_HINT = "give the _permutation.npy written next to the PS-MNIST model"


def ps_mnist_permutation(perm_seed=0):
    """The seeded PS-MNIST permutation of the 784 time steps (int64)."""
    return np.random.RandomState(perm_seed).permutation(STEPS).astype(np.int64)


def load_permutation(path):
    """A permutation of 0..783 from a ``.npy``, a PyTorch ``.pt`` (the reference's ``*_permuted_idx.pt``,
    read without PyTorch) or a ``.txt`` (one integer per line) file, validated."""
    path = os.fspath(path)
    if path.endswith(".npy"):
        perm = read_npy(path, "permutation", PERMUTATION_HINT)
    elif path.endswith((".pt", ".pth")):
        perm = read_permutation_pt(path)
    else:
        check_file(path, "permutation", PERMUTATION_HINT)
        try:
            perm = np.loadtxt(path, dtype=np.int64)
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise file_error(path, "permutation", f"not a text file of integers ({str(e).splitlines()[0]})",
                             PERMUTATION_HINT) from None
    return check_permutation(perm, f"permutation file {path}")


def check_permutation(perm, what="permutation"):
    perm = np.asarray(perm)
    if perm.shape != (STEPS,) or not np.issubdtype(perm.dtype, np.integer) or \
            not np.array_equal(np.sort(perm), np.arange(STEPS)):
        raise UserError(f"{what} must be a permutation of 0..{STEPS - 1} (784 integers), "
                        f"got shape {perm.shape} dtype {perm.dtype}")
    return perm.astype(np.int64)


def to_sequences(images, permutation=None):
    """uint8 images (N, 28, 28) → float32 sequences (N, 784, 1) in [0, 1], optionally permuted in time."""
    x = images.reshape(len(images), STEPS).astype(np.float32) / 255.0
    if permutation is not None:
        x = x[:, permutation]
    return x[..., None]


def load_smnist(data_dir=None, permuted=False, perm_seed=0, permutation=None):
    """``(x_train, y_train), (x_test, y_test), permutation`` (``permutation`` is None for S-MNIST)."""
    (xtr, ytr), (xte, yte) = load_image_dataset("MNIST", data_dir)
    perm = None
    if permutation is not None:
        perm = check_permutation(permutation)
    elif permuted:
        perm = ps_mnist_permutation(perm_seed)
    return (to_sequences(xtr, perm), ytr.astype(np.int64)), (to_sequences(xte, perm), yte.astype(np.int64)), perm
