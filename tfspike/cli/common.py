"""Flag parsing and run plumbing shared by every ``main.py`` family."""

import argparse
import logging
import math
import os
import random
import sys
import time

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


def add_common_arguments(parser):
    """Flags every family accepts."""
    parser.add_argument("--model_type", required=False, default="SNN",
                        help="model family: SNN | ReLU (TTFS), FS, BRF | RF | ALIF, DDIM")
    parser.add_argument("--logging_dir", default="logs/", help="output folder (default logs/)")
    parser.add_argument("--data_dir", default=None,
                        help="local data folder laid out like shared/data (default: $TFSPIKE_DATA, then download)")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="seed for Python, NumPy and TensorFlow")


def set_seed(seed):
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    import keras

    keras.utils.set_random_seed(seed)


def setup_logging(logging_dir, prefix):
    """Log to stdout and ``<logging_dir>/<prefix>_log.txt`` (overwritten each run). Returns the logger."""
    os.makedirs(logging_dir, exist_ok=True)
    logger = logging.getLogger("tfspike.run")
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(message)s")
    for h in (logging.StreamHandler(sys.stdout),
              logging.FileHandler(os.path.join(logging_dir, f"{prefix}_log.txt"), mode="w")):
        h.setFormatter(fmt)
        logger.addHandler(h)
    return logger


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self):
        return time.perf_counter() - self.start


def require_file(path, what, hint=""):
    """Raise a one-line :class:`UserError` if ``path`` does not exist."""
    if not os.path.exists(path):
        raise UserError(f"{what} not found: {path}" + (f" ({hint})" if hint else ""))
    return path
