"""``--model_type=SNN|ReLU``: TTFS networks and their ReLU twins (the reference's ``main.py``).

Accepts the reference's flags verbatim (spec §7.1) and its four/six README commands; improves on it
where it hurts users (spec §7.4): strict booleans and choices, a validation split taken from the
training data, SNN checkpoints, atomic files, a results JSON, SavedModel export.
"""

import os
import time

from tfspike.cli.common import (RunContext, Timer, fraction, loaded_message, nonneg_float, nonneg_int,
                                positive_int, str2bool, strategy_record)
from tfspike.errors import UserError

MODEL_TYPES = ("SNN", "ReLU")
# The reference's defaults (spec ttfs.md §7.1); --save=False as there.
DEFAULTS = {"learning_rate": 5e-4, "batch_size": 8, "epochs": 10, "save": False}
DATA_NAMES = ("MNIST", "FMNIST", "CIFAR10", "CIFAR100")
DATA_ALIASES = {"FashionMNIST": "FMNIST", "FASHIONMNIST": "FMNIST"}
# --distribute strategies this family runs under (tfspike.cli.common.check_distribute)
DISTRIBUTE = ("mirrored", "multi_worker")


def _bits(s):
    v = nonneg_int(s)
    if v != 0 and not 2 <= v <= 16:
        import argparse

        raise argparse.ArgumentTypeError(f"bits must be 0 (off) or in [2, 16], got {s!r}")
    return v


def _data_name(s):
    s = DATA_ALIASES.get(s, s)
    if s not in DATA_NAMES:
        import argparse

        raise argparse.ArgumentTypeError(f"invalid choice {s!r} (choose from {', '.join(DATA_NAMES)})")
    return s


def add_arguments(p):
    g = p.add_argument_group("TTFS (--model_type SNN | ReLU)")
    g.add_argument("--model_name", default="FC2",
                   help="contains FC2 or VGG (BN in a VGG name selects BatchNorm), or CNN: a converted conv net "
                        "given by --load=FILE.keras")
    g.add_argument("--data_name", type=_data_name, default="MNIST", help="MNIST | FMNIST | CIFAR10 | CIFAR100")
    g.add_argument("--testing", type=str2bool, default=True, help="evaluate on the test set before/after training")
    g.add_argument("--noise", type=nonneg_float, default=0.0, help="spike-time noise std (τ_c)")
    g.add_argument("--noise_mode", choices=("reference", "spikes"), default="reference")
    g.add_argument("--time_bits", type=_bits, default=0, help="spike-time quantisation bits (0 = off)")
    g.add_argument("--weight_bits", type=_bits, default=0, help="weight quantisation bits (0 = off)")
    g.add_argument("--w_min", type=float, default=-1.0)
    g.add_argument("--w_max", type=float, default=1.0)
    g.add_argument("--latency_quantiles", type=float, default=0.0, help="not implemented (must be 0)")
    g.add_argument("--mode", default="", help="ignored (accepted for compatibility with the reference)")
    g.add_argument("--val_split", type=fraction, default=0.1,
                   help="last fraction of the training data used for validation (0 = none)")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    g.add_argument("--window_init", choices=("reference", "measured"), default="reference")
    g.add_argument("--eval_batch_size", type=positive_int, default=None,
                   help="evaluation batch size (default max(batch_size, 256); results do not depend on it)")
    g.add_argument("--steps_per_execution", type=positive_int, default=32,
                   help="training steps per compiled call (amortises per-step overhead; same updates)")


def validate(args):
    from tfspike.models.ttfs_zoo import architecture

    if architecture(args.model_name) == "CNN":  # raises for names without FC2/VGG/CNN
        from tfspike.models.ttfs_zoo import CONVERTED_HINT

        if args.model_type != "SNN" or not (isinstance(args.load, str) and args.load.endswith(".keras")):
            raise UserError(f"--model_name={args.model_name} needs --model_type=SNN and --load=<file>.keras: "
                            f"{CONVERTED_HINT}")
    if args.latency_quantiles != 0:
        raise UserError("--latency_quantiles is not implemented (the reference parses it but never uses it)")
    if args.weight_bits and not args.w_min < args.w_max:
        raise UserError(f"--w_min must be < --w_max, got {args.w_min} >= {args.w_max}")


