"""Image loaders read tiny files written in the real on-disk formats; missing data gives one clear line."""

import numpy as np
import pytest

from datafiles import write_cifar10, write_cifar100, write_fashion_mnist, write_mnist_npz
from tfspike.data.images import load_image_dataset
from tfspike.data.preprocess import split_validation, ttfs_preprocess
from tfspike.errors import MissingDataError


def test_mnist_npz(tmp_path):
    arrays = write_mnist_npz(tmp_path)
    (xtr, ytr), (xte, yte) = load_image_dataset("MNIST", str(tmp_path))
    np.testing.assert_array_equal(xtr, arrays["x_train"])
    np.testing.assert_array_equal(yte, arrays["y_test"])
    assert xtr.dtype == np.uint8 and ytr.dtype == np.int64


def test_fashion_mnist_idx_gz(tmp_path):
    arrays = write_fashion_mnist(tmp_path)
    (xtr, ytr), (xte, yte) = load_image_dataset("FMNIST", str(tmp_path))
    np.testing.assert_array_equal(xtr, arrays["x_train"])
    np.testing.assert_array_equal(ytr, arrays["y_train"])
    assert xte.shape == (60, 28, 28)


def test_cifar10_pickles_channels_last(tmp_path):
    images, labels = write_cifar10(tmp_path)
    (xtr, ytr), (xte, yte) = load_image_dataset("CIFAR10", str(tmp_path))
    assert xtr.shape == (100, 32, 32, 3) and xte.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(xtr[:20], images[0])
    np.testing.assert_array_equal(yte, labels[5])


def test_cifar100_fine_labels(tmp_path):
    out = write_cifar100(tmp_path)
    (xtr, ytr), (xte, yte) = load_image_dataset("CIFAR100", str(tmp_path))
    np.testing.assert_array_equal(xtr, out["train"][0])
    np.testing.assert_array_equal(ytr, out["train"][1])


@pytest.mark.parametrize("name,expected", [("MNIST", "mnist/mnist.npz"),
                                           ("CIFAR10", "cifar-10-batches-py/data_batch_1"),
                                           ("FMNIST", "fashion-mnist/train-images-idx3-ubyte.gz")])
def test_missing_dataset_names_the_file(tmp_path, name, expected):
    with pytest.raises(MissingDataError) as e:
        load_image_dataset(name, str(tmp_path))
    msg = str(e.value)
    assert expected in msg and "\n" not in msg and "TFSPIKE_DATA" in msg


def test_truncated_cifar_folder_names_missing_batch(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(MissingDataError, match="test_batch"):
        load_image_dataset("CIFAR10", str(tmp_path))


def test_reference_preprocessing_and_validation_split():
    x = np.full((10, 32, 32, 3), 120.707 + 64.15, np.float64).astype(np.uint8)
    out = ttfs_preprocess("CIFAR10", x)
    np.testing.assert_allclose(out, (x.astype(np.float64) - 120.707) / (64.15 + 1e-7), rtol=1e-6)
    m = ttfs_preprocess("MNIST", np.full((4, 28, 28), 255, np.uint8), flatten=True)
    assert m.shape == (4, 784) and (m == 1.0).all()
    (a, b), (c, d) = split_validation(np.arange(10), np.arange(10), 0.2)
    assert list(c) == [8, 9] and list(a) == list(range(8))  # the last part of the training data


@pytest.mark.data
def test_real_mnist_and_fashion_mnist(data_dir):
    (xtr, ytr), (xte, yte) = load_image_dataset("MNIST", data_dir)
    assert xtr.shape == (60000, 28, 28) and list(ytr[:5]) == [5, 0, 4, 1, 9]
    assert np.bincount(yte).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    (ftr, fytr), _ = load_image_dataset("FMNIST", data_dir)
    assert ftr.shape == (60000, 28, 28) and (np.bincount(fytr) == 6000).all()
