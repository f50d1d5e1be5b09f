"""TBPI: tendency-based parameter initialisation of FS neurons (Jeong et al. 2024), spec fs.md §3.

Stage 1 trains an FS neuron from a random init; stage 2 fits a smooth curve (quadratic or
logarithmic in t = k + 1) to each of h, d, T; stage 3 re-initialises from the curves and retrains.
The Gaussian baseline perturbs the stage-1 parameters with N(0, 0.1²) once and retrains.
"""

import itertools
import platform
from dataclasses import dataclass, field

import numpy as np

from tfspike.errors import UserError
from tfspike.fs.params import FSParams

FORMS = ("quadratic", "log")
PARAM_NAMES = ("h", "d", "T")

# Published trend coefficients (TBPI repo e10336c2, FS_conversion_swish.ipynb; golden JSON
# `tbpi_swish_trend`). quadratic: a t² + b t + c; log: a ln t + b.
PUBLISHED_TRENDS = {
    4: ("quadratic", {"h": (0.6408, -4.8293, 10.186), "d": (0.5732, -4.6423, 10.203),
                      "T": (0.5399, -4.4211, 9.6514)}),
    8: ("log", {"h": (-1.378, 3.5742), "d": (-1.92, 4.0338), "T": (-3.663, 7.1379)}),
    12: ("quadratic", {"h": (0.0289, -0.7486, 4.9117), "d": (0.0078, -0.4573, 4.0149),
                       "T": (-0.0495, 0.3057, 1.0462)}),
    16: ("quadratic", {"h": (-0.018, 0.2526, 0.3753), "d": (-0.0284, 0.3955, 0.0063),
                       "T": (-0.021, 0.1795, -0.0105)}),
}


def eval_curve(form, coeffs, K):
    """Curve values at t = 1..K in float32 (t and ln t in float32, as the published code)."""
    t = np.arange(1, K + 1, dtype=np.float32)
    c = [np.float32(v) for v in coeffs]
    if form == "quadratic":
        return (c[0] * t * t + c[1] * t + c[2]).astype(np.float32)
    if form == "log":
        return (c[0] * np.log(t) + c[1]).astype(np.float32)
    raise UserError(f"unknown trend form {form!r} (choose from {FORMS})")


def _lstsq(form, p, include):
    t = np.arange(1, p.shape[0] + 1, dtype=np.float64)[include]
    y = np.asarray(p, np.float64)[include]
    if form == "quadratic":
        coeffs = np.polyfit(t, y, 2)
        pred = np.polyval(coeffs, t)
    else:
        coeffs = np.polyfit(np.log(t), y, 1)
        pred = np.polyval(coeffs, np.log(t))
    return tuple(float(c) for c in coeffs), float(np.sum((y - pred) ** 2)), int(include.sum())


@dataclass
class TrendFit:
    """Per-parameter trend curves for one K: ``forms[p]`` and ``coeffs[p]`` for p in h, d, T."""

    K: int
    forms: dict
    coeffs: dict
    rss: dict = field(default_factory=dict)
    candidates: list = field(default_factory=list)
    select: str = "fixed"
    include_dead_h: bool = True
    source: str = "fit"

    @property
    def form(self):
        """The common form, or "mixed" when parameters use different forms."""
        forms = set(self.forms.values())
        return forms.pop() if len(forms) == 1 else "mixed"

    def values(self):
        return {p: eval_curve(self.forms[p], self.coeffs[p], self.K) for p in PARAM_NAMES}

    def params(self, name=None):
        v = self.values()
        return FSParams(v["h"], v["d"], v["T"], name=name or f"trend_k{self.K}_{self.form}",
                        meta={"init": "trend", "trend": self.to_dict()})

    def to_dict(self):
        return {"K": self.K, "form": self.form, "forms": dict(self.forms),
                "coeffs": {p: list(c) for p, c in self.coeffs.items()}, "rss": dict(self.rss),
                "candidates": self.candidates, "select": self.select,
                "include_dead_h": self.include_dead_h, "source": self.source}


