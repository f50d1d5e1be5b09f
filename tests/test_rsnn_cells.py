"""Deterministic checks of the BRF / RF / ALIF / LI cells (spec §7: D1-D4, D6, D7, D9)."""

import copy
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_contract import check_layer_contract
from tfspike.rsnn.alif import ALIF, ALIFCell, ALIFState, alif_step
from tfspike.rsnn.base import joint_glorot_bound
from tfspike.rsnn.brf import (BRF, RF, BRFCell, BRFState, RFCell, RFState, brf_step,
                              divergence_boundary, rf_step)
from tfspike.rsnn.model import RSNN
from tfspike.rsnn.neurons import neuron_spec
from tfspike.rsnn.presets import build_rsnn
from tfspike.rsnn.readout import LICell, LIReadout
from tfspike.surrogates.double_gaussian import DoubleGaussian
from tfspike.utils.models import count_parameters


# ---------------------------------------------------------------- D1 surrogate
G_TABLE = {0: 0.438837, 0.25: 0.384997, 0.5: 0.258594, 1: 0.043220, 1.5: -0.012507, 2: -0.015818,
           3: -0.012099, 5: -0.004974}


def test_d1_forward_is_strict_heaviside():
    for form in ("custom_gradient", "fgi"):
        z = DoubleGaussian(form=form)(tf.constant([0.0, 1e-7, -1e-7, 3.0]))
        assert z.dtype == tf.float32
        np.testing.assert_array_equal(z.numpy(), [0.0, 1.0, 0.0, 1.0])


@pytest.mark.parametrize("form", ["custom_gradient", "fgi"])
def test_d1_surrogate_values_and_autodiff(form):
    sg = DoubleGaussian(form=form)
    xs = np.array(sorted(G_TABLE), dtype=np.float32)
    for sign in (1.0, -1.0):
        x = tf.constant(sign * xs)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = sg(x)
        grad = tape.gradient(y, x).numpy()
        np.testing.assert_allclose(grad, [G_TABLE[k] for k in sorted(G_TABLE)], atol=1e-6)
        np.testing.assert_allclose(sg.gradient(x).numpy(), grad, atol=1e-7)


def test_d1_shape_facts():
    sg = DoubleGaussian()
    x = np.linspace(0, 30, 3_000_001)
    g = sg.gradient(tf.constant(x, tf.float64)).numpy()
    crossing = x[np.argmax(g < 0)]
    assert abs(crossing - 1.26986) < 2e-5
    i = np.argmin(g)
    assert abs(x[i] - 1.85890) < 1e-4 and abs(g[i] + 0.0160057) < 1e-7
    integral = 2 * np.trapezoid(g, x)
    assert abs(integral - 0.425) < 1e-6


def test_d1_custom_gradient_and_fgi_agree():
    x = tf.constant(np.random.default_rng(0).normal(0, 2, 1000).astype("float32"))
    grads = []
    for form in ("custom_gradient", "fgi"):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = DoubleGaussian(form=form)(x)
            weighted = tf.reduce_sum(y * tf.range(1000, dtype=tf.float32) / 1000.0)
        grads.append(tape.gradient(weighted, x).numpy())
        np.testing.assert_array_equal(y.numpy(), (x.numpy() > 0).astype("float32"))
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-7, rtol=0)


def test_surrogate_serialises():
    sg = DoubleGaussian(h=0.2, sigma=0.4, scale=5.0, gamma=0.7, form="fgi")
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(sg))
    assert back.get_config() == sg.get_config()
    with pytest.raises(ValueError, match="form"):
        DoubleGaussian(form="nope")


# ---------------------------------------------------------------- D2 divergence boundary
P_TABLE = {3: -0.045010, 4: -0.080032, 5: -0.125078, 10: -0.501256, 15: -1.131400, 25: -3.175416,
           50: -13.397460, 85: -47.321731, 99: -85.893264}


