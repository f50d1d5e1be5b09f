"""Windows, growth rule, latency, spike metrics, noise and quantisation (spec §1.7, §8, §9), and the
X_n file of the measured window initialisation (spec §5.6)."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfspike.models.ttfs_zoo import build_snn_model
from tfspike.errors import UserError
from tfspike.ttfs import TTFSDense, TTFSInput, TTFSModel, evaluate_ttfs
from tfspike.ttfs.windows import read_x_n_json, write_x_n_json


@pytest.mark.parametrize("name,data,latency", [("FC2", "MNIST", 1501.0), ("VGG", "CIFAR10", 21001.0),
                                               ("VGG_BN", "MNIST", 22501.0)])
def test_default_latencies(name, data, latency):
    assert build_snn_model(name, data).latency() == latency


def chain_model(scales=(1.0, 200.0, 1 / 200.0), dtype="float32", **kw):
    """Identity-kernel layers scaled so layer k's largest activation is scales[:k+1].prod()."""
    layers = [keras.Input((4,), dtype=dtype), TTFSInput("value", dtype=dtype)]
    for i, _ in enumerate(scales):
        layers.append(TTFSDense(4, name=f"h{i}", dtype=dtype, **kw))
    layers.append(TTFSDense(2, output=True, name="out", dtype=dtype))
    model = TTFSModel(layers)
    for layer, s in zip(model.spiking_layers(), scales):
        layer.kernel.assign(np.eye(4) * s)
    return model


def test_growth_rule_after_training_step_and_not_in_evaluate():
    model = chain_model()
    x = np.array([[1.0, 0.5, 0.2, 0.0]] * 8, "float32")  # activations: layer 1 max 1, layer 2 max 200
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=keras.losses.MeanSquaredError())
    before = model.windows()
    assert before == [(1.0, 1501.0), (1501.0, 3001.0), (3001.0, 4501.0)]
    model.predict(x * 10, verbose=0)
    model.evaluate(x * 10, np.zeros((8, 2)), verbose=0)
    assert model.windows() == before  # evaluate/predict never change windows
    model.fit(x, np.zeros((8, 2)), epochs=1, batch_size=8, verbose=0)
    # Δ_2: 1500 → 10·200 = 2000, and every later window shifts by 500.
    assert model.windows() == [(1.0, 1501.0), (1501.0, 3501.0), (3501.0, 5001.0)]
    assert model.latency() == 5001.0


def test_spike_metrics_count_hidden_neurons_and_violations():
    model = chain_model(scales=(1.0, 1.0, 1.0), x_n=0.5)  # Δ = 0.75 < activation 1 → violations
    x = np.array([[1.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.3]], "float32")
    stats = evaluate_ttfs(model, x, y=np.array([0, 1]))
    assert stats["spikes_per_neuron"] == pytest.approx(3 / 8)  # 2 + 1 of 4 neurons fire, every layer
    assert stats["spikes_per_layer"] == {"h0": 3 / 8, "h1": 3 / 8, "h2": 3 / 8}
    assert stats["input_spike_fraction"] == pytest.approx(3 / 8)
    assert stats["window_violations"] == 3  # the activation 1.0 > Δ in each of the 3 layers
    assert stats["hidden_neurons"] == 12 and stats["latency"] == 1 + 3 * 0.75


def test_reset_windows_sets_layer_config_and_round_trips():
    """reset_windows(x_n, zeta) updates every layer's x_n and zeta, so a model rebuilt from get_config()
    has the same windows (and the chain is the one chain_windows() builds)."""
    model = chain_model()
    model.reset_windows([3.0, 7000.0, 12.5], zeta=0.2)
    want = [(1.0, 1.0 + 3.6), (4.6, 4.6 + 8400.0), (8404.6, 8404.6 + 15.0)]
    np.testing.assert_allclose(model.windows(), want, rtol=1e-12)
    assert [(l.x_n, l.zeta) for l in model.spiking_layers()] == [(3.0, 0.2), (7000.0, 0.2), (12.5, 0.2)]
    twin = TTFSModel.from_config(model.get_config())
    np.testing.assert_allclose(twin.windows(), model.windows(), rtol=1e-12)
    before = model.windows()
    model.chain_windows()
    assert model.windows() == before