def published_trend(K):
    """The golden TBPI trend lines for K in 4, 8, 12, 16 (coefficients exactly as published)."""
    if K not in PUBLISHED_TRENDS:
        raise UserError(f"published TBPI trends exist for K = 4, 8, 12, 16 only, not K = {K}")
    form, coeffs = PUBLISHED_TRENDS[K]
    return TrendFit(K, {p: form for p in PARAM_NAMES}, {p: tuple(coeffs[p]) for p in PARAM_NAMES},
                    select="published", source="published (TBPI e10336c2)")


def fit_trends(h, d, T, forms=FORMS, include_dead_h=True, select="init_mse", per_parameter=False,
               form=None, target="swish", grid=(-8.0, 12.0, 100000)):
    """Fit quadratic / logarithmic curves of t = 1..K to the trained h, d, T (float64 least squares).

    Args:
        forms: candidate forms.
        include_dead_h: keep h[K-1] (it only carries its initial value) in the h fit, as published.
        select: ``"init_mse"`` (lowest FS MSE on the grid of the curve-initialised neuron, the
            recommended rule), ``"rss"`` (lowest residual; biased towards the 3-coefficient
            quadratic) or ``"aicc"`` (residual with the small-sample AIC correction).
        per_parameter: try all len(forms)**3 per-parameter combinations instead of one form for all.
        form: fixed form override (skips selection).
    Returns:
        :class:`TrendFit` with every candidate's score recorded.
    """
    if select not in ("init_mse", "rss", "aicc"):
        raise UserError(f"select must be init_mse, rss or aicc (got {select!r})")
    arrays = {"h": np.asarray(h, np.float32), "d": np.asarray(d, np.float32), "T": np.asarray(T, np.float32)}
    K = arrays["h"].shape[0]
    if K < 3:
        raise UserError(f"trend fits need K >= 3 (got K = {K})")
    if form is not None:
        forms = (form,)
    for f in forms:
        if f not in FORMS:
            raise UserError(f"unknown trend form {f!r} (choose from {FORMS})")
    fits = {}
    for p in PARAM_NAMES:
        include = np.ones(K, bool)
        if p == "h" and not include_dead_h:
            include[-1] = False
        for f in forms:
            fits[p, f] = _lstsq(f, arrays[p], include)
    combos = (list(itertools.product(forms, repeat=3)) if per_parameter
              else [(f, f, f) for f in forms])
    candidates = []
    for combo in combos:
        fdict = dict(zip(PARAM_NAMES, combo))
        tf_ = TrendFit(K, fdict, {p: fits[p, fdict[p]][0] for p in PARAM_NAMES})
        rss = sum(fits[p, fdict[p]][1] for p in PARAM_NAMES)
        aicc = 0.0
        for p in PARAM_NAMES:
            r, n = fits[p, fdict[p]][1], fits[p, fdict[p]][2]
            k = 3 if fdict[p] == "quadratic" else 2
            aicc += n * np.log(max(r, 1e-300) / n) + 2 * k + (2 * k * (k + 1) / max(n - k - 1, 1))
        # init_mse is recorded for every candidate, whatever the rule (the run log prints it)
        candidates.append({"forms": fdict, "rss": rss, "aicc": float(aicc),
                           "init_mse": grid_mse(tf_.params(), target, grid)})
    best = min(candidates, key=lambda c: c[select])
    fdict = best["forms"]
    return TrendFit(K, dict(fdict), {p: fits[p, fdict[p]][0] for p in PARAM_NAMES},
                    rss={p: fits[p, fdict[p]][1] for p in PARAM_NAMES}, candidates=candidates,
                    select=select if form is None else "fixed", include_dead_h=include_dead_h)


def grid_mse(params, target="swish", grid=(-8.0, 12.0, 100000)):
    """MSE of an FS set against ``target`` on ``linspace(*grid)`` (float32 forward, float64 mean)."""
    import tensorflow as tf

    from tfspike.fs.dynamics import fs_forward
    from tfspike.fs.targets import make_grid, target_numpy

    x = make_grid(grid)
    y = target_numpy(target, x)
    out = fs_forward(tf.constant(x), params.h, params.d, params.T).numpy()
    return float(np.mean((out.astype(np.float64) - y) ** 2))


