"""FS and spiking-DDIM operation counts (issue 13), pinned exactly on tiny hand-built networks.

Oracles, independent of the counting code: spike counts from the NumPy FS neuron
(``tfspike.reference.fs_numpy.forward_post``) on the layer's pre-activations; fan-out by brute force —
the weight layer's linear map materialised from one-hot inputs, counting the nonzero connections of
every input element; connection counts of the U-Net's convolutions by hand ((3H−2)(3W−2) taps for a
3×3 ``same`` convolution).
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfspike.ddim.diffusion import DiffusionModel, fs_spike_probe, sample_fs_spike_stats
from tfspike.ddim.unet import fs_layers
from tfspike.energy import EnergyReport, count_ddim, count_fs
from tfspike.energy.fs import FSCounter
from tfspike.errors import UserError
from tfspike.fs import FewSpike, get_params, spike_stats
from tfspike.reference.fs_numpy import forward_post


def nonzero_kernels(model, seed=0):
    """Weights bounded away from zero (a zero weight would hide a connection from the brute force)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            k, b = layer.get_weights()
            layer.set_weights([(rng.uniform(0.3, 1.0, k.shape) * rng.choice([-1, 1], k.shape)).astype("float32"),
                               rng.normal(0, 0.5, b.shape).astype("float32")])


def brute_fanout(layer, input_shape):
    """Nonzero connections of every input element: the rows of the layer's linear map (one-hot inputs)."""
    n = int(np.prod(input_shape))
    basis = np.eye(n, dtype=np.float32).reshape((n,) + tuple(input_shape))
    jac = np.asarray(layer(basis)) - np.asarray(layer(np.zeros((1,) + tuple(input_shape), np.float32)))
    return (jac.reshape(n, -1) != 0).sum(axis=1).reshape(input_shape)


def oracle_spikes(model, fs_layer, x):
    """Spikes per element of ``fs_layer`` on ``x``: the NumPy neuron on the layer's pre-activations."""
    pre = keras.Model(model.inputs, fs_layer.input).predict(x, verbose=0)
    h, d, T = fs_layer.current_params()
    return forward_post(pre, h, d, T)[1].astype(np.float64)


def by_name(report):
    return {layer.name: layer for layer in report.layers}, {layer.name: layer for layer in report.ann_layers}


