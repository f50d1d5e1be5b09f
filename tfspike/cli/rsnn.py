"""``main.py --model_type=BRF|RF|ALIF``: resonate-and-fire RSNNs on S-MNIST, PS-MNIST, ECG-QTDB and SHD.

    python main.py --model_type=BRF --data_name=ECG --data_dir ../shared/data            # full recipe
    python main.py --model_type=BRF --data_name=ECG --epochs=30                         # 30 of 400 epochs
    python main.py --model_type=BRF --data_name=ECG --load ../shared/golden/brf/ecg_brf.npz --epochs=0
    python main.py --model_type=BRF --data_name=PSMNIST --load ps.npz --permutation perm.npy --epochs=0
    python main.py --model_type=BRF --data_name=ECG --load ../shared/golden/brf/pt/ecg_brf.pt --epochs=0  # torch file

Writes ``<logging_dir>/<DATA>-<model_type>_results.json`` (test loss, accuracy, SOP per sample, SOP per
step, firing rate of the best-validation weights), the best model (``_best.keras``), the history, the
TensorBoard logs and two PNGs (training curves, spike raster).
"""

import time

from tfspike.cli.common import (RunContext, loaded_message, nonneg_float, nonneg_int, positive_int, str2bool,
                                strategy_record)
from tfspike.errors import UserError
from tfspike.rsnn.neurons import add_neuron_arguments, neuron_names, neuron_overrides
from tfspike.rsnn.tasks import TASKS

MODEL_TYPES = neuron_names()
# --distribute strategies this family runs under (tfspike.cli.common.check_distribute)
DISTRIBUTE = ("mirrored", "multi_worker")
# None = the task's recipe (tfspike.rsnn presets); the best-validation model is saved by default.
DEFAULTS = {"save": True}


def add_arguments(parser):
    g = parser.add_argument_group("resonate-and-fire RSNN (BRF | RF | ALIF)")
    g.add_argument("--data_name", default="ECG", choices=TASKS, help="task")
    g.add_argument("--full_epochs", type=positive_int, default=None,
                   help="E of the linear LR decay lr0*(1-e/E) (default: the recipe's; keep it in short runs)")
    g.add_argument("--val_batch_size", type=positive_int, default=None)
    g.add_argument("--test_batch_size", type=positive_int, default=None)
    g.add_argument("--clipnorm", type=nonneg_float, default=None,
                   help="global gradient-norm clip, 0 = off (default: 1.0 for (P)S-MNIST, off otherwise)")
    g.add_argument("--hidden_units", type=positive_int, default=None, help="H (default: recipe)")
    g.add_argument("--sub_seq_length", type=nonneg_int, default=None, help="outputs dropped at the start")
    g.add_argument("--label_last", type=str2bool, default=None, help="loss on the last step only")
    g.add_argument("--use_bias", type=str2bool, default=None, help="bias in hidden and (ALIF) readout")
    add_neuron_arguments(g)  # each neuron's own flags, from its descriptor (tfspike.rsnn.neurons)
    g.add_argument("--tbptt", type=nonneg_int, default=None,
                   help="truncated BPTT: an update every N steps within each minibatch, 0 = full BPTT "
                        "(default: 50 for ALIF on (P)S-MNIST as the reference, else 0)")
    g.add_argument("--surrogate", default="custom_gradient", choices=("custom_gradient", "fgi"),
                   help="double-Gaussian surrogate form (identical gradients)")
    g.add_argument("--permutation", default=None,
                   help="PS-MNIST: the 784-step permutation, a .npy (as saved next to a model), .txt or the "
                        "reference's *_permuted_idx.pt")
    g.add_argument("--perm_seed", type=nonneg_int, default=0, help="PS-MNIST permutation seed")
    g.add_argument("--reference_binning", type=str2bool, default=True, help="SHD: Yin et al. binning quirks")
    g.add_argument("--max_batches", type=positive_int, default=None,
                   help="use at most this many batches per epoch and evaluation (smoke tests)")


def load_task(args):
    """``train, val, test`` as ``(x, y)`` numpy pairs plus extras (the PS-MNIST permutation)."""
    from tfspike.data.ecg import load_ecg, split_train_val

    extra = {}
    name = args.data_name
    if name == "ECG":
        (xtr, ytr), test = load_ecg(args.data_dir)
    elif name in ("SMNIST", "PSMNIST"):
        from tfspike.data.smnist import load_permutation, load_smnist

        perm = load_permutation(args.permutation) if args.permutation else None
        if perm is not None and name == "SMNIST":
            raise UserError("--permutation is for --data_name=PSMNIST")
        (xtr, ytr), test, perm = load_smnist(args.data_dir, permuted=name == "PSMNIST", perm_seed=args.perm_seed,
                                             permutation=perm)
        extra["permutation"] = perm
    else:
        from tfspike.data.shd import load_shd

        (xtr, ytr), test = load_shd(args.data_dir, reference_binning=args.reference_binning)
    tr, va = split_train_val(len(xtr), int(0.1 * len(xtr)), args.seed)
    return (xtr[tr], ytr[tr]), (xtr[va], ytr[va]), test, extra


