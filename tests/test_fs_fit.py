"""FS fitting, TorchAdam and TBPI (fs.md §6 C1–C5, C12, C13) plus the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfspike.errors import UserError
from tfspike.fs import get_params
from tfspike.fs.fit import TorchAdam, abs_normal_init, fit_fs, optimal_d, resolve_init
from tfspike.fs.pipeline import polish_record, run
from tfspike.fs.targets import grid_mse
from tfspike.fs.trends import PUBLISHED_TRENDS, eval_curve, fit_trends, published_trend
from tfspike.reference import fs_numpy as R
from records import record_file, results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = (-8.0, 12.0, 2000)


def golden_sets(golden_dir):
    return json.load(open(golden_dir / "fs" / "published_fs_params.json"))["sets"]


@pytest.mark.golden
def test_published_trend_constants_equal_golden(golden_dir):
    g = golden_sets(golden_dir)["tbpi_swish_trend"]
    for K, (form, coeffs) in PUBLISHED_TRENDS.items():
        assert g[f"K{K}"]["form"] == form
        for p in "hdT":
            want = [g[f"K{K}"][p][c] for c in ("a", "b", "c") if c in g[f"K{K}"][p]]
            assert list(coeffs[p]) == want


def test_C1_published_trend_init_mse():
    want = {4: 0.0427010, 8: 0.0643081, 12: 0.4038005, 16: 0.1040089}
    for K, w in want.items():
        assert abs(grid_mse(get_params(f"tbpi_trend_k{K}")) - w) < 2e-6
    p = published_trend(4).params()
    np.testing.assert_allclose(p.h, [5.998, 3.091, 1.465, 1.122], atol=6e-4)
    np.testing.assert_allclose(published_trend(8).params().T,
                               [7.138, 4.599, 3.114, 2.060, 1.243, 0.575, 0.010, -0.479], atol=6e-4)


@pytest.mark.golden
def test_C2_pretrained_points_mse(golden_dir):
    pts = golden_sets(golden_dir)["tbpi_swish_pretrained_points"]
    want = {4: 0.0387948, 8: 0.0089465, 12: 0.0020457, 16: 0.0010419}
    for K, w in want.items():
        p = pts[f"K{K}"]
        assert abs(grid_mse(get_params((p["h"], p["d"], p["T"]))) - w) < 2e-6


@pytest.mark.golden
def test_C3_quadratic_trends_reproduce_published(golden_dir):
    pts = golden_sets(golden_dir)["tbpi_swish_pretrained_points"]
    for K in (4, 12):
        p = pts[f"K{K}"]
        tr = fit_trends(p["h"], p["d"], p["T"], form="quadratic", include_dead_h=True)
        for name in "hdT":
            np.testing.assert_allclose(tr.coeffs[name], PUBLISHED_TRENDS[K][1][name], atol=3.5e-4, rtol=0)
    # dropping the dead h changes the h fit only
    p = pts["K4"]
    tr = fit_trends(p["h"], p["d"], p["T"], form="quadratic", include_dead_h=True)
    tr2 = fit_trends(p["h"], p["d"], p["T"], form="quadratic", include_dead_h=False)
    assert tr2.coeffs["d"] == tr.coeffs["d"] and tr2.coeffs["T"] == tr.coeffs["T"]
    assert tr2.rss["h"] < 1e-12 < tr.rss["h"]  # three points, three coefficients


@pytest.mark.golden
def test_C4_form_selection_by_init_mse(golden_dir):
    pts = golden_sets(golden_dir)["tbpi_swish_pretrained_points"]
    want = {4: ("quadratic", 0.042708, 0.060208), 8: ("log", 0.095311, 0.022603),
            12: ("log", 0.406429, 0.398918), 16: ("quadratic", 0.125584, 0.394054)}
    for K, (form, mq, ml) in want.items():
        p = pts[f"K{K}"]
        tr = fit_trends(p["h"], p["d"], p["T"], select="init_mse")
        assert tr.form == form
        cand = {c["forms"]["h"]: c["init_mse"] for c in tr.candidates}
        assert abs(cand["quadratic"] - mq) < 1e-5 and abs(cand["log"] - ml) < 1e-5
    rss = fit_trends(pts["K8"]["h"], pts["K8"]["d"], pts["K8"]["T"], select="rss")
    assert rss.form == "quadratic"  # the documented bias of residual-based selection
    per = fit_trends(pts["K8"]["h"], pts["K8"]["d"], pts["K8"]["T"], per_parameter=True)
    assert len(per.candidates) == 8
    assert min(c["init_mse"] for c in per.candidates) <= 0.022603 + 1e-9


def test_C5_torch_adam_matches_formula():
    opt = TorchAdam(lr=0.1)
    theta = tf.constant([1.0, -2.0, 3.0])
    m = tf.zeros(3)
    v = tf.zeros(3)
    th_np, m_np, v_np = theta.numpy().astype(np.float64), np.zeros(3), np.zeros(3)
    for t in range(1, 4):
        grad = 2 * theta * tf.constant([1.0, 3.0, 0.5])  # gradient of a quadratic toy loss
        g_np = 2 * th_np * np.array([1.0, 3.0, 0.5])
        theta, m, v = opt.update(theta, grad, m, v, tf.constant(t))
        th_np, m_np, v_np = R.torch_adam_step(th_np, g_np, m_np, v_np, t, lr=0.1)
        np.testing.assert_allclose(theta.numpy(), th_np, rtol=1e-6)


def test_fit_loop_follows_oracle_trajectory():
    """30 TorchAdam steps of the compiled loop = the NumPy oracle (surrogate backward + Adam)."""
    x = np.linspace(*SMALL[:2], SMALL[2]).astype(np.float32)
    y = R.swish(x)
    res = fit_fs("swish", 4, init="tbpi", grid=SMALL, steps=30, lr=1e-2, chunk=30)
    theta = np.stack(get_params("tbpi_trend_k4").as_tuple()).astype(np.float64)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    losses = []
    for t in range(1, 31):
        loss, gh, gd, gT = R.mse_and_grads(x, y, *theta.astype(np.float32))
        losses.append(loss)
        theta, m, v = R.torch_adam_step(theta, np.stack([gh, gd, gT]), m, v, t, lr=1e-2)
        theta = theta.astype(np.float32).astype(np.float64)
    curve = dict((s, l) for s, l in res.curve)
    np.testing.assert_allclose(res.reported_loss, losses[-1], rtol=1e-4)
    np.testing.assert_allclose(curve[0], losses[0], rtol=1e-6)
    np.testing.assert_allclose(np.stack([res.h, res.d, res.T]), theta, atol=1e-4)
    assert res.h[-1] == get_params("tbpi_trend_k4").h[-1]  # B1: h[K-1] never moves
    assert res.best_loss <= min(losses) * (1 + 1e-4)
    assert res.final_loss_after_update == pytest.approx(grid_mse(res.params(), "swish", SMALL), rel=1e-5)


def test_loop_and_step_modes_agree():
    a = fit_fs("swish", 4, init="tbpi", grid=SMALL, steps=12, chunk=5)
    b = fit_fs("swish", 4, init="tbpi", grid=SMALL, steps=12, chunk=5, mode="step")
    np.testing.assert_allclose([l for _, l in a.curve], [l for _, l in b.curve], rtol=1e-6)
    np.testing.assert_allclose(a.h, b.h, rtol=1e-6)
    assert a.best_step == b.best_step


def test_C13_stage1_sampler():
    a, b = abs_normal_init(8, 7), abs_normal_init(8, 7)
    for u, v in zip(a.as_tuple(), b.as_tuple()):
        np.testing.assert_array_equal(u, v)
    assert np.all(a.h >= 0) and np.all(a.d >= 0) and np.any(a.T < 0)
    assert not np.array_equal(abs_normal_init(8, 8).h, a.h)
    assert resolve_init("abs_normal", 8, 7).meta["seed"] == 7


def test_C12_run_record_schema(tmp_path):
    rec = run("swish", 4, init="tbpi", seed=3, steps=20, grid=SMALL, baselines=("gaussian",), log=lambda s: None)
    for key in ("config", "seeds", "versions", "stages", "trend", "init_mse", "final_mse", "best_mse", "final_params"):
        assert key in rec
    assert set(rec["stages"]) == {"random", "tbpi", "gaussian"}
    for st in rec["stages"].values():
        for key in ("init_loss", "reported_loss", "best_loss", "best_step", "final_loss_after_update",
                    "params_before", "params_after", "best_params", "curve", "seed"):
            assert key in st
    assert rec["seeds"]["stage1"] == 3
    assert len(rec["trend"]["candidates"]) == 2 and all("init_mse" in c for c in rec["trend"]["candidates"])
    assert rec["final_mse"] == rec["stages"]["tbpi"]["reported_loss"]
    # the tbpi stage starts from the fitted curves of the stage-1 parameters
    tr = rec["trend"]
    np.testing.assert_array_equal(rec["stages"]["tbpi"]["params_before"]["T"],
                                  eval_curve(tr["forms"]["T"], tr["coeffs"]["T"], 4))
    json.dumps(rec)  # JSON-able
    # the "best" mode polishes the best stage and never ends above where it started
    start_best = min(st["best_loss"] for st in rec["stages"].values())
    rec = polish_record(rec, polish_steps=10, log=lambda s: None)
    assert rec["stages"]["best"]["final_mse"] <= start_best * (1 + 1e-6)
    assert rec["final_mse"] == rec["stages"]["best"]["final_mse"]


def test_optimal_d_is_least_squares_and_never_worse():
    p = get_params("tbpi_trend_k8")
    before = grid_mse(p, "swish", SMALL)
    q, after = optimal_d(p, "swish", SMALL)
    assert after < before
    np.testing.assert_array_equal(q.h, p.h)
    np.testing.assert_array_equal(q.T, p.T)
    # the normal equations hold: perturbing any d[k] increases the loss
    for k in range(8):
        for eps in (1e-3, -1e-3):
            d2 = q.d.copy()
            d2[k] += eps
            assert grid_mse(get_params((q.h, d2, q.T)), "swish", SMALL) > after


def test_targets():
    from scipy.special import erf

    from tfspike.fs.targets import target_numpy

    x = np.linspace(-6, 6, 101).astype(np.float32)
    xd = x.astype(np.float64)
    sp = np.log1p(np.exp(xd))
    want = {"swish": xd / (1 + np.exp(-xd)), "silu": xd / (1 + np.exp(-xd)), "sigmoid": 1 / (1 + np.exp(-xd)),
            "gelu": 0.5 * xd * (1 + erf(xd / np.sqrt(2))), "tanh": np.tanh(xd), "softplus": sp,
            "mish": xd * np.tanh(sp), "relu": np.maximum(xd, 0)}
    for name, w in want.items():
        np.testing.assert_allclose(target_numpy(name, x), w, atol=2e-6, err_msg=name)


def test_gelu_fit_decreases():
    res = fit_fs("gelu", 6, init="abs_normal", grid=(-4.0, 4.0, 500), steps=200, lr=1e-2, seed=1, chunk=200)
    assert res.best_loss < 0.5 * res.init_loss
    assert np.isfinite(res.reported_loss) and res.seed == 1 and res.config["target"] == "gelu"


def test_cli_writes_results_and_plots(tmp_path):
    cmd = [sys.executable, "main.py", "--model_type=FS", "--activation=swish", "--K=4", "--init=tbpi",
           "--steps=30", "--grid=-8,12,2000", "--baselines=gaussian", f"--logging_dir={tmp_path}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rec = results(tmp_path, "FS-swish-K4")
    for key in ("init_mse", "final_mse", "best_mse", "seed", "stages"):
        assert key in rec
    assert rec["final_mse"] == rec["stages"]["tbpi"]["reported_loss"]
    for suffix in ("_trends.png", "_trends.csv", "_tbpi_fit.png", "_tbpi_losses.png", "_log.txt"):
        assert os.path.exists(record_file(tmp_path, "FS-swish-K4", suffix)), suffix  # the run's record
    assert (tmp_path / "FS-swish-K4_tbpi_params.json").exists()  # the artifact other runs load
    saved = get_params(str(tmp_path / "FS-swish-K4_tbpi_params.json"))
    assert saved.K == 4


def test_cli_bad_input_is_one_line_error(tmp_path):
    cmd = [sys.executable, "main.py", "--model_type=FS", "--K=5", "--init=published", f"--logging_dir={tmp_path}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: --init=published")
    r = subprocess.run([sys.executable, "main.py", "--model_type=FS", "--K=0"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "error:" in r.stderr


def test_pattern_search_only_accepts_true_decreases():
    from tfspike.fs.fit import _batched_forward, pattern_search

    p = get_params("tbpi_trend_k4")
    # the batched forward used by the search equals the oracle for every candidate
    x = np.linspace(*SMALL[:2], SMALL[2]).astype(np.float32)
    theta = np.stack([np.stack(p.as_tuple()), np.stack(get_params("relu_k4").as_tuple())])
    out = _batched_forward(tf.constant(x), tf.constant(theta)).numpy()
    for b in range(2):
        np.testing.assert_array_equal(out[b], R.forward_post(x, *theta[b])[0])
    start = grid_mse(p, "swish", SMALL)
    q, info = pattern_search(p, "swish", SMALL, max_iters=30, lsq_every=10)
    assert info["start_mse"] == pytest.approx(start, rel=1e-5)
    assert grid_mse(q, "swish", SMALL) == pytest.approx(info["final_mse"], rel=1e-5)
    assert info["final_mse"] < 0.95 * start
    assert q.h[-1] == p.h[-1]  # the dead reset is never searched
    hist = [l for _, l in info["history"]]
    assert all(b <= a for a, b in zip(hist, hist[1:]))


def test_cli_table(tmp_path):
    cmd = [sys.executable, "main.py", "--model_type=FS", "--table=True", "--table_Ks=4", "--steps=20",
           "--grid=-8,12,2000", "--search_iters=5", "--plots=False", f"--logging_dir={tmp_path}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(record_file(tmp_path, "FS-swish-table", ".md")) as f:
        table = f.read()
    assert "| MSE x 100 | K=4 |" in table and "paper: TBPI | 3.8795" in table
    with open(os.path.join(os.path.dirname(record_file(tmp_path, "FS-swish-table")), "FS-swish-K4_results.json")) as f:
        rec = json.load(f)
    assert set(rec["stages"]) == {"random", "tbpi", "gaussian", "published", "best"}
    assert rec["final_mse"] <= min(st["best_loss"] for k, st in rec["stages"].items() if k != "best") * (1 + 1e-6)


def test_voltage_regulariser_against_the_oracle():
    """fit_fs(reg_lambda=λ): loss = MSE + λ·Σ_k (mean_x max(0, |s_k| - 1))², s_k = (v_k - T_k)/(|v_k| + 1).

    Value and gradients against the NumPy oracle written from the spec (the regulariser's spikes carry
    no gradient: the potentials follow them, only h, T and x enter the chain)."""
    from tfspike.fs.fit import FSFitter, _loss_fn, _voltage_reg

    x = np.linspace(-4.0, 6.0, 200).astype(np.float32)
    y = R.swish(x)
    p = get_params("tbpi_trend_k4")
    h, d, T = p.as_tuple()
    lam = 0.25
    want_reg, want_gh, want_gT = R.voltage_reg_and_grads(x, h, d, T)
    want_mse = R.mse_and_grads(x, y, h, d, T)[0]
    assert want_reg > 1e-3 and np.all(want_gh[:2] != 0) and np.all(want_gT[:3] != 0)  # active here
    theta = tf.constant(np.stack(p.as_tuple()))
    with tf.GradientTape() as tape:
        tape.watch(theta)
        reg = _voltage_reg(tf.constant(x), theta)
    g = tape.gradient(reg, theta).numpy()
    assert float(reg) == pytest.approx(want_reg, rel=1e-6)
    np.testing.assert_allclose(g[0], want_gh, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(g[1], 0.0)  # d does not enter the regulariser
    np.testing.assert_allclose(g[2], want_gT, rtol=1e-5, atol=1e-9)
    assert g[0, -1] == 0.0  # the dead reset
    want = want_mse + lam * want_reg
    assert float(_loss_fn(tf.constant(x), tf.constant(y), "none", lam)(theta)) == pytest.approx(want, rel=1e-6)
    assert FSFitter(x, tf.constant(y), 4, reg_lambda=lam).evaluate(theta.numpy()) == pytest.approx(want, rel=1e-6)


def test_fit_best_leaves_the_start_untouched():
    from tfspike.fs.fit import fit_best

    start, _ = optimal_d(get_params("tbpi_trend_k4"), "swish", SMALL)  # d already optimal: nothing improves
    name, meta = start.name, dict(start.meta)
    rec = fit_best("swish", 4, start=start, grid=SMALL, search_iters=0)
    assert rec["params"] is not start and rec["params"].name == "swish_k4_best"
    assert start.name == name and start.meta == meta
    for a, b in zip(rec["params"].as_tuple(), start.as_tuple()):
        np.testing.assert_array_equal(a, b)


def test_fit_trends_rejects_unknown_select():
    p = get_params("tbpi_trend_k4")
    with pytest.raises(UserError, match="select must be"):
        fit_trends(p.h, p.d, p.T, select="mse")
