"""tfspike.energy.rsnn: the RSNN counts, pinned exactly on tiny hand-set networks.

Oracles: the hidden spikes come from a NumPy re-run of the cell equations of spec §1.2–1.4 (checked
against ``model.forward``); the synops / MACs from a brute force that materialises the input,
recurrent and readout connectivity as dense matrices (the Jacobians of the layers' own linear maps)
and counts, step by step, the nonzero connections of every spiking (or analog) source; the ANN twin
and the neuron updates by hand.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfspike.energy.profiles import get_profile
from tfspike.energy.rsnn import count_rsnn, evaluate_and_count
from tfspike.errors import UserError
from tfspike.rsnn.base import SpikingCellBase, SpikingSequenceBase
from tfspike.rsnn.model import RSNN
from tfspike.rsnn.neurons import NeuronSpec, register_neuron, unregister_neuron
from tfspike.rsnn.train import evaluate

N_IN, H, O, T, N = 3, 4, 2, 5, 7
# Hand-set constants: per neuron the hidden weights' scale (BRF/RF feed the input through dt = 0.01,
# so their currents must be ~100x ALIF's) and the neuron parameters.
NEURONS = {
    "BRF": dict(scale=400.0, params={"omega": [3.0, -4.0, 5.0, 2.5], "b_offset": [0.5, -0.2, 1.0, 0.3]}),
    "RF": dict(scale=400.0, params={"omega": [3.0, -4.0, 5.0, 2.5], "b_offset": [0.5, -0.2, 1.0, 0.3]}),
    "ALIF": dict(scale=0.6, params={"tau_mem": [20.0, -15.0, 5.0, 10.0], "tau_adp": [7.0, 200.0, -30.0, 3.0]}),
}


# ----------------------------------------------------------------------------- NumPy oracle (spec §1)

def numpy_hidden_spikes(neuron, x, kernel, params, margin_out):
    """Hidden spikes ``(N, T, H)`` of the spec's equations, float64; appends the smallest distance of a
    membrane to its threshold to ``margin_out`` (a tie would make the comparison fragile)."""
    n, steps, n_in = x.shape
    h = kernel.shape[1]
    z = np.zeros((n, h))
    u, v, q, a = np.zeros((n, h)), np.zeros((n, h)), np.zeros((n, h)), np.zeros((n, h))
    out = np.zeros((n, steps, h))
    dt, theta = 0.01, 1.0
    for t in range(steps):
        current = np.concatenate([x[:, t], z], axis=1) @ kernel
        if neuron in ("BRF", "RF"):
            w = np.abs(params["omega"])
            if neuron == "BRF":
                w = np.minimum(w, 0.999 / dt)
                b = (-1 + np.sqrt(1 - (dt * w) ** 2)) / dt - np.abs(params["b_offset"]) - q
                level = theta + q
            else:
                b = -np.abs(params["b_offset"])
                level = theta
            u, v = u + dt * (b * u - w * v + current), v + dt * (w * u + b * v)
            gap = u - level
            z = (gap > 0).astype(float)
            if neuron == "BRF":
                q = 0.9 * q + z
        else:  # ALIF, theta0 = 0.01, beta = 1.8
            alpha, rho = np.exp(-1 / np.abs(params["tau_mem"])), np.exp(-1 / np.abs(params["tau_adp"]))
            a = rho * a + (1 - rho) * z
            threshold = 0.01 + 1.8 * a
            u_tilde = alpha * u + (1 - alpha) * current
            gap = u_tilde - threshold
            z = (gap > 0).astype(float)
            u = u_tilde - z * threshold
        margin_out.append(np.abs(gap).min())
        out[:, t] = z
    return out


def make_model(neuron, steps=T, seed=0, **kwargs):
    """A 3-4-2 RSNN with hand-set weights (no entry of any kernel is zero)."""
    rng = np.random.default_rng(seed)
    model = RSNN(neuron, H, O, **kwargs)
    model.build((None, steps, N_IN))
    spec = NEURONS[neuron]
    kernel = rng.uniform(0.2, 1.0, (N_IN + H, H)) * rng.choice([-1.0, 1.0], (N_IN + H, H)) * spec["scale"]
    kernel[:N_IN] = np.abs(kernel[:N_IN])  # excitatory input: the neurons do fire
    model.hidden.cell.kernel.assign(kernel.astype("float32"))
    for name, value in spec["params"].items():
        getattr(model.hidden.cell, name).assign(np.asarray(value, "float32"))
    model.readout.cell.kernel.assign(rng.uniform(0.5, 1.5, (H, O)).astype("float32") * [1.0, -1.0])
    model.readout.cell.tau_mem.assign(np.asarray([4.0, 9.0], "float32"))
    return model, kernel, spec["params"]


def numbers(layer):
    return layer.spikes, layer.synops, layer.macs, layer.neuron_updates


def make_inputs(kind, steps=T, n=N, seed=1):
    rng = np.random.default_rng(seed)
    if kind == "spikes":
        return (rng.random((n, steps, N_IN)) < 0.5).astype("float32")
    x = rng.random((n, steps, N_IN)).astype("float32")
    x[rng.random(x.shape) < 0.3] = 0.0  # analog zeros still cost their MACs
    return x


def oracle_spikes(model, neuron, x, kernel, params):
    margins = []
    z = numpy_hidden_spikes(neuron, x.astype(np.float64), kernel.astype("float32").astype(np.float64),
                            {k: np.asarray(v, "float32").astype(np.float64) for k, v in params.items()}, margins)
    assert min(margins) > 2e-5, "a membrane sits on its threshold: choose other hand-set weights"
    np.testing.assert_array_equal(model.forward(tf.constant(x))[1].numpy(), z)
    return z


# ----------------------------------------------------------------------------- brute-force connectivity

def jacobian_matrix(linear_map, n_in):
    """The dense matrix (outputs, inputs) of a layer's linear map, from its Jacobian at 0."""
    src = tf.Variable(tf.zeros((1, n_in)))
    with tf.GradientTape() as tape:
        out = linear_map(src)
    return tape.jacobian(out, src).numpy()[0, :, 0, :]


