"""``tfspike.export``: a SavedModel of every family, reloaded in a fresh Python process that never imports
tfspike, gives the Keras model's outputs (checked here against the Keras model and NumPy oracles, on
inputs other than those ``verify`` used).

Exports are slow (tracing + a child process each), so one module fixture exports every tiny model once
and one child process of this file runs all the reloaded signatures; the tests then read its outputs.
"""

import hashlib
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfspike
from tfspike.errors import UserError
from tfspike.reference.fs_numpy import forward_post

# The test's own reload: plain TensorFlow, no tfspike (independent of tfspike/export/reload.py).
CHILD = r"""
import json, sys
import numpy as np
import tensorflow as tf
jobs = json.load(open(sys.argv[1]))
arrays = dict(np.load(sys.argv[2]))
out, sigs = {}, {}
for job in jobs:
    loaded = tf.saved_model.load(job["dir"])
    sigs[job["dir"]] = {n: {"inputs": sorted(f.structured_input_signature[1]),
                            "outputs": sorted(f.structured_outputs)} for n, f in loaded.signatures.items()}
    fn = loaded.signatures[job["signature"]]
    result = fn(**{k: tf.constant(arrays[job["key"] + "/" + k]) for k in job["inputs"]})
    out.update({job["key"] + "/" + k: v.numpy() for k, v in result.items()})
np.savez(sys.argv[3], **out)
json.dump(sigs, open(sys.argv[4], "w"))
assert "tfspike" not in sys.modules, "reloading imported tfspike"
"""


def _ttfs_fc2():
    from tfspike.models.ttfs_zoo import build_relu_model, build_snn_model, copy_weights_by_name

    keras.utils.set_random_seed(1)
    relu = build_relu_model("FC2", "MNIST")
    snn = build_snn_model("FC2", "MNIST", input_is="value")
    copy_weights_by_name(relu, snn)
    return relu, snn


def _fs_cnn():
    from tfspike.convert import activations_to_fewspike

    keras.utils.set_random_seed(2)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="swish", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(6, activation="swish", name="dense1")(x)
    ann = keras.Model(inp, keras.layers.Dense(3, name="logits")(x))
    fs, _ = activations_to_fewspike(ann)
    return fs


def _rsnn(neuron):
    from tfspike.rsnn.presets import build_rsnn

    keras.utils.set_random_seed(3)
    return build_rsnn(neuron, "ECG", hidden_units=6)


def _ddim():
    from tfspike.ddim.diffusion import DiffusionModel

    keras.utils.set_random_seed(4)
    model = DiffusionModel(16, 1, (4, 8), 1, "fs_swish", "published")
    model.normalizer.adapt(np.random.default_rng(4).uniform(0.2, 0.6, (8, 16, 16, 1)).astype("float32"))
    return model


