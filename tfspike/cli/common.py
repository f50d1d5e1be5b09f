"""The shared CLI layer: the flags every ``main.py`` family has, and the run context every family's
``run()`` uses.

Every flag here has one name, one dest and one meaning in every family; a family only chooses its
defaults (``DEFAULTS`` in the family module). Cross-family flags are added here, once.

This module must not import TensorFlow at module level, so that ``--help`` and flag errors are instant.
"""

import argparse
import logging
import math
import os
import random
import sys
import time

from tfspike.distribute import is_chief, worker_folder
from tfspike.errors import UserError

TRUE = ("true", "1", "yes", "y", "on")
FALSE = ("false", "0", "no", "n", "off")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports errors as one line with exit status 2 (argparse's default status)."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


def str2bool(s):
    """True/False/true/false/1/0/yes/no → bool; anything else is a flag error."""
    v = str(s).strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False/1/0/yes/no), got {s!r}")


def _number(kind, pred, desc):
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {desc}, got {s!r}") from None
        if isinstance(v, float) and not math.isfinite(v) or not pred(v):
            raise argparse.ArgumentTypeError(f"expected {desc}, got {s!r}")
        return v

    parse.__name__ = desc  # argparse uses it in messages
    return parse


positive_float = _number(float, lambda v: v > 0, "a number > 0")
nonneg_float = _number(float, lambda v: v >= 0, "a number >= 0")
positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
nonneg_int = _number(int, lambda v: v >= 0, "an integer >= 0")
fraction = _number(float, lambda v: 0 <= v < 1, "a fraction in [0, 1)")