def brute_force(model, x, z, analog):
    """Per-sample input synops / MACs, recurrent synops and readout synops, step by step."""
    cell = model.hidden.cell
    # the input half of the hidden current without its bias: the matrix of x -> x K[:I]
    j_in = jacobian_matrix(lambda s: tf.matmul(s, cell.kernel[:cell.input_dim]), N_IN)
    j_rec = jacobian_matrix(cell.recurrent_current, H)
    j_out = jacobian_matrix(model.readout.cell.input_current, H)
    fan_in, fan_rec, fan_out = ((j != 0).sum(axis=0) for j in (j_in, j_rec, j_out))
    inp = rec = out = 0.0
    n, steps = x.shape[:2]
    for s in range(n):
        for t in range(steps):
            for i in range(N_IN):
                inp += fan_in[i] if analog else x[s, t, i] * fan_in[i]
            for j in range(H):
                if t >= 1:
                    rec += z[s, t - 1, j] * fan_rec[j]
                out += z[s, t, j] * fan_out[j]
    return inp / n, rec / n, out / n


# ----------------------------------------------------------------------------- the counts

@pytest.mark.parametrize("kind", ["spikes", "analog"])
@pytest.mark.parametrize("neuron", ["BRF", "RF", "ALIF"])
def test_counts_equal_the_brute_force_on_the_oracle_spikes(neuron, kind):
    model, kernel, params = make_model(neuron)
    x = make_inputs(kind)
    z = oracle_spikes(model, neuron, x, kernel, params)
    assert 0 < z.sum() < z.size  # some neurons spike, not all the time
    assert 0 < z[:, -1].sum()  # the last step's spikes (no recurrent synops) are exercised
    inp, rec, out = brute_force(model, x, z, analog=(kind == "analog"))
    report = count_rsnn(model, x, batch_size=3)  # 3 + 3 + 1: a partial last batch
    hidden, readout = report.layers
    assert report.meta["input_is"] == kind and report.n_samples == N
    assert hidden.name == "hidden" and hidden.kind == neuron.lower()
    assert hidden.spikes == pytest.approx(z.sum() / N, rel=1e-12)
    assert report.meta["sop"] == pytest.approx(z.sum() / N, rel=1e-12)
    if kind == "spikes":
        assert hidden.synops == pytest.approx(inp + rec, rel=1e-12) and hidden.macs == 0
        assert report.meta["synapses"]["input"]["synops"] == pytest.approx(inp, rel=1e-12)
    else:
        assert hidden.synops == pytest.approx(rec, rel=1e-12) and hidden.macs == inp == T * N_IN * H
    assert report.meta["synapses"]["recurrent"]["synops"] == pytest.approx(rec, rel=1e-12)
    assert readout.synops == pytest.approx(out, rel=1e-12) and readout.macs == 0 and readout.spikes == 0
    assert hidden.neuron_updates == T * H == 20  # every neuron every step
    assert readout.neuron_updates == T * O == 10  # the LI readout integrates every step


def test_batch_size_does_not_change_the_counts():
    model, _, _ = make_model("BRF")
    x = make_inputs("spikes")
    a, b = count_rsnn(model, x, batch_size=N), count_rsnn(model, x, batch_size=2, jit_compile=False)
    for la, lb in zip(a.layers, b.layers):
        assert numbers(la) == pytest.approx(numbers(lb), rel=1e-12)