def library_versions():
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "numpy": np.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__}


# ----------------------------------------------------------------------------- the pipeline

INITS = ("random", "gaussian", "tbpi", "published", "best")


def _stage_record(res):
    d = res.to_dict()
    d["params_before"] = d.pop("init_params")
    d["params_after"] = d.pop("final_params")
    return d


def run(target="swish", K=8, init="tbpi", seed=0, steps=20000, lr=1e-3, select="init_mse",
        per_parameter=False, include_dead_h=True, sigma=0.1, grid=None, baselines=(), mode="loop",
        polish_steps=0, search_iters=1000, verbose=False, log=print):
    """Run the TBPI pipeline (or one baseline) and return a JSON-able record.

    ``init``: ``"random"`` (stage 1 only: |N(0,1)|/N(0,1) init, §2.1 protocol), ``"gaussian"``
    (stage 1, then + N(0, sigma²) once and retrain), ``"tbpi"`` (stage 1, trend fit, re-init from the
    curves and retrain), ``"published"`` (retrain from the published TBPI trend lines: the
    deterministic protocol of spec §3.3) or ``"best"`` (published/TBPI result, then
    :func:`tfspike.fs.fit.fit_best`). ``baselines`` adds further stages that share stage 1.

    The record holds the config, seeds, per-stage losses and parameters before/after, trend
    coefficients with candidate MSEs, the chosen form, library versions, and the top-level keys
    ``init_mse``, ``final_mse`` (reported loss L(θ_{steps-1})) and ``best_mse`` of ``init``.
    """
    from tfspike.fs.fit import FSFitter, add_noise, fit_best, fit_fs
    from tfspike.fs.targets import DEFAULT_GRIDS, canonical, make_grid, target_tf

    import tensorflow as tf

    if init not in INITS:
        raise UserError(f"init must be one of {', '.join(INITS)} (got {init!r})")
    tname = canonical(target)
    grid = tuple(grid) if grid is not None else DEFAULT_GRIDS.get(tname, (-8.0, 12.0, 100000))
    if init in ("published", "best") and (tname != "swish" or K not in PUBLISHED_TRENDS):
        if init == "published":
            raise UserError("--init=published needs the swish target and K in 4, 8, 12, 16 "
                            "(the published TBPI trend lines)")
    x = make_grid(grid)
    fitter = FSFitter(x, target_tf(tname)(tf.constant(x)), K, lr, "none", 0.0, chunk=1000)
    seeds = {"stage1": seed, "gaussian_noise": seed + 1}
    record = {"config": {"target": tname, "K": K, "init": init, "steps": steps, "lr": lr, "grid": list(grid),
                         "select": select, "per_parameter": per_parameter, "include_dead_h": include_dead_h,
                         "sigma": sigma, "optimizer": "torch_adam(0.9, 0.999, 1e-8)", "voltage_scaling": "none",
                         "loss": "MSE (plain, not x100)", "mode": mode, "baselines": list(baselines)},
              "seeds": seeds, "versions": library_versions(), "stages": {}}
    stages = record["stages"]

    def fit(name, init_spec, s=seed):
        log(f"[{name}] K={K} target={tname}: {steps} steps ...")
        res = fit_fs(tname, K, init=init_spec, grid=grid, steps=steps, lr=lr, seed=s, fitter=fitter,
                     mode=mode, name=f"{tname}_k{K}_{name}", verbose=verbose)
        stages[name] = _stage_record(res)
        log(f"[{name}] init {res.init_loss:.7f}  reported {res.reported_loss:.7f}  best {res.best_loss:.7f} "
            f"(step {res.best_step})  after-last-update {res.final_loss_after_update:.7f}  ({res.seconds:.1f} s)")
        return res

    wanted = {init, *baselines}
    results = {}
    if wanted & {"random", "gaussian", "tbpi"} or (init == "best" and K not in PUBLISHED_TRENDS):
        results["random"] = fit("random", "abs_normal", seed)
        stage1 = results["random"].params()
        if wanted & {"tbpi", "best"}:
            trend = fit_trends(stage1.h, stage1.d, stage1.T, include_dead_h=include_dead_h, select=select,
                               per_parameter=per_parameter, target=tname, grid=grid)
            record["trend"] = trend.to_dict()
            log(f"[trend] chosen {trend.forms} by {select}; candidates "
                + ", ".join(f"{c['forms']['h']}/{c['forms']['d']}/{c['forms']['T']}: {c['init_mse']:.6f}"
                            for c in trend.candidates))
            results["tbpi"] = fit("tbpi", ("trend", trend))
        if "gaussian" in wanted:
            results["gaussian"] = fit("gaussian", add_noise(stage1, sigma, seeds["gaussian_noise"]).as_tuple())
    if wanted & {"published", "best"} and K in PUBLISHED_TRENDS and tname == "swish":
        record["published_trend"] = published_trend(K).to_dict()
        results["published"] = fit("published", "tbpi")
    if init == "best":
        # start from the lowest loss any stage reached (its best iterate)
        name, start = min(results.items(), key=lambda kv: kv[1].best_loss)
        log(f"[best] polishing the best iterate of stage {name!r} ({start.best_loss:.7f}): {polish_steps} "
            f"cosine-annealed Adam steps, least-squares d, {search_iters} pattern-search iterations ...")
        best = fit_best(tname, K, start=start, grid=grid, polish_steps=polish_steps, lr=lr, seed=seed,
                        search_iters=search_iters, log=log)
        best["start_stage"] = name
        params = best.pop("params")
        best["params"] = params.to_dict()
        stages["best"] = best
        log(f"[best] polish best {best.get('polish_best_loss', float('nan')):.7f}  "
            f"+lsq d {best['lsq_loss']:.7f}  +search {best.get('search_loss', float('nan')):.7f}  "
            f"final {best['final_mse']:.7f}")
        record.update(init_mse=start.init_loss, final_mse=best["final_mse"], best_mse=best["final_mse"])
        record["final_params"] = params
    else:
        r = results[init]
        record.update(init_mse=r.init_loss, final_mse=r.reported_loss, best_mse=r.best_loss)
        record["final_params"] = r.params()
    record["final_params"] = record["final_params"].to_dict()
    return record


