"""``main.py --model_type=FS``: fit Few-Spike neurons to an activation (TBPI stages, baselines,
the "best" mode) and print the TBPI-style table; or, with ``--network cnn``, train the swish CNN of
MNIST / Fashion-MNIST, convert it to FS neurons and evaluate it (spikes, energy).

    python main.py --model_type=FS --activation=swish --K=8 --init=tbpi
    python main.py --model_type=FS --activation=swish --K=16 --init=best --baselines=random,gaussian,tbpi
    python main.py --model_type=FS --table=True --table_Ks=4,8,12,16
    python main.py --model_type=FS --network cnn --data_name MNIST --fs_params best --ann_epochs 2 --epochs 0
    python main.py --model_type=FS --network cnn --load logs/FS-cnn-MNIST-swish_k16_best_fs.keras --epochs=0
"""

import argparse
import os

from tfspike.cli.common import (RunContext, Timer, csv_list, loaded_message, nonneg_int, positive_float, positive_int,
                                prepare_dir, str2bool, strategy_record)
from tfspike.ddim.choices import fs_params_name
from tfspike.errors import UserError
from tfspike.fs.pipeline import INITS, PAPER_TABLE  # these modules load no TensorFlow at import
from tfspike.fs.targets import TARGETS
from tfspike.fs.trends import SELECT_RULES

MODEL_TYPES = ("FS",)
DISTRIBUTE = ("mirrored", "multi_worker")  # network mode only (--network cnn); tfspike.cli.common.check_distribute


class FitSteps(int):
    """The neuron-fitting default of ``--epochs`` (full-batch Adam steps). A value given on the command
    line is a plain ``int``, so ``--network cnn`` can tell this default from an explicit ``--epochs``
    and use its own (0: no fine-tuning)."""


# An FS fit is full-batch Adam on the whole grid, so one step is one epoch (one pass over the data).
DEFAULTS = {"learning_rate": 1e-3, "epochs": FitSteps(20000)}
NETWORKS = ("none", "cnn")
NETWORK_DATA = {"MNIST": (28, 28, 1), "FMNIST": (28, 28, 1)}  # --data_name → image shape
NUM_CLASSES = 10
# --network cnn defaults: the recipe of examples/fs_mnist_cnn.py; "best" converts best (98.59 % on MNIST)
NETWORK_DEFAULTS = {"fs_params": "best", "ann_epochs": 2, "epochs": 0, "batch_size": 128}


class _ModeFlag(argparse.Action):
    """Stores the value and notes the flag as typed in ``namespace.<mode>_flags``, so that a flag of the
    other mode (neuron fitting or ``--network``) is refused instead of silently ignored."""

    mode = None

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        given = list(getattr(namespace, f"{self.mode}_flags", []))
        if option_string not in given:
            given.append(option_string)
        setattr(namespace, f"{self.mode}_flags", given)


class _FittingFlag(_ModeFlag):
    mode = "fitting"