def load_snn(path, args, hint=""):
    """A TTFS SNN from a ``.keras`` model or an ``_snn.weights.h5`` file (built from ``args``' model and data
    names)."""
    from tfspike.ttfs import TTFSModel
    from tfspike.utils.files import RERUN, check_file, load_keras_model, load_weights_file

    hint = hint or RERUN
    if path.endswith(".weights.h5"):
        from tfspike.models.ttfs_zoo import build_snn_model

        check_file(path, "SNN weight", hint)
        model = build_snn_model(args.model_name, args.data_name, dtype=args.dtype, input_is="value")
        load_weights_file(model, path, f"{args.model_name} SNN weight", hint)
        return model
    return load_keras_model(path, "SNN model", hint, expected=TTFSModel)


def compile_model(model, args):
    """The family's optimiser, loss (sparse categorical cross-entropy on logits) and accuracy metric."""
    import keras

    from tfspike.models.ttfs_zoo import make_optimizer

    model.compile(optimizer=make_optimizer(args.model_name, args.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=args.jit_compile,
                  steps_per_execution=args.steps_per_execution)
    return model


def preset_model(args, compile=True):
    """The model of a ``--preset`` (``tfspike.zoo.load``): an SNN preset's ``.keras`` / ``_snn.weights.h5``
    file, a ReLU preset's weights; compiled as :func:`run` compiles it."""
    if args.model_type == "SNN":
        model = load_snn(args.load, args)
    else:
        from tfspike.io.keras2_h5 import load_relu_weights
        from tfspike.models.ttfs_zoo import build_relu_model

        model = build_relu_model(args.model_name, args.data_name, dtype=args.dtype)
        load_relu_weights(model, args.load, "ReLU weight")
    return compile_model(model, args) if compile else model


class Run:
    """One TTFS/ReLU run: data, model, evaluation, training, saving (the reference's sequence)."""

    def __init__(self, args, strategy=None):
        self.args = args
        self.prefix = f"{args.data_name}-{args.model_name}"
        self.context = RunContext(args, self.prefix, strategy)
        self.resumed_from = None  # epochs an interrupted run of this command finished (set before training)
        self.energy_report = None  # --energy: the counts of the latest SNN evaluation
        self.dir = self.context.dir
        self.log = self.context.log
        self.path = self.context.path
        self.results = self.context.results
        self.results.update({"data_name": args.data_name, "model_name": args.model_name, "epochs": args.epochs,
                             "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                             "dtype": args.dtype})

    # -- data ---------------------------------------------------------------------------------------
    def load_data(self):
        from tfspike.data.images import load_image_dataset
        from tfspike.data.preprocess import jitter_input_times, split_validation, ttfs_preprocess
        from tfspike.models.ttfs_zoo import INPUT_RANGES, architecture

        a = self.args
        (xtr, ytr), (xte, yte) = load_image_dataset(a.data_name, a.data_dir)
        flat = architecture(a.model_name) == "FC2"
        xtr = ttfs_preprocess(a.data_name, xtr, flatten=flat, dtype=a.dtype)
        xte = ttfs_preprocess(a.data_name, xte, flatten=flat, dtype=a.dtype)
        (self.x_train, self.y_train), self.val = split_validation(xtr, ytr, a.val_split)
        self.x_test, self.y_test = xte, yte
        self.x_test_snn = xte
        if a.model_type == "SNN" and a.noise:
            p, q = INPUT_RANGES[a.data_name]
            self.x_test_snn = jitter_input_times(xte, a.noise, p, q, a.noise_mode, a.seed)
        self.log.info(f"data {a.data_name}: train {self.x_train.shape}, "
                      f"validation {None if self.val is None else self.val[0].shape}, test {xte.shape}")

    # -- models -------------------------------------------------------------------------------------
    def relu_model(self):
        from tfspike.models.ttfs_zoo import build_relu_model

        return build_relu_model(self.args.model_name, self.args.data_name, dtype=self.args.dtype)

    def load_relu_weights(self, model, path):
        from tfspike.io.keras2_h5 import load_relu_weights

        load_relu_weights(model, path, "ReLU weight", "run the ReLU model with --save=True first, or give --load=<file>")
        self.log.info(f"loaded ReLU weights from {path}")

    def resolve(self, name):
        """A --load file name: as given if it exists, else inside --logging_dir."""
        return name if os.path.exists(name) else os.path.join(self.dir, name)

    def build(self):
        a = self.args
        load = a.load  # None (fresh), True (this run's saved files) or a file name
        self.reference = None  # the ReLU network a mapped SNN must agree with
        if a.model_type == "ReLU":
            self.model = self.relu_model()
            if load is True:
                self.load_relu_weights(self.model, self.path("_relu.weights.h5"))
            elif load:
                self.load_relu_weights(self.model, self.resolve(load))
            return
        from tfspike.models.ttfs_zoo import build_snn_model

        if load is None:
            self.model = build_snn_model(a.model_name, a.data_name, dtype=a.dtype, input_is="value")
        elif load is True:
            self.model = self.load_snn(self.path("_preprocessed.keras"),
                                       hint="run the ReLU model with --save=True first (it writes the mapped SNN)")
            relu_path = self.path("_relu.weights.h5")
            if os.path.exists(relu_path):
                self.reference = self.relu_model()
                self.load_relu_weights(self.reference, relu_path)
        elif load.endswith(".keras") or load.endswith("_snn.weights.h5"):
            self.model = self.load_snn(self.resolve(load))
        else:  # a ReLU weight file: map it on the fly
            self.reference = self.relu_model()
            self.load_relu_weights(self.reference, self.resolve(load))
            self.model = self.map(self.reference)
        if a.window_init == "measured":
            self.apply_measured_windows()
        self.model.configure(noise=a.noise, noise_mode=a.noise_mode, time_bits=a.time_bits,
                             weight_bits=a.weight_bits, w_min=a.w_min, w_max=a.w_max)

    def load_snn(self, path, hint=""):
        started = time.perf_counter()
        model = load_snn(path, self.args, hint)
        self.log.info(loaded_message(self.args, path, "SNN", started))
        return model

    def map(self, relu_model):
        from tfspike.convert.ttfs import relu_to_ttfs
        from tfspike.models.ttfs_zoo import INPUT_RANGES

        snn = relu_to_ttfs(relu_model, input_range=INPUT_RANGES[self.args.data_name], dtype=self.args.dtype)
        self.log.info(f"mapped the ReLU network to a TTFS SNN ({len(snn.spiking_layers())} spiking layers)")
        return snn

    def apply_measured_windows(self):
        from tfspike.ttfs.windows import read_x_n_json

        path = self.path("_X_n.json")
        if not os.path.exists(path):
            self.log.warning(f"--window_init=measured: {path} not found; keeping X_n = 1000")
            return
        self.model.reset_windows(read_x_n_json(path, self.model))
        self.log.info(f"windows from measured X_n: latency {self.model.latency():.1f}")

    def compile(self):
        compile_model(self.model, self.args)

    # -- evaluation ---------------------------------------------------------------------------------
    def eval_batch_size(self):
        return self.args.eval_batch_size or max(self.args.batch_size, 256)

    def evaluate(self, when):
        """Test accuracy/loss, plus spike metrics and agreement for SNNs. Returns the accuracy."""
        a = self.args
        bs = self.eval_batch_size()
        if a.model_type == "ReLU":
            from tfspike.data.pipeline import make_dataset
            from tfspike.distribute import evaluate

            logs = evaluate(self.model, make_dataset(self.x_test, self.y_test, bs))
            loss, acc = logs["loss"], logs["accuracy"]
            acc = round(acc * len(self.x_test)) / len(self.x_test)  # exact count: Keras averages in float32
        else:  # one streaming pass gives loss, accuracy and the spike metrics (noise drawn once)
            from tfspike.ttfs import evaluate_ttfs

            ref = None if self.reference is None else self.reference.predict_on_batch
            stats = evaluate_ttfs(self.model, self.x_test_snn, self.y_test, batch_size=bs, reference_logits=ref,
                                  energy=bool(a.energy))  # --energy: counted in the same pass
            self.energy_report = stats.pop("energy", None)
            loss, acc = stats["loss"], stats["accuracy"]
            self.results[f"snn_{when}"] = stats
        self.results[f"test_loss{'' if when == 'final' else '_initial'}"] = float(loss)
        msg = f"[{when}] test accuracy {acc * 100:.2f} %, loss {loss:.4f}"
        if a.model_type == "SNN":
            msg += (f"; spikes/neuron {stats['spikes_per_neuron']:.4f} (paper: < 0.3), "
                    f"latency {stats['latency']:.0f} τ_c, window violations {stats['window_violations']}")
            if ref is not None:
                msg += (f"; agreement with ReLU {stats['agreement_with_relu'] * 100:.2f} %, "
                        f"max |Δz| {stats['max_abs_logit_diff']:.3g}")
        self.log.info(msg)
        return float(acc)

    # -- training -----------------------------------------------------------------------------------
    def train(self):
        from tfspike.distribute import fit
        from tfspike.utils.callbacks import SafeCheckpoint, standard_callbacks

        a = self.args
        kind = "snn" if a.model_type == "SNN" else "relu"
        ckpt = SafeCheckpoint(weights_path=self.path(f"_{kind}.weights.h5") if a.save else
                              os.path.join(self.dir, "backup", f"{self.prefix}_last_good.weights.h5"))
        from tfspike.data.pipeline import make_dataset

        # stacks of --steps_per_execution batches, each stack's steps in one compiled call (distribute.fit)
        train = make_dataset(self.x_train, self.y_train, a.batch_size, shuffle=True, seed=a.seed,
                             steps_per_element=a.steps_per_execution)
        val = None if self.val is None else make_dataset(*self.val, self.eval_batch_size())
        timer = Timer()
        # the backup is the record's (model type included): an interrupted ReLU run never resumes an SNN run
        hist = fit(self.model, train, epochs=a.epochs, validation_data=val, shuffle=False,  # train is reshuffled
                   verbose=a.verbose, steps_per_element=a.steps_per_execution,
                   callbacks=standard_callbacks(self.dir, self.context.record, ckpt, resume=a.resume))
        self.results["train_seconds"] = timer()
        self.results["history"] = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        self.results["epochs_run"] = len(hist.history.get("loss", []))
        if ckpt.saw_nan:
            restored = ckpt.restore()
            self.log.warning("training stopped on a NaN loss; " + (
                f"restored the last good weights (epoch {ckpt.saved_epoch + 1})" if restored and
                ckpt.saved_epoch is not None else "no good epoch was saved"))
            self.results["stopped_on_nan"] = True
        self.log.info(f"training: {self.results['train_seconds']:.1f} s for {self.results['epochs_run']} epoch(s)"
                      + (f" (epochs {self.resumed_from + 1}-{a.epochs}; 1-{self.resumed_from} ran before the "
                         f"interruption)" if self.resumed_from else ""))

    def energy(self):
        """``--energy``: synaptic operations from the actual spikes on the test set, against the ReLU twin.
        A ReLU run counts the TTFS network it maps to."""
        from tfspike.energy import count_ttfs

        if self.energy_report is None:  # a ReLU run (counts the TTFS network it maps to), or no test evaluation
            snn = self.model if self.args.model_type == "SNN" else self.map(self.model)
            x = self.x_test_snn if self.args.model_type == "SNN" else self.x_test
            self.energy_report = count_ttfs(snn, x, batch_size=self.eval_batch_size())
        self.context.report_energy(self.energy_report)

    # -- saving -------------------------------------------------------------------------------------
    def save(self):
        from tfspike.utils.io import save_model_atomic, save_weights_atomic, write_json_atomic

        a = self.args
        if a.model_type == "SNN":
            save_weights_atomic(self.model, self.path("_snn.weights.h5"))
            save_model_atomic(self.model, self.path("_snn.keras"))
            self.log.info(f"saved {self.path('_snn.weights.h5')} and {self.path('_snn.keras')}")
            return
        from tfspike.ttfs.windows import measure_x_n, write_x_n_json
        from tfspike.ttfs import evaluate_ttfs

        save_weights_atomic(self.model, self.path("_relu.weights.h5"))
        snn = self.map(self.model)
        stats = evaluate_ttfs(snn, self.x_test, self.y_test, batch_size=self.eval_batch_size(),
                              reference_logits=self.model.predict_on_batch)
        x_n = measure_x_n(snn, self.x_train, batch_size=self.eval_batch_size())
        write_x_n_json(self.path("_X_n.json"), snn, x_n, dataset=a.data_name, split="train")
        save_weights_atomic(snn, self.path("_preprocessed.weights.h5"))
        save_model_atomic(snn, self.path("_preprocessed.keras"))
        write_json_atomic(self.path("_mapping.json"), {
            "agreement_with_relu": stats["agreement_with_relu"], "max_abs_logit_diff": stats["max_abs_logit_diff"],
            "snn_test_accuracy": stats["accuracy"], "spikes_per_neuron": stats["spikes_per_neuron"],
            "layers": [l.name for l in snn.layers]})
        self.results["mapped_snn"] = stats
        self.log.info(f"saved ReLU weights, mapped SNN ({self.path('_preprocessed.keras')}), X_n and mapping "
                      f"report; mapped SNN test accuracy {stats['accuracy'] * 100:.2f} %, agreement "
                      f"{stats['agreement_with_relu'] * 100:.2f} %")

    def export(self):
        """``--export DIR``: the SavedModel of the final model, checked without tfspike on test inputs."""
        x = (self.x_test_snn if self.args.model_type == "SNN" else self.x_test)[:64]
        self.context.export(self.model, x)


def _strategy(args):
    """The ``--distribute`` strategy, made before TensorFlow initialises its devices (``--cpu_devices``)."""
    from tfspike.distribute import make_strategy

    return make_strategy(getattr(args, "distribute", "none") or "none", getattr(args, "cpu_devices", None))


def run(args):
    validate(args)
    strategy = _strategy(args)
    r = Run(args, strategy)
    if args.mode:
        r.log.info("--mode is ignored (a debugging workaround of the reference)")
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(False)  # exactness on Ampere+/Hopper GPUs
    import keras

    # Layers get dtype= per model; floatx must follow for a float64 run because Keras sums losses,
    # regularisation penalties and metrics in floatx.
    keras.config.set_floatx(args.dtype)
    r.load_data()
    kind = getattr(args, "distribute", "none") or "none"
    if strategy.num_replicas_in_sync > 1 or kind != "none":
        # Measured with Keras 3.15 / TF 2.21 on 2 logical CPUs: XLA fails under MirroredStrategy
        # (keras-team/keras#19005: a variable of CPU:1 read from CPU:0) and steps_per_execution > 1 fails
        # in Keras' multi-step loop ("You must feed a value for placeholder tensor"); both off here.
        if args.jit_compile or args.steps_per_execution != 1:
            r.log.info("--distribute: training runs with jit_compile=False and steps_per_execution=1 under a "
                       "strategy (XLA and multi-step loops fail there with Keras 3; README: Scale out)")
        args.jit_compile, args.steps_per_execution = False, 1
    with strategy.scope():  # variables (weights, windows, optimizer, metrics) become the strategy's
        r.build()
        r.compile()
    if kind != "none":
        r.results["distribute"] = strategy_record(r.log, strategy, kind, args.batch_size)
    from tfspike.utils.models import count_parameters

    r.results["params"] = count_parameters(r.model)[0]
    r.log.info(f"{args.model_type} {args.model_name} on {args.data_name}: "
               f"{r.results['params']:,} trainable parameters")
    r.resumed_from = r.context.resumed_from(r.context.record) if args.epochs > 0 else None
    r.results["resumed_from"] = r.resumed_from
    if r.resumed_from:  # the model is restored inside fit(): an "initial" evaluation now would be the fresh one
        r.log.info(f"resumed from epoch {r.resumed_from} of {args.epochs} (backup of the interrupted run); "
                   f"the initial evaluation is skipped")
    acc0 = r.evaluate("initial") if args.testing and not r.resumed_from else None
    r.results["test_accuracy_initial"] = acc0
    r.results["test_accuracy"] = acc0
    r.results["train_seconds"] = 0.0
    if args.epochs > 0:
        r.train()
        if args.testing:
            r.results["test_accuracy"] = r.evaluate("final")  # also sets test_loss
    else:
        r.results["test_loss"] = r.results.get("test_loss_initial")
    r.results.setdefault("test_loss", None)  # trained without --testing: no test loss
    if args.model_type == "SNN":
        final = r.results.get("snn_final") or r.results.get("snn_initial") or {}
        r.results["spikes_per_neuron"] = final.get("spikes_per_neuron")
        r.results["latency"] = r.model.latency()
        r.results["windows"] = r.model.windows()
        if "agreement_with_relu" in (r.results.get("snn_initial") or {}):
            r.results["agreement_with_relu"] = r.results["snn_initial"]["agreement_with_relu"]
    if args.energy:
        r.energy()
    if args.save:
        r.save()
    if args.export:
        r.export()
    if args.plots and r.results.get("history"):
        from tfspike.utils.plots import plot_history

        first = (r.resumed_from or 0) + 1  # a resumed run's history starts after the interrupted epochs
        curves = plot_history(r.results["history"], r.context.record_path("_curves.png"), title=r.context.record,
                              epochs=range(first, first + r.results["epochs_run"]))
        r.log.info(f"plot: {curves}")
    return r.context.finish()
