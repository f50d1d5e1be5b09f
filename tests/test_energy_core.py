"""tfspike.energy core: exact fan-out maps (against a Jacobian brute force), profiles, report arithmetic."""

import numpy as np
import pytest
import tensorflow as tf

from tfspike.energy.fanout import conv2d_fanout, dense_fanout
from tfspike.energy.profiles import PROFILES, EnergyProfile, get_profile, register_profile
from tfspike.energy.report import EnergyReport, LayerCount
from tfspike.errors import UserError


def _jacobian_fanout(n_h, n_w, k, s, padding, filters, dilation=1):
    """Brute force: the conv's linear map as a dense matrix; count nonzero connections of each input."""
    x = tf.Variable(tf.zeros((1, n_h, n_w, 1)))
    kernel = tf.ones((k, k, 1, filters))
    with tf.GradientTape() as tape:
        y = tf.nn.conv2d(x, kernel, s, padding.upper(), dilations=dilation)
    jac = tape.jacobian(y, x).numpy().reshape(-1, n_h * n_w)
    return (jac != 0).sum(axis=0).reshape(n_h, n_w)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("n_h,n_w,k", [(5, 5, 3), (6, 7, 3), (7, 4, 2), (4, 4, 4), (8, 8, 1)])
def test_conv_fanout_equals_the_materialised_linear_map(padding, stride, n_h, n_w, k):
    expected = _jacobian_fanout(n_h, n_w, k, stride, padding, filters=3)
    np.testing.assert_array_equal(conv2d_fanout((n_h, n_w), k, stride, padding, filters=3), expected)


def test_conv_fanout_with_dilation():
    np.testing.assert_array_equal(conv2d_fanout((9, 9), 3, 1, "valid", 2, dilation_rate=2),
                                  _jacobian_fanout(9, 9, 3, 1, "valid", 2, dilation=2))


def test_fanout_by_hand():
    # 3x3 'same' conv on 3x3, stride 1: the centre reaches all 9 outputs, a corner 4, an edge 6
    np.testing.assert_array_equal(conv2d_fanout((3, 3), 3, 1, "same", 1), [[4, 6, 4], [6, 9, 6], [4, 6, 4]])
    assert dense_fanout(17) == 17
    with pytest.raises(UserError, match="padding"):
        conv2d_fanout((3, 3), 3, 1, "causal", 1)


def test_profiles_are_data_with_sources_and_users_can_add_one():
    p = get_profile("45nm_fp32")
    assert p.synop_j == pytest.approx(0.9e-12) and p.mac_j == pytest.approx(4.6e-12)  # Horowitz, ISSCC 2014
    assert get_profile("45nm_fp16").mac_j == pytest.approx(1.5e-12)
    assert get_profile("45nm_int8").synop_j == pytest.approx(0.03e-12)
    assert get_profile("loihi").synop_j == pytest.approx(27.1e-12) and get_profile("loihi").neuron_update_j == 81e-12
    assert {"spinnaker", "spinnaker2", "cpu", "gpu", "arm"} <= set(PROFILES)
    assert all(profile.source for profile in PROFILES.values())
    mine = EnergyProfile("test-chip", 1e-12, 2e-12, 3e-12, True, "test")
    try:
        register_profile(mine)
        assert get_profile("test-chip") is mine
        with pytest.raises(UserError, match="already registered"):
            register_profile(mine)
    finally:
        PROFILES.pop("test-chip", None)
    with pytest.raises(UserError, match="unknown energy profile"):
        get_profile("abacus")


def test_report_energy_is_the_sum_of_counts_times_profile_energies():
    layers = [LayerCount("conv", "conv", spikes=10, synops=100, macs=50, neuron_updates=20),
              LayerCount("out", "dense", synops=30, neuron_updates=2)]
    ann = [LayerCount("conv", "conv", macs=400), LayerCount("out", "dense", macs=90)]
    report = EnergyReport(layers, ann, n_samples=4, rule="test")
    p = get_profile("45nm_fp32")
    snn_j = 130 * p.synop_j + 50 * p.mac_j + 22 * p.neuron_update_j
    ann_j = 490 * p.mac_j
    assert report.joules() == pytest.approx(snn_j, rel=1e-12)
    assert report.ann_joules() == pytest.approx(ann_j, rel=1e-12)
    assert report.ratio_vs_ann() == pytest.approx(snn_j / ann_j, rel=1e-12)
    assert report.joules("cpu") == pytest.approx(490 * 8.6e-9)  # not event-driven: runs the ANN twin
    d = report.to_dict()
    assert d["profile"] == "45nm_fp32" and d["per_sample"] == {"synops": 130.0, "macs": 50.0,
                                                                 "neuron_updates": 22.0, "joules": d["per_sample"]["joules"]}
    assert [layer["name"] for layer in d["layers"]] == ["conv", "out"] and set(d["layers"][0]) == {
        "name", "kind", "spikes", "synops", "macs", "neuron_updates"}
    assert d["ann_twin"]["macs"] == 490.0 and d["ratio_vs_ann"] == pytest.approx(snn_j / ann_j)
    assert "ratio" in report.table("loihi").splitlines()[-1]
