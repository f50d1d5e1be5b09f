"""Data loaders of the resonate-and-fire tasks (spec §4.4-4.6, D8): ECG-QTDB, (PS-)MNIST, SHD."""

import gzip
import os
import shutil

import numpy as np
import pytest

from tfspike.data.ecg import load_ecg, split_train_val
from tfspike.data.shd import bin_sample, load_shd, read_shd_h5
from tfspike.data.smnist import check_permutation, load_permutation, load_smnist, ps_mnist_permutation
from tfspike.errors import MissingDataError, UserError

h5py = pytest.importorskip("h5py")


# ---------------------------------------------------------------- ECG
@pytest.mark.data
def test_ecg_shapes_and_label_counts(data_dir):
    (xtr, ytr), (xte, yte) = load_ecg(data_dir)
    assert xtr.shape == (618, 1300, 4) and xte.shape == (141, 1300, 4) and xtr.dtype == np.float32
    assert set(np.unique(xtr)) <= {0.0, 1.0}  # the padded last step (x = -1) is dropped
    np.testing.assert_array_equal(np.bincount(ytr.ravel(), minlength=6),
                                  [166171, 49448, 46481, 35742, 242613, 262945])
    np.testing.assert_array_equal(np.bincount(yte.ravel(), minlength=6), [43175, 10135, 9835, 9056, 55849, 55250])
    _, (_, masked) = load_ecg(data_dir, unlabeled="mask")
    assert (masked == -1).sum() == 19034  # all-zero label rows
    tr, va = split_train_val(618, 61, seed=0)
    assert len(tr) == 557 and len(va) == 61 and not set(tr) & set(va)


def test_ecg_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(MissingDataError, match=r"ECG-QTDB not found: .*ecg/QTDB_train.mat does not exist"):
        load_ecg(str(tmp_path))


# ---------------------------------------------------------------- (PS-)MNIST
def test_ps_mnist_permutation_prefix_and_validation(tmp_path):
    perm = ps_mnist_permutation(0)
    np.testing.assert_array_equal(perm[:10], [693, 85, 647, 392, 765, 14, 299, 711, 55, 31])
    np.save(tmp_path / "perm.npy", perm)
    np.testing.assert_array_equal(load_permutation(str(tmp_path / "perm.npy")), perm)
    with pytest.raises(UserError, match="permutation of 0..783"):
        check_permutation(np.arange(783))
    with pytest.raises(UserError, match="permutation of 0..783"):
        check_permutation(np.zeros(784, np.int64))
    with pytest.raises(UserError, match="not found"):
        load_permutation(str(tmp_path / "missing.npy"))


@pytest.mark.data
def test_smnist_and_psmnist(data_dir):
    (xtr, ytr), (xte, yte), perm = load_smnist(data_dir)
    assert perm is None and xtr.shape == (60000, 784, 1) and xte.shape == (10000, 784, 1)
    assert xtr.dtype == np.float32 and 0.0 <= xtr.min() and xtr.max() == 1.0
    np.testing.assert_array_equal(np.bincount(yte), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    _, (xte_p, yte_p), perm = load_smnist(data_dir, permuted=True)
    np.testing.assert_array_equal(perm, ps_mnist_permutation(0))
    np.testing.assert_array_equal(xte_p[:, :, 0], xte[:, perm, 0])
    np.testing.assert_array_equal(yte_p, yte)


# ---------------------------------------------------------------- SHD
def _write_shd(path, samples, labels, time_dtype=np.float32):
    with h5py.File(path, "w") as f:
        vt = h5py.vlen_dtype(np.dtype(time_dtype))
        vu = h5py.vlen_dtype(np.dtype(np.uint16))
        times = f.create_dataset("spikes/times", (len(samples),), dtype=vt)
        units = f.create_dataset("spikes/units", (len(samples),), dtype=vu)
        for i, (t, u) in enumerate(samples):
            times[i] = np.asarray(t, time_dtype)
            units[i] = np.asarray(u, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.int64))
        f.create_dataset("extra/speaker", data=np.zeros(len(samples), np.int64))