def test_one_step_has_no_recurrent_synops():
    """T = 1: z_{-1} = 0 and the only step's spikes reach no further step."""
    model, kernel, params = make_model("ALIF", steps=1)
    x = np.ones((N, 1, N_IN), "float32")
    z = oracle_spikes(model, "ALIF", x, kernel, params)
    assert z.sum() > 0
    report = count_rsnn(model, x)
    hidden, readout = report.layers
    assert report.meta["synapses"]["recurrent"]["synops"] == 0
    assert hidden.synops == N_IN * H  # every input spikes once, fan-out H
    assert readout.synops == pytest.approx(z.sum() / N * O, rel=1e-12)
    assert hidden.neuron_updates == H and readout.neuron_updates == O
    ann_hidden, ann_readout = report.ann_layers
    assert ann_hidden.macs == N_IN * H + H * H == 28 and ann_readout.macs == H * O == 8


def test_ann_twin_by_hand():
    model, _, _ = make_model("RF")
    report = count_rsnn(model, make_inputs("analog"))
    hidden, readout = report.ann_layers
    assert hidden.macs == 5 * (3 * 4 + 4 * 4) == 140 and hidden.neuron_updates == 20
    assert readout.macs == 5 * 4 * 2 == 40 and readout.neuron_updates == 10
    assert report.ann_macs == 180


def test_joules_and_ratio_by_hand():
    model, _, _ = make_model("BRF")
    x = make_inputs("spikes")
    report = count_rsnn(model, x)
    d = report.to_dict("45nm_fp32")
    synops = report.layers[0].synops + report.layers[1].synops
    updates = T * (H + O)
    snn_j = synops * 0.9e-12 + updates * 4.6e-12
    ann_j = 180 * 4.6e-12 + updates * 4.6e-12
    assert d["per_sample"]["synops"] == pytest.approx(synops) and d["per_sample"]["macs"] == 0
    assert d["per_sample"]["neuron_updates"] == updates
    assert d["per_sample"]["joules"] == pytest.approx(snn_j, rel=1e-9)
    assert d["ann_twin"]["macs"] == 180 and d["ann_twin"]["joules"] == pytest.approx(ann_j, rel=1e-9)
    assert d["ratio_vs_ann"] == pytest.approx(snn_j / ann_j, rel=1e-9)
    # a device that is not event-driven runs the ANN twin
    assert report.joules("cpu") == pytest.approx((180 + updates) * get_profile("cpu").mac_j, rel=1e-9)


# ----------------------------------------------------------------------------- a user-registered neuron

@keras.saving.register_keras_serializable(package="tfspike_test_energy")
class PlainLIFCell(SpikingCellBase):
    """u~ = a u + (1 - a) I, z = H(u~ - 0.5), u = u~ (1 - z), a = exp(-1/|tau|), tau = 4."""

    n_states = 2

    def _build_neuron_weights(self):
        self.tau_mem = self.add_weight(name="tau_mem", shape=(self.units,), initializer=keras.initializers.Constant(4.0))

    def coefficients(self):
        return (tf.exp(-1.0 / tf.abs(self.tau_mem)),)

    def update(self, current, states, coefficients):
        u_tilde = coefficients[0] * states[1] + (1.0 - coefficients[0]) * current
        z = self.surrogate(u_tilde - 0.5)
        return z, (z, u_tilde * (1.0 - z))


@keras.saving.register_keras_serializable(package="tfspike_test_energy")
class PlainLIF(SpikingSequenceBase):
    cell_class = PlainLIFCell


@pytest.fixture
def plain_lif():
    row = dict(tau_out_init=(20.0, 1.0), label_last=False, sub_seq_length=0, learning_rate=0.1, batch_size=4,
               val_batch_size=4, test_batch_size=4, epochs=1, clipnorm=None)
    register_neuron(NeuronSpec("PlainLIF", layer=f"{__name__}:PlainLIF", cell=f"{__name__}:PlainLIFCell",
                               parameters=("tau_mem",), hidden_arguments=(), presets={"ECG": row}))
    yield "PlainLIF"
    unregister_neuron("PlainLIF")