def test_evaluate_reuses_compiled_step_until_configure():
    model = chain_model()
    x = np.array([[1.0, 0.5, 0.2, 0.0]] * 4, "float32")
    first = evaluate_ttfs(model, x)
    step = model.compiled_step("stats", None)
    evaluate_ttfs(model, x)
    assert model.compiled_step("stats", None) is step  # no new XLA compile per evaluation
    model.configure(time_bits=4)  # Δ = 1500 in 16 levels: the activations ≤ 1 of h0 round to silence
    quantised = evaluate_ttfs(model, x)
    assert model.compiled_step("stats", None) is not step  # the new options are traced
    # unquantised: 3 of the 4 neurons of h1 fire (activations 200, 100, 40, 0); quantised: none
    assert first["spikes_per_layer"]["h1"] == 0.75 and quantised["spikes_per_layer"]["h1"] == 0


def test_zero_noise_is_bitwise_the_noise_free_path():
    """configure(noise=0) after a noisy configuration gives back exactly the closed form (no sampling)."""
    a, b = chain_model(), chain_model()
    b.set_weights(a.get_weights())
    x = np.random.default_rng(0).uniform(0, 1, (16, 4)).astype("float32")
    b.configure(noise=0.5)
    assert not np.array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))
    b.configure(noise=0.0)
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))


def test_streaming_loss_equals_keras_cross_entropy():
    model = chain_model(scales=(1.0, 2.0, 0.5))
    rng = np.random.default_rng(4)
    model.layers[-1].kernel.assign(rng.normal(size=(4, 2)))
    x = rng.uniform(0, 1, (37, 4)).astype("float32")
    y = rng.integers(0, 2, 37)
    stats = evaluate_ttfs(model, x, y=y, batch_size=10)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model.predict(x, verbose=0))
    assert stats["loss"] == pytest.approx(float(expected), rel=1e-5)


def test_reference_noise_statistics():
    sigma, n_in, n_out = 0.3, 50, 1000
    layer = TTFSDense(n_out, noise=sigma)
    r = tf.random.uniform((128, n_in))
    layer.build((None, n_in))
    clean = tf.nn.relu(layer.linear(r)).numpy()
    noisy = layer(r).numpy()
    pert = clean - noisy  # emitted times t + ε ⇔ r − ε
    n = pert.size
    assert n >= 1e5
    assert abs(pert.mean()) <= 3 * sigma / np.sqrt(n)
    assert abs(pert.std() / sigma - 1) <= 0.02
    assert (noisy[clean == 0] != 0).all()  # reference mode jitters silent neurons too


def test_spikes_noise_mode_keeps_silent_neurons_silent():
    layer = TTFSDense(500, noise=0.5, noise_mode="spikes")
    r = tf.random.uniform((64, 20))
    layer.build((None, 20))
    clean = tf.nn.relu(layer.linear(r)).numpy()
    noisy = layer(r).numpy()
    assert (noisy[clean == 0] == 0).all()
    assert (noisy >= 0).all()
    assert (noisy[clean > 0] != clean[clean > 0]).mean() > 0.9


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_time_quantisation_puts_activations_on_the_window_grid(bits):
    model = chain_model(scales=(2.0, 1.0, 1.0), x_n=2.0, time_bits=bits)  # Δ = 3 per layer
    model.layers[0].time_bits = bits
    x = np.random.default_rng(1).uniform(0, 1, (32, 4)).astype("float32")
    r = tf.constant(x)
    steps = []
    for layer in model.layers:
        r = layer(r)
        if isinstance(layer, TTFSInput):
            steps.append((r.numpy(), 1.0))
        elif layer.name.startswith("h"):
            steps.append((r.numpy(), 3.0))
    for values, delta in steps:  # every value entering the next layer lies on k·Δ/(2^b − 1)
        k = values * (2 ** bits - 1) / delta
        np.testing.assert_allclose(k, np.round(k), atol=1e-4)
        assert values.min() >= 0 and values.max() <= delta + 1e-6


