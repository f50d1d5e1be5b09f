"""``main.py --model_type=FS``: fit Few-Spike neurons to an activation (TBPI stages, baselines,
the "best" mode) and print the TBPI-style table.

    python main.py --model_type=FS --activation=swish --K=8 --init=tbpi
    python main.py --model_type=FS --activation=swish --K=16 --init=best --baselines=random,gaussian,tbpi
    python main.py --model_type=FS --table=True --table_Ks=4,8,12,16
"""

import argparse
import os

from tfspike.cli.common import (RunContext, Timer, csv_list, nonneg_int, positive_float, positive_int, prepare_dir,
                                str2bool)
from tfspike.errors import UserError
from tfspike.fs.pipeline import INITS, PAPER_TABLE  # these modules load no TensorFlow at import
from tfspike.fs.targets import TARGETS
from tfspike.fs.trends import SELECT_RULES

MODEL_TYPES = ("FS",)
# An FS fit is full-batch Adam on the whole grid, so one step is one epoch (one pass over the data).
DEFAULTS = {"learning_rate": 1e-3, "epochs": 20000}


def _grid(s):
    try:
        lo, hi, n = s.split(",")
        lo, hi, n = float(lo), float(hi), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI,N (e.g. -8,12,100000), got {s!r}") from None
    if not hi > lo or n < 2:
        raise argparse.ArgumentTypeError(f"expected LO < HI and N >= 2, got {s!r}")
    return (lo, hi, n)


def add_arguments(parser):
    g = parser.add_argument_group("Few-Spike fitting (FS)")
    g.add_argument("--activation", default="swish", choices=TARGETS, help="target activation")
    g.add_argument("--K", type=positive_int, default=8, help="FS time steps")
    g.add_argument("--init", default="tbpi", choices=INITS,
                   help="random | gaussian | tbpi (three stages) | published (TBPI trend lines) | best")
    g.add_argument("--baselines", type=csv_list(str, INITS), default=[],
                   help="extra stages in the same run, e.g. random,gaussian (share stage 1)")
    g.add_argument("--steps", dest="epochs", type=nonneg_int, default=argparse.SUPPRESS,
                   help="the same as --epochs: full-batch Adam steps per stage (each step is one pass over the grid)")
    g.add_argument("--grid", type=_grid, default=None,
                   help="fitting grid LO,HI,N (default -8,12,100000; sigmoid/tanh -10,10,100000)")
    g.add_argument("--select", default="init_mse", choices=SELECT_RULES, help="trend form rule")
    g.add_argument("--per_parameter", type=str2bool, default=False, help="choose the trend form per parameter")
    g.add_argument("--include_dead_h", type=str2bool, default=True, help="fit the dead h[K-1] in the h trend")
    g.add_argument("--sigma", type=positive_float, default=0.1, help="noise of the gaussian baseline")
    g.add_argument("--polish_steps", type=nonneg_int, default=0,
                   help="cosine-annealed Adam polish steps of --init=best (measured not to help; default 0)")
    g.add_argument("--search_iters", type=nonneg_int, default=1000,
                   help="exact-loss pattern-search iterations of --init=best")
    g.add_argument("--start_from", default=None,
                   help="with --init=best: polish the best stage of an existing results JSON instead of refitting")
    g.add_argument("--mode", default="loop", choices=("loop", "step"),
                   help="compiled while-loop chunks (fast) or a compiled step called from Python")
    g.add_argument("--save_preset", type=str2bool, default=False,
                   help="also save the result as a named preset <activation>_k<K>_<init>.json in --preset_dir")
    g.add_argument("--preset_dir", default=None,
                   help="folder of --save_preset and of --load NAME lookups (default <logging_dir>/presets); "
                        "FewSpike(params=NAME) and DDIM --fs_params=NAME find presets in the folders of "
                        "$TFSPIKE_FS_PRESETS")
    g.add_argument("--table", type=str2bool, default=False,
                   help="print the TBPI-style table (MSE x100) for --table_Ks, running missing K")
    g.add_argument("--table_Ks", type=csv_list(int), default=[4, 8, 12, 16], help="K values of the table")


