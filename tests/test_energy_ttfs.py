"""TTFS energy accounting (``tfspike.energy.count_ttfs``): counts pinned against hand-computed values, the
ReLU twin's activations and a brute-force connectivity count (layer applied to one-hot inputs)."""

import keras
import numpy as np
import pytest

from tfspike.convert import relu_to_ttfs
from tfspike.energy import count_ttfs
from tfspike.errors import UserError
from tfspike.ttfs import TTFSConv2D, TTFSDense, TTFSInput, TTFSMaxPool2D, TTFSModel, evaluate_ttfs

L = keras.layers
F64 = "float64"
# Horowitz 45 nm fp32, written out here rather than read from the profile registry: AC = one add,
# MAC = multiply + add, neuron update = one MAC.
AC_J, MAC_J = 0.9e-12, (3.7 + 0.9) * 1e-12


# ----------------------------------------------------------------------------- oracles

def connections_per_input(keras_layer, input_shape):
    """Synapses of a Dense/Conv2D layer driven by each input element, by brute force: a copy of the
    layer with an all-ones kernel and no bias applied to every one-hot input; count nonzero outputs."""
    cfg = keras_layer.get_config()
    cfg.update(use_bias=False, activation=None, kernel_initializer="ones", name=None, dtype=F64)
    probe = type(keras_layer).from_config(cfg)
    n = int(np.prod(input_shape))
    out = np.asarray(probe(np.eye(n).reshape((n,) + tuple(input_shape))))
    return np.count_nonzero(out.reshape(n, -1), axis=1).reshape(input_shape)


def relu_activations(model, x):
    """Output of every layer of a Keras model (with activation=relu in its layers: the activations)."""
    probe = keras.Model(model.inputs[0], [layer.output for layer in model.layers])
    return dict(zip([layer.name for layer in model.layers], (np.asarray(a) for a in probe(x))))


def conv_relu_model(seed=0):
    """conv same stride 2 (12×11: asymmetric padding in H, symmetric in W) → conv valid stride 1 →
    max-pool → flatten → dense → logits, with random biases so that ReLU outputs are mixed."""
    keras.utils.set_random_seed(seed)
    bias = keras.initializers.RandomNormal(0.0, 0.3)
    return keras.Sequential([
        keras.Input((12, 11, 2), dtype=F64),
        L.Conv2D(4, 3, strides=2, padding="same", activation="relu", bias_initializer=bias, name="conv_a", dtype=F64),
        L.Conv2D(5, 3, padding="valid", activation="relu", bias_initializer=bias, name="conv_b", dtype=F64),
        L.MaxPooling2D(2, name="pool", dtype=F64),
        L.Flatten(name="flatten", dtype=F64),
        L.Dense(6, activation="relu", bias_initializer=bias, name="dense_a", dtype=F64),
        L.Dense(3, name="logits", dtype=F64),
    ])


def dense_relu_model(seed=0):
    keras.utils.set_random_seed(seed)
    bias = keras.initializers.RandomNormal(0.0, 0.3)
    return keras.Sequential([
        keras.Input((10,), dtype=F64),
        L.Dense(7, activation="relu", bias_initializer=bias, name="dense_a", dtype=F64),
        L.Dense(5, activation="relu", bias_initializer=bias, name="dense_b", dtype=F64),
        L.Dense(3, name="logits", dtype=F64),
    ])