def conv_chain(first="relu_k4", second="stoeckl_swish_k16"):
    inp = keras.Input((7, 7, 2))
    x = keras.layers.Conv2D(3, 3, strides=2, padding="same", name="conv_same_s2")(inp)  # 4x4, odd pad at the end
    x = FewSpike(first, name="fs1")(x)
    x = keras.layers.Conv2D(4, 2, padding="valid", name="conv_valid")(x)  # 3x3
    x = FewSpike(second, name="fs2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(5, name="readout")(x)
    model = keras.Model(inp, out)
    nonzero_kernels(model)
    return model


def test_dense_fs_dense_counts_match_the_oracle():
    inp = keras.Input((6,))
    x = keras.layers.Dense(8, name="hidden")(inp)
    x = FewSpike("relu_k4", name="fs")(x)
    out = keras.layers.Dense(3, name="readout")(x)
    model = keras.Model(inp, out)
    nonzero_kernels(model)
    x = np.random.default_rng(1).normal(0, 6, (20, 6)).astype("float32")
    report = count_fs(model, x, batch_size=7, jit_compile=False)
    snn, ann = by_name(report)
    n = oracle_spikes(model, model.get_layer("fs"), x)
    assert 0 < n.sum() < 4 * n.size  # the data exercises the neuron (some but not all spikes)
    assert report.n_samples == 20
    assert snn["fs"].spikes == pytest.approx(n.sum() / 20, rel=1e-12)
    assert snn["fs"].neuron_updates == 4 * 8
    assert snn["readout"].synops == pytest.approx(n.sum() * 3 / 20, rel=1e-12)
    assert snn["readout"].macs == 0
    assert snn["hidden"].macs == 6 * 8 and snn["hidden"].synops == 0  # analog inputs
    assert [layer.name for layer in report.ann_layers] == ["hidden", "readout"]
    assert ann["hidden"].macs == 48 and ann["readout"].macs == 24
    assert isinstance(report, EnergyReport) and report.meta["fs_fed_through"] == {}


@pytest.mark.parametrize("first,second", [("relu_k4", "stoeckl_swish_k16"), ("stoeckl_swish_k16", "relu_k4")])
def test_conv_same_stride2_valid_flatten_dense_match_brute_force(first, second):
    model = conv_chain(first, second)
    x = np.random.default_rng(2).normal(0, 3, (12, 7, 7, 2)).astype("float32")
    report = count_fs(model, x, batch_size=5)
    snn, ann = by_name(report)
    n1 = oracle_spikes(model, model.get_layer("fs1"), x)  # (12, 4, 4, 3)
    n2 = oracle_spikes(model, model.get_layer("fs2"), x)  # (12, 3, 3, 4)
    for n in (n1, n2):
        assert 0 < n.sum() and len(np.unique(n)) > 2
    fan_same = brute_fanout(model.get_layer("conv_same_s2"), (7, 7, 2))
    fan_valid = brute_fanout(model.get_layer("conv_valid"), (4, 4, 3))
    fan_dense = brute_fanout(model.get_layer("readout"), (36,))
    assert len(np.unique(fan_same)) > 1 and len(np.unique(fan_valid)) > 1  # borders reach fewer synapses
    assert snn["fs1"].spikes == pytest.approx(n1.sum() / 12, rel=1e-12)
    assert snn["fs2"].spikes == pytest.approx(n2.sum() / 12, rel=1e-12)
    assert snn["fs1"].neuron_updates == get_params(first).K * 48
    assert snn["fs2"].neuron_updates == get_params(second).K * 36
    assert snn["conv_same_s2"].macs == fan_same.sum() and snn["conv_same_s2"].synops == 0
    assert snn["conv_valid"].synops == pytest.approx((n1 * fan_valid).sum() / 12, rel=1e-12)
    assert snn["readout"].synops == pytest.approx((n2.reshape(12, 36) * fan_dense).sum() / 12, rel=1e-12)
    assert snn["conv_valid"].macs == snn["readout"].macs == 0
    assert "flatten" not in snn  # routing costs nothing
    assert [ann[k].macs for k in ("conv_same_s2", "conv_valid", "readout")] == \
        [fan_same.sum(), fan_valid.sum(), fan_dense.sum()]
    assert report.ann_macs == fan_same.sum() + fan_valid.sum() + fan_dense.sum()


def test_spikes_agree_with_spike_stats_and_outputs_with_predict():
    model = conv_chain()
    x = np.random.default_rng(3).normal(0, 3, (30, 7, 7, 2)).astype("float32")
    report, out = count_fs(model, x, batch_size=8, return_outputs=True)
    np.testing.assert_allclose(out, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    stats = spike_stats(model, x, batch_size=16)
    snn, _ = by_name(report)
    for name in ("fs1", "fs2"):
        assert snn[name].spikes * 30 == pytest.approx(stats["sites"][name]["spikes"], rel=1e-12)
    # the batching does not change the counts; a tf.data.Dataset of (x, y) gives the same
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(30))).batch(11)
    for other in (count_fs(model, x, batch_size=30), count_fs(model, ds)):
        assert [layer.to_dict() for layer in other.layers] == [layer.to_dict() for layer in report.layers]


def test_concatenation_of_spikes_and_analog_values_is_split():
    inp = keras.Input((5,))
    h = keras.layers.Dense(4, name="hidden")(inp)
    s = FewSpike("relu_k4", name="fs")(h)
    cat = keras.layers.Concatenate(name="cat")([inp, s])  # 5 analog + 4 spiking elements
    out = keras.layers.Dense(3, name="readout")(keras.layers.Dropout(0.5, name="drop")(cat))
    model = keras.Model(inp, out)
    nonzero_kernels(model)
    x = np.random.default_rng(4).normal(0, 8, (9, 5)).astype("float32")
    snn, ann = by_name(count_fs(model, x, jit_compile=False))
    n = oracle_spikes(model, model.get_layer("fs"), x)
    assert snn["readout"].synops == pytest.approx(n.sum() * 3 / 9, rel=1e-12)
    assert snn["readout"].macs == 5 * 3 and ann["readout"].macs == 9 * 3