def record_name(activation, K):
    """The run-record name of one FS fit: ``FS-<activation>-K<K>``."""
    return f"FS-{activation}-K{K}"


def check_args(args):
    if args.batch_size is not None:
        raise UserError("--batch_size does not apply to --model_type=FS: each Adam step uses the whole grid "
                        "(full-batch, as the TBPI reference)")
    if args.start_from and args.init != "best":
        raise UserError("--start_from works with --init=best only")
    if args.start_from and args.load:
        raise UserError("give --start_from (a results JSON to polish) or --load (a parameter set), not both")
    if args.epochs == 0 and args.table:
        raise UserError("--table needs fits: --epochs must be >= 1")
    if args.save_preset:  # checked before fitting, not after it
        prepare_dir(preset_dir(args), "--preset_dir")


def run(args):
    from tfspike.utils.xla import prefer_wide_vectors

    check_args(args)
    prefer_wide_vectors()  # before the first XLA compile: the fit loop is 1.4x faster on AVX-512
    if args.table:
        return run_table(args)
    context = RunContext(args, record_name(args.activation, args.K))
    record = evaluate_only(args, args.K, context) if args.epochs == 0 else fit_one(args, args.K, context.log)
    write_outputs(args, args.K, record, context.path, context.record_path, context.log)
    if args.energy:
        from tfspike.energy.neuron import count_fs_neuron
        from tfspike.fs.param_set import FSParams

        fp = record["final_params"]
        report = count_fs_neuron(FSParams(fp["h"], fp["d"], fp["T"]), tuple(record["config"]["grid"]),
                                 name=f"{args.activation}_k{args.K}")
        context.report_energy(report)
    record.update(context.results)
    return context.finish(record)


def _load_params(args, K):
    from tfspike.fs.params import get_params

    params = get_params(args.load, preset_dirs=(preset_dir(args),))
    if params.K != K:
        raise UserError(f"--load {args.load} has K = {params.K}, not --K={K}")
    return params


def evaluate_only(args, K, context):
    """``--epochs=0``: the grid MSE of a parameter set (``--load`` or the published trend lines)."""
    from tfspike.fs.fit import resolve_init
    from tfspike.fs.targets import canonical, default_grid, grid_mse

    target = canonical(args.activation)
    grid = tuple(args.grid) if args.grid is not None else default_grid(target)
    if args.load:
        params = _load_params(args, K)
    elif args.init in ("published", "tbpi"):
        params = resolve_init("tbpi", K, args.seed)  # the published TBPI trend lines
    else:
        raise UserError("--epochs=0 evaluates a parameter set: give --load FILE|NAME or --init=published")
    mse = grid_mse(params, target, grid)
    context.log.info(f"FS {params.name}: K={K}, grid MSE on linspace{grid} = {mse:.7f} (x100: {100 * mse:.4f})")
    fp = {"h": params.h.tolist(), "d": params.d.tolist(), "T": params.T.tolist()}
    return {"config": {"target": target, "K": K, "grid": list(grid), "init": params.name, "steps": 0,
                       "lr": args.learning_rate},
            "stages": {}, "init_mse": mse, "final_mse": mse, "best_mse": mse, "final_params": fp,
            "loaded": args.load}