class _NetworkFlag(_ModeFlag):
    mode = "network"


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
    g = parser.add_argument_group("Few-Spike neuron fitting (FS, --network none)")

    def fit(*flags, **kwargs):  # a flag of neuron fitting only
        return g.add_argument(*flags, action=_FittingFlag, **kwargs)

    fit("--activation", default="swish", choices=TARGETS, help="target activation")
    fit("--K", type=positive_int, default=8, help="FS time steps")
    fit("--init", default="tbpi", choices=INITS,
        help="random | gaussian | tbpi (three stages) | published (TBPI trend lines) | best")
    fit("--baselines", type=csv_list(str, INITS), default=[],
        help="extra stages in the same run, e.g. random,gaussian (share stage 1)")
    fit("--steps", dest="epochs", type=nonneg_int, default=argparse.SUPPRESS,
        help="the same as --epochs: full-batch Adam steps per stage (each step is one pass over the grid)")
    fit("--grid", type=_grid, default=None,
        help="fitting grid LO,HI,N (default -8,12,100000; sigmoid/tanh -10,10,100000)")
    fit("--select", default="init_mse", choices=SELECT_RULES, help="trend form rule")
    fit("--per_parameter", type=str2bool, default=False, help="choose the trend form per parameter")
    fit("--include_dead_h", type=str2bool, default=True, help="fit the dead h[K-1] in the h trend")
    fit("--sigma", type=positive_float, default=0.1, help="noise of the gaussian baseline")
    fit("--polish_steps", type=nonneg_int, default=0,
        help="cosine-annealed Adam polish steps of --init=best (measured not to help; default 0)")
    fit("--search_iters", type=nonneg_int, default=1000,
        help="exact-loss pattern-search iterations of --init=best")
    fit("--start_from", default=None,
        help="with --init=best: polish the best stage of an existing results JSON instead of refitting")
    fit("--mode", default="loop", choices=("loop", "step"),
        help="compiled while-loop chunks (fast) or a compiled step called from Python")
    fit("--save_preset", type=str2bool, default=False,
        help="also save the result as a named preset <activation>_k<K>_<init>.json in --preset_dir")
    g.add_argument("--preset_dir", default=None,
                   help="folder of --save_preset and of --load NAME / --fs_params NAME lookups (default "
                        "<logging_dir>/presets); FewSpike(params=NAME) and DDIM --fs_params=NAME find presets in "
                        "the folders of $TFSPIKE_FS_PRESETS")
    fit("--table", type=str2bool, default=False,
        help="print the TBPI-style table (MSE x100) for --table_Ks, running missing K")
    fit("--table_Ks", type=csv_list(int), default=[4, 8, 12, 16], help="K values of the table")
    add_network_arguments(parser)


def add_network_arguments(parser):
    """The flags of ``--network cnn`` (refused in neuron fitting, as the fitting flags are here)."""
    g = parser.add_argument_group(
        "Few-Spike networks (FS --network cnn)",
        "Trains the swish CNN Conv32-pool-Conv64-pool-Dense128-Dense10 on --data_name for --ann_epochs, replaces "
        "its three swish sites by FS neurons of --fs_params (no retraining), fine-tunes the FS network for --epochs "
        "(default 0 here) through its surrogate gradients, and evaluates test accuracy and spikes per neuron "
        "(--energy: the operation counts of the same pass). --load FILE.keras (True: this run's own "
        "<record>_fs.keras) evaluates (--epochs=0) or fine-tunes a saved FS network. --save writes "
        "<record>_fs.keras and <record>_ann.keras of what this run trained; --batch_size defaults to 128, "
        "--learning_rate is the Adam rate of both trainings.")

    def net(*flags, **kwargs):  # a flag of --network only
        return g.add_argument(*flags, action=_NetworkFlag, **kwargs)

    g.add_argument("--network", default="none", choices=NETWORKS,
                   help="none: fit FS neurons (the flags above); cnn: the FS-swish CNN")
    net("--data_name", default="MNIST", choices=tuple(NETWORK_DATA), help="images from --data_dir")
    net("--fs_params", default=None,
        help="FS-Swish parameter set: published (Stöckl K=16) | random | gaussian | tbpi | best, a .json set file, "
             "or a preset name (default: best = swish_k16_best, 98.59 %% on MNIST; with --load: the file's set)")
    net("--ann_epochs", type=positive_int, default=None,
        help="epochs of the swish ANN before conversion (default 2; not with --load)")


def record_name(activation, K):
    """The run-record name of one FS fit: ``FS-<activation>-K<K>``."""
    return f"FS-{activation}-K{K}"


def check_args(args):
    if args.network != "none":
        return check_network_args(args)
    given = getattr(args, "network_flags", [])
    if given:
        raise UserError(f"{given[0]} is a flag of --network cnn, not of FS neuron fitting (--network none)")
    if getattr(args, "export", None):
        raise UserError("--export writes a SavedModel of a network; FS neuron fitting has none (give --network cnn)")
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
    if args.network != "none":
        return run_network(args)
    if (getattr(args, "distribute", "none") or "none") != "none" or getattr(args, "cpu_devices", None):
        raise UserError("--distribute/--cpu_devices train FS networks (--network cnn); a single FS neuron "
                        "fit runs on one device")
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


