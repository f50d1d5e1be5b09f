"""Spiking DDIM (spec fs.md §5, checks E1–E6 and the issue's tests). Tiny widths and images keep the
fast tests cheap; the §5.6 sizes are checked on built (not run) networks."""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_contract import check_layer_contract
from tfspike.ddim.diffusion import DiffusionModel, sample_fs_spike_stats
from tfspike.ddim.kid import KID, classifier, kid
from tfspike.ddim.unet import SinusoidalEmbedding, activation_sites, fs_layers, neurons_per_image, residual_unet
from tfspike.errors import UserError
from tfspike.utils.models import count_parameters
from records import record_file, results

ACTIVATIONS = ["swish", "fs_swish"]


def kid_oracle(real, generated):
    """Unbiased MMD² with k(a, b) = (a·b / D + 1)³ written from the spec (fs.md §5.3) as explicit sums over
    pairs in float64: 1/(n(n−1)) Σ_{i≠j} k(r_i, r_j) + 1/(m(m−1)) Σ_{i≠j} k(g_i, g_j) − 2/(nm) Σ_{i,j} k(r_i, g_j).
    Returns (kid, the three terms) so callers can scale tolerances to the cancelling terms."""
    r, g = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    n, m, dims = len(r), len(g), r.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / dims + 1.0) ** 3

    rr = math.fsum(k(r[i], r[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    gg = math.fsum(k(g[i], g[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    rg = math.fsum(k(r[i], g[j]) for i in range(n) for j in range(m)) / (n * m)
    return rr + gg - 2.0 * rg, (rr, gg, rg)


def schedule_np(t, min_signal_rate=0.02, max_signal_rate=0.95):
    """(noise rate, signal rate) of the cosine schedule of fs.md §5.1, in float64."""
    angle = math.acos(max_signal_rate) + np.asarray(t, np.float64) * (math.acos(min_signal_rate)
                                                                     - math.acos(max_signal_rate))
    return np.sin(angle), np.cos(angle)


def tiny_encoder(size=16, channels=1, dims=16):
    clf = classifier(size, channels, 10, dims)
    return keras.Model(clf.inputs, clf.get_layer("features").output)


# ---------------------------------------------------------------------------------------------
# U-Net structure (E1, E2)


def test_sinusoidal_embedding_contract_and_values():
    x = np.array([[[[0.0]]], [[[0.25]]]], np.float32)
    check_layer_contract(lambda: SinusoidalEmbedding(8, 1.0, 1000.0), x, (2, 1, 1, 8))
    e = keras.ops.convert_to_numpy(SinusoidalEmbedding(8, 1.0, 1000.0)(x))
    f = np.exp(np.linspace(np.log(1.0), np.log(1000.0), 4))
    np.testing.assert_allclose(e[1, 0, 0], np.concatenate([np.sin(2 * np.pi * f * 0.25), np.cos(2 * np.pi * f * 0.25)]),
                               atol=2e-4)
    np.testing.assert_array_equal(e[0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1])
    with pytest.raises(UserError):
        SinusoidalEmbedding(7)


# spec §5.6: (S, C, widths) -> trainable, non-trainable, neurons per image
SIZES = [
    (32, 1, (32, 64, 96, 128), 1_950_497, 2_880, 225_280),
    (64, 3, (32, 64, 96, 128), 1_950_627, 2_880, 901_120),
    (64, 3, (64, 128, 256, 512), 17_039_107, 7_488, 1_900_544),
]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("size,channels,widths,trainable,non_trainable,neurons", SIZES)
def test_unet_sizes(activation, size, channels, widths, trainable, non_trainable, neurons):
    net = residual_unet(size, channels, widths, 2, activation=activation, fs_params="published")
    assert count_parameters(net) == (trainable, non_trainable)
    assert len(activation_sites(net)) == 14
    assert neurons_per_image(net) == neurons
    assert net.output.shape[1:] == (size, size, channels)
    n_fs = len(fs_layers(net))
    if activation == "fs_swish":
        assert n_fs == 14
        assert all(not layer.weights for layer in fs_layers(net))  # fixed FS parameters own no weights
        assert neurons_per_image(net, fs_layers(net)) == neurons
    else:
        assert n_fs == 0


def test_unet_rejects_bad_shapes():
    with pytest.raises(UserError, match="divisible"):
        residual_unet(28, 1, (8, 16, 24, 32), 2)
    with pytest.raises(UserError, match="activation"):
        residual_unet(16, 1, (8, 16), 1, activation="relu")


def test_fs_params_by_name():
    from tfspike.ddim.choices import FS_PARAM_SETS
    from tfspike.ddim.unet import activation_factory

    layer = activation_factory("fs_swish", "published")("x_act")
    assert layer.K == 16 and layer.voltage_scaling == "abs_plus_one" and not layer.trainable_params
    assert FS_PARAM_SETS["tbpi"] == "swish_k16_tbpi"


def test_ema_clone_keeps_fs_layers():  # E2
    model = DiffusionModel(16, 1, (4, 8, 8, 8), 2, "fs_swish", "published", voltage_scaling="abs_plus_one")
    fs, fs_ema = fs_layers(model.network), fs_layers(model.ema_network)
    assert len(fs) == len(fs_ema) == 14
    for a, b in zip(fs, fs_ema):
        ca, cb = a.get_config(), b.get_config()
        assert (ca["h"], ca["d"], ca["T"], ca["voltage_scaling"]) == (cb["h"], cb["d"], cb["T"], cb["voltage_scaling"])
        assert cb["voltage_scaling"] == "abs_plus_one" and len(cb["h"]) == 16
    assert count_parameters(model.network) == count_parameters(model.ema_network)


# ---------------------------------------------------------------------------------------------
# KID (E5, E6)


def test_kid_small_example():  # E5
    r = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    g = np.array([[1.0, 1.0], [0.0, 0.0]], np.float32)
    # by hand (D = 2): k_rr(i≠j) = 1, k_gg(i≠j) = 1, k_rg = {1.5³, 1, 1.5³, 1} → 1 + 1 − 2·2.1875
    assert abs(float(kid(r, g)) - (-2.375)) < 1e-6
    assert kid_oracle(r, g)[0] == -2.375


def test_kid_unequal_set_sizes_by_hand():
    """n = 2 real, m = 3 generated: swapping n and m anywhere changes the value."""
    r = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    g = np.array([[2.0, 0.0], [0.0, 0.0], [0.0, 2.0]], np.float32)
    # k_rr(i≠j) = 1; k_gg(i≠j) = 1 (all dot products 0); k_rg: r1·g1 = r2·g3 = 2 → 2³ = 8, the other four 1
    want = 1.0 + 1.0 - 2.0 * (8 + 8 + 4) / 6
    assert kid_oracle(r, g)[0] == pytest.approx(want, abs=1e-15)
    assert abs(float(kid(r, g)) - want) < 1e-5
    assert abs(float(kid(g, r)) - want) < 1e-5  # symmetric in the two sets


def test_kid_matches_the_pairwise_oracle():
    rng = np.random.default_rng(7)
    r = rng.normal(size=(9, 5)).astype(np.float32)
    g = (rng.normal(size=(6, 5)) * 1.5 + 0.3).astype(np.float32)
    want, terms = kid_oracle(r, g)
    np.testing.assert_allclose(float(kid(r, g)), want, rtol=0, atol=1e-6 * sum(map(abs, terms)))


def test_kid_identical_sets():  # E6
    r = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
    n, r64 = len(r), r.astype(np.float64)
    k = lambda a, b: (math.fsum(a * b) / 16 + 1.0) ** 3  # noqa: E731
    mean_diag = math.fsum(k(r64[i], r64[i]) for i in range(n)) / n
    mean_off = math.fsum(k(r64[i], r64[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    expected = -(2.0 / n) * (mean_diag - mean_off)  # spec §5.3 identity for R = G
    assert kid_oracle(r, r)[0] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(float(kid(r, r)), expected, rtol=1e-5)


def test_kid_metric_self_vs_noise():
    """KID of a batch against itself ≈ 0, against uniform noise clearly positive (untrained CNN features)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:16] / 15.0
    # smooth blobs at random positions: structured images, far from noise
    cx, cy = rng.random((2, 64, 1, 1))
    real = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.05)[..., None].astype(np.float32)
    other = np.exp(-((xx - cy) ** 2 + (yy - cx) ** 2) / 0.05)[..., None].astype(np.float32)
    noise = rng.random(real.shape).astype(np.float32)
    encoder = tiny_encoder(16, 1, 32)
    metric = KID(encoder, name="kid_test")
    metric.update_state(real, noise)
    kid_noise = float(metric.result())
    # the metric is kid() of the encoded batches: the pairwise oracle on the same features
    features = {name: encoder(x, training=False).numpy() for name, x in
                (("real", real), ("noise", noise), ("other", other))}
    want_noise, terms = kid_oracle(features["real"], features["noise"])
    np.testing.assert_allclose(kid_noise, want_noise, rtol=0, atol=1e-6 * sum(map(abs, terms)))
    metric.reset_state()
    metric.update_state(real, real)
    kid_self = float(metric.result())
    metric.update_state(real, other)  # the mean over two batches
    want_self, terms_self = kid_oracle(features["real"], features["real"])
    want_other, terms_other = kid_oracle(features["real"], features["other"])
    np.testing.assert_allclose(kid_self, want_self, rtol=0, atol=1e-6 * sum(map(abs, terms_self)))
    np.testing.assert_allclose(float(metric.result()), (want_self + want_other) / 2, rtol=0,
                               atol=1e-6 * sum(map(abs, terms_self + terms_other)))
    kid_other = 2 * float(metric.result()) - kid_self
    assert kid_noise > 0
    assert abs(kid_self) < 0.05 * kid_noise
    assert abs(kid_other) < 0.1 * kid_noise


# ---------------------------------------------------------------------------------------------
# Diffusion model (E3, E4), training step, sampling


def test_initial_noise_loss():  # E3
    keras.utils.set_random_seed(0)
    model = DiffusionModel(32, 1, (8, 16, 24, 32), 2, "swish")
    images = np.random.default_rng(0).random((64, 32, 32, 1)).astype(np.float32)
    model.normalizer.adapt(images)
    loss, _ = model.noise_gradients(images)
    assert abs(float(loss) - math.sqrt(2 / math.pi)) < 0.01
    # the zero final kernel predicts zero noise exactly
    noisy = np.random.default_rng(1).normal(size=(2, 32, 32, 1)).astype(np.float32)
    assert np.all(model.network([noisy, np.full((2, 1, 1, 1), 0.5, np.float32)]).numpy() == 0)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_at_init_and_after_one_step(activation):  # E4
    keras.utils.set_random_seed(0)
    model = DiffusionModel(16, 1, (4, 8), 1, activation, "published")
    images = np.random.default_rng(0).random((8, 16, 16, 1)).astype(np.float32)
    model.normalizer.adapt(images)
    variables = model.network.trainable_weights
    _, grads = model.noise_gradients(images, seed=1)
    for v, g in zip(variables, grads):
        nonzero = bool(np.any(keras.ops.convert_to_numpy(g) != 0))
        assert nonzero == v.path.startswith("output_conv/"), v.path
    optimizer = keras.optimizers.AdamW(1e-3, weight_decay=1e-4)
    optimizer.apply_gradients(zip(grads, variables))
    _, grads = model.noise_gradients(images, seed=2)
    for v, g in zip(variables, grads):
        assert np.any(keras.ops.convert_to_numpy(g) != 0), v.path


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_train_step_and_sampling(activation, tmp_path):
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).random((16, 16, 16, 1)).astype(np.float32)
    model = DiffusionModel(16, 1, (4, 8), 1, activation, "published", kid_encoder=tiny_encoder(),
                           kid_name="kid_test", seed=3, kid_diffusion_steps=2, ema=0.5)
    model.normalizer.adapt(images)
    np.testing.assert_allclose(model.normalizer.mean.numpy().ravel(), [images.mean()], rtol=1e-5)
    # Graph mode without XLA keeps this test fast; the CLI test and the benchmarks run with XLA.
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4), jit_compile=False)
    ema_before = [w.numpy().copy() for w in model.ema_network.weights]
    net_before = [w.numpy().copy() for w in model.network.trainable_weights]
    ds = tf.data.Dataset.from_tensor_slices(images).batch(8, drop_remainder=True)
    # one step: w_ema ← ema·w_ema + (1 − ema)·w for every weight (BN moving statistics included)
    model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
    for before, ema_w, w in zip(ema_before, model.ema_network.weights, model.network.weights):
        np.testing.assert_allclose(ema_w.numpy(), 0.5 * before + 0.5 * w.numpy(), rtol=1e-6, atol=1e-7,
                                   err_msg=ema_w.path)
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(ema_before, model.ema_network.weights))
    hist = model.fit(ds, epochs=1, steps_per_epoch=2, validation_data=ds, validation_steps=1, verbose=0)
    for key in ("loss", "n_loss", "i_loss", "val_loss", "val_n_loss", "val_i_loss", "val_kid_test"):
        assert np.isfinite(hist.history[key][0]), key
    assert hist.history["loss"] == hist.history["n_loss"]  # "loss" is the optimised noise loss
    # both networks moved
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(net_before, model.network.trainable_weights))
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(ema_before, model.ema_network.weights))

    noise = np.random.default_rng(1).normal(size=(3, 16, 16, 1)).astype(np.float32)
    a = model.generate(3, 4, initial_noise=noise).numpy()
    b = model.generate(3, 4, initial_noise=noise).numpy()
    assert a.shape == (3, 16, 16, 1) and np.all((a >= 0) & (a <= 1))
    np.testing.assert_array_equal(a, b)  # deterministic DDIM (η = 0)
    # the compiled sampler (symbolic loop) equals DDIM written out step by step in eager mode
    noisy = tf.constant(noise)
    for step in range(4):
        t = tf.ones((3, 1, 1, 1)) - step * 0.25
        nr, sr = model.diffusion_schedule(t)
        pred_noises, pred_images = model.denoise(noisy, nr, sr, training=False)
        next_nr, next_sr = model.diffusion_schedule(t - 0.25)
        noisy = next_sr * pred_images + next_nr * pred_noises
    np.testing.assert_allclose(a, model.denormalize(pred_images).numpy(), atol=1e-5)

    path = str(tmp_path / "ddim.weights.h5")
    model.save_weights(path)
    other = DiffusionModel(16, 1, (4, 8), 1, activation, "published")  # no KID encoder needed to load
    other.load_weights(path)
    for u, v in zip(model.weights, other.weights):
        np.testing.assert_array_equal(u.numpy(), v.numpy())


def test_sampling_spike_stats():
    keras.utils.set_random_seed(0)
    model = DiffusionModel(16, 1, (4, 8), 1, "fs_swish", "published")
    model.normalizer.adapt(np.random.default_rng(0).random((8, 16, 16, 1)).astype(np.float32))
    model.compile(jit_compile=False)  # graph mode: the eager loop below is compared spike for spike
    steps, n_images = 3, 2
    stats = sample_fs_spike_stats(model, num_images=n_images, diffusion_steps=steps, seed=5)
    sites = fs_layers(model.ema_network)
    assert set(stats["per_site"]) == {layer.name for layer in sites}
    assert stats["n_neurons"] == neurons_per_image(model.ema_network)
    assert stats["diffusion_steps"] == steps and stats["num_images"] == n_images
    # independent count: DDIM written out in eager mode; the input of every FS layer is recorded as the
    # EMA network runs, and FewSpike.spike_count (the layer's own parameters) counts its spikes
    seen = {layer.name: [] for layer in sites}
    for layer in sites:
        def record(inputs, training=None, _call=layer.call, _name=layer.name):
            seen[_name].append(inputs)
            return _call(inputs, training=training)

        layer.call = record
    noisy = tf.constant(np.random.default_rng(5).standard_normal((n_images, 16, 16, 1)), tf.float32)
    for step in range(steps):
        t = tf.ones((n_images, 1, 1, 1)) - step / steps
        nr, sr = model.diffusion_schedule(t)
        pred_noises, pred_images = model.denoise(noisy, nr, sr, training=False)
        next_nr, next_sr = model.diffusion_schedule(t - 1 / steps)
        noisy = next_sr * pred_images + next_nr * pred_noises
    for layer in sites:
        del layer.call
        assert len(seen[layer.name]) == steps, layer.name
        n = math.prod(int(d) for d in layer.input.shape[1:])
        spikes = sum(float(tf.reduce_sum(layer.spike_count(x))) for x in seen[layer.name])
        # graph vs eager float rounding may move an input across a threshold: allow 0.1 % of the spikes
        np.testing.assert_allclose(stats["per_site"][layer.name]["spikes_per_neuron"],
                                   spikes / (n * n_images * steps), rtol=1e-3, err_msg=layer.name)
    # the steps differ (t = 1, 2/3, 1/3): a sampler that did not advance would count other spikes
    per_step = [sum(float(tf.reduce_sum(layer.spike_count(seen[layer.name][i]))) for layer in sites)
                for i in range(steps)]
    assert len(set(per_step)) == steps, per_step
    assert 0 < stats["spikes_per_neuron"] < 16
    total = sum(float(tf.reduce_sum(layer.spike_count(x))) for layer in sites for x in seen[layer.name])
    np.testing.assert_allclose(stats["spikes_per_neuron"], total / (stats["n_neurons"] * n_images * steps), rtol=1e-3)
    assert sample_fs_spike_stats(DiffusionModel(16, 1, (4, 8), 1, "swish"), 1, 1) is None


def test_nan_loss_stops_fit_with_the_standard_callbacks(tmp_path):
    """A non-finite noise loss (a batch with NaN pixels) stops fit at that batch: "loss" reaches the NaN stop."""
    from tfspike.utils.callbacks import SafeCheckpoint, standard_callbacks

    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).random((32, 16, 16, 1)).astype(np.float32)
    model = DiffusionModel(16, 1, (4, 8), 1, "swish", seed=0)
    model.normalizer.adapt(images)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4), jit_compile=False)
    images[16] = np.nan  # the third batch of 8
    ds = tf.data.Dataset.from_tensor_slices(images).batch(8, drop_remainder=True).repeat()
    batches = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)

    ckpt = SafeCheckpoint(weights_path=str(tmp_path / "good.weights.h5"))
    model.fit(ds, epochs=3, steps_per_epoch=4, verbose=0,
              callbacks=[Count()] + standard_callbacks(str(tmp_path), "run", ckpt, resume=False))
    assert batches == [0, 1, 2]  # TerminateOnNaN stopped at the NaN batch, not at the end of the epoch
    assert ckpt.saw_nan and ckpt.saved_epoch is None


def test_reverse_step_is_the_ddim_update():
    """One reverse step against fs.md §5.1 in NumPy: x0 = (x − n·ε)/s, next = s'·x0 + n'·ε (η = 0)."""
    keras.utils.set_random_seed(0)
    model = DiffusionModel(16, 1, (4, 8), 1, "swish")
    out_conv = model.ema_network.get_layer("output_conv")
    out_conv.kernel.assign(np.random.default_rng(0).normal(0, 0.5, out_conv.kernel.shape).astype(np.float32))
    noisy = np.random.default_rng(1).normal(size=(2, 16, 16, 1)).astype(np.float32)
    t = np.array([0.7, 0.3], np.float32).reshape(2, 1, 1, 1)
    nr, sr = schedule_np(t)
    next_nr, next_sr = schedule_np(t - 0.25)
    model_nr, model_sr = (r.numpy() for r in model.diffusion_schedule(tf.constant(t)))
    np.testing.assert_allclose(model_nr, nr, rtol=1e-6)
    np.testing.assert_allclose(model_sr, sr, rtol=1e-6)
    # ε at the model's own float32 variance: the embedding (frequencies up to 1000) turns a one-ulp
    # change of the variance into a visible change of ε
    eps = model.ema_network([noisy, model_nr ** 2]).numpy().astype(np.float64)
    assert np.abs(eps).max() > 0.1  # a real noise prediction, not the zero-initialised one
    x0 = (noisy - nr * eps) / sr
    next_noisy, pred_images, extra = model.reverse_step(tf.constant(noisy), tf.constant(t), 0.25)
    np.testing.assert_allclose(pred_images.numpy(), x0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(next_noisy.numpy(), next_sr * x0 + next_nr * eps, rtol=1e-5, atol=1e-5)
    assert extra == []


def test_sampler_with_zero_noise_prediction():
    """The initial network predicts ε = 0 (zero output kernel, §5.7): every step rescales by s(t')/s(t), so the
    last clean-image estimate is the starting noise over s(1) = min_signal_rate = 0.02, for any step count."""
    model = DiffusionModel(16, 1, (4, 8), 1, "swish")
    noise = np.random.default_rng(2).normal(size=(2, 16, 16, 1)).astype(np.float32)
    for steps in (1, 4):
        pred = model.reverse_diffusion(tf.constant(noise), steps).numpy()
        np.testing.assert_allclose(pred, noise / 0.02, rtol=2e-5)


def test_choices_import_without_tensorflow():
    import subprocess
    import sys

    code = ("import sys; import tfspike.ddim.choices; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))


def test_cli_offers_the_unet_choices():
    """The DDIM CLI accepts every library activation and --fs_params choice and maps them to the U-Net."""
    import argparse

    from tfspike.cli import ddim as cli_ddim
    from tfspike.ddim.choices import ACTIVATIONS as UNET_ACTIVATIONS, FS_PARAM_SETS

    parser = argparse.ArgumentParser()
    cli_ddim.add_arguments(parser)
    for activation in UNET_ACTIVATIONS:
        assert parser.parse_args([f"--activation={activation}"]).activation == activation
    for choice in FS_PARAM_SETS:
        args = parser.parse_args(["--activation=fs_swish", f"--fs_params={choice}"])
        args.widths = [8, 16]
        cli_ddim.check_args(args)  # no error
        assert cli_ddim.run_prefix(args) == f"DDIM-fs_swish-{choice}-FMNIST"


# ---------------------------------------------------------------------------------------------
# data and CLI


@pytest.mark.data
def test_offline_data_padding(data_dir):
    from tfspike.ddim.data import image_pipeline, load_offline

    (xtr, ytr), (xte, yte) = load_offline("FMNIST", data_dir)
    assert xtr.shape == (60000, 32, 32, 1) and xte.shape == (10000, 32, 32, 1) and xtr.dtype == np.uint8
    assert not xtr[:, :2].any() and not xtr[:, -2:].any() and not xtr[:, :, :2].any() and not xtr[:, :, -2:].any()
    batch = next(iter(image_pipeline(xte[:256], 64, shuffle=False)))
    assert batch.shape == (64, 32, 32, 1) and batch.dtype == tf.float32
    np.testing.assert_allclose(batch.numpy(), xte[:64] / 255.0, atol=1e-7)


def _main(argv, capsys):
    from main import main

    code = main(argv)
    return code, capsys.readouterr()


def test_cli_errors(capsys, tmp_path):
    base = ["--model_type=DDIM", f"--logging_dir={tmp_path}"]
    code, out = _main(base + ["--data_name=FLOWERS", "--kid_extractor=offline"], capsys)
    assert code == 2 and out.err.startswith("error: ") and out.err.count("\n") == 1
    code, out = _main(base + ["--data_name=FMNIST", "--widths=8,8,8,8,8,8,8"], capsys)  # 32 % 2**6 != 0
    assert code == 2 and "divisible" in out.err
    code, out = _main(base + ["--data_name=FMNIST", f"--data_dir={tmp_path / 'nowhere'}"], capsys)
    assert code == 2 and "Fashion-MNIST not found" in out.err and out.err.count("\n") == 1
    code, out = _main(base + ["--fs_params=nonsense"], capsys)
    assert code == 2 and "--fs_params" in out.err


@pytest.mark.data
def test_cli_tiny_run(data_dir, tmp_path, capsys):
    argv = ["--model_type=DDIM", "--activation=fs_swish", "--fs_params=published", "--data_name=FMNIST",
            f"--data_dir={data_dir}", f"--logging_dir={tmp_path}", "--widths=4,8,8,8", "--block_depth=1",
            "--epochs=2", "--steps_per_epoch=2", "--batch_size=8", "--max_kid_batches=1", "--train_samples=64",
            "--kid_classifier_epochs=1", "--kid_classifier_samples=512", "--plot_images=4",
            "--plot_diffusion_steps=2", "--spike_stats_images=2", "--kid_diffusion_steps=1", "--verbose=0",
            "--jit_compile=False"]  # XLA compilation of the FS graphs would dominate this test on 2 CPU cores
    code, out = _main(argv, capsys)
    assert code == 0, out.err
    prefix = "DDIM-fs_swish-published-FMNIST"
    with open(record_file(tmp_path, prefix)) as f:
        res = json.load(f)
    for key in ("noise_loss", "image_loss", "kid", "val_noise_loss", "val_image_loss"):
        assert len(res[key]) == 2 and all(np.isfinite(res[key])), key
    assert res["kid_extractor"] == "kid_fmnist_cnn128" and res["structure"]["fs_layers"] == 7
    assert res["best_kid"] == min(res["kid"]) and res["finished"]
    assert 0 < res["sampling_spike_stats"]["spikes_per_neuron"] < 16
    assert os.path.exists(tmp_path / f"{prefix}_best.weights.h5")
    assert os.path.exists(os.path.join(record_file(tmp_path, prefix, "_images"), "epoch_002.png"))
    info = res["kid_extractor_info"]
    from tfspike.utils.io import sha256_file

    assert sha256_file(info["weights_path"]) == info["sha256"]
    # --epochs=0 --load=True evaluates the saved best weights: a second record, nothing trained
    code, out = _main([a for a in argv if a != "--epochs=2"] + ["--epochs=0", "--load=True", "--energy",
                                                                 f"--kid_classifier={info['weights_path']}",
                                                                 f"--export={tmp_path / 'saved'}"], capsys)
    assert code == 0, out.err
    evaluated = results(tmp_path, prefix)
    # the given KID classifier is used as is; --export wrote the generation and denoiser signatures
    assert evaluated["kid_extractor_info"]["sha256"] == info["sha256"]
    assert sorted(evaluated["export"]["signatures"]) == ["denoise", "generate"]
    assert max(evaluated["export"]["max_abs_diff"].values()) <= 1e-5
    # --energy: FS sites from the sampler's real trajectory (2 images x 2 DDIM steps), against the swish U-Net
    energy = evaluated["energy"]
    assert energy["profile"] == "45nm_fp32" and energy["diffusion_steps"] == 2 and energy["num_images"] == 2
    fs_rows = [row for row in energy["layers"] if row["kind"] == "fs"]
    assert len(fs_rows) == 7 and sum(row["spikes"] for row in fs_rows) > 0
    assert 0 < energy["per_sample"]["macs"] < energy["ann_twin"]["macs"]  # spike-fed convs are not MACs
    assert os.path.exists(record_file(tmp_path, prefix, "_energy.png"))
    assert evaluated["epochs_run"] == 0 and evaluated["loaded"] == str(tmp_path / f"{prefix}_best.weights.h5")
    assert np.isfinite(evaluated["val_noise_loss"]) and np.isfinite(evaluated["kid"])
    assert evaluated["record"].endswith(os.path.join(prefix, "002")) and res["record"].endswith("001")


# ---------------------------------------------------------------------------------------------
# slow and online checks (E7–E10)


@pytest.mark.slow
@pytest.mark.data
def test_offline_kid_extractor(data_dir, tmp_path):  # E7
    from tfspike.ddim.data import load_offline, to_float
    from tfspike.ddim.kid import offline_encoder
    from tfspike.utils.io import sha256_file

    (xtr, ytr), (xte, yte) = load_offline("FMNIST", data_dir)
    encoder, info = offline_encoder("FMNIST", to_float(xtr), ytr, to_float(xte), yte, str(tmp_path), epochs=3,
                                    seed=0, verbose=0, log=lambda *a: None)
    assert info["test_accuracy"] >= 0.88
    assert sha256_file(info["weights_path"]) == info["sha256"]
    assert int(encoder.output.shape[-1]) == 128
    x = to_float(xte)
    noise = np.random.default_rng(0).random((64, 32, 32, 1)).astype(np.float32)
    real_noise = float(kid(encoder(x[:64]), encoder(noise)))
    real_real = [float(kid(encoder(x[64 * i:64 * i + 64]), encoder(x[64 * (i + 10):64 * (i + 11)])))
                 for i in range(10)]
    # KID of 64 vs 64 images is noisy (spec reference: pairs in [-0.53, 0.37] for real-noise 11.9; this
    # classifier: pairs in [-0.39, 1.10], mean -0.007, real-noise 5.97), so the spec's 10 % bound is
    # applied to the first pair and to the mean over the 10 pairs; each pair stays well below noise.
    assert abs(real_real[0]) < 0.1 * real_noise, (real_real, real_noise)
    assert abs(np.mean(real_real)) < 0.1 * real_noise, (real_real, real_noise)
    assert max(abs(v) for v in real_real) < 0.3 * real_noise, (real_real, real_noise)
    # a second call loads the cached, hash-checked weights and gives the same features
    again, info2 = offline_encoder("FMNIST", to_float(xtr), ytr, to_float(xte), yte, str(tmp_path), epochs=3,
                                   seed=0, verbose=0, log=lambda *a: None)
    assert info2["sha256"] == info["sha256"]
    np.testing.assert_array_equal(again(x[:8]).numpy(), encoder(x[:8]).numpy())


@pytest.mark.slow
@pytest.mark.data
def test_offline_smoke_training(data_dir):  # E8: 200 steps, FS (Stöckl K16) and swish
    from tfspike.ddim.data import image_pipeline, load_offline

    (xtr, _), _ = load_offline("FMNIST", data_dir)
    last = {}
    for activation in ("fs_swish", "swish"):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = DiffusionModel(32, 1, (32, 64, 96, 128), 2, activation, "published", seed=0)
        model.normalizer.adapt(image_pipeline(xtr, 1000, shuffle=False))
        model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4), jit_compile=True)
        # 10 epochs of 20 steps: the last epoch's n_loss is the mean over steps 181–200
        hist = model.fit(image_pipeline(xtr, 64, seed=0), epochs=10, steps_per_epoch=20, verbose=0)
        losses = hist.history["n_loss"]
        assert all(np.isfinite(losses))
        last[activation] = losses[-1]
    assert last["fs_swish"] < 0.30 and last["swish"] < 0.30, last
    assert abs(last["fs_swish"] - last["swish"]) < 0.05, last


def _skip_unless(ok_reason):
    ok, reason = ok_reason
    if not ok:
        pytest.skip(f"needs network: {reason}")


def test_flowers_splits():  # E9 (online)
    from tfspike.ddim.data import flowers_available, flowers_pipelines

    _skip_unless(flowers_available())
    train, val = flowers_pipelines(batch_size=64, image_size=64, repetitions=5)
    assert sum(1 for _ in train) == 511 and sum(1 for _ in val) == 127
    assert next(iter(val)).shape == (64, 64, 64, 3)


def test_inception_extractor():  # E10 (online)
    from tfspike.ddim.kid import inception_available, inception_encoder

    _skip_unless(inception_available())
    encoder = inception_encoder(64, 3)
    images = np.random.default_rng(0).random((8, 64, 64, 3)).astype(np.float32)
    f = encoder(images).numpy().astype(np.float64)
    assert f.shape == (8, 2048)
    np.testing.assert_allclose(float(kid(f, f)), kid_oracle(f, f)[0], rtol=1e-5)


def test_offline_probes_fail_fast(monkeypatch):
    """Without network (TFSPIKE_OFFLINE=1 in tests) both online resources report a clear reason."""
    from tfspike.ddim.data import flowers_available, flowers_pipelines
    from tfspike.ddim.kid import inception_available, inception_encoder
    from tfspike.errors import MissingDataError

    monkeypatch.setenv("TFSPIKE_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", "/nonexistent-keras-home")
    assert not inception_available()[0]
    with pytest.raises(MissingDataError, match="needs network"):
        inception_encoder(32, 1)
    if not flowers_available()[0]:
        with pytest.raises(MissingDataError, match="needs network"):
            flowers_pipelines()


def test_remote_available_probe(tmp_path, monkeypatch):
    """One probe for every online resource: local copy first, then TFSPIKE_OFFLINE, then the host."""
    from tfspike.data import paths

    host = ("downloads.example.org", 443)
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"x")
    reached = []
    monkeypatch.setattr(paths, "host_reachable", lambda h, timeout=3.0: reached.append(h) or False)
    monkeypatch.setenv("TFSPIKE_OFFLINE", "1")
    assert paths.remote_available("W", str(weights), host) == (True, f"W found at {weights}")
    assert paths.remote_available("W", lambda: "/prepared/here", host) == (True, "W found at /prepared/here")
    assert paths.remote_available("W", str(tmp_path / "missing"), host, hint="use X") == (
        False, "W: not available locally and downloads are disabled (TFSPIKE_OFFLINE=1)")
    assert reached == []  # offline: no connection attempt
    monkeypatch.setenv("TFSPIKE_OFFLINE", "0")
    assert paths.remote_available("W", lambda: None, host, hint="use X") == (
        False, "W: not available locally and downloads.example.org is unreachable; use X")
    assert reached == [host]
    monkeypatch.setattr(paths, "host_reachable", lambda h, timeout=3.0: True)
    assert paths.remote_available("W", None, host) == (True, "W downloadable from downloads.example.org")
    # the Inception probe is this helper on the Keras cache file
    from tfspike.ddim.kid import INCEPTION_WEIGHTS_FILE, inception_available

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / INCEPTION_WEIGHTS_FILE).write_bytes(b"x")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("TFSPIKE_OFFLINE", "1")
    assert inception_available() == (True, f"InceptionV3 ImageNet weights found at "
                                           f"{tmp_path / 'models' / INCEPTION_WEIGHTS_FILE}")