def inputs_with_silent_elements(shape, n, p, seed=0):
    """Uniform inputs in [p, 1] with about 40 % exactly at p (the silent input spike time t⁽⁰⁾ = 1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(p, 1.0, (n,) + shape)
    x[rng.uniform(size=x.shape) < 0.4] = p
    return x


CASES = {"dense": (dense_relu_model, (0.0, 1.0)), "conv": (conv_relu_model, (-1.0, 1.0))}


@pytest.fixture(scope="module", params=sorted(CASES))
def twins(request):
    build, (p, q) = CASES[request.param]
    relu = build()
    snn = relu_to_ttfs(relu, input_range=(p, q), dtype=F64)
    x = inputs_with_silent_elements(relu.input_shape[1:], 23, p)
    return relu, snn, x, p, count_ttfs(snn, x, batch_size=8)  # 23 = 2 full batches + 7


def expected_counts(relu, x, p):
    """Per-sample spikes / synops / neuron updates / ANN MACs of every weight layer from the ReLU twin:
    a hidden neuron fires iff its ReLU activation is > 0, an input element iff x ≠ p."""
    acts = relu_activations(relu, x)
    incoming = (x != p).astype(np.float64)  # the spike indicator of what arrives at the next layer
    out = {}
    for layer in relu.layers:
        name = layer.name
        if isinstance(layer, (L.Dense, L.Conv2D)):
            conn = connections_per_input(layer, incoming.shape[1:])
            fired_per_sample = (acts[name] > 0).reshape(len(x), -1).sum(1)
            out[name] = dict(spikes=0.0 if layer is relu.layers[-1] else float(fired_per_sample.mean()),
                             synops=float((incoming * conn).reshape(len(x), -1).sum(1).mean()),
                             neuron_updates=float(np.prod(acts[name].shape[1:])), ann_macs=float(conn.sum()))
        else:
            out[name] = dict(spikes=0.0, synops=0.0, neuron_updates=0.0, ann_macs=None)
        incoming = (acts[name] > 0).astype(np.float64)
    return out


# ----------------------------------------------------------------------------- against the twin and brute force

def test_spikes_synops_updates_and_ann_macs_match_the_relu_twin_and_brute_force(twins):
    relu, snn, x, p, report = twins
    by_name = {c.name: c for c in report.layers}
    assert [c.name for c in report.layers] == [l.name for l in snn.layers]
    assert by_name["ttfs_input"].spikes == pytest.approx((x != p).reshape(len(x), -1).sum(1).mean(), abs=1e-9)
    assert by_name["ttfs_input"].kind == "input"
    ann = {c.name: c for c in report.ann_layers}
    want = expected_counts(relu, x, p)
    for name, w in want.items():
        got = by_name[name]
        assert (got.spikes, got.synops, got.neuron_updates, got.macs) == pytest.approx(
            (w["spikes"], w["synops"], w["neuron_updates"], 0.0), abs=1e-9), name
        if w["ann_macs"] is None:
            assert name not in ann
        else:
            assert ann[name].macs == w["ann_macs"] and ann[name].synops == 0 and ann[name].neuron_updates == 0
    assert [c.name for c in report.ann_layers] == [n for n, w in want.items() if w["ann_macs"] is not None]
    assert report.n_samples == len(x)
    # the counts are not trivially zero or full: the test data have silent and spiking neurons in every layer
    hidden = [c for c in report.layers if c.kind in ("dense", "conv")]
    assert all(0 < c.spikes < c.neuron_updates for c in hidden)


def test_conv_ann_macs_exclude_zero_padding_taps():
    """conv_a (same, stride 2, 12×11×2 → 6×6×4): the full-tap count 6·6·9·2·4 = 2592 includes padding taps."""
    relu = conv_relu_model()
    snn = relu_to_ttfs(relu, input_range=(-1.0, 1.0), dtype=F64)
    report = count_ttfs(snn, inputs_with_silent_elements((12, 11, 2), 2, -1.0))
    macs = {c.name: c.macs for c in report.ann_layers}
    # TF `same`: rows 12 → 6, total pad 1, put below: output row 5 reads rows 10, 11, 12 → 6·3 − 1 = 17 real
    # row taps; columns 11 → 6, pad 1 left and 1 right: 6·3 − 2 = 16 real column taps.
    assert macs["conv_a"] == 17 * 16 * 2 * 4 < 6 * 6 * 9 * 2 * 4
    assert macs["conv_b"] == 4 * 4 * 9 * 4 * 5 and macs["dense_a"] == 20 * 6 and macs["logits"] == 6 * 3


def test_evaluate_ttfs_counts_in_the_same_pass(twins):
    relu, snn, x, p, report = twins
    plain = evaluate_ttfs(snn, x, batch_size=5)
    with_energy = evaluate_ttfs(snn, x, batch_size=5, energy=True)
    assert set(with_energy) - set(plain) == {"energy"}
    assert {k: v for k, v in with_energy.items() if k != "energy"} == plain
    assert with_energy["energy"].to_dict() == report.to_dict()  # other batch size, same counts
    by_name = {c.name: c for c in report.layers}
    for name, fraction in plain["spikes_per_layer"].items():  # the spike indicator evaluate_ttfs counts
        assert by_name[name].spikes == pytest.approx(fraction * by_name[name].neuron_updates, abs=1e-9)


def test_report_dict_has_the_issue_shape_and_hand_computed_joules(twins):
    _, _, _, _, report = twins
    d = report.to_dict("45nm_fp32")
    assert d["profile"] == "45nm_fp32"
    assert set(d["per_sample"]) == {"synops", "macs", "neuron_updates", "joules"}
    assert all(set(layer) == {"name", "kind", "spikes", "synops", "macs", "neuron_updates"} for layer in d["layers"])
    assert {"macs", "joules"} <= set(d["ann_twin"])
    synops = sum(layer["synops"] for layer in d["layers"])
    updates = sum(layer["neuron_updates"] for layer in d["layers"])
    ann_macs = sum(c.macs for c in report.ann_layers)
    assert d["per_sample"]["synops"] == pytest.approx(synops) and d["per_sample"]["macs"] == 0.0
    assert d["per_sample"]["joules"] == pytest.approx(synops * AC_J + updates * MAC_J, rel=1e-12)
    assert d["ann_twin"]["macs"] == ann_macs
    assert d["ann_twin"]["joules"] == pytest.approx(ann_macs * MAC_J, rel=1e-12)
    assert d["ratio_vs_ann"] == pytest.approx((synops * AC_J + updates * MAC_J) / (ann_macs * MAC_J), rel=1e-12)


# ----------------------------------------------------------------------------- hand-computed networks

def pool_network(sign):
    """4×4 input → 1×1 identity conv (valid) → 2×2 max-pool (channel sign ``sign``) → flatten → readout."""
    model = TTFSModel([keras.Input((4, 4, 1), dtype=F64), TTFSInput("time", name="in", dtype=F64),
                       TTFSConv2D(1, 1, padding="valid", name="conv", dtype=F64),
                       TTFSMaxPool2D(2, name="pool", dtype=F64), L.Flatten(name="flat", dtype=F64),
                       TTFSDense(3, output=True, name="readout", dtype=F64)])
    conv = model.get_layer("conv")
    conv.kernel.assign(np.ones((1, 1, 1, 1)))
    model.get_layer("pool").sign.assign([sign])
    return model


# input spike times (1 = silent): windows top-left 4 spikes, top-right 1, bottom-left 0, bottom-right 3
POOL_TIMES = np.array([[0.1, 0.5, 1.0, 1.0],
                       [0.2, 0.9, 1.0, 0.3],
                       [1.0, 1.0, 0.0, 0.4],
                       [1.0, 1.0, 0.6, 1.0]]).reshape(1, 4, 4, 1)


@pytest.mark.parametrize("sign, pooled_spikes", [(1.0, 3), (-1.0, 1)])
def test_pooling_routes_the_pooled_spikes_to_the_readout(sign, pooled_spikes):
    """Earliest spike wins (sign +1: a window with any spike spikes) or the latest (sign −1: a window
    spikes only if all its inputs do); the readout pays 3 synapses per pooled spike, the pool nothing."""
    report = count_ttfs(pool_network(sign), POOL_TIMES)
    got = {c.name: (c.kind, c.spikes, c.synops, c.macs, c.neuron_updates) for c in report.layers}
    assert got == {"in": ("input", 8, 0, 0, 0), "conv": ("conv", 8, 8, 0, 16), "pool": ("pool", 0, 0, 0, 0),
                   "flat": ("route", 0, 0, 0, 0), "readout": ("readout", 0, 3 * pooled_spikes, 0, 3)}
    assert [(c.name, c.macs) for c in report.ann_layers] == [("conv", 16), ("readout", 12)]
    synops, updates = 8 + 3 * pooled_spikes, 16 + 3
    assert report.joules("45nm_fp32") == pytest.approx(synops * AC_J + updates * MAC_J, rel=1e-12)
    assert report.ann_joules("45nm_fp32") == pytest.approx(28 * MAC_J, rel=1e-12)


@pytest.mark.parametrize("position, fanout", [((0, 0), 4), ((0, 1), 6), ((1, 0), 6), ((1, 1), 9), ((2, 2), 4)])
def test_same_conv_fanout_of_one_input_spike(position, fanout):
    """3×3 `same` conv with 2 filters on a 3×3 map: a corner pixel reaches 4 output positions, an edge
    pixel 6, the centre 9 (× 2 filters); the ANN twin has 4·4 + 4·6 + 9 = 49 real taps × 2 filters."""
    model = TTFSModel([keras.Input((3, 3, 1), dtype=F64), TTFSInput("time", name="in", dtype=F64),
                       TTFSConv2D(2, 3, padding="same", name="conv", dtype=F64), L.Flatten(dtype=F64),
                       TTFSDense(1, output=True, name="readout", dtype=F64)])
    t = np.ones((1, 3, 3, 1))
    t[(0,) + position + (0,)] = 0.25  # the only input spike
    conv = {c.name: c for c in count_ttfs(model, t).layers}["conv"]
    assert (conv.synops, conv.neuron_updates) == (2 * fanout, 18)
    assert {c.name: c.macs for c in count_ttfs(model, t).ann_layers}["conv"] == 49 * 2


def test_dense_hand_computed():
    """Input (0.5, 0, 0.2) as values: 2 input spikes × 2 units; only hidden unit 0 fires (0.5·1 + 0.2·1 −
    0.1 > 0; unit 1: −0.5 − 0.2 < 0); 1 spike × 4 readout units."""
    model = TTFSModel([keras.Input((3,), dtype=F64), TTFSInput("value", name="in", dtype=F64),
                       TTFSDense(2, name="hidden", dtype=F64), TTFSDense(4, output=True, name="readout", dtype=F64)])
    hidden = model.get_layer("hidden")
    hidden.kernel.assign([[1.0, -1.0], [1.0, 1.0], [1.0, -1.0]])
    hidden.bias.assign([-0.1, 0.0])
    report = count_ttfs(model, np.array([[0.5, 0.0, 0.2]]))
    assert [(c.spikes, c.synops, c.neuron_updates) for c in report.layers] == [(2, 0, 0), (1, 4, 2), (0, 4, 4)]
    assert report.ann_macs == 3 * 2 + 2 * 4


# ----------------------------------------------------------------------------- bad input

def test_bad_models_and_inputs_raise_user_error():
    with pytest.raises(UserError, match="TTFSModel"):
        count_ttfs(keras.Sequential([keras.Input((3,)), L.Dense(2)]), np.zeros((1, 3)))
    with pytest.raises(UserError, match="at least one input"):
        count_ttfs(pool_network(1.0), np.zeros((0, 4, 4, 1)))
    odd = TTFSModel([keras.Input((3,)), TTFSInput(), L.Activation("sigmoid", name="squash"),
                     TTFSDense(2, output=True)])
    with pytest.raises(UserError, match="'squash'"):
        count_ttfs(odd, np.zeros((1, 3)))
