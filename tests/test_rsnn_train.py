"""Recipe runner, loss/metrics, LR schedule (D10), NaN stop, resume, CLI and serialisation of the RSNN."""

import json
import math
import os
import pathlib
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfspike.data.shd import load_shd
from tfspike.errors import UserError, WeightMismatchError
from tfspike.rsnn.metrics import correct_and_total, expand_targets, step_nll, summed_loss
from tfspike.rsnn.model import RSNN, tbptt_chunks
from tfspike.rsnn.presets import build_rsnn, preset, recipe
from tfspike.rsnn.reference_io import import_reference_npz
from tfspike.rsnn.train import fit_recipe, linear_decay, make_optimizer
from records import record_file, results

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def test_d10_linear_lr_decay():
    s = linear_decay(0.1, 400)
    np.testing.assert_allclose([s(0), s(200), s(399)], [0.1, 0.05, 0.00025], rtol=1e-12)
    s = linear_decay(0.1, 300)
    np.testing.assert_allclose([s(0), s(1), s(2)], [0.1, 0.0996667, 0.0993333], rtol=1e-6)
    opt = make_optimizer(0.1, 1.0)
    assert opt.epsilon == 1e-8 and opt.global_clipnorm == 1.0 and opt.clipnorm is None
    assert make_optimizer(0.1, None).global_clipnorm is None


def test_recipes_match_the_spec():
    assert recipe("BRF", "SMNIST") == dict(learning_rate=0.1, batch_size=256, val_batch_size=256, test_batch_size=256,
                                           epochs=300, clipnorm=1.0)
    assert recipe("RF", "ECG") == dict(learning_rate=0.1, batch_size=16, val_batch_size=61, test_batch_size=141,
                                       epochs=400, clipnorm=None)
    assert recipe("BRF", "SHD")["learning_rate"] == 0.075 and recipe("BRF", "SHD")["epochs"] == 20
    a = preset("ALIF", "ECG")
    assert (a["batch_size"], a["learning_rate"], a["sub_seq_length"]) == (64, 0.05, 10)
    assert preset("BRF", "SMNIST")["label_last"] and not preset("BRF", "PSMNIST")["label_last"]
    assert preset("BRF", "PSMNIST")["omega_init"] == (15.0, 85.0)
    with pytest.raises(UserError, match="unknown task"):
        preset("BRF", "CIFAR")
    with pytest.raises(UserError, match="unknown preset override"):
        preset("BRF", "ECG", omega=3)


def test_loss_is_sum_over_kept_steps_and_prediction_rules():
    rng = np.random.default_rng(0)
    o = tf.constant(rng.normal(size=(3, 5, 4)).astype("float32"))
    y_seq = tf.constant([0, 2, 3])
    targets = expand_targets(y_seq, o, per_step_labels=False, label_last=False, sub_seq_length=0)
    loss, n = summed_loss(step_nll(o, targets))
    logp = tf.nn.log_softmax(o).numpy()
    expected = -sum(np.mean([logp[b, t, int(y_seq[b])] for b in range(3)]) for t in range(5))
    assert n == 5 and abs(float(loss) - expected) < 1e-5
    correct, total = correct_and_total(o, targets, False, False)
    pred = o.numpy().mean(1).argmax(-1)  # time-mean of raw potentials
    assert float(correct) == np.sum(pred == y_seq.numpy()) and float(total) == 3
    y_step = tf.constant(rng.integers(0, 4, (3, 7)))
    kept = o[:, :5]
    t2 = expand_targets(y_step, kept, per_step_labels=True, label_last=False, sub_seq_length=2)
    np.testing.assert_array_equal(t2.numpy(), y_step.numpy()[:, 2:])
    c2, tot2 = correct_and_total(kept, t2, True, False)
    assert float(tot2) == 15 and float(c2) == np.sum(kept.numpy().argmax(-1) == y_step.numpy()[:, 2:])