def fit_one(args, K, log):
    """One FS fit of ``--init`` (or from ``--load`` / ``--start_from``); returns its JSON-able record."""
    from tfspike.fs import pipeline
    from tfspike.fs.fit import fit_fs
    from tfspike.fs.targets import default_grid
    from tfspike.utils.files import read_json

    timer = Timer()
    log.info(f"FS fit: activation={args.activation} K={K} init={args.init} steps={args.epochs} "
             f"lr={args.learning_rate} seed={args.seed}")
    if args.start_from:
        record = read_json(args.start_from, "FS results", "give the results JSON of an FS run")
        if not isinstance(record, dict) or "stages" not in record:
            raise UserError(f"{args.start_from} is not the results JSON of an FS run (it has no 'stages')")
        if record.get("config", {}).get("K") != K:
            raise UserError(f"{args.start_from} is for K={record.get('config', {}).get('K')}, not K={K}")
        record = pipeline.polish_record(record, args.polish_steps, args.learning_rate, args.seed, log=log.info,
                                        search_iters=args.search_iters, jit_compile=args.jit_compile)
    elif args.load:
        params = _load_params(args, K)
        res = fit_fs(args.activation, K, init=params, grid=args.grid or default_grid(args.activation), steps=args.epochs,
                     lr=args.learning_rate, seed=args.seed, mode=args.mode, verbose=args.verbose >= 1,
                     jit_compile=args.jit_compile)
        best = res.params("best")
        record = {"config": dict(res.config, init=params.name), "stages": {},
                  "init_mse": res.init_loss, "final_mse": res.reported_loss, "best_mse": res.best_loss,
                  "final_params": {"h": list(map(float, res.h)), "d": list(map(float, res.d)),
                                   "T": list(map(float, res.T))},
                  "best_params": {"h": best.h.tolist(), "d": best.d.tolist(), "T": best.T.tolist()},
                  "loaded": args.load}
    else:
        record = pipeline.run(args.activation, K, init=args.init, seed=args.seed, steps=args.epochs,
                              lr=args.learning_rate, select=args.select, per_parameter=args.per_parameter,
                              include_dead_h=args.include_dead_h, sigma=args.sigma, grid=args.grid,
                              baselines=tuple(b for b in args.baselines if b != args.init), mode=args.mode,
                              polish_steps=args.polish_steps, search_iters=args.search_iters,
                              verbose=args.verbose >= 1, log=log.info, jit_compile=args.jit_compile)
    record["seed"] = args.seed
    record["command"] = args.command
    record["seconds"] = timer()
    return record


def write_outputs(args, K, record, artifact, record_file, log):
    """The parameter set (``--save``, an artifact other runs load), presets (``--save_preset``) and plots
    (``--plots``, part of the run's record) of one fit. ``artifact(suffix)`` / ``record_file(suffix)`` give
    the paths."""
    from tfspike.fs import plots
    from tfspike.fs.param_set import FSParams
    from tfspike.fs.targets import grid_mse

    fp = record["final_params"]
    target, grid = record["config"]["target"], tuple(record["config"]["grid"])
    tag = record["config"].get("init", args.init) if args.load else args.init
    params = FSParams(fp["h"], fp["d"], fp["T"], name=f"{args.activation}_k{K}_{args.init}",
                      meta={"target": target, "init": tag, "seed": args.seed, "config": record["config"],
                            "init_mse": record["init_mse"], "final_mse": record["final_mse"],
                            "best_mse": record["best_mse"],
                            "grid_mse": grid_mse(FSParams(fp["h"], fp["d"], fp["T"]), target, grid),
                            "command": record["command"] if "command" in record else args.command,
                            "versions": record.get("versions")})
    if args.save:
        log.info(f"parameter set: {params.save(artifact(f'_{args.init}_params.json'))}")
    if args.save_preset:
        _save_presets(args, K, record, params, log)
    if args.plots:
        plots.plot_fit(params, target, grid, record_file(f"_{args.init}_fit.png"))
        if record["stages"]:
            plots.plot_losses(record, record_file(f"_{args.init}_losses.png"))
        if "trend" in record:
            plots.plot_trends(record, record_file("_trends.png"))
    log.info(f"init_mse {record['init_mse']:.7f}  final_mse {record['final_mse']:.7f}  "
             f"best_mse {record['best_mse']:.7f}  (x100: {100 * record['final_mse']:.4f})")


def preset_dir(args):
    """Where ``--save_preset`` writes and ``--load NAME`` also looks: ``--preset_dir`` or
    ``<logging_dir>/presets``."""
    return args.preset_dir or os.path.join(args.logging_dir, "presets")


