"""TBPI: tendency-based parameter initialisation of FS neurons (Jeong et al. 2024), spec fs.md §3.

Stage 1 trains an FS neuron from a random init; stage 2 fits a smooth curve (quadratic or
logarithmic in t = k + 1, :mod:`tfspike.fs.trends`) to each of h, d, T; stage 3 re-initialises from
the curves and retrains. The Gaussian baseline perturbs the stage-1 parameters with N(0, 0.1²) once
and retrains. :func:`run` returns one JSON-able record of all stages.

The constants (:data:`INITS`, :data:`PAPER_TABLE`) are importable without TensorFlow; :func:`run`
and :func:`polish_record` load the fitter (and TensorFlow) when called.
"""

from tfspike.errors import UserError
from tfspike.fs.param_set import FSParams
from tfspike.fs.targets import canonical, default_grid, make_grid, target_tf
from tfspike.fs.trends import PUBLISHED_TRENDS, fit_trends, published_trend
from tfspike.utils.versions import library_versions

# --init choices of the pipeline (see :func:`run`).
INITS = ("random", "gaussian", "tbpi", "published", "best")

# TBPI README table "FS neuron (Swish approximation)", MSE x 100 on linspace(-8, 12, 1e5).
PAPER_TABLE = {
    "random": {4: 3.8797, 8: 0.9776, 12: 0.1521, 16: 0.1425},
    "gaussian": {4: 3.8796, 8: 0.8968, 12: 0.1517, 16: 0.1249},
    "tbpi": {4: 3.8795, 8: 0.6295, 12: 0.1413, 16: 0.1246},
}


def stage_record(res):
    """The JSON-able record of one trained stage (a ``FitResult``): its summary, curves and the
    parameters before and after training."""
    d = res.to_dict()
    d["params_before"] = d.pop("init_params")
    d["params_after"] = d.pop("final_params")
    return d


def run(target="swish", K=8, init="tbpi", seed=0, steps=20000, lr=1e-3, select="init_mse",
        per_parameter=False, include_dead_h=True, sigma=0.1, grid=None, baselines=(), mode="loop",
        polish_steps=0, search_iters=1000, verbose=False, log=print, jit_compile=True):
    """Run the TBPI pipeline (or one baseline) and return a JSON-able record.

    ``init``: ``"random"`` (stage 1 only: |N(0,1)|/N(0,1) init, §2.1 protocol), ``"gaussian"``
    (stage 1, then + N(0, sigma²) once and retrain), ``"tbpi"`` (stage 1, trend fit, re-init from the
    curves and retrain), ``"published"`` (retrain from the published TBPI trend lines: the
    deterministic protocol of spec §3.3) or ``"best"`` (published/TBPI result, then
    :func:`tfspike.fs.fit.fit_best`). ``baselines`` adds further stages that share stage 1.
    ``grid`` defaults to :func:`tfspike.fs.targets.default_grid` of the target.

    The record holds the config, seeds, per-stage losses and parameters before/after, trend
    coefficients with candidate MSEs, the chosen form, library versions, and the top-level keys
    ``init_mse``, ``final_mse`` (reported loss L(θ_{steps-1})) and ``best_mse`` of ``init``.
    """
    import tensorflow as tf

    from tfspike.fs.fit import FSFitter, add_noise, fit_best, fit_fs  # loads TensorFlow

    if init not in INITS:
        raise UserError(f"init must be one of {', '.join(INITS)} (got {init!r})")
    tname = canonical(target)
    grid = tuple(grid) if grid is not None else default_grid(tname)
    if init == "published" and (tname != "swish" or K not in PUBLISHED_TRENDS):
        raise UserError("--init=published needs the swish target and K in 4, 8, 12, 16 "
                        "(the published TBPI trend lines)")
    x = make_grid(grid)
    fitter = FSFitter(x, target_tf(tname)(tf.constant(x)), K, lr, "none", 0.0, chunk=1000, jit_compile=jit_compile)
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
        stages[name] = stage_record(res)
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
                        search_iters=search_iters, log=log, jit_compile=jit_compile)
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


def polish_record(record, polish_steps=0, lr=1e-3, seed=0, log=print, search_iters=1000, jit_compile=True):
    """Add a ``best`` stage to an existing :func:`run` record: polish the best iterate of its best
    stage (cosine-annealed Adam, then least-squares d) and update the top-level keys."""
    from tfspike.fs.fit import fit_best  # loads TensorFlow

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
                    lr=lr, seed=seed, start_loss=st["best_loss"], search_iters=search_iters, log=log,
                    jit_compile=jit_compile)
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