def _pool_model(pool, **kwargs):
    inp = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", name="conv")(inp)
    x = FewSpike("relu_k4", name="fs")(x)
    x = pool(name="pool", **kwargs)(x)
    out = keras.layers.Dense(3, name="readout")(keras.layers.Flatten()(x))
    model = keras.Model(inp, out)
    nonzero_kernels(model, seed=7)
    return model


@pytest.mark.parametrize("kwargs", [dict(pool_size=2), dict(pool_size=3, strides=2, padding="same"),
                                    dict(pool_size=2, strides=1, padding="valid")])
def test_max_pooling_routes_the_winners_spikes(kwargs):
    """Max-pooling of FS outputs passes on the spike train of each window's largest element (its decoded
    value is the pooled value): the readout's synops are Σ over windows of the winner's spikes × 3 units."""
    model = _pool_model(keras.layers.MaxPooling2D, **kwargs)
    x = np.random.default_rng(5).normal(0, 6, (4, 6, 6, 1)).astype("float32")
    fs = model.get_layer("fs")
    pre = keras.Model(model.inputs, fs.input).predict(x, verbose=0)
    h, d, T = fs.current_params()
    values, counts = forward_post(pre, h, d, T)
    # NumPy oracle: for every window, the first element holding the window's maximum value
    k, st = kwargs["pool_size"], kwargs.get("strides") or kwargs["pool_size"]
    pad = kwargs.get("padding", "valid")
    n_out = -(-6 // st) if pad == "same" else (6 - k) // st + 1
    off = max((n_out - 1) * st + k - 6, 0) // 2 if pad == "same" else 0
    routed = 0.0
    for b in range(4):
        for c in range(2):
            for i in range(n_out):
                for j in range(n_out):
                    rows = [r for r in range(i * st - off, i * st - off + k) if 0 <= r < 6]
                    cols = [q for q in range(j * st - off, j * st - off + k) if 0 <= q < 6]
                    window = [(r, q) for r in rows for q in cols]
                    best = max(window, key=lambda rq: (values[b, rq[0], rq[1], c], -window.index(rq)))
                    routed += counts[b, best[0], best[1], c]
    report = count_fs(model, x, jit_compile=False)
    snn, ann = by_name(report)
    assert snn["readout"].synops == pytest.approx(routed * 3 / 4, rel=1e-12) and snn["readout"].macs == 0
    assert ann["readout"].macs == n_out * n_out * 2 * 3 and report.meta["fs_fed_through"] == {}
    assert snn["fs"].spikes == pytest.approx(counts.sum() / 4, rel=1e-12)
    assert count_fs(model, x).to_dict() == report.to_dict()  # the XLA pass counts the same


def test_average_pooling_of_fs_outputs_makes_the_next_layer_analog():
    report = count_fs(_pool_model(keras.layers.AveragePooling2D, pool_size=2), np.ones((2, 6, 6, 1), np.float32),
                      jit_compile=False)
    snn, _ = by_name(report)
    assert snn["readout"].synops == 0 and snn["readout"].macs == 18 * 3
    assert report.meta["fs_fed_through"] == {"pool": "AveragePooling2D"}


def test_bad_models_raise_user_errors():
    inp = keras.Input((4,))
    plain = keras.Model(inp, keras.layers.Dense(2)(inp))
    with pytest.raises(UserError, match="no FewSpike"):
        count_fs(plain, np.ones((1, 4), np.float32))
    with pytest.raises(UserError, match="functional"):
        count_fs(keras.Sequential([keras.Input((4,)), FewSpike("relu_k4")]), np.ones((1, 4), np.float32))
    seq_in = keras.Input((6, 2))
    conv1d = keras.Model(seq_in, keras.layers.Conv1D(2, 3, name="c1d")(FewSpike("relu_k4")(seq_in)))
    with pytest.raises(UserError, match="c1d"):
        count_fs(conv1d, np.ones((1, 6, 2), np.float32))
    with pytest.raises(UserError, match="2 arrays"):
        FSCounter(conv_chain(), jit_compile=False).count([np.ones((1, 7, 7, 2))] * 2)


def test_tiny_ddim_counts():
    keras.utils.set_random_seed(0)
    model = DiffusionModel(16, 1, (4, 8), 1, "fs_swish", "published")
    model.normalizer.adapt(np.random.default_rng(0).random((8, 16, 16, 1)).astype(np.float32))
    model.compile(jit_compile=False)  # graph mode in both passes: compared spike for spike
    for layer in model.ema_network.layers:  # nonzero output kernel so every conv has its connections
        if layer.name == "output_conv":
            layer.set_weights([np.full(w.shape, 0.1, np.float32) for w in layer.get_weights()])
    steps, n_images, seed = 2, 3, 7
    report = count_ddim(model, num_images=n_images, diffusion_steps=steps, seed=seed, batch_size=2)
    stats = sample_fs_spike_stats(model, num_images=n_images, diffusion_steps=steps, seed=seed)
    snn, ann = by_name(report)
    sites = fs_layers(model.ema_network)
    assert len(sites) == 3  # 1 down, 1 middle, 1 up block
    for layer in sites:
        n = math.prod(int(s) for s in layer.input.shape[1:])
        spikes = stats["per_site"][layer.name]["spikes_per_neuron"] * n * n_images * steps
        assert snn[layer.name].spikes * n_images == pytest.approx(spikes, rel=1e-9)
        assert snn[layer.name].neuron_updates == 16 * n * steps
    assert report.n_samples == n_images and report.meta["diffusion_steps"] == steps

    # ANN twin by hand: 1x1 conv H·W·Cin·Cout, 3x3 same conv (3H-2)(3W-2)·Cin·Cout, BN H·W·C; x steps
    def hand(layer):
        _, hh, ww, cin = layer.input.shape
        if isinstance(layer, keras.layers.BatchNormalization):
            return hh * ww * cin
        taps = hh * ww if layer.kernel_size == (1, 1) else (3 * hh - 2) * (3 * ww - 2)
        return taps * cin * layer.filters

    counted = [l for l in model.ema_network.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.BatchNormalization))]
    assert [l.name for l in report.ann_layers] == [l.name for l in counted]
    for layer in counted:
        assert ann[layer.name].macs == hand(layer) * steps, layer.name
    # spike-fed layers are exactly the block's second convolutions; their synops from the NumPy neuron on
    # the FS inputs of the same trajectory (the sampler's own probe) times the hand fan-out map
    spiking = {l.name for l in report.layers if l.synops > 0}
    assert spiking == {l.name.replace("_act", "_conv2") for l in sites}
    probe, _ = fs_spike_probe(model.ema_network)
    probe_step = tf.function(lambda noisy, t: model.reverse_step(noisy, t, 1 / steps, probe))  # graph mode too
    gen = np.random.default_rng(seed)
    expected = {l.name: 0.0 for l in sites}
    for b in (2, 1):
        noisy = tf.constant(gen.standard_normal((b, 16, 16, 1)), tf.float32)
        for step in range(steps):
            noisy, _, fs_inputs = probe_step(noisy, tf.fill((b, 1, 1, 1), 1.0 - step / steps))
            for layer, a in zip(sites, fs_inputs):
                h, d, T = layer.current_params()
                n = forward_post(np.asarray(a), h, d, T)[1].astype(np.float64)
                size = n.shape[1]
                cover = np.full(size, 3.0)
                cover[[0, -1]] = 2.0  # a border pixel is in 2 windows per axis
                conv2 = model.ema_network.get_layer(layer.name.replace("_act", "_conv2"))
                expected[layer.name] += (n * (np.outer(cover, cover)[None, :, :, None] * conv2.filters)).sum()
    for layer in sites:
        conv2 = layer.name.replace("_act", "_conv2")
        assert snn[conv2].synops * n_images == pytest.approx(expected[layer.name], rel=1e-6), conv2
        assert snn[conv2].macs == 0
    assert report.macs == pytest.approx(report.ann_macs - sum(ann[l.name.replace("_act", "_conv2")].macs
                                                              for l in sites))
    with pytest.raises(UserError, match="no FewSpike"):
        count_ddim(DiffusionModel(16, 1, (4, 8), 1, "swish"), 1, 1)