def _save_presets(args, K, record, params, log):
    from tfspike.fs.param_set import FSParams
    from tfspike.fs.params import save_preset

    folder = preset_dir(args)
    log.info(f"preset written: {save_preset(params, folder)}")
    for stage in ("random", "gaussian", "tbpi"):
        st = record["stages"].get(stage)
        if st is not None and stage != args.init:
            p = st["params_after"]
            extra = FSParams(p["h"], p["d"], p["T"], name=f"{args.activation}_k{K}_{stage}",
                             meta={"target": record["config"]["target"], "init": stage, "seed": args.seed,
                                   "config": record["config"], "init_mse": st["init_loss"],
                                   "final_mse": st["reported_loss"], "best_mse": st["best_loss"],
                                   "command": record["command"]})
            log.info(f"preset written: {save_preset(extra, folder)}")


def table_rows(records):
    """Rows of the TBPI-style table (MSE x 100) from per-K result records."""
    rows = []
    names = [("random", "FS-Swish (random init, stage 1)"), ("gaussian", "+ Gaussian"), ("tbpi", "TBPI (own stage 1)"),
             ("published", "TBPI, published trend init (deterministic)"), ("best", "tfspike best mode")]
    Ks = sorted(records)
    for key, label in names:
        cells = []
        for K in Ks:
            st = records[K]["stages"].get(key)
            if st is None:
                cells.append("—")
            elif key == "best":
                cells.append(f"{100 * st['final_mse']:.4f}")
            else:
                cells.append(f"{100 * st['reported_loss']:.4f} (best {100 * st['best_loss']:.4f})")
        rows.append((label, cells))
    for key, label in (("random", "paper: FS-Swish"), ("gaussian", "paper: + Gaussian"), ("tbpi", "paper: TBPI")):
        rows.append((label, [f"{PAPER_TABLE[key].get(K, float('nan')):.4f}" for K in Ks]))
    return Ks, rows


def run_table(args):
    """The TBPI-style table for ``--table_Ks``: reuses per-K results of the same step count (this run's,
    when it continues an interrupted one, or the newest ``FS-<activation>-K<K>`` run's), fits the rest.
    Each K fitted here is recorded in the table run's folder."""
    from tfspike.cli.common import latest_record_file, set_seed
    from tfspike.utils.files import read_json
    from tfspike.utils.io import write_json_atomic, write_text_atomic

    context = RunContext(args, f"FS-{args.activation}-table")
    log = context.log
    records = {}
    for K in args.table_Ks:
        name = record_name(args.activation, K)
        path = os.path.join(context.run_dir, f"{name}_results.json")
        for candidate in (path, latest_record_file(context.dir, name)):
            if candidate is None or not os.path.exists(candidate):
                continue
            rec = read_json(candidate, "FS results", "delete it to fit this K again")
            if rec.get("config", {}).get("steps") == args.epochs:
                log.info(f"K={K}: reusing {candidate}")
                records[K] = rec
                break
        if K in records:
            continue
        log.info(f"K={K}: running init=best with baselines random,gaussian,tbpi")
        set_seed(args.seed)
        args.init, args.baselines = "best", ["random", "gaussian", "tbpi"]
        rec = fit_one(args, K, log)
        write_outputs(args, K, rec, lambda suffix: os.path.join(context.dir, f"{name}{suffix}"),
                      lambda suffix: os.path.join(context.run_dir, f"{name}{suffix}"), log)
        write_json_atomic(path, rec)
        records[K] = rec
    Ks, rows = table_rows(records)
    lines = ["| MSE x 100 | " + " | ".join(f"K={K}" for K in Ks) + " |",
             "|---|" + "---|" * len(Ks)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    text = "\n".join(lines)
    log.info(text)
    write_text_atomic(context.record_path(".md"), text + "\n")
    context.results.update({"Ks": Ks, "rows": [{"label": l, "cells": c} for l, c in rows]})
    return context.finish()
