"""``--energy`` through main.py in every family: the block in the results JSON is the family counter's
report on the same data, the table is logged and the bar chart written into the run's record."""

import os

import numpy as np
import pytest

from datafiles import write_mnist_npz
from records import record_file, results
from tfspike.cli import main


def _energy_png(logs, record):
    return os.path.exists(record_file(logs, record, "_energy.png"))


@pytest.mark.golden
@pytest.mark.data
def test_rsnn_energy_of_the_reference_ecg_checkpoint(golden_dir, data_dir, tmp_path):
    from tfspike.data.ecg import load_ecg
    from tfspike.energy.rsnn import count_rsnn
    from tfspike.rsnn.presets import build_rsnn
    from tfspike.rsnn.reference_io import import_reference_npz

    npz = str(golden_dir / "brf" / "ecg_brf.npz")
    assert main(["--model_type=BRF", "--data_name=ECG", f"--data_dir={data_dir}", "--epochs=0", "--load", npz,
                 "--energy", "--logging_dir", str(tmp_path)]) == 0
    res = results(tmp_path, "ECG-BRF")
    energy = res["energy"]
    model = build_rsnn("BRF", "ECG")
    import_reference_npz(model, npz)
    _, (x_test, _) = load_ecg(data_dir)
    expected = count_rsnn(model, x_test, batch_size=141).to_dict("45nm_fp32")
    assert energy["per_sample"] == pytest.approx(expected["per_sample"], rel=1e-9)
    assert energy["ann_twin"]["macs"] == expected["ann_twin"]["macs"]
    # one definition of hidden spikes: the SOP the evaluation reports is the hidden layer's spike count
    assert energy["layers"][0]["spikes"] == pytest.approx(res["sop_per_sample"], rel=1e-9)
    assert set(energy["joules_by_profile"]) >= {"45nm_fp32", "loihi"} and _energy_png(tmp_path, "ECG-BRF")