def test_weight_quantisation_matches_tf_fake_quant_including_readout():
    model = chain_model(weight_bits=8, w_min=-1.0, w_max=1.0)
    readout = model.layers[-1]
    readout.weight_bits, readout.w_min, readout.w_max = 8, -1.0, 1.0
    rng = np.random.default_rng(2)
    for layer in model.spiking_layers() + [readout]:
        layer.kernel.assign(rng.normal(0, 0.7, layer.kernel.shape))
    for layer in model.spiking_layers() + [readout]:
        expected = tf.quantization.fake_quant_with_min_max_args(layer.kernel, min=-1.0, max=1.0, num_bits=8)
        np.testing.assert_array_equal(layer.effective_kernel().numpy(), expected.numpy())
    r = tf.constant(rng.uniform(0, 1, (8, 4)).astype("float32"))
    z = readout(r).numpy()
    np.testing.assert_allclose(z, r.numpy() @ readout.effective_kernel().numpy() + readout.bias.numpy(), rtol=1e-6)


def test_checkpoint_round_trip_keeps_logits_and_windows(tmp_path):
    model = build_snn_model("FC2", "MNIST", input_is="value")
    model.spiking_layers()[0].t_max.assign(2345.0)
    x = np.random.default_rng(0).uniform(0, 1, (32, 784)).astype("float32")
    z = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    fresh = build_snn_model("FC2", "MNIST", input_is="value")
    fresh.load_weights(tmp_path / "m.weights.h5")
    for m in (loaded, fresh):
        np.testing.assert_array_equal(m.predict(x, verbose=0), z)
        assert m.windows() == model.windows()


def test_x_n_json_round_trip_sets_measured_windows(tmp_path):
    model = chain_model()
    path = write_x_n_json(tmp_path / "MNIST-FC3_X_n.json", model, [2.0, 400.0, 3.5], dataset="MNIST")
    with open(path) as f:
        assert json.load(f) == {"layers": ["h0", "h1", "h2"], "x_n": [2.0, 400.0, 3.5], "dataset": "MNIST",
                                "split": "train"}
    x_n = read_x_n_json(path, model)
    assert x_n == [2.0, 400.0, 3.5]
    model.reset_windows(x_n)
    assert model.windows() == [(1.0, 4.0), (4.0, 604.0), (604.0, 609.25)]  # Δ = 1.5·X_n, chained


@pytest.mark.parametrize("content,match", [
    (None, "X_n file not found"),
    ("{not json", "is not a readable X_n JSON file"),
    ('{"layers": ["h0", "h1", "h2"]}', 'has no "x_n" entry'),
    ("[1, 2, 3]", 'has no "x_n" entry'),
    ('{"x_n": "1000"}', 'must be a list of numbers'),
    ('{"x_n": [1.0, "inf", 2.0]}', 'must be a list of numbers'),
    ('{"x_n": [1.0, 2.0]}', "has 2 X_n values, the model has 3 spiking layers"),
    ('{"layers": ["h0", "h1", "h2"], "x_n": [1.0, 0.0, 2.0]}', r"finite and > 0, got h1=0\.0"),
    ('{"x_n": [1.0, 2.0, -3.0]}', r"finite and > 0, got #2=-3\.0"),
    ('{"x_n": [NaN, 2.0, 3.0]}', r"finite and > 0, got #0=nan"),
])
def test_read_x_n_json_rejects_bad_files_in_one_line(tmp_path, content, match):
    path = tmp_path / "CIFAR10-VGG_X_n.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=match) as e:
        read_x_n_json(path, chain_model())
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg


def test_light_modules_do_not_load_tensorflow_and_one_layer_registers_all():
    """tfspike.ttfs and tfspike.io are lazy: X_n files and weight-file names need no TensorFlow. Asking for
    one TTFS layer class registers every one, so keras.saving.load_model finds all of them."""
    code = ("import sys\n"
            "import tfspike.io, tfspike.ttfs, tfspike.ttfs.windows, tfspike.ttfs.simulate\n"
            "assert 'tensorflow' not in sys.modules and 'h5py' not in sys.modules, 'eager import'\n"
            "from tfspike.ttfs import TTFSModel\n"
            "import keras\n"
            "names = sorted(k for k in keras.saving.get_custom_objects() if k.startswith('tfspike>TTFS'))\n"
            "print(','.join(names))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ("tfspike>TTFSConv2D,tfspike>TTFSDense,tfspike>TTFSInput,tfspike>TTFSMaxPool2D,"
                                  "tfspike>TTFSModel")
