"""The ``main.py`` command line: parses flags and dispatches to the family of ``--model_type``.

Each family module in :data:`FAMILY_MODULES` defines ``MODEL_TYPES`` (the ``--model_type`` values it
owns), ``DEFAULTS`` (its defaults for the common flags of :mod:`tfspike.cli.common`),
``add_arguments(parser)`` and ``run(args) -> int``. None of them imports TensorFlow at module level, so
``--help`` and flag errors are instant.
"""

import importlib
import os
import sys

from tfspike.cli.common import (ArgumentParser, HelpFormatter, add_common_arguments, check_distribute, command_line,
                                resolve_common)
from tfspike.errors import UserError

FAMILY_MODULES = ("tfspike.cli.ttfs", "tfspike.cli.fs", "tfspike.cli.rsnn", "tfspike.cli.ddim")
DEFAULT_MODEL_TYPE = "SNN"

DESCRIPTION = "tfspike: TTFS, Few-Spike and resonate-and-fire spiking networks (Keras 3 / TensorFlow)."


def families():
    """``{model_type: family module name}``, from each module's ``MODEL_TYPES``."""
    table = {}
    for name in FAMILY_MODULES:
        for model_type in importlib.import_module(name).MODEL_TYPES:
            table[model_type] = name
    return table


class PresetFile:
    """Default of a flag that a ``--preset`` fills with one of its files (fetched and checked after parsing,
    so flag errors stay instant); a value the user gives replaces it. Not a ``str``, so argparse does not
    run the flag's type on it."""

    def __init__(self, preset, flag):
        self.preset, self.flag = preset, flag

    def __repr__(self):
        return f"<{self.flag} file of preset {self.preset}>"


def _preset_defaults(pre, parser, name, model_type):
    """The defaults a ``--preset`` gives: its card's flags, its files, and ``--epochs=0`` (evaluate)."""
    from tfspike.zoo.registry import card

    try:
        info = card(name)
    except UserError as e:
        pre.error(f"argument --preset: {e}")
    if model_type is not None and model_type != info["model_type"]:
        pre.error(f"argument --preset: {name} is a --model_type={info['model_type']} preset, not {model_type}")
    dests = {a.dest for a in parser._actions}
    unknown = [k for k in list(info["flags"]) + list(info["files"]) if k not in dests]
    if unknown:
        pre.error(f"argument --preset: the card of {name} sets unknown flags {', '.join(unknown)}")
    return dict(info["flags"], epochs=0, **{flag: PresetFile(name, flag) for flag in info["files"]})


def build_parser(argv):
    """``(parser, family module)``: the common flags plus those of the family named by ``--model_type``
    (or by the card of ``--preset``)."""
    table = families()
    pre = ArgumentParser(prog="main.py", add_help=False)
    pre.add_argument("--model_type", default=None)
    pre.add_argument("--preset", default=None)
    known, _ = pre.parse_known_args(argv)
    model_type = known.model_type or DEFAULT_MODEL_TYPE
    if known.preset:
        from tfspike.zoo.registry import card

        try:
            model_type = known.model_type or card(known.preset)["model_type"]
        except UserError as e:
            pre.error(f"argument --preset: {e}")
    if model_type not in table:
        pre.error(f"argument --model_type: invalid choice {model_type!r} (choose from {', '.join(table)})")
    family = importlib.import_module(table[model_type])
    parser = ArgumentParser(prog="main.py", description=DESCRIPTION,
                            epilog="python main.py --model_type=TYPE --help lists the flags of a family.",
                            formatter_class=HelpFormatter)
    add_common_arguments(parser, tuple(table))
    family.add_arguments(parser)
    parser.set_defaults(**family.DEFAULTS, model_type=model_type)
    if known.preset:
        parser.set_defaults(**_preset_defaults(pre, parser, known.preset, known.model_type))
    return parser, family


def fetch_preset_files(args, log=print):
    """Replace the :class:`PresetFile` defaults in ``args`` by the preset's checked local files."""
    pending = {k: v for k, v in vars(args).items() if isinstance(v, PresetFile)}
    if not pending:
        return args
    import time

    from tfspike.zoo.registry import preset_files

    t0 = time.perf_counter()
    paths = preset_files(args.preset)
    for dest in pending:
        setattr(args, dest, paths[dest])
    args.preset_files_seconds = time.perf_counter() - t0
    log(f"preset {args.preset}: {', '.join(os.path.basename(paths[d]) for d in pending)} "
        f"(SHA-256 checked) in {args.preset_files_seconds:.2f} s")
    return args


def parse_args(argv):
    """``(args, family module)``; unknown flags and bad values exit 2 with one line."""
    parser, family = build_parser(argv)
    args = resolve_common(parser.parse_args(argv))
    args.command = command_line(argv)
    return args, family


def quiet_tensorflow(argv):
    """Keep TensorFlow's start-up notices out of the default output. They show with ``--verbose 2`` given
    on the command line or a ``TF_CPP_MIN_LOG_LEVEL`` the user set."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or _flag_value(argv, "--verbose") == "2":
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # INFO and WARNING lines of later C++ logging
    from tfspike.utils.startup import import_tensorflow_quietly

    import_tensorflow_quietly()


def _flag_value(argv, flag):
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def main(argv=None):
    """Run ``main.py`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--list_presets" in argv:
        from tfspike.zoo.registry import presets_table

        print(presets_table())
        return 0
    args, family = parse_args(argv)
    quiet_tensorflow(argv)
    try:
        check_distribute(args, family)  # before any work: a family lists the strategies it supports
        fetch_preset_files(args)
        return int(family.run(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: the last completed checkpoint is kept; rerun the same command to resume", file=sys.stderr)
        return 130