# -- --network cnn ------------------------------------------------------------------------------------

def network_record_name(network, data_name, set_name):
    """The run-record name of one FS network run: ``FS-<network>-<DATA>-<FS set>``."""
    return f"FS-{network}-{data_name}-{set_name}"


def _fs_set(args, choice):
    """The FSParams of a ``--fs_params`` choice, set name, preset name or ``.json`` path."""
    from tfspike.fs.params import get_params

    return get_params(fs_params_name(choice), preset_dirs=(preset_dir(args),))


def check_network_args(args):
    """Flags of ``--network``: no neuron-fitting flag, the mode's defaults, the FS set resolved (no
    TensorFlow needed, so a bad flag fails at once)."""
    given = getattr(args, "fitting_flags", [])
    if given:
        extra = "; the fine-tuning epochs of the FS network are --epochs" if given[0] == "--steps" else ""
        raise UserError(f"{given[0]} is a flag of FS neuron fitting (--network none), not of --network "
                        f"{args.network}{extra}")
    if args.load and args.ann_epochs is not None:
        raise UserError("--ann_epochs trains a new ANN; with --load the FS network comes from the file "
                        "(fine-tune it with --epochs)")
    if isinstance(args.epochs, FitSteps):  # not given: the network mode's own default
        args.epochs = NETWORK_DEFAULTS["epochs"]
    if args.batch_size is None:
        args.batch_size = NETWORK_DEFAULTS["batch_size"]
    if args.ann_epochs is None and not args.load:
        args.ann_epochs = NETWORK_DEFAULTS["ann_epochs"]
    # with --load the file's set is used; a --fs_params given as well must name the same set
    args.fs_set = _fs_set(args, args.fs_params or NETWORK_DEFAULTS["fs_params"]) if (
        args.fs_params or not args.load or args.load is True) else None


def _load_network(args, data_shape, num_classes):
    """``(model, path, FS set name)`` of ``--load`` (True: this run's own ``<record>_fs.keras``)."""
    import numpy as np

    from tfspike.fs.networks import load_fs_network

    if args.load is True:
        path = os.path.join(args.logging_dir, f"{network_record_name(args.network, args.data_name, args.fs_set.name)}"
                                              f"_fs.keras")
    else:  # as given, else inside --logging_dir (as the TTFS family resolves --load)
        inside = os.path.join(args.logging_dir, args.load)
        path = args.load if os.path.exists(args.load) or not os.path.exists(inside) else inside
    hint = (f"give an FS network file written by main.py --model_type=FS --network {args.network} --save=True "
            f"(<record>_fs.keras)")
    model, sites = load_fs_network(path, data_shape, num_classes, hint=hint)
    names = sorted({layer.params_name for _, layer, _ in sites})
    if args.fs_params:
        want = args.fs_set
        for site, layer, _ in sites:
            h, d, T = layer.current_params()
            if not (np.array_equal(h, want.h) and np.array_equal(d, want.d) and np.array_equal(T, want.T)):
                raise UserError(f"--load {path} uses the FS set {layer.params_name!r} at {site}, not --fs_params "
                                f"{args.fs_params} ({want.name}); drop --fs_params to use the file's set")
    return model, path, "+".join(names)


