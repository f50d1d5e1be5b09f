"""``main.py --model_type=FS``: fit Few-Spike neurons to an activation (TBPI stages, baselines,
the "best" mode) and print the TBPI-style table.

    python main.py --model_type=FS --activation=swish --K=8 --init=tbpi
    python main.py --model_type=FS --activation=swish --K=16 --init=best --baselines=random,gaussian,tbpi
    python main.py --model_type=FS --table=True --table_Ks=4,8,12,16
"""

import os

from tfspike.cli.common import positive_float, positive_int, nonneg_int, str2bool
from tfspike.errors import UserError

MODEL_TYPES = ("FS",)
# Copies of tfspike.fs.tbpi.INITS and tfspike.fs.targets.TARGETS (importing tfspike.fs loads TensorFlow,
# which flag parsing must not; tests/test_fs_fit.py asserts they are equal).
INITS = ("random", "gaussian", "tbpi", "published", "best")
ACTIVATIONS = ("swish", "silu", "sigmoid", "gelu", "tanh", "softplus", "mish", "relu")

# TBPI README table "FS neuron (Swish approximation)", MSE x 100 on linspace(-8, 12, 1e5).
PAPER_TABLE = {
    "random": {4: 3.8797, 8: 0.9776, 12: 0.1521, 16: 0.1425},
    "gaussian": {4: 3.8796, 8: 0.8968, 12: 0.1517, 16: 0.1249},
    "tbpi": {4: 3.8795, 8: 0.6295, 12: 0.1413, 16: 0.1246},
}


def _csv_list(kind, allowed=None):
    def parse(s):
        items = [v.strip() for v in str(s).split(",") if v.strip()]
        try:
            items = [kind(v) for v in items]
        except ValueError:
            raise __import__("argparse").ArgumentTypeError(f"expected a comma-separated list, got {s!r}") from None
        if allowed is not None:
            bad = [v for v in items if v not in allowed]
            if bad:
                raise __import__("argparse").ArgumentTypeError(f"{bad} not in {', '.join(allowed)}")
        return items
    return parse


def _grid(s):
    try:
        lo, hi, n = s.split(",")
        lo, hi, n = float(lo), float(hi), int(n)
    except ValueError:
        raise __import__("argparse").ArgumentTypeError(f"expected LO,HI,N (e.g. -8,12,100000), got {s!r}") from None
    if not hi > lo or n < 2:
        raise __import__("argparse").ArgumentTypeError(f"expected LO < HI and N >= 2, got {s!r}")
    return (lo, hi, n)


def add_arguments(parser):
    g = parser.add_argument_group("Few-Spike fitting (FS)")
    g.add_argument("--activation", default="swish", choices=ACTIVATIONS, help="target activation")
    g.add_argument("--K", type=positive_int, default=8, help="FS time steps")
    g.add_argument("--init", default="tbpi", choices=INITS,
                   help="random | gaussian | tbpi (three stages) | published (TBPI trend lines) | best")
    g.add_argument("--baselines", type=_csv_list(str, INITS), default=[],
                   help="extra stages in the same run, e.g. random,gaussian (share stage 1)")
    g.add_argument("--steps", type=positive_int, default=20000, help="Adam steps per stage")
    g.add_argument("--lr", "--learning_rate", dest="lr", type=positive_float, default=1e-3,
                   help="TorchAdam learning rate")
    g.add_argument("--grid", type=_grid, default=None,
                   help="fitting grid LO,HI,N (default -8,12,100000; sigmoid/tanh -10,10,100000)")
    g.add_argument("--select", default="init_mse", choices=("init_mse", "rss", "aicc"), help="trend form rule")
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
    g.add_argument("--plots", type=str2bool, default=True, help="write PNG plots next to the results")
    g.add_argument("--save_preset", type=str2bool, default=False,
                   help="also save the result as tfspike/fs/presets/<activation>_k<K>_<init>.json")
    g.add_argument("--verbose", type=str2bool, default=False, help="print the loss every 1000 steps")
    g.add_argument("--table", type=str2bool, default=False,
                   help="print the TBPI-style table (MSE x100) for --table_Ks, running missing K")
    g.add_argument("--table_Ks", type=_csv_list(int), default=[4, 8, 12, 16], help="K values of the table")


def results_path(logging_dir, activation, K):
    return os.path.join(logging_dir, f"FS-{activation}-K{K}_results.json")


def run(args):
    from tfspike.cli.common import Timer, set_seed, setup_logging
    from tfspike.utils.xla import prefer_wide_vectors

    prefer_wide_vectors()  # before the first XLA compile: the fit loop is 1.4x faster on AVX-512

    if args.table:
        return run_table(args)
    prefix = f"FS-{args.activation}-K{args.K}"
    log = setup_logging(args.logging_dir, prefix)
    set_seed(args.seed)
    return run_one(args, args.K, log, prefix, Timer)