@pytest.mark.parametrize("voltage_scaling", ["abs_plus_one", "none"])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_outputs_and_spikes_are_the_layers_own_on_extreme_inputs(voltage_scaling, jit_compile):
    """Outputs and spikes of the counting pass are bit-identical to the model's own pass and to the layer's
    ``spike_count``, also for ±inf, NaN, denormal and huge pre-activations (the scaled form, computed
    without its gradient-only division, does not spike on +inf)."""
    specials = np.array([np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-40, 3e38, -3e38, 0.0, -0.0], np.float32)
    rng = np.random.default_rng(8)
    x = np.concatenate([np.resize(specials, (3, 12)), rng.normal(0, 3, (9, 12)).astype(np.float32)])
    x[4, :2] = [1.0000001, 0.99999994]
    inp = keras.Input((12,))
    fs = FewSpike("stoeckl_swish_k16", voltage_scaling=voltage_scaling, name="fs")
    y = fs(inp)
    model = keras.Model(inp, [y, keras.layers.Dense(3, name="readout")(y)])
    nonzero_kernels(model)
    report, (values, logits) = count_fs(model, x, batch_size=5, return_outputs=True, jit_compile=jit_compile)
    own = tf.function(lambda t: model(t, training=False), jit_compile=jit_compile)(tf.constant(x))
    assert np.array_equal(values, own[0].numpy()) and np.isfinite(values).all()  # bit for bit
    np.testing.assert_allclose(logits, own[1].numpy(), rtol=1e-6, atol=1e-5)  # matmuls of other batch sizes
    n = fs.spike_count(tf.constant(x)).numpy().astype(np.float64)
    # the scaled form never spikes on +inf, the unscaled one does: the oracle is the layer's own form
    assert (n[x == np.inf] == 0).all() == (voltage_scaling == "abs_plus_one")
    snn, _ = by_name(report)
    assert snn["fs"].spikes == pytest.approx(n.sum() / 12, rel=1e-12)
    assert snn["readout"].synops == pytest.approx(n.sum() * 3 / 12, rel=1e-12)


