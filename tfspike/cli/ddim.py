"""``main.py --model_type=DDIM``: train the keras-io DDIM with swish or FS-Swish block activations.

    python main.py --model_type=DDIM --activation=fs_swish --fs_params=tbpi --data_name=FMNIST \\
        --data_dir ../shared/data --epochs 3 --steps_per_epoch 100 --widths 16,32,48,64

Writes to ``--logging_dir``: ``DDIM-<activation>-<fs_params>-<DATA>_results.json`` (per-epoch lists
``noise_loss``, ``image_loss``, ``kid`` and more), ``..._best.weights.h5`` (best by KID, atomic),
``..._images/epoch_NNN.png`` (a grid of generated images per epoch), ``..._log.txt``, TensorBoard logs
and ``cache/`` (the offline KID classifier). Rerunning the same command resumes an interrupted run.
"""

import os

from tfspike.cli.common import (RunContext, fraction, loaded_message, nonneg_int, positive_float, positive_int,
                                strategy_record)
from tfspike.ddim.choices import ACTIVATIONS, FS_PARAM_SETS
from tfspike.errors import UserError

MODEL_TYPES = ("DDIM",)
# --distribute strategies this family runs under (tfspike.cli.common.check_distribute): noise per global batch,
# synchronised BatchNorm, the EMA and KID of the global batch (tfspike.ddim.diffusion.DiffusionModel)
DISTRIBUTE = ("mirrored", "multi_worker")
# keras-io's DDIM recipe; the best weights by KID are saved by default.
DEFAULTS = {"learning_rate": 1e-3, "batch_size": 64, "epochs": 1, "save": True}


