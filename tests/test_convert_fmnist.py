"""Real data: a VGG_BN-style ReLU network (BN after ReLU, as cifar-vgg) trained on Fashion-MNIST, converted,
checked on the 10,000 test images, fine-tuned one epoch at lr 1e-6 and exported as a SavedModel.

Runs ``examples/convert_pretrained.py`` on the first 20,000 training images for one epoch, the
configuration whose output the README quotes (a few minutes of CPU time, hence ``slow``).
"""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example():
    spec = importlib.util.spec_from_file_location("convert_pretrained",
                                                  os.path.join(ROOT, "examples", "convert_pretrained.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.data
@pytest.mark.slow
def test_fmnist_vgg_bn_convert_finetune_export(data_dir, tmp_path):
    r = _example().run(data_dir, epochs=1, train_samples=20000, batch_size=128, seed=0,
                       export_dir=str(tmp_path / "savedmodel"), verbose=0)
    assert r["relu_test_accuracy"] > 0.80, r
    assert r["verify_float64_max_abs_dz"] <= 1e-9
    assert r["agreement_with_relu"] >= 0.9999, r  # ≤ 1 of 10,000 test predictions may differ in float32
    assert abs(r["snn_test_accuracy_before_finetune"] - r["relu_test_accuracy_from_logits"]) <= 1e-4
    assert r["snn_test_accuracy_after_finetune"] >= r["snn_test_accuracy_before_finetune"], r  # no accuracy loss
    assert 0 < r["spikes_per_neuron"] < 1
    assert r["savedmodel_max_abs_diff"] <= 1e-5
