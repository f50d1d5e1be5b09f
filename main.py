#!/usr/bin/env python
"""tfspike command line: parses flags and dispatches to the family of ``--model_type``.

    python main.py --model_type=SNN --model_name=FC2_example_train --data_name=MNIST --epochs=1
    python main.py --model_type=FS --activation=swish --K=8 --init=tbpi
    python main.py --model_type=BRF --data_name=ECG
    python main.py --model_type=DDIM --activation=fs_swish --fs_params=tbpi --data_name=FMNIST

``python main.py --model_type=<TYPE> --help`` lists the flags of a family.
"""

import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfspike.cli import FAMILIES  # noqa: E402
from tfspike.cli.common import ArgumentParser, add_common_arguments  # noqa: E402
from tfspike.errors import UserError  # noqa: E402


def build_parser(argv):
    """A parser with the common flags plus those of the family named by ``--model_type``."""
    pre = ArgumentParser(add_help=False)
    pre.add_argument("--model_type", default="SNN")
    known, _ = pre.parse_known_args(argv)
    if known.model_type not in FAMILIES:
        pre.error(f"argument --model_type: invalid choice {known.model_type!r} (choose from {', '.join(FAMILIES)})")
    family = importlib.import_module(FAMILIES[known.model_type])
    parser = ArgumentParser(prog="main.py", description=__doc__.split("\n\n")[0],
                            formatter_class=lambda prog: __import__("argparse").ArgumentDefaultsHelpFormatter(prog))
    add_common_arguments(parser)
    family.add_arguments(parser)
    return parser, family


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, family = build_parser(argv)
    args = parser.parse_args(argv)  # unknown flags are errors (exit 2)
    try:
        return int(family.run(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: the last completed checkpoint is kept; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