def widths_list(s):
    import argparse

    try:
        w = [int(v) for v in str(s).replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if len(w) < 2 or min(w) < 1:
        raise argparse.ArgumentTypeError(f"expected at least two positive widths, got {s!r}")
    return w


def add_arguments(parser):
    g = parser.add_argument_group("DDIM")
    g.add_argument("--activation", choices=ACTIVATIONS, default="fs_swish",
                   help="block activation: the ANN swish or a fixed FS-Swish layer")
    g.add_argument("--fs_params", default="published",
                   help="FS-Swish parameter set: published (Stöckl K=16) | random | gaussian | tbpi | best, "
                        "a .json set file, or a preset name (see --model_type=FS --save_preset)")
    g.add_argument("--voltage_scaling", choices=("abs_plus_one", "none"), default="abs_plus_one",
                   help="FS surrogate scaling (abs_plus_one as the TBPI DDIM)")
    g.add_argument("--data_name", choices=("FMNIST", "MNIST", "FLOWERS"), default="FMNIST",
                   help="FMNIST/MNIST: offline from --data_dir, padded to 32x32; FLOWERS: Oxford Flowers 102 "
                        "via tensorflow-datasets (online)")
    g.add_argument("--channels", type=int, choices=(1, 3), default=1, help="offline data: 1, or repeat to 3")
    g.add_argument("--image_size", type=positive_int, default=64, help="FLOWERS image size (offline: 32)")
    g.add_argument("--dataset_repetitions", type=positive_int, default=None,
                   help="training-set repetitions per epoch (default 5 for FLOWERS, 1 offline)")
    g.add_argument("--train_samples", type=nonneg_int, default=0,
                   help="offline: use only the first N training images (0: all)")
    g.add_argument("--steps_per_epoch", type=nonneg_int, default=0, help="bound an epoch to N steps (0: full)")
    g.add_argument("--widths", type=widths_list, default=[32, 64, 96, 128], help="U-Net widths, e.g. 32,64,96,128")
    g.add_argument("--block_depth", type=positive_int, default=2)
    g.add_argument("--weight_decay", type=positive_float, default=1e-4)
    g.add_argument("--ema", type=fraction, default=0.999,
                   help="EMA decay of the evaluation network; short runs need less (0.999^N is the share of "
                        "the initial weights left after N steps)")
    g.add_argument("--kid_extractor", choices=("auto", "offline", "inception"), default="auto",
                   help="auto: inception for FLOWERS, the offline classifier for FMNIST/MNIST")
    g.add_argument("--max_kid_batches", type=nonneg_int, default=0,
                   help="validation batches per epoch (loss and KID); 0: the whole validation split")
    g.add_argument("--kid_diffusion_steps", type=positive_int, default=5)
    g.add_argument("--plot_diffusion_steps", type=positive_int, default=20)
    g.add_argument("--plot_images", type=nonneg_int, default=18,
                   help="images in the per-epoch PNG grid (0: none; --plots=False: none)")
    g.add_argument("--kid_classifier", default=None, metavar="FILE",
                   help="offline KID classifier weights (.weights.h5, e.g. a run's cache/ file or a preset's) "
                        "instead of training one")
    g.add_argument("--kid_classifier_epochs", type=positive_int, default=3)
    g.add_argument("--kid_classifier_samples", type=nonneg_int, default=0,
                   help="training images for the offline KID classifier (0: all)")
    g.add_argument("--spike_stats_images", type=nonneg_int, default=16,
                   help="FS runs: images sampled at the end to count spikes per FS neuron (0: skip)")


def run_prefix(args):
    if args.activation == "swish":
        tag = "ann"
    elif args.fs_params in FS_PARAM_SETS:
        tag = args.fs_params
    else:
        tag = os.path.splitext(os.path.basename(str(args.fs_params)))[0]
    return f"DDIM-{args.activation}-{tag}-{args.data_name}"


def check_args(args):
    if args.activation == "fs_swish" and args.fs_params not in FS_PARAM_SETS:
        from tfspike.fs.params import PRESETS_ENV, preset_names

        if not str(args.fs_params).endswith(".json"):
            if args.fs_params not in preset_names():  # a preset saved by --model_type=FS --save_preset
                raise UserError(f"--fs_params must be one of {', '.join(FS_PARAM_SETS)}, a .json file or an FS "
                                f"preset name (searched: ${PRESETS_ENV} and the package), got {args.fs_params!r}")
        elif not os.path.exists(args.fs_params):
            raise UserError(f"FS parameter file not found: {args.fs_params}")
    if args.kid_classifier and (args.data_name == "FLOWERS" or args.kid_extractor == "inception"):
        raise UserError("--kid_classifier is the offline KID classifier of --data_name=FMNIST/MNIST")
    size = 32 if args.data_name != "FLOWERS" else args.image_size
    factor = 2 ** (len(args.widths) - 1)
    if size % factor:
        raise UserError(f"image size {size} is not divisible by 2**(len(widths)-1) = {factor}; use fewer widths")


def run(args):
    check_args(args)
    import json
    import math
    import time


    from tfspike.cli.common import set_seed
    from tfspike.ddim import data as ddim_data
    from tfspike.ddim.callbacks import ImageGridCallback, ResultsWriter
    from tfspike.ddim.diffusion import sample_fs_spike_stats
    from tfspike.ddim.kid import INCEPTION_LABEL, inception_encoder, offline_encoder, offline_label
    from tfspike.ddim.unet import activation_sites, fs_layers, neurons_per_image
    from tfspike.distribute import fit, make_strategy
    from tfspike.utils.callbacks import SafeCheckpoint, standard_callbacks
    from tfspike.utils.models import count_parameters

    distribute = getattr(args, "distribute", "none") or "none"
    strategy = make_strategy(distribute, getattr(args, "cpu_devices", None))  # before TensorFlow sets up its devices
    context = RunContext(args, run_prefix(args), strategy)
    log, prefix = context.log, context.name
    log.info(f"{prefix}: {vars(args)}")

    # -- data --------------------------------------------------------------------------------
    offline = args.data_name != "FLOWERS"
    if offline:
        (xtr_all, ytr_all), (xte, yte) = ddim_data.load_offline(args.data_name, args.data_dir, args.channels)
        xtr = xtr_all[:args.train_samples] if args.train_samples else xtr_all
        reps = args.dataset_repetitions or 1
        train_ds = ddim_data.image_pipeline(xtr, args.batch_size, reps, shuffle=True, seed=args.seed)
        val_ds = ddim_data.image_pipeline(xte, args.batch_size, 1, shuffle=False)
        image_size, channels = image_shape(args)
        steps_full = (len(xtr) * reps) // args.batch_size
        val_full = len(xte) // args.batch_size
        adapt_data = ddim_data.image_pipeline(xtr, min(1000, len(xtr)), 1, shuffle=False)
    else:
        reps = args.dataset_repetitions or 5
        train_ds, val_ds = ddim_data.flowers_pipelines(args.batch_size, args.image_size, reps, seed=args.seed)
        image_size, channels = image_shape(args)
        steps_full = val_full = None
        adapt_data = train_ds.take(math.ceil(6551 / args.batch_size))

    # -- KID feature extractor ---------------------------------------------------------------
    kind = args.kid_extractor if args.kid_extractor != "auto" else ("offline" if offline else "inception")
    if kind == "inception":
        encoder, kid_info = inception_encoder(image_size, channels), {"label": INCEPTION_LABEL}
        kid_name = INCEPTION_LABEL
    else:
        if not offline:
            raise UserError("--kid_extractor=offline needs --data_name=FMNIST or MNIST")
        n_clf = args.kid_classifier_samples or None
        n_fit = min(len(xtr_all), n_clf or len(xtr_all))
        encoder, kid_info = offline_encoder(args.data_name, ddim_data.to_float(xtr_all[:n_fit]), ytr_all[:n_fit],
                                            ddim_data.to_float(xte), yte,
                                            os.path.join(context.dir, "cache"),
                                            epochs=args.kid_classifier_epochs, seed=args.seed,
                                            max_train_samples=n_clf, log=log.info,
                                            verbose=2 if args.verbose else 0, weights_file=args.kid_classifier)
        kid_name = offline_label(args.data_name)
    log.info(f"KID features: {kid_name} ({int(encoder.output.shape[-1])}-d); "
             + ("not comparable with Inception KIDs" if kind == "offline" else "InceptionV3 ImageNet, 75x75"))
    set_seed(args.seed)  # the classifier may or may not have trained: same DDIM init either way

    # -- model -------------------------------------------------------------------------------
    with strategy.scope():  # the model's, EMA's, optimizer's and metrics' variables become the strategy's
        model = build_model(args, image_size, channels, encoder, kid_name)
        model.normalizer.adapt(adapt_data)
        compile_model(model, args)
    if distribute != "none":
        context.results["distribute"] = strategy_record(log, strategy, distribute, args.batch_size)
        if args.jit_compile:
            log.info(f"--distribute={distribute}: the train and validation steps run without XLA under a strategy "
                     f"(README: Scale out); sampling for the image grids keeps it")
    trainable, non_trainable = count_parameters(model.network)
    n_fs = len(fs_layers(model.network))
    structure = {"trainable_params": trainable, "non_trainable_params": non_trainable,
                 "activation_sites": len(activation_sites(model.network)), "fs_layers": n_fs,
                 "neurons_per_image": neurons_per_image(model.network)}
    log.info(f"U-Net {args.widths} x{args.block_depth}: {trainable:,} trainable / {non_trainable:,} "
             f"non-trainable parameters, {n_fs} FS layers, {structure['neurons_per_image']:,} "
             f"activation neurons per image")

    steps = args.steps_per_epoch or steps_full
    val_steps = args.max_kid_batches or val_full
    config = {k: v for k, v in vars(args).items()
              if k not in ("verbose", "resume", "logging_dir", "data_dir", "jit_compile", "command", "plots", "save",
                           "load")}
    # --save=False keeps the best weights only in backup/ (they restore the best epoch at the end)
    best_path = (context.path("_best.weights.h5") if args.save else
                 os.path.join(context.dir, "backup", f"{prefix}_best.weights.h5"))
    load = context.path("_best.weights.h5") if args.load is True else args.load  # True: this run's saved weights
    if load:
        started = time.perf_counter()
        load_weights_file(model, load)
        log.info(loaded_message(args, load, started=started))
    extra = {"prefix": prefix, "params": trainable, "kid_extractor": kid_name, "kid_extractor_info": kid_info,
             "structure": structure,
             "steps_per_epoch": steps, "validation_batches": val_steps, "loaded": load or None, **context.results}
    if args.epochs == 0:
        return evaluate_only(model, val_ds, val_steps, kid_name, config, extra, context)
    extra["best_weights"] = best_path
    extra["resumed_from"] = context.resumed_from()
    if extra["resumed_from"]:
        log.info(f"resumed from epoch {extra['resumed_from']} of {args.epochs} (backup of the interrupted run)")
    writer = ResultsWriter(context.results_path, config, kid_name=kid_name, resume=context.continued, extra=extra)
    checkpoint = SafeCheckpoint(weights_path=best_path, monitor=f"val_{kid_name}", mode="min")
    if writer.best_kid is not None:
        checkpoint.best = writer.best_kid
    callbacks = [writer]
    if args.plots and args.plot_images:
        callbacks.append(ImageGridCallback(context.record_path("_images"), args.plot_images,
                                           args.plot_diffusion_steps, seed=args.seed))
    callbacks += standard_callbacks(context.dir, context.record, checkpoint, resume=args.resume)

    timer = time.perf_counter()
    fit(model, train_ds, epochs=args.epochs, steps_per_epoch=steps, validation_data=val_ds,
        validation_steps=val_steps, callbacks=callbacks, verbose=args.verbose)
    log.info(f"training took {time.perf_counter() - timer:.1f} s")
    if checkpoint.saw_nan:
        log.info("non-finite loss or weights: training stopped; the best finite checkpoint is kept")
    if checkpoint.restore():
        log.info(f"restored the best weights by {kid_name} (best {checkpoint.best:.4f}) from {best_path}")

    summary = {}
    if n_fs and args.spike_stats_images:
        stats = sample_fs_spike_stats(model, args.spike_stats_images, args.plot_diffusion_steps, seed=args.seed,
                                      batch_size=min(args.spike_stats_images, 64))
        summary["sampling_spike_stats"] = stats
        log.info(f"FS spikes per neuron during sampling ({args.spike_stats_images} images x "
                 f"{args.plot_diffusion_steps} DDIM steps, EMA network): {stats['spikes_per_neuron']:.4f}")
    if args.energy:
        from tfspike.energy import count_ddim

        report = count_ddim(model, num_images=args.spike_stats_images or 16, diffusion_steps=args.plot_diffusion_steps,
                            seed=args.seed)
        writer.results["energy"] = context.report_energy(report)
    if args.export:  # the writer keeps its own results dict
        summary["export"] = export(model, context)
    writer.finish(summary)
    final = writer.results
    log.info(json.dumps({k: final.get(k) for k in ("noise_loss", "image_loss", "kid", "best_epoch", "best_kid")}))
    return context.finish(final)


def build_model(args, image_size, channels, encoder=None, kid_name=None):
    """The :class:`~tfspike.ddim.diffusion.DiffusionModel` of the flags (uncompiled, normaliser not adapted)."""
    from tfspike.ddim.diffusion import DiffusionModel

    return DiffusionModel(image_size, channels, args.widths, args.block_depth, args.activation, args.fs_params,
                          args.voltage_scaling, ema=args.ema, kid_diffusion_steps=args.kid_diffusion_steps,
                          kid_encoder=encoder, kid_name=kid_name, seed=args.seed)


def compile_model(model, args):
    """AdamW with ``--learning_rate`` and ``--weight_decay``; the model's own noise/image losses."""
    import keras

    model.compile(optimizer=keras.optimizers.AdamW(args.learning_rate, weight_decay=args.weight_decay),
                  jit_compile=args.jit_compile)
    return model


def image_shape(args):
    """``(image_size, channels)`` of the flags: offline datasets are 32×32 with ``--channels``."""
    return (32, args.channels) if args.data_name != "FLOWERS" else (args.image_size, 3)


def preset_model(args, compile=True):
    """The model of a ``--preset`` (``tfspike.zoo.load``): built from the card's flags, its weights
    (normaliser, network, EMA network) loaded; no KID extractor attached (``main.py --preset`` builds one
    for the evaluation)."""
    import numpy as np

    image_size, channels = image_shape(args)
    model = build_model(args, image_size, channels)
    model.normalizer.adapt(np.zeros((2, image_size, image_size, channels), "float32"))  # builds it; weights follow
    load_weights_file(model, args.load)
    return compile_model(model, args) if compile else model


def load_weights_file(model, path):
    """``--load``: a ``.weights.h5`` file of this family (e.g. ``<run>_best.weights.h5``) into ``model``."""
    from tfspike.utils import files

    hint = ("give a .weights.h5 written by --model_type=DDIM with the same --widths/--block_depth/--channels/"
            "--image_size")
    files.check_file(path, "DDIM weight", hint)
    if not path.endswith(".weights.h5"):
        raise UserError(f"--load expects a .weights.h5 file written by --model_type=DDIM, got {path}")
    files.load_weights_file(model, path, "DDIM weight", hint)


def evaluate_only(model, val_ds, val_steps, kid_name, config, extra, context):
    """``--epochs=0``: validation noise/image loss and KID of the (loaded) model, no training."""
    from tfspike.distribute import evaluate

    logs = evaluate(model, val_ds, steps=val_steps, verbose=context.verbose)
    results = {"config": config, **extra, "epochs_run": 0,
               "val_noise_loss": float(logs["n_loss"]), "val_image_loss": float(logs["i_loss"]),
               "kid": float(logs[kid_name]) if kid_name in logs else None}
    context.log.info(f"evaluation: noise loss {results['val_noise_loss']:.5f}, image loss "
                     f"{results['val_image_loss']:.5f}, {kid_name} {results['kid']}")
    if context.args.energy:
        from tfspike.energy import count_ddim

        args = context.args
        results["energy"] = context.report_energy(count_ddim(model, num_images=args.spike_stats_images or 16,
                                                             diffusion_steps=args.plot_diffusion_steps, seed=args.seed))
    if context.args.export:
        results["export"] = export(model, context)
    return context.finish(results)


def export(model, context):
    """``--export DIR``: the generation and denoiser signatures, checked without tfspike on 4 images."""
    args = context.args
    if args.export:
        return context.export(model, {"seed": args.seed, "num_images": 4, "diffusion_steps": args.plot_diffusion_steps})
