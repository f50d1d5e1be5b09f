"""The RSNN neuron registry: descriptors, presets, CLI flags, and a new neuron added by registration only."""

import argparse
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfspike.errors import UserError
from tfspike.rsnn.base import SpikingCellBase, SpikingSequenceBase, float_pair
from tfspike.rsnn.neurons import (NeuronFlag, NeuronSpec, add_neuron_arguments, neuron_flags, neuron_names,
                                  neuron_overrides, neuron_spec, register_neuron, unregister_neuron)
from tfspike.rsnn.presets import build_rsnn, preset
from tfspike.rsnn.reference_io import import_reference_npz
from tfspike.utils.models import count_parameters


def test_registry_presets_and_flags_do_not_load_tensorflow():
    code = ("import argparse, sys, tfspike.rsnn\n"
            "from tfspike.rsnn.neurons import add_neuron_arguments, neuron_overrides\n"
            "from tfspike.rsnn.presets import preset\n"
            "p = argparse.ArgumentParser(); add_neuron_arguments(p)\n"
            "assert neuron_overrides('BRF', p.parse_args(['--omega_init', '3', '6'])) == {'omega_init': (3.0, 6.0)}\n"
            "assert preset('ALIF', 'SMNIST')['tbptt'] == 50\n"
            "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


# which neurons each built-in flag applies to (spec §4.2/§4.3 and the reference CLI)
FLAG_OWNERS = {"omega_init": ("BRF", "RF"), "b_offset_init": ("BRF", "RF"), "max_omega_dt": ("BRF", "RF"),
               "tau_mem_init": ("ALIF",), "tau_adp_init": ("ALIF",), "tau_out_init": ("BRF", "RF", "ALIF")}


def test_each_flag_is_added_once_with_the_neurons_it_applies_to():
    assert neuron_names() == ("BRF", "RF", "ALIF")
    assert {f.name: owners for f, owners in neuron_flags()} == FLAG_OWNERS
    parser = argparse.ArgumentParser()
    add_neuron_arguments(parser)
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert set(actions) == set(FLAG_OWNERS)
    for name, owners in FLAG_OWNERS.items():
        assert actions[name].help.endswith(f"[{', '.join(owners)}]") and actions[name].default is None
    assert actions["omega_init"].nargs == 2 and actions["omega_init"].metavar == ("LOW", "HIGH")
    with pytest.raises(SystemExit):  # argparse type check: instant, before any TensorFlow
        parser.parse_args(["--max_omega_dt", "-1"])


def test_neuron_overrides_values_and_one_line_errors():
    parser = argparse.ArgumentParser()
    add_neuron_arguments(parser)
    args = parser.parse_args(["--omega_init", "3", "6", "--max_omega_dt", "0.5", "--tau_out_init", "20", "1"])
    expected = {"omega_init": (3.0, 6.0), "max_omega_dt": 0.5, "tau_out_init": (20.0, 1.0)}
    assert neuron_overrides("BRF", args) == expected and neuron_overrides("RF", args) == expected
    assert neuron_overrides("ALIF", parser.parse_args(["--tau_adp_init", "7", "0.2"])) == {"tau_adp_init": (7.0, 0.2)}
    assert neuron_overrides("ALIF", argparse.Namespace()) == {}  # flags absent from the namespace: not given
    with pytest.raises(UserError, match=r"^--omega_init does not apply to --model_type=ALIF \(only to BRF, RF\)$"):
        neuron_overrides("ALIF", args)
    with pytest.raises(UserError, match=r"^--tau_mem_init applies to --model_type=ALIF only$"):
        neuron_overrides("RF", parser.parse_args(["--tau_mem_init", "20", "5"]))
    with pytest.raises(UserError, match="unknown neuron 'LIFX'; choose from BRF, RF, ALIF"):
        neuron_overrides("LIFX", args)


def test_preset_rejects_keys_of_other_neurons():
    with pytest.raises(UserError, match="omega_init do not apply to neuron ALIF"):
        preset("ALIF", "ECG", omega_init=(3, 5))
    with pytest.raises(UserError, match="gamma do not apply to neuron RF"):  # RF has no refractory trace
        preset("RF", "ECG", gamma=0.5)
    assert preset("RF", "ECG", max_omega_dt=0.9)["max_omega_dt"] == 0.9
    with pytest.raises(UserError, match="unknown neuron"):
        preset("LIFX", "ECG")


def _row(**extra):
    row = dict(tau_out_init=(20.0, 1.0), label_last=False, sub_seq_length=0, learning_rate=0.1, batch_size=16,
               val_batch_size=61, test_batch_size=141, epochs=400, clipnorm=None)
    row.update(extra)
    return row


def test_descriptor_validation():
    ok = dict(layer="m:L", cell="m:C", parameters=("tau_mem",), hidden_arguments=("tau_mem_init",),
              presets={"ECG": _row(tau_mem_init=(1.0, 0.1))})
    NeuronSpec("X", **ok)
    cases = [(dict(layer="m.L"), "layer must be 'module:Class'"),
             (dict(reference_keys={"hidden/tau": "tau"}), "reference_keys name tau, not among its parameters"),
             (dict(presets={"CIFAR": _row()}), "presets must be given for some of"),
             (dict(presets={"ECG": {"tau_mem_init": (1, 1)}}), "preset row ECG lacks batch_size"),
             (dict(presets={"ECG": _row(omega_init=(1, 2))}), "not hidden_arguments: omega_init"),
             (dict(flags=(NeuronFlag("theta", "threshold"),)), "flag --theta sets 'theta'")]
    for change, message in cases:
        with pytest.raises(UserError, match=message):
            NeuronSpec("X", **{**ok, **change})
    with pytest.raises(UserError, match="neuron BRF is already registered"):
        register_neuron(neuron_spec("BRF"))
    clash = NeuronSpec("Y", **{**ok, "flags": (NeuronFlag("tau_mem_init", "other help", key="tau_mem_init"),)})
    with pytest.raises(UserError, match="declares --tau_mem_init differently"):
        register_neuron(clash)
    with pytest.raises(UserError, match="readout flag of every neuron"):
        register_neuron(NeuronSpec("Z", **{**ok, "hidden_arguments": ("tau_mem_init", "tau_out_init"),
                                           "flags": (NeuronFlag("tau_out_init", "x"),)}))
    assert neuron_names() == ("BRF", "RF", "ALIF")


# ---------------------------------------------------------------- a new neuron: plain LIF, by registration only
@keras.saving.register_keras_serializable(package="tfspike_tests")
class LIFCell(SpikingCellBase):
    """Leaky integrate-and-fire with hard reset::

        alpha = exp(-1/|tau_mem|);  u~_t = alpha u_{t-1} + (1 - alpha) I_t
        z_t = H(u~_t - theta);      u_t = u~_t (1 - z_t)
    """

    n_states = 2  # [z, u]

    def __init__(self, units, theta=0.5, tau_mem_init=(10.0, 1.0), **kwargs):
        super().__init__(units, **kwargs)
        self.theta = float(theta)
        self.tau_mem_init = float_pair(tau_mem_init, "LIFCell tau_mem_init")

    def _build_neuron_weights(self):
        self.tau_mem = self.add_weight(name="tau_mem", shape=(self.units,),
                                       initializer=keras.initializers.RandomNormal(*self.tau_mem_init))

    def coefficients(self):
        return (tf.exp(-1.0 / tf.abs(self.tau_mem)),)

    def update(self, current, states, coefficients):
        _, u = states
        (alpha,) = coefficients
        u_tilde = alpha * u + (1.0 - alpha) * current
        z = self.surrogate(u_tilde - self.theta)
        return z, (z, u_tilde * (1.0 - z))

    def get_config(self):
        return {**super().get_config(), "theta": self.theta, "tau_mem_init": list(self.tau_mem_init)}


@keras.saving.register_keras_serializable(package="tfspike_tests")
class LIF(SpikingSequenceBase):
    cell_class = LIFCell


@pytest.fixture
def lif_registered():
    tau_flag = next(f for f in neuron_spec("ALIF").flags if f.name == "tau_mem_init")  # shared with ALIF
    spec = register_neuron(NeuronSpec(
        "LIF", layer=f"{__name__}:LIF", cell=f"{__name__}:LIFCell", parameters=("tau_mem",),
        hidden_arguments=("tau_mem_init", "theta"), presets={"ECG": _row(tau_mem_init=(10.0, 1.0))},
        reference_keys={"hidden/tau_mem": "tau_mem"},
        flags=(tau_flag, NeuronFlag("lif_theta", "LIF firing threshold", key="theta"))))
    yield spec
    unregister_neuron("LIF")
    assert neuron_names() == ("BRF", "RF", "ALIF")


def _numpy_rsnn(x, K, tau, theta, Ko, tau_o):
    """Float64 forward of input → LIF (joint kernel on [x_t, z_{t-1}]) → LI readout, from the equations."""
    B, T, _ = x.shape
    H = K.shape[1]
    a, a_o = np.exp(-1 / np.abs(tau)), np.exp(-1 / np.abs(tau_o))
    z, u, o = np.zeros((B, H)), np.zeros((B, H)), np.zeros((B, Ko.shape[1]))
    zs, os_ = [], []
    for t in range(T):
        current = np.concatenate([x[:, t], z], axis=1) @ K
        u_tilde = a * u + (1 - a) * current
        z = (u_tilde - theta > 0).astype(np.float64)
        u = u_tilde * (1 - z)
        o = a_o * o + (1 - a_o) * (z @ Ko)
        zs.append(z)
        os_.append(o)
    return np.stack(os_, 1), np.stack(zs, 1)


def _log_softmax(o):
    m = o.max(-1, keepdims=True)
    return o - m - np.log(np.exp(o - m).sum(-1, keepdims=True))


def test_a_new_neuron_builds_trains_saves_and_loads_through_the_registry(lif_registered, tmp_path):
    keras.utils.set_random_seed(0)
    T, H, lr = 40, 6, 0.5
    model = build_rsnn("LIF", "ECG", hidden_units=H, steps=T, theta=0.3)
    assert type(model.hidden) is LIF and model.hidden.cell.theta == 0.3
    assert count_parameters(model) == ((4 + H) * H + H + H * 6 + 6, 0)
    rng = np.random.default_rng(0)
    x = (rng.random((3, T, 4)) < 0.4).astype("float32")
    y = rng.integers(0, 6, (3, T))
    cell, ro = model.hidden.cell, model.readout.cell
    cell.kernel.assign(rng.uniform(-0.4, 1.2, cell.kernel.shape).astype("float32"))
    K, tau, Ko, tau_o = (v.numpy().astype(np.float64) for v in (cell.kernel, cell.tau_mem, ro.kernel, ro.tau_mem))

    o_ref, z_ref = _numpy_rsnn(x, K, tau, 0.3, Ko, tau_o)
    logits, spikes = (a.numpy() for a in model.forward(x))
    assert 0 < z_ref.sum() < z_ref.size  # some, not all, neurons fire
    np.testing.assert_array_equal(spikes, z_ref)
    np.testing.assert_allclose(logits, o_ref, rtol=1e-5, atol=1e-6)

    # one SGD step: the logged loss is the oracle's mean per-step NLL, and the readout kernel moves by
    # exactly -lr dL/dKo (the readout is linear in Ko; L = sum_t mean_b NLL_bt)
    logp = _log_softmax(o_ref)
    nll = -np.take_along_axis(logp, y[..., None], -1)[..., 0]
    a_o = np.exp(-1 / np.abs(tau_o))
    d_o = (np.exp(logp) - np.eye(6)[y]) / 3  # dL/do_t per sample
    g_ko = np.zeros_like(Ko)
    carried = np.zeros((3, 6))
    for t in reversed(range(T)):  # dL/d(input current of the readout at t) = (1 - a_o) sum_{s>=t} a_o^(s-t) dL/do_s
        carried = d_o[:, t] + a_o * carried
        g_ko += z_ref[:, t].T @ ((1 - a_o) * carried)
    model.compile(optimizer=keras.optimizers.SGD(lr), jit_compile=False)
    logs = model.train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["loss"], nll.mean(0).sum() / T, rtol=1e-5)
    np.testing.assert_allclose(ro.kernel.numpy(), Ko - lr * g_ko, rtol=1e-5, atol=1e-6)
    assert np.abs(cell.tau_mem.numpy() - tau).max() > 0  # the new neuron's own parameter trains too

    out = model(x).numpy()
    model.save(tmp_path / "lif.keras")
    loaded = keras.saving.load_model(tmp_path / "lif.keras")
    assert type(loaded.hidden) is LIF and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded(x).numpy(), out)
    model.save_weights(tmp_path / "lif.weights.h5")
    other = build_rsnn("LIF", "ECG", hidden_units=H, steps=T, theta=0.3)
    other.load_weights(tmp_path / "lif.weights.h5")
    np.testing.assert_array_equal(other(x).numpy(), out)

    # reference checkpoint through the descriptor's key map (torch layout: (out, in))
    ref = {"hidden/linear/weight": K.T.astype("float32"), "hidden/tau_mem": -tau.astype("float32"),
           "out/linear/weight": Ko.T.astype("float32"), "out/tau_mem": tau_o.astype("float32"), "epoch": 7}
    np.savez(tmp_path / "lif_ref.npz", **ref)
    fresh = build_rsnn("LIF", "ECG", hidden_units=H, steps=T, theta=0.3)
    assert import_reference_npz(fresh, str(tmp_path / "lif_ref.npz")) == {"epoch": 7}
    np.testing.assert_array_equal(fresh.hidden.cell.tau_mem.numpy(), -tau.astype("float32"))
    np.testing.assert_array_equal(fresh.hidden.cell.kernel.numpy(), K.astype("float32"))
    np.testing.assert_array_equal(fresh.forward(x)[1].numpy(), z_ref)  # abs(tau): same spikes


def test_a_new_neuron_gets_its_flags_and_shares_others(lif_registered):
    owners = {f.name: o for f, o in neuron_flags()}
    assert owners["tau_mem_init"] == ("ALIF", "LIF") and owners["lif_theta"] == ("LIF",)
    assert owners["tau_out_init"] == ("BRF", "RF", "ALIF", "LIF")
    parser = argparse.ArgumentParser()
    add_neuron_arguments(parser)
    args = parser.parse_args(["--lif_theta", "0.2", "--tau_mem_init", "5", "1"])
    assert neuron_overrides("LIF", args) == {"theta": 0.2, "tau_mem_init": (5.0, 1.0)}
    with pytest.raises(UserError, match=r"^--lif_theta applies to --model_type=LIF only$"):
        neuron_overrides("ALIF", args)
    with pytest.raises(UserError, match=r"^--tau_mem_init does not apply to --model_type=BRF \(only to ALIF, LIF\)$"):
        neuron_overrides("BRF", parser.parse_args(["--tau_mem_init", "5", "1"]))
    assert preset("LIF", "ECG", **neuron_overrides("LIF", args))["theta"] == 0.2
    with pytest.raises(UserError, match="neuron LIF has no preset for task SHD"):
        preset("LIF", "SHD")