TABLE = [(0.0, 5), (0.0021, 699), (0.0101, 10), (0.0102, 10), (0.5, 0), (0.9970, 3), (0.9955, 3), (1.2, 7)]


def test_shd_reference_binning_table(tmp_path):
    path = tmp_path / "shd_train.h5"
    t, u = zip(*TABLE)
    _write_shd(path, [(t, u)], [7])
    x, y = read_shd_h5(str(path))
    assert x.shape == (1, 250, 700) and x.dtype == np.uint8 and y.tolist() == [7]
    assert x.sum() == 4
    ones = sorted(zip(*np.nonzero(x[0])))
    assert ones == [(0, 695), (1, 1), (3, 690), (249, 697)]
    assert x[0, 3, 690] == 1  # two spikes in one cell stay binary


def _slow_reference(times, units, dt_bin=0.004):
    """The reference's loop: per bin i, the not-yet-used spikes with t <= i*dt_bin."""
    n_bins = int(1 / dt_bin)
    out = np.zeros((n_bins, 700), np.uint8)
    used = np.zeros(len(times), bool)
    for i in range(n_bins):
        sel = (times <= i * dt_bin) & ~used
        for j in np.nonzero(sel)[0]:
            if units[j] > 0:
                out[i, 700 - units[j]] = 1
        used |= sel
    return out


@pytest.mark.parametrize("time_dtype", [np.float16, np.float32, np.float64])
def test_shd_randomised_against_reference_loop(tmp_path, time_dtype):
    rng = np.random.default_rng(int(np.dtype(time_dtype).itemsize))
    samples = []
    for _ in range(4):
        n = 400
        t = np.concatenate([rng.random(n) * 1.1, rng.integers(0, 260, 40) * 0.004])  # include boundary ties
        samples.append((t.astype(time_dtype), rng.integers(0, 700, n + 40)))
    path = tmp_path / "shd_test.h5"
    _write_shd(path, samples, [0, 1, 2, 3], time_dtype)
    x, _ = read_shd_h5(str(path))
    for i, (t, u) in enumerate(samples):
        np.testing.assert_array_equal(x[i], _slow_reference(np.asarray(t, time_dtype), u))


def test_shd_clean_binning_and_loader(tmp_path):
    x = bin_sample(np.array([0.0, 0.0041, 0.5], np.float32), np.array([0, 3, 699]), reference_binning=False)
    assert sorted(zip(*np.nonzero(x))) == [(0, 0), (1, 3), (125, 699)]
    shd = tmp_path / "shd"
    shd.mkdir()
    t, u = zip(*TABLE)
    _write_shd(shd / "shd_train.h5", [(t, u)] * 3, [1, 2, 3])
    _write_shd(tmp_path / "plain_test.h5", [(t, u)], [4])
    with open(tmp_path / "plain_test.h5", "rb") as src, gzip.open(shd / "shd_test.h5.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (xtr, ytr), (xte, yte) = load_shd(str(tmp_path))
    assert xtr.shape == (3, 250, 700) and xte.shape == (1, 250, 700) and ytr.tolist() == [1, 2, 3]
    assert xte.sum() == 4 and yte.tolist() == [4]
    assert any(n.startswith("shd_train.h5.binned-") for n in os.listdir(shd))  # uint8 cache written
    (xtr2, _), _ = load_shd(str(tmp_path))  # from the cache
    np.testing.assert_array_equal(xtr2, xtr)


def test_shd_missing_and_bad_files(tmp_path):
    with pytest.raises(MissingDataError, match="SHD not found"):
        load_shd(str(tmp_path))
    bad = tmp_path / "shd_train.h5"
    bad.write_text("not hdf5")
    with pytest.raises(MissingDataError, match="cannot read SHD file"):
        read_shd_h5(str(bad))