def run_network(args):
    """``--network cnn``: train (or ``--load``) the FS-swish CNN, fine-tune it ``--epochs``, evaluate it."""
    import keras

    from tfspike.data.images import load_image_dataset
    from tfspike.data.pipeline import make_dataset
    from tfspike.data.preprocess import ttfs_preprocess
    from tfspike.fs import networks
    from tfspike.utils.models import count_parameters

    from tfspike.distribute import fit, make_strategy

    kind = getattr(args, "distribute", "none") or "none"
    strategy = make_strategy(kind, getattr(args, "cpu_devices", None))  # before TensorFlow sets up its devices
    timer = Timer()
    (xtr, ytr), (xte, yte) = load_image_dataset(args.data_name, args.data_dir)
    xtr, xte = ttfs_preprocess(args.data_name, xtr), ttfs_preprocess(args.data_name, xte)  # x/255, channel axis
    data_seconds = timer()
    num_classes = NUM_CLASSES
    fs_model = ann = None
    if args.load:
        load_started = Timer()
        with strategy.scope():  # variables (weights, optimizer, metrics) become the strategy's
            fs_model, load_path, set_name = _load_network(args, xte.shape[1:], num_classes)
        load_seconds = load_started()
    else:
        set_name = args.fs_set.name
    context = RunContext(args, network_record_name(args.network, args.data_name, set_name), strategy)
    log, results = context.log, context.results
    results.update({"network": args.network, "data_name": args.data_name, "activation": "swish",
                    "fs_params": set_name, "fs_params_flag": args.fs_params, "loaded": None,
                    "ann_epochs": args.ann_epochs, "epochs": args.epochs, "batch_size": args.batch_size,
                    "learning_rate": args.learning_rate, "ann_test_accuracy": None, "ann_test_loss": None})
    log.info(f"data {args.data_name}: train {xtr.shape}, test {xte.shape} ({data_seconds:.1f} s)")
    if kind != "none":
        results["distribute"] = strategy_record(log, strategy, kind, args.batch_size)

    def train_set():
        return make_dataset(xtr, ytr, args.batch_size, shuffle=True, seed=args.seed)

    train_seconds = {"ann": 0.0, "fs": 0.0}
    if fs_model is not None:
        results["loaded"] = load_path
        log.info(loaded_message(args, load_path, f"the FS network (FS set {set_name})",
                                seconds=load_seconds))
    else:
        with strategy.scope():
            ann = networks.compile_classifier(networks.build_cnn("swish", xtr.shape[1:], num_classes),
                                              args.learning_rate, jit_compile=args.jit_compile)
        log.info(f"ANN: swish CNN, {count_parameters(ann)[0]:,} parameters, {args.ann_epochs} epoch(s), "
                 f"batch {args.batch_size}, Adam {args.learning_rate}, seed {args.seed}")
        t = Timer()
        hist = fit(ann, train_set(), epochs=args.ann_epochs, verbose=args.verbose, shuffle=False,  # reshuffled
                   callbacks=[keras.callbacks.TerminateOnNaN()])
        train_seconds["ann"] = t()
        results["ann_history"] = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        ann_stats = networks.evaluate_ann(ann, xte, yte)
        results.update(ann_test_accuracy=ann_stats["accuracy"], ann_test_loss=ann_stats["loss"])
        log.info(f"ANN: trained in {train_seconds['ann']:.1f} s; test accuracy {100 * ann_stats['accuracy']:.2f} %, "
                 f"loss {ann_stats['loss']:.4f}")
        with strategy.scope():
            fs_model, report = networks.fs_network(ann, args.fs_set)
        log.info(f"converted {report['n_sites']} swish sites to FS neurons of {set_name} "
                 f"(K={args.fs_set.K}): {report['n_fs_neurons']:,} FS neurons per image")
    results["params"] = count_parameters(fs_model)[0]
    results["resumed_from"] = None
    results["history"] = None
    results["epochs_run"] = 0
    if args.epochs > 0:
        with strategy.scope():
            _fine_tune(args, context, fs_model, train_set(), train_seconds)
    results["train_seconds"] = train_seconds["ann"] + train_seconds["fs"]
    results["ann_train_seconds"], results["fs_train_seconds"] = train_seconds["ann"], train_seconds["fs"]

    t = Timer()  # one pass: logits, spikes and (--energy) the operation counts
    stats = networks.evaluate_fs_network(fs_model, xte, yte, energy_profile=args.energy,
                                         jit_compile=args.jit_compile)
    results["eval_seconds"] = t()
    energy_report = stats.pop("energy_report", None)
    stats.pop("energy", None)  # the block comes from context.report_energy, as in every family
    results.update({"test_accuracy": stats["accuracy"], "test_loss": stats["loss"],
                    "spikes_per_neuron": stats["spikes_per_neuron"], "n_fs_neurons": stats["n_fs_neurons"],
                    "sites": stats["sites"], "test_samples": stats["n_samples"]})
    ann_part = "" if results["ann_test_accuracy"] is None else f" (ANN {100 * results['ann_test_accuracy']:.2f} %)"
    log.info(f"FS network ({set_name}): test accuracy {100 * stats['accuracy']:.2f} %{ann_part}, loss "
             f"{stats['loss']:.4f}; {stats['spikes_per_neuron']:.3f} spikes/neuron ("
             + ", ".join(f"{k} {v['spikes_per_neuron']:.3f}" for k, v in stats["sites"].items())
             + f") over {stats['n_fs_neurons']:,} FS neurons on {stats['n_samples']} test images "
               f"({results['eval_seconds']:.1f} s)")
    if energy_report is not None:
        context.report_energy(energy_report)
    if args.save and (ann is not None or args.epochs > 0):  # what this run trained; a loaded file is not copied
        from tfspike.utils.io import save_model_atomic

        save_model_atomic(fs_model, context.path("_fs.keras"))
        results["saved"] = {"fs": context.path("_fs.keras")}
        if ann is not None:
            save_model_atomic(ann, context.path("_ann.keras"))
            results["saved"]["ann"] = context.path("_ann.keras")
        log.info("saved " + " and ".join(results["saved"].values()))
    if args.export:
        context.export(fs_model, xte[:64])
    if args.plots:
        from tfspike.utils.plots import plot_history

        if results.get("ann_history"):
            path = plot_history(results["ann_history"], context.record_path("_ann_curves.png"),
                                title=f"{context.record} (ANN)")
            log.info(f"plot: {path}")
        if results["history"]:
            first = (results["resumed_from"] or 0) + 1  # a resumed run's history starts after the interruption
            path = plot_history(results["history"], context.record_path("_curves.png"), title=context.record,
                                epochs=range(first, first + results["epochs_run"]))
            log.info(f"plot: {path}")
    return context.finish()


