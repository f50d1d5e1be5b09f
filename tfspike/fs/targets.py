"""Target activations and fitting grids for FS fitting, and the grid MSE of an FS set.

Module level is NumPy only, so the CLI can read :data:`TARGETS` and the default grids without
loading TensorFlow; the TensorFlow targets and :func:`grid_mse` import it when called.
"""

import numpy as np

from tfspike.errors import UserError

TARGETS = ("swish", "silu", "sigmoid", "gelu", "tanh", "softplus", "mish", "relu")
ALIASES = {"silu": "swish"}
# The fitting grid (lo, hi, n) of np.linspace: the TBPI grid, and the symmetric one of the bounded targets.
CANONICAL_GRID = (-8.0, 12.0, 100000)
DEFAULT_GRIDS = {"sigmoid": (-10.0, 10.0, 100000), "tanh": (-10.0, 10.0, 100000)}


def canonical(name):
    """The canonical target name (``"silu"`` → ``"swish"``); a callable is returned as is."""
    if callable(name):
        return name
    key = str(name).lower()
    key = ALIASES.get(key, key)
    if key not in TARGETS:
        raise UserError(f"unknown target activation {name!r} (choose from {', '.join(TARGETS)})")
    return key


def default_grid(target):
    """The fitting grid of ``target``: :data:`DEFAULT_GRIDS` entry or :data:`CANONICAL_GRID`."""
    return DEFAULT_GRIDS.get(canonical(target), CANONICAL_GRID) if not callable(target) else CANONICAL_GRID


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


def grid_mse(params, target="swish", grid=CANONICAL_GRID):
    """MSE of an FS set (anything with ``h``, ``d``, ``T``) against ``target`` on ``linspace(*grid)``
    (float32 forward, float64 mean)."""
    import tensorflow as tf

    from tfspike.fs.dynamics import fs_forward  # loads TensorFlow

    x = make_grid(grid)
    y = target_numpy(target, x)
    out = fs_forward(tf.constant(x), params.h, params.d, params.T).numpy()
    return float(np.mean((out.astype(np.float64) - y) ** 2))