def _overrides(args):
    o = {k: getattr(args, k) for k in ("hidden_units", "sub_seq_length", "label_last", "use_bias", "learning_rate",
                                       "batch_size", "val_batch_size", "test_batch_size", "tbptt")}
    o.update(neuron_overrides(args.model_type, args))
    if args.full_epochs is not None:
        o["epochs"] = args.full_epochs
    o = {k: v for k, v in o.items() if v is not None}
    if args.clipnorm is not None:  # after the filter: --clipnorm=0 (None = off) must replace the recipe's clip
        o["clipnorm"] = args.clipnorm or None
    return o


def load_model_file(path, neuron, task, overrides):
    """A model from ``.keras`` / ``.weights.h5`` / a reference checkpoint (PyTorch ``.pt``/``.pth``, read
    without PyTorch, or its ``.npz`` export)."""
    from tfspike.errors import WeightMismatchError
    from tfspike.rsnn.model import RSNN
    from tfspike.rsnn.presets import build_rsnn
    from tfspike.rsnn.reference_io import TORCH_SUFFIXES, import_reference
    from tfspike.utils.files import RERUN, check_file, load_keras_model, load_weights_file

    check_file(path, f"{neuron} model", RERUN)
    if path.endswith(".keras"):
        model = load_keras_model(path, f"{neuron} model", RERUN, expected=RSNN)
        if model.neuron != neuron:
            raise WeightMismatchError(f"{path} holds a model of {model.neuron} neurons, not --model_type={neuron}; "
                                      f"give --model_type={model.neuron} or another --load file")
        return model
    model = build_rsnn(neuron, task, **overrides)
    if path.endswith((".npz",) + TORCH_SUFFIXES):
        import_reference(model, path)
    elif path.endswith(".weights.h5"):
        load_weights_file(model, path, f"{neuron} {task} weight", RERUN)
    else:
        raise UserError(f"--load expects a .keras, .weights.h5 or reference .pt/.npz file, got {path}")
    return model


def preset_model(args, compile=True):
    """The model of a ``--preset`` (``tfspike.zoo.load``): the card's checkpoint (``.keras``, ``.weights.h5`` or a
    reference ``.pt``/``.npz``) in the network its flags describe, compiled as :func:`run` compiles it (the
    model's own loss and metrics)."""
    from tfspike.surrogates.double_gaussian import DoubleGaussian

    overrides = dict(_overrides(args), surrogate=DoubleGaussian(form=args.surrogate))
    model = load_model_file(args.load, args.model_type, args.data_name, overrides)
    if compile:
        model.compile(jit_compile=args.jit_compile)
    return model