def numpy_max_pool_winner(values, counts, k, st):
    """Valid max-pooling of (batch, H, W, C) values and the spikes of each window's first maximal element."""
    b, hh, ww, c = values.shape
    oh, ow = (hh - k) // st + 1, (ww - k) // st + 1
    pooled, routed = np.zeros((b, oh, ow, c), values.dtype), np.zeros((b, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            win_v = values[:, i * st:i * st + k, j * st:j * st + k].reshape(b, k * k, c)
            win_n = counts[:, i * st:i * st + k, j * st:j * st + k].reshape(b, k * k, c)
            first = np.argmax(win_v, axis=1)  # NumPy's argmax: the first maximum
            pooled[:, i, j] = np.take_along_axis(win_v, first[:, None], 1)[:, 0]
            routed[:, i, j] = np.take_along_axis(win_n, first[:, None], 1)[:, 0]
    return pooled, routed


def test_spikes_route_through_padding_and_two_max_poolings():
    inp = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", name="conv")(inp)
    x = FewSpike("relu_k4", name="fs")(x)
    x = keras.layers.ZeroPadding2D(1, name="pad")(x)  # 8x8: zeros that never spike
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)  # 4x4
    x = keras.layers.MaxPooling2D(2, strides=1, name="pool2")(x)  # 3x3, overlapping
    out = keras.layers.Dense(3, name="readout")(keras.layers.Flatten()(x))
    model = keras.Model(inp, out)
    nonzero_kernels(model, seed=9)
    x = np.random.default_rng(10).normal(0, 6, (5, 6, 6, 1)).astype("float32")
    fs = model.get_layer("fs")
    pre = keras.Model(model.inputs, fs.input).predict(x, verbose=0)
    values, counts = forward_post(pre, *fs.current_params())
    values, counts = np.pad(values, [(0, 0), (1, 1), (1, 1), (0, 0)]), np.pad(counts, [(0, 0), (1, 1), (1, 1), (0, 0)])
    values, counts = numpy_max_pool_winner(values, counts, 2, 2)
    _, counts = numpy_max_pool_winner(values, counts, 2, 1)
    assert 0 < counts.sum() and len(np.unique(counts)) > 2
    for jit_compile in (True, False):
        snn, _ = by_name(count_fs(model, x, jit_compile=jit_compile))
        assert snn["readout"].synops == pytest.approx(counts.sum() * 3 / 5, rel=1e-12) and snn["readout"].macs == 0


def tie_params(K):
    """FS parameters with two spike patterns of the same output: x = 3 spikes once (step 2), x = 9 twice
    (steps 0 and 1), both decode to 2. K = 24 appends a binary quantiser of the residual (neither pattern
    spikes there, other inputs do)."""
    h, d, T = [3.0, 10.0, 13.0], [1.0, 1.0, 2.0], [5.0, 5.0, -1.0]
    tail = [4.0 * 2.0 ** -j for j in range(K - 3)]
    return np.array(h + tail, np.float32), np.array(d + tail, np.float32), np.array(T + tail, np.float32)


def first_max_winners(values, counts, k, st, padding):
    """NumPy max-pooling oracle (padding as Keras: -inf values, no spikes): the spikes of each window's
    first maximal element, and of its last (to check that the data makes the tie rule matter)."""
    if padding == "same":
        pads = [(0, 0)]
        for n in values.shape[1:3]:
            total = max((-(-n // st) - 1) * st + k - n, 0)
            pads.append((total // 2, total - total // 2))
        values = np.pad(values, pads + [(0, 0)], constant_values=-np.inf)
        counts = np.pad(counts, pads + [(0, 0)])
    _, first = numpy_max_pool_winner(values, counts, k, st)
    _, last = numpy_max_pool_winner(values[:, ::-1, ::-1], counts[:, ::-1, ::-1], k, st)
    return first, last[:, ::-1, ::-1]


@pytest.mark.parametrize("K", [3, 24])
@pytest.mark.parametrize("voltage_scaling", ["abs_plus_one", "none"])
@pytest.mark.parametrize("pool", [(2, 2, "valid"), (3, 2, "same"), (2, 1, "valid"), (3, 1, "same")])
def test_max_pooling_counts_the_winners_from_their_inputs(K, voltage_scaling, pool):
    """The counting pass picks each window's winning FS input and counts its spikes there: ties between
    different spike patterns of one output value (first element in row-major order wins), 'same' padding,
    overlapping windows, ±inf and NaN inputs, batches that do not split into the pass's 8 slices."""
    k, st, padding = pool
    inp = keras.Input((7, 7, 2))
    fs = FewSpike(h=tie_params(K)[0], d=tie_params(K)[1], T=tie_params(K)[2], voltage_scaling=voltage_scaling,
                  name="fs")
    pooled = keras.layers.MaxPooling2D(k, strides=st, padding=padding, name="pool")(fs(inp))
    model = keras.Model(inp, keras.layers.Dense(3, name="readout")(keras.layers.Flatten()(pooled)))
    nonzero_kernels(model)
    rng = np.random.default_rng(11)
    x = rng.normal(0, 6, (21, 7, 7, 2)).astype(np.float32)
    pick = rng.random(x.shape)
    x[pick < 0.6] = rng.choice([3.0, 9.0], x.shape)[pick < 0.6]
    x[pick > 0.95] = rng.choice([np.inf, -np.inf, np.nan], x.shape)[pick > 0.95]
    values, counts = fs(x).numpy(), fs.spike_count(x).numpy().astype(np.float64)  # the layer's own pass
    first, last = first_max_winners(values, counts, k, st, padding)
    assert first.sum() != last.sum()  # the tie rule changes the count
    assert FSCounter(model).fs_sites[0]["apart"]  # the winner-input path
    for jit_compile, batch_size in ((True, 10), (False, 21)):  # compiled: batches of 10, 10 and 1
        snn, _ = by_name(count_fs(model, x, batch_size=batch_size, jit_compile=jit_compile))
        assert snn["fs"].spikes == pytest.approx(counts.sum() / 21, rel=1e-12)
        assert snn["readout"].synops == pytest.approx(first.sum() * 3 / 21, rel=1e-12)


def test_spikes_route_through_two_max_poolings_without_the_winner_input_path():
    """Parameters the separate spike chain does not take (a tiny threshold) count through fs_forward's
    spike count; winners routed through two poolings, the first with padding, the second overlapping."""
    h, d, T = tie_params(4)
    T[3] = 1e-35
    inp = keras.Input((7, 7, 1))
    fs = FewSpike(h=h, d=d, T=T, name="fs")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(fs(inp))  # 4x4
    x = keras.layers.MaxPooling2D(2, strides=1, name="pool2")(x)  # 3x3
    model = keras.Model(inp, keras.layers.Dense(3, name="readout")(keras.layers.Flatten()(x)))
    nonzero_kernels(model)
    rng = np.random.default_rng(12)
    x = rng.choice(np.array([3.0, 9.0, -2.0, 0.5, 1e-36, 2e-35], np.float32), (9, 7, 7, 1))
    assert not FSCounter(model).fs_sites[0]["apart"]
    values, counts = fs(x).numpy(), fs.spike_count(x).numpy().astype(np.float64)
    pooled = keras.layers.MaxPooling2D(3, strides=2, padding="same")(values).numpy()
    routed, _ = first_max_winners(values, counts, 3, 2, "same")
    _, routed = numpy_max_pool_winner(pooled, routed, 2, 1)
    for jit_compile in (True, False):
        snn, _ = by_name(count_fs(model, x, batch_size=4, jit_compile=jit_compile))
        assert snn["fs"].spikes == pytest.approx(counts.sum() / 9, rel=1e-12)
        assert snn["readout"].synops == pytest.approx(routed.sum() * 3 / 9, rel=1e-12)


@pytest.mark.parametrize("voltage_scaling", ["abs_plus_one", "none"])
@pytest.mark.parametrize("params", ["stoeckl_swish_k16", "relu_k4", "tie24"])
def test_separate_spike_chain_is_the_layers_spike_count(voltage_scaling, params):
    """``_spike_counts`` (selects, ``v > T``, +inf as NaN) against the layer's own spike count, compiled
    and not: inputs one ulp around every threshold and reset point, ±inf, NaN, denormals, ±3e38."""
    from tfspike.energy.fs import _counts_apart, _spike_counts

    fs = FewSpike(tie_params(24) if params == "tie24" else params, voltage_scaling=voltage_scaling)
    h, _, T = fs.current_params()
    assert _counts_apart(fs, h, T)
    marks = np.concatenate([T, T + h, np.cumsum(h), -T]).astype(np.float32)
    x = np.concatenate([np.nextafter(marks, np.float32(np.inf)), marks, np.nextafter(marks, np.float32(-np.inf)),
                        np.array([np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-40, 3e38, -3e38, 0.0, -0.0], np.float32),
                        np.random.default_rng(13).normal(0, 4, 500).astype(np.float32)])
    own = fs.spike_count(tf.constant(x)).numpy()
    assert len(np.unique(own)) > 2
    for jit_compile in (True, False):
        got = tf.function(lambda t: _spike_counts(t, h, T, voltage_scaling), jit_compile=jit_compile)(tf.constant(x))
        np.testing.assert_array_equal(got.numpy(), own)
