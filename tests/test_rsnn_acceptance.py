"""Reduced-budget acceptance runs of spec §6.3 (A1-A4): the full recipes with their full LR schedules,
stopped early, on the real data. Minutes to hours on CPU, so all are ``slow``:

    python -m pytest -q -m slow tests/test_rsnn_acceptance.py
"""

import pathlib
import sys

import pytest
from records import results

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def _run(tmp_path, data_dir, model_type, data_name, epochs):
    from main import main

    rc = main([f"--model_type={model_type}", f"--data_name={data_name}", "--data_dir", data_dir,
               f"--epochs={epochs}", "--verbose=0", "--plots=false", "--seed=0", "--logging_dir", str(tmp_path)])
    assert rc == 0
    return results(tmp_path, f"{data_name}-{model_type}")


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("model_type", ["BRF", "RF"])
def test_a1_a2_ecg_30_epochs(tmp_path, data_dir, model_type):
    res = _run(tmp_path, data_dir, model_type, "ECG", 30)
    assert res["test_accuracy"] >= 0.80, res["test_accuracy"]


@pytest.mark.slow
@pytest.mark.data
def test_a3_ecg_alif_30_epochs(tmp_path, data_dir):
    res = _run(tmp_path, data_dir, "ALIF", "ECG", 30)
    hist = res["history"]
    assert min(r["val_loss"] for r in hist[1:]) < hist[0]["val_loss"]
    assert res["test_accuracy"] > 0.305  # above the majority-class rate


@pytest.mark.slow
@pytest.mark.data
def test_a4_smnist_brf_3_epochs(tmp_path, data_dir):
    res = _run(tmp_path, data_dir, "BRF", "SMNIST", 3)
    assert res["test_accuracy"] >= 0.90, res["test_accuracy"]