# ----------------------------------------------------------------------------- plots

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_trends(record, path):
    """h(t), d(t), T(t) of the trained stage-1 neuron (markers; dead h[K-1] hollow) with the fitted
    curves (dashed) over t in [1, K]; also writes the plotted numbers as CSV next to the PNG."""
    plt = _plt()
    trend = record["trend"]
    K = trend["K"]
    pts = record["stages"]["random"]["params_after"]
    t = np.arange(1, K + 1)
    tt = np.linspace(1, K, 100)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    rows = []
    for ax, p in zip(axes, PARAM_NAMES):
        form, c = trend["forms"][p], trend["coeffs"][p]
        curve = (c[0] * tt ** 2 + c[1] * tt + c[2]) if form == "quadratic" else (c[0] * np.log(tt) + c[1])
        vals = np.asarray(pts[p])
        ax.plot(t[:K - 1] if p == "h" else t, vals[:K - 1] if p == "h" else vals, "o", label=f"trained {p}")
        if p == "h":
            ax.plot([K], [vals[-1]], "o", mfc="none", label="h[K-1] (dead)")
        coeff = ", ".join(f"{v:.4g}" for v in c)
        ax.plot(tt, curve, "--", label=f"{form}: ({coeff})")
        ax.set_xticks(t)
        ax.set_xlabel("t = k + 1")
        ax.set_title(f"{p}(t), K = {K}")
        ax.legend(fontsize=7)
        fitted = eval_curve(form, c, K)
        rows += [(p, int(ti), float(v), float(f)) for ti, v, f in zip(t, vals, fitted)]
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    with open(str(path)[:-4] + ".csv", "w") as f:
        f.write("param,t,trained,curve\n")
        f.writelines(f"{p},{ti},{v:.8g},{c:.8g}\n" for p, ti, v, c in rows)
    return path