def _tiny_task(n=24, steps=40, seed=0):
    """Per-step two-class toy task: the label is which of two input channels spiked most recently."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, steps, 2), np.float32)
    y = np.zeros((n, steps), np.int64)
    for i in range(n):
        label = 0
        for t in range(steps):
            if rng.random() < 0.2:
                label = int(rng.integers(0, 2))
                x[i, t, label] = 1.0
            y[i, t] = label
    return x, y


def _tiny_model():
    return RSNN("BRF", 12, 2, per_step_labels=True,
                hidden_config=dict(omega_init=(3, 5), b_offset_init=(0.1, 1.0), kernel_bound=30.0),
                readout_config=dict(tau_mem_init=(5.0, 0.5)))


def test_fit_recipe_trains_keeps_best_and_resumes(tmp_path):
    keras.utils.set_random_seed(1)
    x, y = _tiny_task(40)
    train, val, test = (x[:24], y[:24]), (x[24:32], y[24:32]), (x[32:], y[32:])

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    kwargs = dict(learning_rate=0.05, total_epochs=6, epochs=4, batch_size=8, val_batch_size=8, test_batch_size=8,
                  logging_dir=str(tmp_path), prefix="tiny", jit_compile=False, verbose=0)
    model = _tiny_model()
    with pytest.raises(KeyboardInterrupt):
        fit_recipe(model, train, val, test, extra_callbacks=[Interrupt()], **kwargs)
    rows = json.loads((tmp_path / "tiny_history.json").read_text())
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    model = _tiny_model()  # a fresh process would rebuild the model: BackupAndRestore brings it back
    stats, info = fit_recipe(model, train, val, test, **kwargs)
    assert [r["epoch"] for r in info["history"]] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([r["lr"] for r in info["history"][1:]], [0.05 * (1 - e / 6) for e in range(4)],
                               rtol=1e-6)
    best = min(info["history"], key=lambda r: r["val_loss"])
    assert info["best_epoch"] == best["epoch"]
    assert info["history"][-1]["loss"] < info["history"][1]["loss"]  # it learns
    assert abs(stats["loss"] - best["test_loss"]) < 1e-5  # test metrics of the best-val weights
    assert os.path.exists(tmp_path / "tiny_best.weights.h5")
    assert not os.listdir(tmp_path / "backup" / "tiny") if os.path.isdir(tmp_path / "backup" / "tiny") else True
    assert set(stats) == {"loss", "accuracy", "sop", "sop_per_step", "firing_rate"}


def test_nan_stops_training_and_keeps_best(tmp_path):
    keras.utils.set_random_seed(2)
    x, y = _tiny_task(24)
    bad = x[:16].copy()
    bad[:, 3, 0] = np.nan
    model = _tiny_model()
    stats, info = fit_recipe(model, (bad, y[:16]), (x[16:20], y[16:20]), (x[20:], y[20:]), learning_rate=0.05,
                             total_epochs=5, epochs=3, batch_size=8, val_batch_size=4, test_batch_size=4,
                             logging_dir=str(tmp_path), prefix="nan", jit_compile=False, verbose=0)
    assert info["nan_stop"] and info["best_epoch"] == 0
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    # the untrained (epoch-0) weights stand: their test metrics are the epoch-0 row's
    assert math.isfinite(stats["loss"]) and stats["loss"] == pytest.approx(info["history"][0]["test_loss"], abs=1e-6)
    assert stats["accuracy"] == pytest.approx(info["history"][0]["test_accuracy"], abs=1e-7)


def test_rsnn_keras_round_trip_and_weight_errors(tmp_path, golden_dir):
    model = build_rsnn("BRF", "ECG")
    x = np.random.default_rng(0).integers(0, 2, (2, 100, 4)).astype("float32")  # any T runs
    import_reference_npz(model, str(golden_dir / "brf" / "ecg_brf.npz"))
    out = model(x).numpy()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded(x).numpy(), out)
    assert loaded.get_config() == model.get_config()
    model.save_weights(tmp_path / "m.weights.h5")
    other = build_rsnn("BRF", "ECG")
    other.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(other(x).numpy(), out)
    with pytest.raises(WeightMismatchError, match="missing hidden/tau_mem"):
        import_reference_npz(build_rsnn("ALIF", "ECG"), str(golden_dir / "brf" / "ecg_brf.npz"))
    with pytest.raises(WeightMismatchError, match="shape"):
        import_reference_npz(build_rsnn("BRF", "ECG", hidden_units=20), str(golden_dir / "brf" / "ecg_brf.npz"))


def test_manual_bptt_equals_autodiff_on_a_random_net():
    keras.utils.set_random_seed(4)
    x = (np.random.default_rng(4).random((3, 60, 5)) < 0.3).astype("float32")
    for neuron in ("BRF", "RF", "ALIF"):
        grads = []
        for bptt in ("manual", "autodiff"):
            keras.utils.set_random_seed(4)
            cfg = dict(bptt=bptt, kernel_bound=20.0 if neuron != "ALIF" else 0.5)
            model = RSNN(neuron, 7, 3, per_step_labels=True, hidden_config=cfg)
            model.build((None, 60, 5))
            y = np.random.default_rng(5).integers(0, 3, (3, 60))
            step = tf.function(lambda a, b: _grad(model, a, b), jit_compile=True)
            grads.append(step(x, y))
        assert grads[0][0] > 0  # spikes happened
        for a, b in zip(grads[0][1], grads[1][1]):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-4, atol=1e-6)


def _grad(model, x, y):
    with tf.GradientTape() as tape:
        loss, _, _, _, counts = model.loss_and_stats(x, y, training=True)
    return tf.reduce_sum(counts), tape.gradient(loss, model.trainable_variables)


def test_cli_errors_are_one_line(tmp_path, capsys):
    from main import main

    rc = main(["--model_type=BRF", "--data_name=ECG", "--data_dir", str(tmp_path), "--logging_dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ECG-QTDB not found")
    rc = main(["--model_type=ALIF", "--data_name=ECG", "--omega_init", "3", "5", "--logging_dir", str(tmp_path)])
    assert rc == 2 and "does not apply" in capsys.readouterr().err
    rc = main(["--model_type=BRF", "--data_name=ECG", "--omega_init", "15", "150", "--logging_dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "exceeds max_omega_dt/dt" in err[0]


@pytest.mark.data
def test_cli_ecg_smoke_run_learns(data_dir, tmp_path):
    """One epoch of the ECG BRF recipe (35 updates): the validation loss falls below ln 6."""
    from main import main

    rc = main(["--model_type=BRF", "--data_name=ECG", "--data_dir", data_dir, "--epochs=1", "--verbose=0",
               "--logging_dir", str(tmp_path)])
    assert rc == 0
    res = results(tmp_path, "ECG-BRF")
    hist = res["history"]
    assert hist[0]["val_loss"] == pytest.approx(math.log(6), abs=1e-3)  # untrained: no spikes, uniform output
    assert hist[1]["val_loss"] < 1.6 and res["best_epoch"] == 1 and res["test_accuracy"] > 0.4
    for name in ("ECG-BRF_best.keras", "ECG-BRF_best.weights.h5"):  # artifacts
        assert (tmp_path / name).exists(), name
    for suffix in ("_curves.png", "_raster.png", "_log.txt"):  # the run's record
        assert os.path.exists(record_file(tmp_path, "ECG-BRF", suffix)), suffix
    assert any((tmp_path / "tensorboard" / "ECG-BRF").rglob("events.out.tfevents.*"))
    rc = main(["--model_type=BRF", "--data_name=ECG", "--data_dir", data_dir, "--epochs=0", "--plots=false",
               "--load", str(tmp_path / "ECG-BRF_best.keras"), "--logging_dir", str(tmp_path / "eval")])
    again = results(tmp_path / "eval", "ECG-BRF")
    assert rc == 0 and again["test_accuracy"] == pytest.approx(res["test_accuracy"], abs=1e-6)


def test_cli_shd_on_synthetic_hdf5(tmp_path):
    """SHD end to end through main.py on small HDF5 files in the real layout (SHD is not shipped)."""
    h5py = pytest.importorskip("h5py")
    from main import main

    rng = np.random.default_rng(0)
    (tmp_path / "shd").mkdir()
    for split, n in (("train", 10), ("test", 4)):
        with h5py.File(tmp_path / "shd" / f"shd_{split}.h5", "w") as f:
            times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.dtype("float16")))
            units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype("uint16")))
            for i in range(n):
                times[i] = np.sort(rng.random(300)).astype("float16")
                units[i] = rng.integers(0, 700, 300).astype("uint16")
            f.create_dataset("labels", data=rng.integers(0, 20, n))
    out = tmp_path / "logs"
    rc = main(["--model_type=BRF", "--data_name=SHD", "--data_dir", str(tmp_path), "--epochs=1", "--batch_size=4",
               "--val_batch_size=4", "--test_batch_size=4", "--jit_compile=false", "--verbose=0", "--plots=false",
               "--logging_dir", str(out), "--export", str(tmp_path / "saved")])
    res = results(out, "SHD-BRF")
    assert rc == 0 and res["params"] == 108820 and res["epochs_run"] == 1
    # --export: the serving signature, reloaded without tfspike, gave the Keras outputs
    assert sorted(res["export"]["signatures"]["serve"]["outputs"]) == ["last_logits", "logits", "spike_count"]
    assert max(res["export"]["max_abs_diff"].values()) <= 1e-5
    assert res["recipe"]["learning_rate"] == 0.075 and res["recipe"]["epochs"] == 20
    assert res["recipe"]["tbptt"] == 0
    # the reported test metrics are those of the best-val weights: recount them by hand with NumPy
    # from the logits of those weights on the same 4 test sequences (sequence label: argmax of the
    # time-mean potential; loss: mean over the T steps of the batch-mean NLL, one batch of 4)
    x_test, y_test = load_shd(str(tmp_path))[1]
    best = build_rsnn("BRF", "SHD")
    with warnings.catch_warnings():  # the file also holds optimizer slots
        warnings.simplefilter("ignore", UserWarning)
        best.load_weights(out / "SHD-BRF_best.weights.h5")
    logits = best(x_test.astype("float32")).numpy().astype(np.float64)
    correct = np.sum(logits.mean(axis=1).argmax(-1) == y_test)
    assert res["test_accuracy"] == pytest.approx(correct / 4, abs=1e-7)
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -logp[np.arange(4), :, y_test]  # (sample, step)
    assert res["test_loss"] == pytest.approx(nll.mean(), rel=1e-5)
    # ALIF with truncated BPTT (sub_seq 10 from the preset: updates at t = 100, 200, 249)
    rc = main(["--model_type=ALIF", "--data_name=SHD", "--data_dir", str(tmp_path), "--epochs=1", "--batch_size=4",
               "--val_batch_size=4", "--test_batch_size=4", "--tbptt=100", "--verbose=0", "--plots=false",
               "--logging_dir", str(out)])
    res = results(out, "SHD-ALIF")
    assert rc == 0 and res["recipe"]["tbptt"] == 100 and res["recipe"]["sub_seq_length"] == 10
    assert np.isfinite(res["history"][-1]["loss"]) and np.isfinite(res["test_loss"])


def test_tbptt_chunks_follow_the_reference_schedule():
    c = tbptt_chunks(784, 50)
    assert len(c) == 17 and c[:3] == [(0, 0), (1, 50), (51, 100)] and c[-2:] == [(701, 750), (751, 783)]
    assert tbptt_chunks(7, 3) == [(0, 0), (1, 3), (4, 6)]
    assert tbptt_chunks(7, 3, first_kept=2) == [(0, 3), (4, 6)]  # t = 0 is not kept: no update there
    assert tbptt_chunks(6, 50) == [(0, 0), (1, 5)]
    assert preset("ALIF", "SMNIST")["tbptt"] == 50 and preset("ALIF", "ECG")["tbptt"] == 0
    assert preset("BRF", "SMNIST")["tbptt"] == 0
    with pytest.raises(UserError, match="tbptt must be >= 0"):
        RSNN("ALIF", 4, 3, tbptt=-1)


def _tbptt_reference(model, x, y, chunks, lr, label_last, per_step, sub_seq):
    """Plain eager TBPTT with the cells' own one-step ``call`` (joint-kernel form) and SGD."""
    cell, ro = model.hidden.cell, model.readout.cell
    variables = model.trainable_variables
    B = x.shape[0]
    states = cell.get_initial_state(B)
    o = ro.get_initial_state(B)[0]
    logged = []
    for start, end in chunks:
        with tf.GradientTape() as tape:
            st, oo, terms = list(states), o, []
            for t in range(start, end + 1):
                z, st = cell(x[:, t], st)
                oo, _ = ro(z, [oo])
                target = y[:, t] if per_step else y
                nll = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=oo))
                if (label_last and t == end) or (not label_last and t >= sub_seq):
                    terms.append(nll)
            loss = tf.add_n(terms)
        grads = tape.gradient(loss, variables)
        for v, g in zip(variables, grads):
            v.assign_sub(lr * g)
        states, o = [tf.stop_gradient(s) for s in st], tf.stop_gradient(oo)
        if not label_last or end == x.shape[1] - 1:
            logged += terms
    return float(tf.add_n(logged)) / len(logged)