def test_d2_divergence_boundary():
    w = tf.constant(sorted(P_TABLE), dtype=tf.float32)
    p = divergence_boundary(w, 0.01).numpy()
    np.testing.assert_allclose(p, [P_TABLE[k] for k in sorted(P_TABLE)], rtol=1e-5)
    modulus = np.abs(1 + 0.01 * (p.astype(np.float64) + 1j * w.numpy()))
    np.testing.assert_allclose(modulus, 1.0, atol=1e-6)
    x = tf.constant([50.0, 85.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = divergence_boundary(x, 0.01)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [-0.577350, -1.613569], rtol=1e-5)


def test_d2_guard_large_omega_is_finite():
    cell = BRFCell(3, omega_init=(1, 2))
    layer = BRF(3, omega_init=(1, 2))
    x = tf.constant(np.random.default_rng(1).random((2, 50, 2)).astype("float32") * 50)
    layer.build(x.shape)
    layer.cell.omega.assign([150.0, -150.0, 20.0])
    with tf.GradientTape() as tape:
        z = layer(x)
        loss = tf.reduce_sum(z) + tf.reduce_sum(layer.cell.coefficients()[1])
    grads = tape.gradient(loss, layer.trainable_weights)
    assert np.all(np.isfinite(z.numpy()))
    for g in grads:
        assert np.all(np.isfinite(g.numpy()))
    g_omega = grads[[w.name for w in layer.trainable_weights].index("omega")].numpy()
    assert g_omega[0] == 0.0 and g_omega[1] == 0.0  # clamped: no gradient
    assert cell.max_omega_dt == 0.999
    with pytest.raises(ValueError, match="max_omega_dt"):
        BRFCell(8, omega_init=(15, 150))


# ---------------------------------------------------------------- D3 impulse responses
def _impulse_run(step_fn, state, n=1000, dtype=np.float32):
    us, vs = [], []
    for t in range(n):
        current = tf.constant([[1.0 if t == 0 else 0.0]], dtype=dtype)
        _, state = step_fn(current, state)
        us.append(float(state.u[0, 0]))
        vs.append(float(state.v[0, 0]))
    return np.array(us), np.array(vs)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (np.float64, 1e-12)])
def test_d3_brf_impulse_response(dtype, tol):
    omega, b_off = tf.constant([10.0], dtype), tf.constant([0.5], dtype)
    zero = tf.zeros((1, 1), dtype)
    run = tf.function(lambda c, s: brf_step(c, s, omega, b_off))
    us, vs = _impulse_run(run, BRFState(zero, zero, zero, zero), dtype=dtype)
    p = (-1 + math.sqrt(1 - (0.01 * 10) ** 2)) / 0.01
    lam = 1 + 0.01 * (p - 0.5 + 10j)
    c = 0.01 * lam ** np.arange(1000)
    assert abs(us[0] - 0.01) < 1e-9 and vs[0] == 0
    np.testing.assert_allclose([us[1], vs[1], us[100], vs[100], us[999], vs[999]],
                               [0.0098998744, 0.001, -0.0048631324, -0.0036375795, 6.8536563e-5, 2.6252867e-6],
                               rtol=max(tol, 1e-7))
    scale = np.abs(c)
    assert np.max(np.abs(us - c.real) / scale) <= tol and np.max(np.abs(vs - c.imag) / scale) <= tol


def test_d3_rf_impulse_response():
    omega, b_off = tf.constant([10.0], tf.float64), tf.constant([0.5], tf.float64)
    zero = tf.zeros((1, 1), tf.float64)
    run = tf.function(lambda c, s: rf_step(c, s, omega, b_off))
    us, vs = _impulse_run(run, RFState(zero, zero, zero), dtype=np.float64)
    c = 0.01 * (1 + 0.01 * (-0.5 + 10j)) ** np.arange(1000)
    np.testing.assert_allclose(us + 1j * vs, c, rtol=1e-12, atol=1e-18)


