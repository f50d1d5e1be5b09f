"""D5: the three trained reference ECG networks reproduce their published test metrics
(``../shared/golden/brf/README.md``): one compiled forward over the 141 test sequences each."""

import numpy as np
import pytest
import tensorflow as tf

from tfspike.data.ecg import load_ecg
from tfspike.rsnn.presets import build_rsnn
from tfspike.rsnn.reference_io import import_reference_npz
from records import results

# neuron: (sub_seq, accuracy %, acc tol pp, NLL, NLL tol, SOP/sample, spikes t<100 sample 0, all, o_99 sample 0)
EXPECTED = {
    "BRF": (0, 86.2106, 0.05, 0.39335, 0.0005, 6913.5, 411, 58066,
            [-1.67729, -4.33259, -20.9142, -33.62354, -9.25332, -5.06099]),
    "RF": (0, 85.1140, 0.05, 0.41352, 0.0003, 11907.3, 668, 98249,
           [-0.88871, -6.38922, -13.17506, -20.83523, -6.65438, -3.44013]),
    "ALIF": (10, 70.7290, 0.05, 0.79072, 0.0003, 4611.4, 314, 49116,
             [1.71180, 0.37615, -2.83851, -4.60486, -2.73523, 1.89564]),
}
# the epoch of each checkpoint (lowest validation loss of 400), per the golden README
EPOCH = {"BRF": 360, "RF": 269, "ALIF": 73}


@pytest.fixture(scope="module")
def ecg_test(data_dir):
    return load_ecg(data_dir)[1]


def _log_softmax(o):
    m = o.max(-1, keepdims=True)
    return o - m - np.log(np.exp(o - m).sum(-1, keepdims=True))


@pytest.mark.golden
@pytest.mark.data
@pytest.mark.parametrize("neuron,jit", [("BRF", True), ("RF", True), ("ALIF", True), ("BRF", False)])
def test_d5_golden_ecg_forward(neuron, jit, golden_dir, ecg_test):
    x, y = ecg_test
    sub, acc, acc_tol, nll, nll_tol, sop, spikes0, spikes_all, o99 = EXPECTED[neuron]
    model = build_rsnn(neuron, "ECG", sub_seq_length=sub)
    info = import_reference_npz(model, str(golden_dir / "brf" / f"ecg_{neuron.lower()}.npz"))
    assert info["epoch"] == EPOCH[neuron]
    logits, spikes = tf.function(model.forward, jit_compile=jit)(tf.constant(x))
    logits, spikes = logits.numpy(), spikes.numpy()
    # debugging aids of the README: the first 100 steps are identical in float32 and float64
    assert spikes[0, :100].sum() == spikes0 and spikes[:, :100].sum() == spikes_all
    np.testing.assert_allclose(logits[0, 99], o99, atol=1e-3)
    kept, labels = logits[:, sub:], y[:, sub:]
    assert kept.shape[:2] == (141, 1300 - sub)
    accuracy = 100 * np.mean(kept.argmax(-1) == labels)
    mean_nll = -np.mean(np.take_along_axis(_log_softmax(kept.astype(np.float64)), labels[..., None], -1))
    sop_per_sample = spikes.sum() / 141
    assert abs(accuracy - acc) <= acc_tol, accuracy
    assert abs(mean_nll - nll) <= nll_tol, mean_nll
    assert abs(sop_per_sample - sop) <= 10, sop_per_sample


@pytest.mark.golden
@pytest.mark.data
def test_d5_golden_through_evaluate_and_cli(golden_dir, data_dir, tmp_path):
    """The CLI path (``--load <npz> --epochs=0``) reports the same numbers in the results JSON."""
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from main import main

    rc = main(["--model_type=RF", "--data_name=ECG", "--data_dir", data_dir, "--epochs=0", "--plots=false",
               "--load", str(golden_dir / "brf" / "ecg_rf.npz"), "--logging_dir", str(tmp_path)])
    assert rc == 0
    res = results(tmp_path, "ECG-RF")
    assert abs(100 * res["test_accuracy"] - 85.1140) <= 0.05
    assert abs(res["test_loss"] - 0.41352) <= 0.0003
    assert abs(res["sop_per_sample"] - 11907.3) <= 10
    assert abs(res["sop_per_step"] - 9.159) <= 0.01 and abs(res["firing_rate"] - 0.2544) <= 0.001
    assert res["params"] == 1734