def preset_model(args, compile=True):
    """The model of a ``--preset`` (``tfspike.zoo.load``): the FS network of its ``--load`` file, checked
    against ``--data_name``'s image shape and compiled as ``--network`` fine-tuning compiles it."""
    if args.network == "none":
        raise UserError("an FS preset is a network: its card must set network (e.g. cnn)")
    from tfspike.fs.networks import compile_classifier, load_fs_network

    model, _ = load_fs_network(args.load, NETWORK_DATA[args.data_name], NUM_CLASSES)
    return compile_classifier(model, args.learning_rate, jit_compile=args.jit_compile) if compile else model


def _fine_tune(args, context, fs_model, train, seconds):
    """``--epochs`` of the FS network through its surrogate gradients (NaN stop with the last good
    weights kept, resumable after an interruption)."""
    from tfspike.distribute import fit
    from tfspike.fs.networks import compile_classifier
    from tfspike.utils.callbacks import SafeCheckpoint, standard_callbacks

    results, log = context.results, context.log
    compile_classifier(fs_model, args.learning_rate, jit_compile=args.jit_compile)
    ckpt = SafeCheckpoint(weights_path=os.path.join(context.dir, "backup", f"{context.record}_last_good.weights.h5"))
    resumed = context.resumed_from(context.record) if args.resume else None
    if resumed:
        log.info(f"resumed from epoch {resumed} of {args.epochs} (backup of the interrupted run)")
    t = Timer()
    hist = fit(fs_model, train, epochs=args.epochs, verbose=args.verbose, shuffle=False,  # train is reshuffled
               callbacks=standard_callbacks(context.dir, context.record, ckpt, resume=args.resume))
    seconds["fs"] = t()
    results.update(resumed_from=resumed, epochs_run=len(hist.history.get("loss", [])),
                   history={k: [float(v) for v in vals] for k, vals in hist.history.items()})
    if ckpt.saw_nan:
        restored = ckpt.restore()
        log.warning("fine-tuning stopped on a NaN loss; " + (
            f"restored the last good weights (epoch {ckpt.saved_epoch + 1})" if restored and
            ckpt.saved_epoch is not None else "no good epoch was saved"))
        results["stopped_on_nan"] = True
    log.info(f"FS fine-tuning: {seconds['fs']:.1f} s for {results['epochs_run']} epoch(s), Adam {args.learning_rate}")