def run(args):
    import numpy as np

    from tfspike.distribute import make_strategy
    from tfspike.rsnn.presets import build_rsnn, preset
    from tfspike.rsnn.train import evaluate, fit_recipe, save_best_model
    from tfspike.surrogates.double_gaussian import DoubleGaussian
    from tfspike.utils.io import atomic_path
    from tfspike.utils.models import count_parameters

    neuron, task = args.model_type, args.data_name
    kind = getattr(args, "distribute", "none") or "none"
    strategy = make_strategy(kind, getattr(args, "cpu_devices", None))  # before TensorFlow sets up its devices
    context = RunContext(args, f"{task}-{neuron}", strategy)
    logger, prefix = context.log, context.name
    overrides = _overrides(args)
    overrides["surrogate"] = DoubleGaussian(form=args.surrogate)
    p = preset(neuron, task, **overrides)
    if kind != "none":
        if p["clipnorm"]:  # Keras 3 clips each replica's gradient before the all-reduce: not the global norm
            raise UserError(f"--distribute={kind} needs --clipnorm=0 (the {task} recipe clips at {p['clipnorm']}; "
                            f"Keras 3 would clip each replica's share of the gradient, not the global one)")
        if args.jit_compile:  # tfspike.rsnn.model.RSNN._on_replica
            logger.info(f"--distribute={kind}: XLA compiles each replica's pass through time; the all-reduce "
                        f"and the optimizer update run outside XLA (README: Scale out)")
    epochs = p["epochs"] if args.epochs is None else args.epochs
    if epochs > p["epochs"]:
        raise UserError(f"--epochs={epochs} exceeds the schedule's E={p['epochs']}; raise --full_epochs too")
    load = context.path("_best.keras") if args.load is True else args.load  # True: this run's saved model
    with strategy.scope():  # the model's, optimizer's and metrics' variables become the strategy's
        if load:
            started = time.perf_counter()
            model = load_model_file(load, neuron, task, overrides)
            logger.info(loaded_message(args, load, started=started))
        else:
            model = build_rsnn(neuron, task, **overrides)
    if kind != "none":
        context.results["distribute"] = strategy_record(logger, strategy, kind, p["batch_size"])
    train, val, test, extra = load_task(args)
    if train[0].shape[1:] != (p["steps"], p["input_units"]):
        raise UserError(f"{task} data have shape {train[0].shape[1:]}, the network expects "
                        f"({p['steps']}, {p['input_units']})")
    n_params = count_parameters(model)[0]
    logger.info(f"{task} {neuron}: {p['input_units']}-{model.hidden_units}-{model.output_units}, T={p['steps']}, "
                f"{n_params} parameters; train/val/test {len(train[0])}/{len(val[0])}/{len(test[0])}; "
                f"seed {args.seed}; lr {p['learning_rate']}, batch {p['batch_size']}, E={p['epochs']}, "
                f"running {epochs} epochs, clip {p['clipnorm']}"
                + (f", TBPTT({p['tbptt']})" if p["tbptt"] else ", full BPTT"))
    if extra.get("permutation") is not None:
        with atomic_path(context.path("_permutation.npy"), ".npy") as tmp:
            np.save(tmp, extra["permutation"])
    resumed_from = context.resumed_from() if epochs > 0 else None
    if resumed_from:
        logger.info(f"resumed from epoch {resumed_from} of {epochs} (backup of the interrupted run)")
    energy = {}  # --energy: the test evaluation also counts operations, in the same pass

    def evaluate_counting(m, x, y):
        from tfspike.energy.rsnn import evaluate_and_count

        n = len(x) if args.max_batches is None else min(len(x), args.max_batches * p["test_batch_size"])
        stats, energy["report"] = evaluate_and_count(m, x[:n], y[:n], batch_size=p["test_batch_size"],
                                                     jit_compile=args.jit_compile)
        return stats

    final_evaluation = evaluate_counting if args.energy else None
    if epochs == 0:
        model.compile(jit_compile=args.jit_compile)
        stats = (final_evaluation(model, *test) if final_evaluation else
                 evaluate(model, *test, p["test_batch_size"], args.max_batches))
        info = {"best_epoch": None, "epochs_run": 0, "history": []}
    else:
        with strategy.scope():  # fit_recipe compiles: the optimizer is the strategy's too
            stats, info = fit_recipe(model, train, val, test, learning_rate=p["learning_rate"], total_epochs=p["epochs"],
                                     epochs=epochs, batch_size=p["batch_size"],
                                     val_batch_size=p["val_batch_size"], test_batch_size=p["test_batch_size"],
                                     clipnorm=p["clipnorm"], logging_dir=context.dir, prefix=prefix, seed=args.seed,
                                     jit_compile=args.jit_compile, max_batches=args.max_batches, logger=logger,
                                     verbose=args.verbose, final_evaluation=final_evaluation)
        if args.save:
            save_best_model(model, context.path("_best.keras"))
    context.results.update({
        "data_name": task, "params": n_params,
        "test_loss": stats["loss"], "test_accuracy": stats["accuracy"], "sop_per_sample": stats["sop"],
        "sop_per_step": stats["sop_per_step"], "firing_rate": stats["firing_rate"],
        "best_epoch": info.get("best_epoch"), "epochs_run": info.get("epochs_run"),
        "nan_stop": info.get("nan_stop", False), "loaded": load or None, "resumed_from": resumed_from,
        "epochs_this_run": sum(1 for row in info.get("history") or [] if row["epoch"] > (resumed_from or 0)),
        "recipe": {k: p[k] for k in ("learning_rate", "batch_size", "val_batch_size", "test_batch_size",
                                     "epochs", "clipnorm", "label_last", "sub_seq_length", "tbptt")},
        "epochs_requested": epochs, "perm_seed": args.perm_seed if task == "PSMNIST" else None,
        "permutation_file": args.permutation, "history": info.get("history")})
    logger.info(f"test loss {stats['loss']:.5f}  accuracy {100 * stats['accuracy']:.4f} %  "
                f"SOP/sample {stats['sop']:.1f}  SOP/step {stats['sop_per_step']:.3f}  "
                f"firing rate {stats['firing_rate']:.4f}  (best epoch {info.get('best_epoch')})")
    if args.energy:
        context.report_energy(energy["report"])
    if args.plots:
        _plots(model, test, info, context, jit_compile=args.jit_compile)
    if args.export:
        context.export(model, test[0][:16].astype("float32"))
    return context.finish()


def _plots(model, test, info, context, jit_compile=True):
    import tensorflow as tf

    from tfspike.rsnn.plots import plot_spike_raster
    from tfspike.utils.plots import plot_history

    # one compiled graph instead of an eager Python loop over the T steps
    logits, spikes = tf.function(model.forward, jit_compile=jit_compile)(test[0][:1].astype("float32"))
    labels = test[1][0] if model.per_step_labels else None
    plot_spike_raster(spikes.numpy()[0], context.record_path("_raster.png"),
                      title=f"{context.record} hidden layer, test sample 0", labels=labels, logits=logits.numpy()[0])
    if info.get("history"):
        rows = info["history"]  # the recipe's rows, epoch 0 = untrained
        keys = sorted({k for row in rows for k in row if k != "epoch"})
        plot_history({k: [row.get(k) for row in rows] for k in keys}, context.record_path("_curves.png"),
                     title=context.record, epochs=[row["epoch"] for row in rows], metrics=("loss", "accuracy"))