def run_one(args, K, log, prefix, Timer):
    from tfspike.fs import tbpi
    from tfspike.fs.params import PRESET_DIR, FSParams
    from tfspike.utils.io import write_json_atomic

    timer = Timer()
    log.info(f"FS fit: activation={args.activation} K={K} init={args.init} steps={args.steps} lr={args.lr} "
             f"seed={args.seed}")
    if getattr(args, "start_from", None):
        import json

        if args.init != "best":
            raise UserError("--start_from works with --init=best only")
        from tfspike.cli.common import require_file

        with open(require_file(args.start_from, "results file")) as f:
            try:
                record = json.load(f)
            except json.JSONDecodeError as e:
                raise UserError(f"{args.start_from} is not a results JSON: {e}") from None
        if record.get("config", {}).get("K") != K:
            raise UserError(f"{args.start_from} is for K={record.get('config', {}).get('K')}, not K={K}")
        record = tbpi.polish_record(record, args.polish_steps, args.lr, args.seed, log=log.info,
                                    search_iters=args.search_iters)
    else:
        record = tbpi.run(args.activation, K, init=args.init, seed=args.seed, steps=args.steps, lr=args.lr,
                          select=args.select, per_parameter=args.per_parameter,
                          include_dead_h=args.include_dead_h, sigma=args.sigma, grid=args.grid,
                          baselines=tuple(b for b in args.baselines if b != args.init), mode=args.mode,
                          polish_steps=args.polish_steps, search_iters=args.search_iters,
                          verbose=args.verbose, log=log.info)
    record["seed"] = args.seed
    record["command"] = "python main.py " + " ".join(__import__("sys").argv[1:])
    record["seconds"] = timer()
    out = results_path(args.logging_dir, args.activation, K)
    write_json_atomic(out, record)
    fp = record["final_params"]
    params = FSParams(fp["h"], fp["d"], fp["T"], name=f"{args.activation}_k{K}_{args.init}",
                      meta={"target": record["config"]["target"], "init": args.init, "seed": args.seed,
                            "config": record["config"], "init_mse": record["init_mse"],
                            "final_mse": record["final_mse"], "best_mse": record["best_mse"],
                            "grid_mse": tbpi.grid_mse(FSParams(fp["h"], fp["d"], fp["T"]),
                                                      record["config"]["target"], tuple(record["config"]["grid"])),
                            "command": record["command"], "versions": record["versions"]})
    params.save(os.path.join(args.logging_dir, f"{prefix}_{args.init}_params.json"))
    if args.save_preset:
        path = params.save(os.path.join(PRESET_DIR, f"{args.activation}_k{K}_{args.init}.json"))
        log.info(f"preset written: {path}")
        for stage in ("random", "gaussian", "tbpi"):
            st = record["stages"].get(stage)
            if st is not None and stage != args.init:
                p = st["params_after"]
                extra = FSParams(p["h"], p["d"], p["T"], name=f"{args.activation}_k{K}_{stage}",
                                 meta={"target": record["config"]["target"], "init": stage, "seed": args.seed,
                                       "config": record["config"], "init_mse": st["init_loss"],
                                       "final_mse": st["reported_loss"], "best_mse": st["best_loss"],
                                       "command": record["command"]})
                log.info(f"preset written: {extra.save(os.path.join(PRESET_DIR, extra.name + '.json'))}")
    if args.plots:
        target, grid = record["config"]["target"], tuple(record["config"]["grid"])
        tbpi.plot_fit(params, target, grid, os.path.join(args.logging_dir, f"{prefix}_{args.init}_fit.png"))
        tbpi.plot_losses(record, os.path.join(args.logging_dir, f"{prefix}_{args.init}_losses.png"))
        if "trend" in record:
            tbpi.plot_trends(record, os.path.join(args.logging_dir, f"{prefix}_trends.png"))
    log.info(f"init_mse {record['init_mse']:.7f}  final_mse {record['final_mse']:.7f}  "
             f"best_mse {record['best_mse']:.7f}  (x100: {100 * record['final_mse']:.4f})")
    log.info(f"results: {out}  ({record['seconds']:.1f} s)")
    return 0


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
    import json

    from tfspike.cli.common import Timer, set_seed, setup_logging
    from tfspike.utils.io import write_json_atomic

    log = setup_logging(args.logging_dir, f"FS-{args.activation}-table")
    records = {}
    for K in args.table_Ks:
        path = results_path(args.logging_dir, args.activation, K)
        if os.path.exists(path):
            with open(path) as f:
                rec = json.load(f)
            if rec.get("config", {}).get("steps") == args.steps:
                log.info(f"K={K}: reusing {path}")
                records[K] = rec
                continue
        log.info(f"K={K}: running init=best with baselines random,gaussian,tbpi")
        set_seed(args.seed)
        args.init, args.baselines = "best", ["random", "gaussian", "tbpi"]
        run_one(args, K, log, f"FS-{args.activation}-K{K}", Timer)
        with open(path) as f:
            records[K] = json.load(f)
    Ks, rows = table_rows(records)
    lines = ["| MSE x 100 | " + " | ".join(f"K={K}" for K in Ks) + " |",
             "|---|" + "---|" * len(Ks)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    text = "\n".join(lines)
    log.info(text)
    with open(os.path.join(args.logging_dir, f"FS-{args.activation}-table.md"), "w") as f:
        f.write(text + "\n")
    write_json_atomic(os.path.join(args.logging_dir, f"FS-{args.activation}-table.json"),
                      {"Ks": Ks, "rows": [{"label": l, "cells": c} for l, c in rows]})
    return 0
