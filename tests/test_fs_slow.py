"""Slow reproductions (20,000-step fits, fs.md §6 C6–C11) and the MNIST conversion check D7.

Run with ``python -m pytest -q -m slow tests/test_fs_slow.py`` (about 4-5 minutes of fitting per K
at K = 16 on 2 free CPU cores; K = 4 and 8 are faster).
"""

import os
import sys

import numpy as np
import pytest

from tfspike.fs.fit import fit_fs

pytestmark = pytest.mark.slow
_cache = {}


def tbpi_fit(K, lr=1e-3):
    if (K, lr) not in _cache:
        _cache[K, lr] = fit_fs("swish", K, init="tbpi", steps=20000, lr=lr)
    return _cache[K, lr]


def test_C6_k4():
    r = tbpi_fit(4)
    assert r.init_loss == pytest.approx(0.0427010, abs=2e-6)
    assert 0.038792 <= r.reported_loss <= 0.038801
    assert r.best_loss <= 0.038797


def test_C7_k8():
    r = tbpi_fit(8)
    assert abs(r.reported_loss - 0.0089463) < 2e-5
    np.testing.assert_allclose(r.h[:4], [3.7185, 2.7313, 2.3589, 1.3815], atol=5e-3)
    np.testing.assert_allclose(r.T[:4], [8.2020, 3.4900, 2.5401, 1.7627], atol=5e-3)


def test_C8_k8_lr1e2():
    r = tbpi_fit(8, lr=1e-2)
    log = dict(r.log)
    assert abs(log[1] - 0.0643081) < 2e-6
    for step, want in ((1001, 0.0093362), (2001, 0.0091058), (3001, 0.0089628)):
        assert abs(log[step] - want) < 2e-5, (step, log[step])
    assert abs(r.reported_loss - 0.0089464) < 2e-5


def test_C9_k12():
    r = tbpi_fit(12)
    assert abs(r.reported_loss - 0.001413) < 3e-4
    assert r.best_loss <= 0.00145


def test_C10_k16():
    r = tbpi_fit(16)
    assert abs(r.reported_loss - 0.000538) < 1e-4
    assert r.best_loss <= 0.00060


def test_C11_tbpi_beats_pretrained_points():
    assert tbpi_fit(12).reported_loss < 0.0020457
    assert tbpi_fit(16).reported_loss < 0.0010419


@pytest.mark.data
def test_D7_mnist_relu_cnn_to_fs_relu(data_dir, tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
    from fs_mnist_cnn import main

    res = main(["--dataset=mnist", "--activation=relu", "--sets=relu_k10", "--epochs=2", f"--data_dir={data_dir}",
                f"--logging_dir={tmp_path}", "--stats_samples=500"])
    assert res["ann_test_accuracy"] >= 0.985
    fs = res["fs"]["relu_k10"]
    assert abs(fs["test_accuracy"] - res["ann_test_accuracy"]) <= 0.005
    assert fs["n_sites"] == 3 and 0 < fs["spikes_per_neuron"] < 10