def test_a_user_registered_neuron_is_counted_by_the_same_rule(plain_lif):
    rng = np.random.default_rng(3)
    model = RSNN(plain_lif, H, O)
    model.build((None, T, N_IN))
    kernel = rng.uniform(0.3, 1.5, (N_IN + H, H)) * rng.choice([-1.0, 1.0], (N_IN + H, H))
    model.hidden.cell.kernel.assign(kernel.astype("float32"))
    x = make_inputs("spikes")
    k = kernel.astype("float32").astype(np.float64)
    z, u, zs = np.zeros((N, H)), np.zeros((N, H)), []
    for t in range(T):  # the LIF equations in NumPy
        u_tilde = np.exp(-1 / 4) * u + (1 - np.exp(-1 / 4)) * (np.concatenate([x[:, t], z], axis=1) @ k)
        assert np.abs(u_tilde - 0.5).min() > 2e-5
        z = (u_tilde > 0.5).astype(float)
        u = u_tilde * (1 - z)
        zs.append(z)
    z = np.stack(zs, 1)
    np.testing.assert_array_equal(model.forward(tf.constant(x))[1].numpy(), z)
    assert 0 < z.sum() < z.size and z[:, -1].sum() > 0
    inp, rec, out = brute_force(model, x, z, analog=False)
    report = count_rsnn(model, x, batch_size=4)
    hidden, readout = report.layers
    assert hidden.kind == "plainlif" and report.meta["neuron"] == "PlainLIF"
    assert hidden.spikes == pytest.approx(z.sum() / N, rel=1e-12)
    assert hidden.synops == pytest.approx(inp + rec, rel=1e-12) and readout.synops == pytest.approx(out, rel=1e-12)
    assert hidden.neuron_updates == T * H and readout.neuron_updates == T * O


# ----------------------------------------------------------------------------- one definition of SOP

@pytest.mark.parametrize("config", [dict(per_step_labels=True, sub_seq_length=1), dict(label_last=True)])
def test_sop_and_evaluation_equal_train_evaluate(config):
    """The hidden spikes per sample are the SOP that train.evaluate reports, and evaluate_and_count's
    single pass gives evaluate's statistics."""
    model, _, _ = make_model("BRF", **config)
    x = make_inputs("spikes")
    rng = np.random.default_rng(5)
    y = rng.integers(0, O, (N, T)) if config.get("per_step_labels") else rng.integers(0, O, (N,))
    model.compile(jit_compile=False)
    expected = evaluate(model, x, y, batch_size=3)
    report = count_rsnn(model, x, batch_size=3)
    assert report.layers[0].spikes == pytest.approx(expected["sop"], rel=1e-6)
    stats, report2 = evaluate_and_count(model, x, y, batch_size=3)
    assert set(stats) == set(expected)
    for k in expected:
        assert stats[k] == pytest.approx(expected[k], rel=1e-6), k
    for la, lb in zip(report.layers, report2.layers):
        assert numbers(la) == pytest.approx(numbers(lb), rel=1e-12)


# ----------------------------------------------------------------------------- input kinds and errors

def test_input_kind_auto_explicit_and_errors():
    model, _, _ = make_model("ALIF")
    spikes, analog = make_inputs("spikes"), make_inputs("analog")
    assert count_rsnn(model, spikes).meta["input_is"] == "spikes"
    assert count_rsnn(model, analog).meta["input_is"] == "analog"
    forced = count_rsnn(model, spikes, input_is="analog")  # binary data counted as an analog stream
    assert forced.layers[0].macs == T * N_IN * H and forced.meta["synapses"]["input"]["synops"] == 0
    with pytest.raises(UserError, match="0s and 1s"):
        count_rsnn(model, analog, input_is="spikes")
    with pytest.raises(UserError, match="input_is"):
        count_rsnn(model, spikes, input_is="binary")
    with pytest.raises(UserError, match=r"expects inputs \(samples, T, 3\), got shape \(7, 5, 2\)"):
        count_rsnn(model, spikes[..., :2])
    with pytest.raises(UserError, match="RSNN"):
        count_rsnn(keras.Sequential([keras.layers.Dense(2)]), spikes)
    with pytest.raises(UserError, match="labels"):
        evaluate_and_count(model, spikes, np.zeros(3, int))


# ----------------------------------------------------------------------------- golden ECG network

@pytest.mark.golden
@pytest.mark.data
def test_golden_ecg_brf_counts(golden_dir, data_dir):
    """ECG-QTDB input is binary (level crossings): its synops are input spikes x H; the hidden spikes
    are the golden SOP/sample (6,913.5 +- 10, golden README)."""
    from tfspike.data.ecg import load_ecg
    from tfspike.rsnn.presets import build_rsnn
    from tfspike.rsnn.reference_io import import_reference_npz

    x, _ = load_ecg(data_dir)[1]
    model = build_rsnn("BRF", "ECG")
    import_reference_npz(model, str(golden_dir / "brf" / "ecg_brf.npz"))
    report = count_rsnn(model, x, batch_size=141)
    hidden, readout = report.layers
    assert report.meta["input_is"] == "spikes" and report.n_samples == 141
    assert abs(hidden.spikes - 6913.5) <= 10
    input_spikes = x.sum(dtype=np.float64) / 141
    assert report.meta["synapses"]["input"]["synops"] == pytest.approx(input_spikes * 36, rel=1e-12)
    assert readout.synops == pytest.approx(hidden.spikes * 6, rel=1e-12)
    assert report.ann_macs == 1300 * (4 * 36 + 36 * 36 + 36 * 6)