def plot_fit(params, target, grid, path, title=""):
    """FS approximation against the target on the fitting grid (and the error below)."""
    import tensorflow as tf

    from tfspike.fs.dynamics import fs_forward
    from tfspike.fs.targets import make_grid, target_numpy

    plt = _plt()
    x = make_grid(grid)
    y = target_numpy(target, x)
    out = fs_forward(tf.constant(x), params.h, params.d, params.T).numpy()
    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    a.plot(x, y, label=str(target))
    a.plot(x, out, label=f"FS K={params.K}", lw=1)
    a.set_title(title or f"{params.name}: MSE {np.mean((out - y) ** 2):.3e}")
    a.legend()
    b.plot(x, out - y, lw=0.8)
    b.set_xlabel("x")
    b.set_ylabel("FS - target")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_losses(record, path):
    """Loss (log scale) against step for every trained stage; stage-1 then the retrains after it."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = record["config"]["steps"]
    for name, st in record["stages"].items():
        if "curve" not in st:
            continue
        c = np.asarray(st["curve"], np.float64)
        offset = 0 if name in ("random", "published") else steps
        ax.plot(c[:, 0] + offset, c[:, 1], label=f"{name} (final {st['reported_loss']:.3e})")
    if "random" in record["stages"] and len(record["stages"]) > 1:
        ax.axvline(steps, color="gray", ls=":", label="stage boundary")
    ax.set_yscale("log")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("MSE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def polish_record(record, polish_steps=0, lr=1e-3, seed=0, log=print, search_iters=1000):
    """Add a ``best`` stage to an existing :func:`run` record: polish the best iterate of its best
    stage (cosine-annealed Adam, then least-squares d) and update the top-level keys."""
    from tfspike.fs.fit import fit_best

    cfg = record["config"]
    stages = {k: v for k, v in record["stages"].items() if "best_params" in v}
    if not stages:
        raise UserError("the results file has no trained stage to start from")
    # an earlier "best" stage is a candidate start too (its params are its best)
    prev = record["stages"].get("best")
    if prev is not None and "params" in prev:
        stages["best"] = dict(prev, best_params=prev["params"], best_loss=prev["final_mse"],
                              init_loss=record.get("init_mse"))
    name, st = min(stages.items(), key=lambda kv: kv[1]["best_loss"])
    bp = st["best_params"]
    start = FSParams(bp["h"], bp["d"], bp["T"], name=f"{cfg['target']}_k{cfg['K']}_{name}_best")
    log(f"[best] polishing the best iterate of stage {name!r} ({st['best_loss']:.7f}): {polish_steps} "
        f"cosine-annealed Adam steps, least-squares d, {search_iters} pattern-search iterations ...")
    best = fit_best(cfg["target"], cfg["K"], start=start, grid=tuple(cfg["grid"]), polish_steps=polish_steps,
                    lr=lr, seed=seed, start_loss=st["best_loss"], search_iters=search_iters, log=log)
    params = best.pop("params")
    best["params"] = params.to_dict()
    best["start_stage"] = name
    if name == "best":
        record["stages"]["best_previous"] = prev
    record["stages"]["best"] = best
    record["config"] = dict(cfg, init="best", polish_steps=polish_steps, search_iters=search_iters)
    record.update(init_mse=st["init_loss"], final_mse=best["final_mse"], best_mse=best["final_mse"],
                  final_params=params.to_dict())
    log(f"[best] polish best {best.get('polish_best_loss', float('nan')):.7f}  +lsq d {best['lsq_loss']:.7f}  "
        f"+search {best.get('search_loss', float('nan')):.7f}  final {best['final_mse']:.7f}")
    return record