def test_d3_alif_constant_input_and_li_impulse():
    tau_m, tau_a = tf.constant([20.0]), tf.constant([7.0])
    alpha = math.exp(-1 / 20)
    zero = tf.zeros((1, 1))
    state = ALIFState(zero, zero, zero)
    for t in range(50):
        _, state = alif_step(tf.constant([[0.005]]), state, tau_m, tau_a)  # stays below theta0 = 0.01
        assert float(state.z[0, 0]) == 0.0
        np.testing.assert_allclose(float(state.u[0, 0]), (1 - alpha ** (t + 1)) * 0.005, rtol=1e-5)
    readout = LIReadout(2)
    z = np.zeros((1, 40, 3), np.float32)
    z[0, 0] = [1, 0, 1]
    readout.build(z.shape)
    readout.cell.tau_mem.assign([10.0, -25.0])
    o = readout(z).numpy()[0]
    a_o = np.exp(-1 / np.array([10.0, 25.0]))
    expected = (1 - a_o) * a_o ** np.arange(40)[:, None] * (z[0, 0] @ readout.cell.kernel.numpy())
    np.testing.assert_allclose(o, expected, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- D4 parameter counts and init
@pytest.mark.parametrize("task,count", [("SMNIST", 68874), ("PSMNIST", 68874), ("ECG", 1734), ("SHD", 108820)])
@pytest.mark.parametrize("neuron", ["BRF", "RF", "ALIF"])
def test_d4_parameter_counts(neuron, task, count):
    assert count_parameters(build_rsnn(neuron, task)) == (count, 0)


def test_d4_alif_with_bias_and_joint_glorot_bound():
    assert count_parameters(build_rsnn("ALIF", "ECG", use_bias=True)) == (1776, 0)
    keras.utils.set_random_seed(3)
    for task, bound in (("SMNIST", 0.108148), ("ECG", 0.280976), ("SHD", 0.079222)):
        model = build_rsnn("BRF", task)
        k = np.abs(model.hidden.cell.kernel.numpy())
        assert abs(joint_glorot_bound(model.hidden.cell.input_dim, model.hidden_units) - bound) < 1e-6
        assert 0.95 * bound < k.max() <= bound
        omega = model.hidden.cell.omega.numpy()
        assert omega.min() >= model.hidden.cell.omega_init[0] and omega.max() <= model.hidden.cell.omega_init[1]


# ---------------------------------------------------------------- D7 tiny-net gradients
def _tiny():
    T, B = 30, 2
    K = np.array([[40 * (1 + math.sin(1 + 3 * i + 2 * k)) if k < 2 else 10 * math.cos(1 + i + 3 * (k - 2))
                   for i in range(3)] for k in range(5)], np.float32)
    Ko = np.array([[3 * math.sin(2 + c + 2 * i) for c in range(2)] for i in range(3)], np.float32)
    x = np.array([[[1.0 if (3 * t + 2 * k + 5 * b) % 7 < 3 else 0.0 for k in range(2)] for t in range(T)]
                  for b in range(B)], np.float32)
    y = np.array([[(t // 5 + b) % 2 for t in range(T)] for b in range(B)])
    return K, Ko, x, y


D7 = {
    "BRF": dict(L=22.16906, spikes=47, o=[1.24852, 0.19781],
                hidden=dict(omega=[-0.0747403, -0.0416526, 0.0276650], b_offset=[-0.172576, 0.0155499, 0.0239929]),
                tau_o=[-0.0934003, -0.00560844],
                K=[[0.0163584, 0.00786098, -0.00546719], [0.0171542, 0.00740612, -0.00482602],
                   [0.0231031, 0.0113817, -0.00609611], [0.00335691, 0.00162327, -0.000842023],
                   [0.0051581, 0.000687931, -0.00289198]],
                Ko=[[1.41212, -1.63198], [0.192497, -0.218549], [0.229035, -0.237373]]),
    "RF": dict(L=24.06188, spikes=127, o=[0.435211, -1.47628],
               hidden=dict(omega=[0.000616522, -0.0924943, 0.187821], b_offset=[0.00270609, 0.0498102, -0.0020298]),
               tau_o=[-0.0192909, 0.266733],
               K=[[-9.968e-06, 0.0255957, -0.0112429], [0.000242758, 0.0253286, -0.0101000],
                  [-0.000742164, 0.0578198, -0.0308485], [-0.000182504, 0.0408730, -0.0237741],
                  [-0.000660729, 0.0326455, -0.0307115]],
               Ko=[[2.67841, -3.03854], [2.21325, -2.62014], [0.923637, -0.904261]]),
    "ALIF": dict(L=24.55662, spikes=65, o=[-0.334504, 0.776964],
                 hidden=dict(tau_mem=[0.0171118, -0.0107108, -0.229197],
                             tau_adp=[-0.00802084, -0.00270342, 0.00566356]),
                 tau_o=[-0.0633222, 0.151156],
                 K=[[-0.239399, -0.317887, 1.30819], [-0.249897, -0.327109, 1.35037], [-0.0988184, -0.133978, 0.561412],
                    [-0.110679, -0.140290, 0.596430], [-0.455008, -0.605863, 2.51025]],
                 Ko=[[-0.682741, 0.785065], [-0.735922, 0.839890], [-3.05738, 3.52950]]),
}


def _tiny_model(neuron, form="custom_gradient", bptt="manual"):
    K, Ko, x, y = _tiny()
    model = RSNN(neuron, 3, 2, per_step_labels=True,
                 hidden_config={"surrogate": DoubleGaussian(form=form), "bptt": bptt})
    model.build((None, 30, 2))
    cell, readout = model.hidden.cell, model.readout.cell
    if neuron == "ALIF":
        cell.kernel.assign(K / 80)
        cell.tau_mem.assign([20, -10, 5])
        cell.tau_adp.assign([7, 50, 200])
    else:
        cell.kernel.assign(K)
        cell.omega.assign([3, 8, 20])
        cell.b_offset.assign([0.5, -1.0, 1.5])
    readout.kernel.assign(Ko)
    readout.tau_mem.assign([20, -15])
    return model, x, y


def test_d7_sanity_of_the_construction():
    K, Ko, _, _ = _tiny()
    np.testing.assert_allclose(K[0], [73.6588, 9.72790, 66.2795], rtol=1e-5)
    np.testing.assert_allclose(K[2], [5.40302, -4.16147, -9.89993], rtol=1e-5)
    np.testing.assert_allclose(Ko[0], [2.72789, 0.423360], rtol=1e-5)


@pytest.mark.parametrize("form,bptt", [("custom_gradient", "manual"), ("fgi", "manual"),
                                       ("custom_gradient", "autodiff")])
@pytest.mark.parametrize("neuron", ["BRF", "RF", "ALIF"])
def test_d7_tiny_net_loss_spikes_and_gradients(neuron, form, bptt):
    """Reference gradients through the hand-written BPTT (both surrogate forms) and plain autodiff."""
    model, x, y = _tiny_model(neuron, form, bptt)
    exp = D7[neuron]
    with tf.GradientTape() as tape:
        loss, n_kept, kept, _, counts = model.loss_and_stats(x, y, training=True)
    grads = dict(zip([v.path for v in model.trainable_variables], tape.gradient(loss, model.trainable_variables)))
    tol = dict(rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(float(loss), exp["L"], **tol)
    assert n_kept == 30 and float(tf.reduce_sum(counts)) == exp["spikes"]
    np.testing.assert_allclose(kept[0, -1].numpy(), exp["o"], **tol)
    cell, readout = model.hidden.cell, model.readout.cell
    for name, values in exp["hidden"].items():
        np.testing.assert_allclose(grads[getattr(cell, name).path].numpy(), values, **tol)
    np.testing.assert_allclose(grads[cell.kernel.path].numpy(), exp["K"], **tol)
    np.testing.assert_allclose(grads[readout.kernel.path].numpy(), exp["Ko"], **tol)
    np.testing.assert_allclose(grads[readout.tau_mem.path].numpy(), exp["tau_o"], **tol)


def test_sequence_layer_matches_keras_rnn_with_the_cell():
    """The hoisted-input sequence layer equals keras.layers.RNN around the same cell."""
    model, x, _ = _tiny_model("BRF")
    z_seq = model.hidden(x).numpy()
    rnn = keras.layers.RNN(model.hidden.cell, return_sequences=True)
    np.testing.assert_array_equal(rnn(x).numpy(), z_seq)
    li = keras.layers.RNN(model.readout.cell, return_sequences=True)
    np.testing.assert_allclose(li(z_seq).numpy(), model.readout(z_seq).numpy(), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- D6 symmetries
@pytest.mark.parametrize("neuron", ["BRF", "RF", "ALIF"])
def test_d6_abs_symmetries(neuron):
    model, x, _ = _tiny_model(neuron)
    o0, z0 = (a.numpy() for a in model.forward(x))
    cell = model.hidden.cell
    for name in neuron_spec(neuron).parameters:
        var = getattr(cell, name)
        var.assign(-var)
        o1, z1 = (a.numpy() for a in model.forward(x))
        np.testing.assert_array_equal(z1, z0)
        np.testing.assert_allclose(o1, o0, rtol=1e-6, atol=1e-6)
        var.assign(-var)
    model.readout.cell.tau_mem.assign(-model.readout.cell.tau_mem)
    np.testing.assert_array_equal(model.forward(x)[0].numpy(), o0)


# ---------------------------------------------------------------- D9 layer contracts and serialisation
@pytest.mark.parametrize("layer_fn", [
    lambda: BRF(5, omega_init=(3, 5)),
    lambda: RF(5, omega_init=(3, 5)),
    lambda: ALIF(5, tau_mem_init=(20, 0.5), tau_adp_init=(7, 0.2), use_bias=True),
    lambda: BRF(5, surrogate=DoubleGaussian(form="fgi"), dt=0.02, gamma=0.8, theta=0.5, max_omega_dt=0.9),
], ids=["BRF", "RF", "ALIF", "BRF-custom"])
def test_d9_sequence_layer_contract(layer_fn):
    x = (np.random.default_rng(0).random((3, 20, 4)) < 0.5).astype("float32") * 30
    check_layer_contract(layer_fn, x, expected_output_shape=(3, 20, 5))


@keras.saving.register_keras_serializable(package="tfspike_tests")
class CopyingRNN(keras.layers.RNN):
    """keras.layers.RNN whose from_config does not pop "cell" out of the caller's dict (Keras' does),
    so the shared contract helper can compare the configs."""

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return super().from_config(copy.deepcopy(config), custom_objects=custom_objects)


# states per cell (spec): BRF [z, u, v, q], RF [z, u, v], ALIF 3, LI [o]
@pytest.mark.parametrize("cell_fn,n_states", [(lambda: BRFCell(4), 4), (lambda: RFCell(4), 3),
                                              (lambda: ALIFCell(4), 3), (lambda: LICell(3), 1)],
                         ids=["BRFCell", "RFCell", "ALIFCell", "LICell"])
def test_d9_cells_inside_keras_rnn(cell_fn, n_states):
    x = (np.random.default_rng(0).random((2, 15, 3)) < 0.5).astype("float32") * 30
    cell = cell_fn()
    check_layer_contract(lambda: CopyingRNN(cell_fn(), return_sequences=True), x,
                         expected_output_shape=(2, 15, cell.units))
    cfg = cell.get_config()
    assert type(cell).from_config(cfg).get_config() == cfg
    assert cell.state_size == [cell.units] * n_states
    assert len(cell.get_initial_state(2)) == n_states


def test_d9_readout_contract():
    x = (np.random.default_rng(0).random((3, 20, 5)) < 0.5).astype("float32")
    check_layer_contract(lambda: LIReadout(4, tau_mem_init=(20, 1)), x, expected_output_shape=(3, 20, 4),
                         rtol=1e-6)


def test_d9_config_records_constants():
    cfg = BRF(4, dt=0.02, max_omega_dt=0.9, surrogate=DoubleGaussian(h=0.2, form="fgi")).get_config()
    assert cfg["dt"] == 0.02 and cfg["max_omega_dt"] == 0.9 and cfg["gamma"] == 0.9
    sg = keras.saving.deserialize_keras_object(cfg["surrogate"])
    assert sg.get_config() == DoubleGaussian(h=0.2, form="fgi").get_config()
    assert RFCell(3).get_config()["max_omega_dt"] is None


def test_cells_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = BRF(3)
        out = layer(tf.zeros((1, 5, 2)))
        assert out.dtype == tf.float32 and layer.cell.omega.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