@pytest.mark.parametrize("label_last,per_step,sub_seq", [(True, False, 0), (False, True, 2), (False, False, 0)])
def test_tbptt_train_step_equals_an_eager_reference(label_last, per_step, sub_seq):
    T, every, lr = 9, 4, 0.05
    rng = np.random.default_rng(1)
    x = (rng.random((3, T, 2)) < 0.5).astype("float32")
    y = rng.integers(0, 3, (3, T) if per_step else (3,))
    results = []
    for which in ("model", "reference"):
        keras.utils.set_random_seed(2)
        model = RSNN("ALIF", 5, 3, per_step_labels=per_step, label_last=label_last, sub_seq_length=sub_seq,
                     tbptt=every, hidden_config=dict(kernel_bound=0.6, tau_mem_init=(3.0, 0.1)))
        model.build((None, T, 2))
        if which == "model":
            model.compile(optimizer=keras.optimizers.SGD(lr), jit_compile=True)
            logs = model.train_on_batch(x, y, return_dict=True)
            assert int(model.optimizer.iterations) == len(tbptt_chunks(T, every, sub_seq))
            loss = logs["loss"]
        else:
            loss = _tbptt_reference(model, tf.constant(x), tf.constant(y), tbptt_chunks(T, every, sub_seq), lr,
                                    label_last, per_step, sub_seq)
        results.append(([v.numpy() for v in model.trainable_variables], loss))
    (w_model, l_model), (w_ref, l_ref) = results
    assert abs(l_model - l_ref) < 1e-5
    for a, b in zip(w_model, w_ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    keras.utils.set_random_seed(2)
    untrained = RSNN("ALIF", 5, 3, hidden_config=dict(kernel_bound=0.6, tau_mem_init=(3.0, 0.1)))
    untrained.build((None, T, 2))
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(w_model, [v.numpy() for v in untrained.trainable_variables]))
