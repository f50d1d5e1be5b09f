"""Target activations for FS fitting, in TensorFlow (for the fitter) and NumPy (for checks)."""

import numpy as np

from tfspike.errors import UserError

TARGETS = ("swish", "silu", "sigmoid", "gelu", "tanh", "softplus", "mish", "relu")
ALIASES = {"silu": "swish"}
DEFAULT_GRIDS = {"sigmoid": (-10.0, 10.0, 100000), "tanh": (-10.0, 10.0, 100000)}
CANONICAL_GRID = (-8.0, 12.0, 100000)


def canonical(name):
    if callable(name):
        return name
    key = str(name).lower()
    key = ALIASES.get(key, key)
    if key not in TARGETS:
        raise UserError(f"unknown target activation {name!r} (choose from {', '.join(TARGETS)})")
    return key


def make_grid(grid=CANONICAL_GRID):
    lo, hi, n = grid
    return np.linspace(lo, hi, int(n)).astype(np.float32)


def target_tf(name):
    """Target activation as a float32 TensorFlow function."""
    import tensorflow as tf

    name = canonical(name)
    if callable(name):
        return name
    return {
        "swish": lambda x: x * tf.sigmoid(x),
        "sigmoid": tf.sigmoid,
        "gelu": lambda x: tf.nn.gelu(x, approximate=False),
        "tanh": tf.tanh,
        "softplus": tf.nn.softplus,
        "mish": lambda x: x * tf.tanh(tf.nn.softplus(x)),
        "relu": tf.nn.relu,
    }[name]


def target_numpy(name, x):
    """Target values for a float32 grid (float64 result of the float32 TF target)."""
    import tensorflow as tf

    return target_tf(name)(tf.constant(np.asarray(x, np.float32))).numpy().astype(np.float64)
