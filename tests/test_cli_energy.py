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


def test_ttfs_energy_counts_the_relu_twins_positive_activations(tmp_path):
    """``--energy`` for SNN (counted inside the evaluation pass) and ReLU runs (counting the TTFS network
    it maps to) on the same data give the same block; the hidden spikes equal the ReLU twin's positive
    activations and the second layer's synops are those spikes × its units."""
    import keras

    from tfspike.data.images import load_image_dataset
    from tfspike.data.preprocess import ttfs_preprocess
    from tfspike.models.ttfs_zoo import build_relu_model

    write_mnist_npz(tmp_path, n_train=100, n_test=60)
    logs = tmp_path / "logs"
    common = [f"--data_dir={tmp_path}", f"--logging_dir={logs}", "--model_name=FC2_e", "--data_name=MNIST",
              "--epochs=0", "--energy", "--val_split=0"]
    assert main(["--model_type=ReLU", "--save=True", *common]) == 0
    assert main(["--model_type=SNN", "--load=True", *common]) == 0
    relu_block = results(logs, "MNIST-FC2_e-ReLU")["energy"]
    snn_block = results(logs, "MNIST-FC2_e-SNN")["energy"]
    assert snn_block["per_sample"] == pytest.approx(relu_block["per_sample"], rel=1e-12)
    assert _energy_png(logs, "MNIST-FC2_e-SNN") and _energy_png(logs, "MNIST-FC2_e-ReLU")
    # the oracle: the ReLU twin's positive hidden activations on the same test images
    relu = build_relu_model("FC2_e", "MNIST")
    relu.load_weights(str(logs / "MNIST-FC2_e_relu.weights.h5"))
    _, (x_test, _) = load_image_dataset("MNIST", str(tmp_path))
    x = ttfs_preprocess("MNIST", x_test, flatten=True)
    dense = [layer for layer in relu.layers if isinstance(layer, keras.layers.Dense)]
    acts = keras.Model(relu.inputs, [layer.output for layer in dense[:-1]]).predict(x, verbose=0)
    acts = acts if isinstance(acts, list) else [acts]
    hidden = [row for row in snn_block["layers"] if row["kind"] == "dense"]
    assert len(hidden) == len(acts) >= 1
    for row, a in zip(hidden, acts):
        assert row["spikes"] == pytest.approx(float((a > 0).sum()) / len(x), rel=1e-12)
    readout = next(row for row in snn_block["layers"] if row["kind"] == "readout")
    assert readout["synops"] == pytest.approx(hidden[-1]["spikes"] * dense[-1].units, rel=1e-12)
    assert snn_block["ann_twin"]["macs"] == sum(int(np.prod(layer.kernel.shape)) for layer in dense)