def _rng(seed):
    return np.random.default_rng(seed)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Every tiny model, its export info (verify=True except where noted) and the reloaded outputs on
    fresh inputs, run by one child process without tfspike."""
    root = tmp_path_factory.mktemp("export")
    relu, snn = _ttfs_fc2()
    fs = _fs_cnn()
    brf, alif = _rsnn("BRF"), _rsnn("ALIF")
    ddim = _ddim()
    w = {"root": root, "relu": relu, "snn": snn, "fs": fs, "brf": brf, "alif": alif, "ddim": ddim, "info": {}}
    x_mnist = _rng(10).uniform(0, 1, (5, 784)).astype("float32")
    x_img = _rng(11).uniform(0, 1, (5, 8, 8, 1)).astype("float32")
    seq20 = _rng(12).uniform(0, 30, (3, 20, 4)).astype("float32")  # strong enough for the tiny layers to spike
    seq13 = _rng(13).uniform(0, 30, (2, 13, 4)).astype("float32")
    w["info"]["snn"] = tfspike.export(snn, root / "snn", sample=_rng(0).uniform(0, 1, (4, 784)).astype("float32"))
    w["info"]["relu"] = tfspike.export(relu, root / "relu", verify=False)
    w["info"]["fs"] = tfspike.export(fs, root / "fs", verify=False)  # checked below (TTFS covers the same check)
    w["info"]["brf"] = tfspike.export(brf, root / "brf", sample=seq20[:2] * 0.5)
    w["info"]["alif"] = tfspike.export(alif, root / "alif", verify=False)
    w["info"]["ddim"] = tfspike.export(ddim, root / "ddim", sample={"seed": 5, "num_images": 2, "diffusion_steps": 2})
    t = np.linspace(0.2, 0.8, 3, dtype="float32").reshape(3, 1, 1, 1)
    nr, sr = (keras.ops.convert_to_numpy(r) for r in ddim.diffusion_schedule(t))
    calls = {  # key: (dir, signature, {input: array})
        "snn_serve": ("snn", "serve", {"inputs": x_mnist}),
        "snn_spikes": ("snn", "spikes", {"inputs": x_mnist}),
        "relu_serve": ("relu", "serve", {"inputs": x_mnist}),
        "fs_serve": ("fs", "serve", {"inputs": x_img}),
        "fs_spikes": ("fs", "spikes", {"inputs": x_img}),
        "brf_20": ("brf", "serve", {"sequences": seq20}),
        "brf_13": ("brf", "serve", {"sequences": seq13}),
        "alif_20": ("alif", "serve", {"sequences": seq20}),
        "ddim_generate": ("ddim", "generate", {"seed": np.int64(7), "num_images": np.int32(3),
                                                "diffusion_steps": np.int32(2)}),
        "ddim_denoise": ("ddim", "denoise", {"noisy_images": _rng(14).standard_normal((3, 16, 16, 1)).astype("float32"),
                                              "noise_rates": nr, "signal_rates": sr}),
    }
    jobs = [{"dir": str(root / d), "signature": s, "key": k, "inputs": sorted(a)} for k, (d, s, a) in calls.items()]
    np.savez(root / "in.npz", **{f"{k}/{n}": v for k, (_, _, a) in calls.items() for n, v in a.items()})
    (root / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run([sys.executable, "-I", "-c", CHILD, str(root / "jobs.json"), str(root / "in.npz"),
                        str(root / "out.npz"), str(root / "sigs.json")], cwd=root, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    w["out"] = dict(np.load(root / "out.npz"))
    w["sigs"] = json.loads((root / "sigs.json").read_text())
    w["calls"] = calls
    return w


def _served(world, key):
    return {k.split("/", 1)[1]: v for k, v in world["out"].items() if k.startswith(key + "/")}


def _inputs(world, key):
    return world["calls"][key][2]


def _names(world, d):
    return world["sigs"][str(world["root"] / d)]


# ----------------------------------------------------------------------------- feed-forward

def test_ttfs_serve_and_spikes_match_keras_and_numpy(world):
    snn, relu = world["snn"], world["relu"]
    x = _inputs(world, "snn_serve")["inputs"]
    served = _served(world, "snn_serve")["logits"]
    np.testing.assert_allclose(served, snn(x).numpy(), rtol=1e-6, atol=1e-6)
    # NumPy oracle: a TTFS net computes its ReLU twin's logits (relative spike times = activations)
    w1, b1, w2, b2 = (np.float64(v) for v in relu.get_weights())
    pre = x.astype(np.float64) @ w1 + b1
    np.testing.assert_allclose(served, np.maximum(pre, 0) @ w2 + b2, rtol=1e-4, atol=1e-4)
    spikes = _served(world, "snn_spikes")
    np.testing.assert_array_equal(spikes["logits"], served)
    np.testing.assert_array_equal(spikes["spike_count"], (pre > 0).sum(1))  # each hidden neuron fires once at most
    assert 0 < spikes["spike_count"].min() and spikes["spike_count"].max() < 340
    info = world["info"]["snn"]
    assert info["family"] == "ttfs" and info["dir"] == str(world["root"] / "snn")
    assert info["signatures"]["serve"] == {"inputs": {"inputs": {"shape": [None, 784], "dtype": "float32"}},
                                           "outputs": {"logits": {"shape": [None, 10], "dtype": "float32"}}}
    assert info["signatures"]["spikes"]["outputs"]["spike_count"] == {"shape": [None], "dtype": "float32"}
    assert set(info["max_abs_diff"]) == {"serve/logits", "spikes/logits", "spikes/spike_count"}
    assert info["max_abs_diff"]["spikes/spike_count"] == 0 and info["max_abs_diff"]["serve/logits"] <= 1e-5
    assert set(_names(world, "snn")) == {"serve", "spikes", "serving_default"}
    assert _names(world, "snn")["serve"] == {"inputs": ["inputs"], "outputs": ["logits"]}


def test_relu_twin_exports_serve_only(world):
    x = _inputs(world, "relu_serve")["inputs"]
    np.testing.assert_allclose(_served(world, "relu_serve")["logits"], world["relu"](x).numpy(), rtol=1e-6, atol=1e-6)
    assert world["info"]["relu"]["family"] == "keras" and world["info"]["relu"]["max_abs_diff"] == {}
    assert set(_names(world, "relu")) == {"serve", "serving_default"}


def test_fs_cnn_serve_and_spikes_match_keras_and_numpy(world):
    from tfspike.fs import FewSpike

    fs = world["fs"]
    x = _inputs(world, "fs_serve")["inputs"]
    served = _served(world, "fs_serve")["logits"]
    np.testing.assert_allclose(served, fs(x).numpy(), rtol=1e-5, atol=1e-6)
    # NumPy oracle of the spike count: the FS dynamics (spec fs.md §1.1) on every FS layer's input
    sites = [l for l in fs.layers if isinstance(l, FewSpike)]
    assert len(sites) == 2
    probe = keras.Model(fs.inputs[0], [l.input for l in sites])
    expected = np.zeros(len(x))
    for layer, a in zip(sites, probe(x)):
        h, d, T = layer.current_params()
        expected += forward_post(a.numpy(), h, d, T)[1].reshape(len(x), -1).sum(1)
    spikes = _served(world, "fs_spikes")
    np.testing.assert_array_equal(spikes["spike_count"], expected)
    np.testing.assert_array_equal(spikes["logits"], served)
    assert expected.min() > 0
    info = world["info"]["fs"]
    assert info["family"] == "fs" and info["max_abs_diff"] == {}
    assert info["signatures"]["serve"]["inputs"] == {"inputs": {"shape": [None, 8, 8, 1], "dtype": "float32"}}
    assert set(_names(world, "fs")) == {"serve", "spikes", "serving_default"}
    assert _names(world, "fs")["spikes"] == {"inputs": ["inputs"], "outputs": ["logits", "spike_count"]}


# ----------------------------------------------------------------------------- RSNN

@pytest.mark.parametrize("key,model", [("brf_20", "brf"), ("brf_13", "brf"), ("alif_20", "alif")])
def test_rsnn_serve_matches_forward_for_any_length(world, key, model):
    rsnn = world[model]
    x = _inputs(world, key)["sequences"]
    logits, spikes = (v.numpy() for v in rsnn.forward(tf.constant(x)))
    served = _served(world, key)
    assert served["logits"].shape == (len(x), x.shape[1], 6)
    np.testing.assert_allclose(served["logits"], logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(served["last_logits"], served["logits"][:, -1])
    np.testing.assert_array_equal(served["spike_count"], spikes.sum((1, 2)))  # the "sop" of RSNN's metrics
    assert served["spike_count"].min() > 0  # the inputs make the hidden layer spike: the count is tested
    assert _names(world, model)["serve"] == {"inputs": ["sequences"],
                                             "outputs": ["last_logits", "logits", "spike_count"]}


def test_rsnn_signature_and_verify_report(world):
    info = world["info"]["brf"]
    assert info["family"] == "rsnn"
    assert info["signatures"]["serve"] == {
        "inputs": {"sequences": {"shape": [None, None, 4], "dtype": "float32"}},
        "outputs": {"logits": {"shape": [None, None, 6], "dtype": "float32"},
                    "last_logits": {"shape": [None, 6], "dtype": "float32"},
                    "spike_count": {"shape": [None], "dtype": "float32"}}}
    assert info["max_abs_diff"]["serve/spike_count"] == 0 and info["max_abs_diff"]["serve/logits"] <= 1e-5


# ----------------------------------------------------------------------------- DDIM

def test_ddim_generate_matches_keras_with_the_same_noise(world):
    ddim = world["ddim"]
    images = _served(world, "ddim_generate")["images"]
    noise = tf.random.stateless_normal((3, 16, 16, 1), seed=[7, 0])
    np.testing.assert_allclose(images, ddim.generate(3, 2, initial_noise=noise).numpy(), rtol=1e-5, atol=1e-5)
    assert images.shape == (3, 16, 16, 1) and 0.0 <= images.min() and images.max() <= 1.0
    other = ddim.generate(3, 2, initial_noise=tf.random.stateless_normal((3, 16, 16, 1), seed=[8, 0])).numpy()
    assert np.abs(images - other).max() > 1e-3  # the seed input matters


def test_ddim_denoise_is_the_ema_network(world):
    ddim = world["ddim"]
    a = _inputs(world, "ddim_denoise")
    pred_noises, pred_images = ddim.denoise(a["noisy_images"], a["noise_rates"], a["signal_rates"], training=False)
    served = _served(world, "ddim_denoise")
    np.testing.assert_allclose(served["pred_noises"], pred_noises.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served["pred_images"], pred_images.numpy(), rtol=1e-5, atol=1e-5)
    # pred_images is the clean-image estimate of the same noise prediction
    np.testing.assert_allclose(served["pred_images"],
                               (a["noisy_images"] - a["noise_rates"] * served["pred_noises"]) / a["signal_rates"],
                               rtol=1e-5, atol=1e-5)
    info = world["info"]["ddim"]
    assert info["family"] == "ddim"
    assert info["signatures"]["generate"]["inputs"] == {"seed": {"shape": [], "dtype": "int64"},
                                                        "num_images": {"shape": [], "dtype": "int32"},
                                                        "diffusion_steps": {"shape": [], "dtype": "int32"}}
    assert info["signatures"]["denoise"]["outputs"] == {"pred_noises": {"shape": [None, 16, 16, 1], "dtype": "float32"},
                                                        "pred_images": {"shape": [None, 16, 16, 1], "dtype": "float32"}}
    assert set(info["max_abs_diff"]) == {"generate/images", "denoise/pred_noises", "denoise/pred_images"}
    assert max(info["max_abs_diff"].values()) <= 1e-5
    assert set(_names(world, "ddim")) == {"generate", "denoise", "serving_default"}


# ----------------------------------------------------------------------------- bad cases

def _tree_digest(path):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(path)):
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            h.update(os.path.relpath(p, path).encode())
            h.update(open(p, "rb").read())
    return h.hexdigest()


def test_failed_check_leaves_the_previous_export(world, monkeypatch):
    """A SavedModel that does not reproduce the model raises one line and never replaces the folder."""
    import tfspike.export.endpoints as endpoints

    target = world["root"] / "relu"
    before = _tree_digest(target)
    real = endpoints._feed_forward

    def off_by_a_bit(model, sample, kind):
        eps = real(model, sample, kind)
        ref = eps[0].reference
        eps[0].reference = lambda s: {"logits": ref(s)["logits"] + 1e-3}
        return eps

    monkeypatch.setattr(endpoints, "_feed_forward", off_by_a_bit)
    with pytest.raises(UserError, match=r"differs from the Keras model: serve/logits max \|Δ\| 0.001") as e:
        tfspike.export(world["relu"], target)
    assert "\n" not in str(e.value)
    assert _tree_digest(target) == before
    assert not [p for p in os.listdir(world["root"]) if p.startswith(".")]  # no temporary folder left


def test_bad_directories_and_models_raise_one_line(world, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cases = [((world["relu"], blocker / "saved"), str(blocker)),  # parent is a file: cannot be created
             ((world["relu"], blocker), "is not a folder")]
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    cases.append(((world["relu"], notes), "holds no SavedModel"))
    cases.append(((object(), tmp_path / "x"), "cannot export a object"))
    cases.append(((keras.layers.Dense(3), tmp_path / "x"), "cannot export a Dense"))
    for args, needle in cases:
        with pytest.raises(UserError) as e:
            tfspike.export(*args)
        assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert (notes / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "x").exists()


def test_unwritable_directory_raises(world, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(UserError, match="not writable"):
            tfspike.export(world["relu"], locked / "saved")
    finally:
        locked.chmod(0o700)


def test_bad_samples_and_noisy_ttfs_raise_one_line(world, tmp_path):
    with pytest.raises(UserError, match=r"sample inputs has shape \(2, 783\), the signature takes \(any, 784\)"):
        tfspike.export(world["relu"], tmp_path / "a", sample=np.zeros((2, 783)))
    with pytest.raises(UserError, match=r"sequences has shape \(2, 5\)"):
        tfspike.export(world["brf"], tmp_path / "b", sample=np.zeros((2, 5)))
    with pytest.raises(UserError, match="some of the keys seed, num_images, diffusion_steps"):
        tfspike.export(world["ddim"], tmp_path / "c", sample={"steps": 3})
    from tfspike.models.ttfs_zoo import build_snn_model

    noisy = build_snn_model("FC2", "MNIST", noise=0.1)
    with pytest.raises(UserError, match="spike-time noise"):
        tfspike.export(noisy, tmp_path / "d")
    assert not os.listdir(tmp_path)


def test_import_tfspike_stays_light_and_export_is_callable():
    code = ("import sys, tfspike\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
            "assert callable(tfspike.export) and 'tensorflow' not in sys.modules\n"
            "import tfspike.export\n"  # the package itself (the name is also its callable)
            "assert callable(tfspike.export) and tfspike.export is sys.modules['tfspike.export']\n"
            "assert 'tensorflow' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