def csv_list(kind, allowed=None):
    """A parser for ``a,b,c`` lists of ``kind``, optionally restricted to ``allowed``."""
    def parse(s):
        items = [v.strip() for v in str(s).split(",") if v.strip()]
        try:
            items = [kind(v) for v in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {s!r}") from None
        if allowed is not None:
            bad = [v for v in items if v not in allowed]
            if bad:
                raise argparse.ArgumentTypeError(f"{bad} not in {', '.join(map(str, allowed))}")
        return items

    return parse


def verbosity(s):
    """``--verbose``: 0, 1 or 2; the boolean spellings of older commands mean 0 (False) and 1 (True)."""
    v = str(s).strip().lower()
    if v in ("0", "1", "2"):
        return int(v)
    if v in TRUE:
        return 1
    if v in FALSE:
        return 0
    raise argparse.ArgumentTypeError(f"expected 0, 1 or 2, got {s!r}")


def energy_profile(s):
    """``--energy PROFILE``: a registered energy profile name (tfspike.energy.profiles)."""
    from tfspike.energy.profiles import PROFILES

    if s not in PROFILES:
        raise argparse.ArgumentTypeError(f"unknown energy profile {s!r} (choose from {', '.join(PROFILES)})")
    return s


def load_value(s):
    """``--load``: ``False``/``no``/empty → None (start fresh); ``True``/``yes`` → True (the run's own
    saved file, where a family has one); anything else → a file path."""
    v = str(s).strip()
    if v.lower() in FALSE or v == "":
        return None
    if v.lower() in TRUE:
        return True
    return v


# Flags of every family: (flags, argparse keyword arguments). A family sets its defaults with DEFAULTS.
COMMON_FLAGS = (
    (("--lr", "--learning_rate"), dict(dest="learning_rate", type=positive_float, default=None,
                                      help="learning rate of the optimiser")),
    (("--epochs",), dict(type=nonneg_int, default=None,
                         help="passes over the training data in this run; 0 = evaluate only, no training")),
    (("--batch_size",), dict(type=positive_int, default=None, help="training batch size")),
    (("--seed",), dict(type=nonneg_int, default=0, help="seed for Python, NumPy and TensorFlow")),
    (("--data_dir",), dict(default=None,
                           help="local data folder laid out like shared/data")),
    (("--logging_dir",), dict(default="logs/", help="output folder: log, results JSON, checkpoints, plots, "
                                                     "TensorBoard")),
    (("--verbose",), dict(type=verbosity, default=None, metavar="{0,1,2}",
                          help="0: log lines only; 1: progress bars; 2: one line per epoch")),
    (("--jit_compile",), dict(type=str2bool, default=True, help="XLA-compile the training and evaluation steps")),
    (("--plots",), dict(type=str2bool, default=True, help="write PNG plots beside the results")),
    (("--load",), dict(type=load_value, default=None, metavar="FILE",
                       help="start from this file (weights, model or parameter set; with --epochs=0: evaluate "
                            "it); True = this run's own saved file; False = start fresh")),
    (("--save",), dict(type=str2bool, default=True,
                       help="write the trained model / weights / parameter set into --logging_dir")),
    (("--energy",), dict(type=energy_profile, nargs="?", const="45nm_fp32", default=None, metavar="PROFILE",
                         help="count synaptic operations, MACs and neuron updates from the actual spikes on the "
                              "test data, against the ANN twin, and report energy under PROFILE (45nm_fp32 when "
                              "given alone; also 45nm_fp16, 45nm_int8, loihi, spinnaker, spinnaker2, cpu, gpu, "
                              "arm)")),
    (("--preset",), dict(default=None, metavar="NAME",
                         help="start from the pretrained model NAME of the zoo (its card sets --model_type, the "
                              "network flags and --load; --epochs defaults to 0 = evaluate it on the test set, "
                              "--epochs=N fine-tunes it)")),
    (("--list_presets",), dict(action="store_true", help="print the zoo's presets (name, family, task, test "
                                                         "metric, size) and exit")),
    (("--export",), dict(default=None, metavar="DIR",
                         help="write a TensorFlow SavedModel of the final model to DIR (reloaded without tfspike "
                              "and checked against the Keras model)")),
    (("--resume",), dict(type=str2bool, default=True,
                         help="rerunning an interrupted command continues its training (from the last finished "
                              "epoch) and its run record; False: start over (the interrupted run's backup is "
                              "deleted, its record kept)")),
    (("--distribute",), dict(choices=("none", "mirrored", "multi_worker"), default="none",
                             help="tf.distribute strategy: mirrored = the local GPUs (or --cpu_devices); "
                                  "multi_worker = the cluster of TF_CONFIG or Slurm (README: Scale out)")),
    (("--cpu_devices",), dict(type=positive_int, default=None, metavar="N",
                              help="split the CPU into N logical devices (with --distribute=mirrored on a "
                                   "CPU-only machine: N replicas)")),
)


# What an unset (None) common flag means, shown in --help.
UNSET_MEANS = {"learning_rate": "the family's recipe", "epochs": "the family's recipe",
               "batch_size": "the family's recipe", "data_dir": "$TFSPIKE_DATA, then download",
               "verbose": "2 when $CI is set, else 1", "load": "start fresh", "energy": "off",
               "preset": "none", "export": "no export",
               "cpu_devices": "the physical devices as they are"}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default; an unset default says what it means instead of ``None``."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help + (f" (default: {UNSET_MEANS[action.dest]})" if action.dest in UNSET_MEANS else "")
        return super()._get_help_string(action)


def add_common_arguments(parser, model_types):
    """The flags every family accepts, in one group, with one meaning."""
    g = parser.add_argument_group("common flags (the same in every family)")
    g.add_argument("--model_type", default="SNN", choices=model_types, help="model family")
    for flags, kwargs in COMMON_FLAGS:
        g.add_argument(*flags, **kwargs)
    return g


def resolve_common(args):
    """Fill in defaults that depend on the environment (after parsing)."""
    if args.verbose is None:
        args.verbose = 2 if os.environ.get("CI") else 1
    return args


def check_distribute(args, family):
    """Refuse ``--distribute``/``--cpu_devices`` where the family (a CLI family module) does not support
    them: it lists the strategies it runs under in ``DISTRIBUTE`` (e.g. ``("mirrored",)``). One line."""
    from tfspike.distribute import check_kind

    kind = getattr(args, "distribute", "none") or "none"
    check_kind(kind)
    supported = getattr(family, "DISTRIBUTE", ())
    if kind != "none" and kind not in supported:
        raise UserError(f"--distribute={kind} is not supported by --model_type={args.model_type} yet")
    if getattr(args, "cpu_devices", None) and not supported:
        raise UserError(f"--cpu_devices is not supported by --model_type={args.model_type} yet")


def strategy_record(log, strategy, kind, batch_size):
    """The ``distribute`` block of a run's results (``{"strategy", "replicas"}``; None for
    ``--distribute=none``), and one log line naming the replicas' devices and the global batch."""
    if kind == "none":
        return None
    replicas = strategy.num_replicas_in_sync
    log.info(f"--distribute={kind}: {replicas} replicas ({', '.join(strategy.extended.worker_devices)}); "
             f"global batch {batch_size}")
    return {"strategy": kind, "replicas": replicas}


def set_seed(seed):
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    import keras

    keras.utils.set_random_seed(seed)


def prepare_dir(path, what="--logging_dir"):
    """Create ``path`` (and parents) or raise a one-line :class:`UserError` saying why not."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UserError(f"{what} {path} cannot be created: {e.strerror or e}") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"{what} {path} is not writable")
    return path


def setup_logging(folder, prefix, append=False):
    """Log to stdout and ``<folder>/<prefix>_log.txt`` (appended to when ``append``). Returns the logger."""
    prepare_dir(folder)
    logger = logging.getLogger("tfspike.run")
    for h in logger.handlers:
        h.close()
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(message)s")
    for h in (logging.StreamHandler(sys.stdout),
              logging.FileHandler(os.path.join(folder, f"{prefix}_log.txt"), mode="a" if append else "w")):
        h.setFormatter(fmt)
        logger.addHandler(h)
    return logger


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self):
        return time.perf_counter() - self.start


RUNS_DIR = "runs"  # <logging_dir>/runs/<record>/<NNN>/: one folder per run, never reused by another run
LATEST = "latest"


def record_name(name, model_type):
    """A run record's name: ``name`` with the model type added when it does not already say it
    (``MNIST-FC2`` → ``MNIST-FC2-SNN``; ``ECG-BRF`` stays)."""
    return name if model_type in name.replace("_", "-").split("-") else f"{name}-{model_type}"


def run_dirs(logging_dir, record):
    """The numbered run folders of ``record``, oldest first."""
    folder = os.path.join(logging_dir, RUNS_DIR, record)
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, d) for d in sorted(os.listdir(folder)) if d.isdigit()]


def latest_run_dir(logging_dir, record):
    """The newest run folder of ``record`` (what ``runs/<record>/latest`` points to), or None."""
    dirs = run_dirs(logging_dir, record)
    return dirs[-1] if dirs else None


def latest_record_file(logging_dir, record, suffix="_results.json"):
    """``<newest run folder>/<record><suffix>`` if it exists, else None."""
    d = latest_run_dir(logging_dir, record)
    path = None if d is None else os.path.join(d, f"{record}{suffix}")
    return path if path is not None and os.path.exists(path) else None


def _run_state(run_dir):
    import json

    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _point_latest(folder, target):
    """``<folder>/latest`` → ``target`` (a relative symlink, replaced atomically; a text file where the
    file system has no symlinks)."""
    link = os.path.join(folder, LATEST)
    tmp = os.path.join(folder, f".{LATEST}.{os.getpid()}")
    try:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError:
        from tfspike.utils.io import write_text_atomic

        write_text_atomic(link, target + "\n")


def open_run_dir(logging_dir, record, command, resume=True):
    """``(run folder, continued)``: with ``resume``, the newest run of ``record`` when it is unfinished and
    was started by the same command (an interrupted run continues its own record), else a new numbered
    folder."""
    dirs = run_dirs(logging_dir, record)
    if dirs and resume:
        state = _run_state(dirs[-1])
        if state.get("status") != "finished" and state.get("command") == command:
            return dirs[-1], True
    number = int(os.path.basename(dirs[-1])) + 1 if dirs else 1
    run_dir = os.path.join(logging_dir, RUNS_DIR, record, f"{number:03d}")
    os.makedirs(run_dir, exist_ok=False)
    _point_latest(os.path.dirname(run_dir), os.path.basename(run_dir))
    return run_dir, False


class RunContext:
    """One run's record — its own folder, log, seed, timer and results JSON — the same for every family.

    Args:
        args: the parsed flags (common flags included).
        name: the family's file prefix, e.g. ``"MNIST-FC2"``. Files other runs read or resume from
            (weights, models, checkpoints, X_n) are artifacts: ``<logging_dir>/<name><suffix>``
            (:meth:`path`), written atomically.

    ``strategy``: the run's ``tf.distribute`` strategy; in a multi-worker cluster only the chief writes into
    ``--logging_dir`` (and ``--export``), every other worker into a temporary folder that starts as a copy of
    the chief's files of this run (:func:`tfspike.distribute.worker_folder`).

    The record (log, results JSON, plots) goes to its own folder
    ``<logging_dir>/runs/<record>/<NNN>/<record><suffix>`` (:meth:`record_path`), where ``record`` is
    ``name`` plus the model type (:func:`record_name`) and ``NNN`` counts the runs of that record; no run
    overwrites another's record, ``runs/<record>/latest`` points to the newest, and rerunning an
    interrupted command continues its record. ``results`` starts with the run's identity; :meth:`finish`
    adds versions and total time, writes the results JSON atomically and marks the run finished.
    """

    def __init__(self, args, name, strategy=None):
        self.args = args
        self.name = name
        self.record = record_name(name, args.model_type)
        self.chief = strategy is None or is_chief(strategy)
        if self.chief:
            self.dir = prepare_dir(args.logging_dir)
            if getattr(args, "export", None):  # checked before any training, not after it
                prepare_dir(os.path.dirname(os.path.abspath(args.export)), "--export")
            if not args.resume:
                import shutil

                shutil.rmtree(os.path.join(self.dir, "backup", self.record), ignore_errors=True)
        if strategy is not None:  # a non-chief worker: a temporary folder with a copy of the chief's state
            self.dir = worker_folder(strategy, args.logging_dir, name)
            if not self.chief:
                args.logging_dir = self.dir
                if getattr(args, "export", None):
                    args.export = os.path.join(self.dir, "export")
        command = getattr(args, "command", None) or command_line(sys.argv[1:])
        try:
            self.run_dir, self.continued = open_run_dir(self.dir, self.record, command, args.resume)
        except OSError as e:
            raise UserError(f"cannot create a run folder under {self.dir}: {e.strerror or e}") from None
        self.log = setup_logging(self.run_dir, self.record, append=self.continued)
        self.timer = Timer()
        set_seed(args.seed)
        self.results = {"model_type": args.model_type, "seed": args.seed, "command": command,
                        "record": self.run_dir}
        if getattr(args, "preset", None):
            self.results["preset"] = args.preset
        self._state = {"command": command, "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if self.continued:
            self._state = dict(_run_state(self.run_dir), status="running")
            self.log.info(f"continuing the interrupted run record {self.run_dir}")
        self._write_state()

    @property
    def verbose(self):
        return self.args.verbose

    def path(self, suffix):
        """An artifact: ``<logging_dir>/<name><suffix>``."""
        return os.path.join(self.dir, f"{self.name}{suffix}")

    def record_path(self, suffix):
        """A file of this run's record: ``<run folder>/<record><suffix>``."""
        return os.path.join(self.run_dir, f"{self.record}{suffix}")

    @property
    def results_path(self):
        return self.record_path("_results.json")

    def resumed_from(self, prefix=None):
        """Epochs a previous, interrupted ``fit`` of this run finished (from its ``BackupAndRestore``
        backup under ``<logging_dir>/backup/<prefix>``), or None when training starts fresh."""
        from tfspike.utils.callbacks import resume_point

        return resume_point(self.dir, prefix or self.name)

    def report_energy(self, report, title=None):
        """``--energy``: log the per-layer table, put the ``energy`` block (per sample, under the chosen
        profile, plus the joules under every registered profile) into the results and, with ``--plots``,
        write the ``_energy.png`` bar chart into the record. Returns the block."""
        from tfspike.energy.profiles import PROFILES

        profile = self.args.energy
        block = report.to_dict(profile)
        block["joules_by_profile"] = {name: {"snn": report.joules(name), "ann_twin": report.ann_joules(name)}
                                      for name in PROFILES}
        self.results["energy"] = block
        self.log.info(f"energy ({report.rule}):\n{report.table(profile)}")
        if self.args.plots:
            from tfspike.energy.plots import plot_energy

            self.log.info(f"plot: {plot_energy(report, self.record_path('_energy.png'), profile, title or self.record)}")
        return block

    def export(self, model, sample):
        """``--export DIR``: write ``model`` as a SavedModel (:func:`tfspike.export.export`), reloaded in a
        fresh process without tfspike and compared with the Keras model on ``sample``; the report goes into
        the results. Returns it."""
        from tfspike.export import export

        report = export(model, self.args.export, sample=sample)
        self.results["export"] = report
        diffs = ", ".join(f"{k} {v:.3g}" for k, v in report["max_abs_diff"].items())
        self.log.info(f"exported SavedModel to {report['dir']} (signatures {', '.join(report['signatures'])}); "
                      f"reloaded without tfspike, max |Δ| against the Keras model: {diffs}")
        return report

    def _write_state(self):
        from tfspike.utils.io import write_json_atomic

        write_json_atomic(os.path.join(self.run_dir, "run.json"), self._state)

    def write_results(self, results=None):
        """Write the results JSON (atomically); returns its path."""
        from tfspike.utils.io import write_json_atomic
        from tfspike.utils.versions import library_versions

        record = self.results if results is None else results
        record.setdefault("versions", library_versions())
        record["total_seconds"] = round(self.timer(), 3)
        write_json_atomic(self.results_path, record)
        return self.results_path

    def finish(self, results=None):
        """Write the results JSON, mark the run finished and log where it is. Returns 0 (the exit status)."""
        path = self.write_results(results)
        self._state.update(status="finished", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self._write_state()
        self.log.info(f"results: {path}")
        self.log.info(f"### Total elapsed time [s]: {self.timer():.2f}")
        return 0


def loaded_message(args, path, what="", started=None, seconds=None):
    """``loaded <what> from <path>``, plus, in a ``--preset`` run, its load time: the file check and the
    model's build and load, from ``started`` (``time.perf_counter()`` before it) to now, or ``seconds``."""
    text = f"loaded {what + ' from ' if what else ''}{path}"
    checked = getattr(args, "preset_files_seconds", None)
    if checked is not None and (started is not None or seconds is not None):
        seconds = time.perf_counter() - started if seconds is None else seconds
        text += f" (preset {args.preset} loaded in {checked + seconds:.2f} s)"
    return text


def command_line(argv):
    """The command as typed (``python main.py ...``), for the results record."""
    import shlex

    return shlex.join(["python", "main.py", *argv])
