"""Window calibration (spec §5.6): measure X_n, the largest ReLU activation of each hidden layer, and
save / load it as ``<DATA>-<name>_X_n.json`` = ``{"layers", "x_n", "dataset", "split"}``.

``TTFSModel.reset_windows(x_n)`` turns X_n into windows Δ⁽ⁿ⁾ = (1 + ζ)·X_n (the "measured" window
initialisation). Reading and writing need no TensorFlow; :func:`measure_x_n` loads it.
"""

import json
import math

import numpy as np

from tfspike.errors import UserError
from tfspike.utils.files import read_json
from tfspike.utils.io import write_json_atomic

X_N_HINT = "rerun the ReLU model with --save=True (it writes <DATA>-<name>_X_n.json), or delete the file"


def _hidden_max_fn(model):
    import tensorflow as tf

    from tfspike.ttfs.base import TTFSSpikingLayer

    @tf.function(jit_compile=True, reduce_retracing=True)
    def step(x):
        r, maxima = x, []
        for layer in model.layers:
            if isinstance(layer, TTFSSpikingLayer):
                pre = layer.linear(r)
                if layer.readout:
                    r = pre
                    continue
                r = tf.nn.relu(pre)  # the ReLU activation itself (no noise, no quantisation)
                maxima.append(tf.cast(tf.reduce_max(r), tf.float64))
            else:
                r = layer(r, training=False)
        return tf.stack(maxima)

    return step


def measure_x_n(ttfs_model, x, batch_size=256):
    """X_n of spec §5.6: the largest ReLU activation of each hidden layer over the inputs ``x``.

    Streaming (one max per layer and batch, XLA-compiled once per model and ``configure()``).

    Args:
        ttfs_model: a :class:`tfspike.ttfs.TTFSModel`.
        x: model inputs (an array with a batch axis).
        batch_size: inputs per compiled step.

    Returns:
        a list of floats, one per ``ttfs_model.spiking_layers()``; pass it to
        ``ttfs_model.reset_windows`` and to :func:`write_x_n_json`.

    Example:
        >>> x_n = measure_x_n(snn, x_train)
        >>> snn.reset_windows(x_n)
    """
    import tensorflow as tf

    n_layers = len(ttfs_model.spiking_layers())
    if not n_layers:
        return []
    if len(x) == 0:
        raise UserError("measure_x_n needs at least one input")
    step = ttfs_model.compiled_step("hidden_max", _hidden_max_fn)
    in_dtype = ttfs_model.inputs[0].dtype
    best = np.full(n_layers, -np.inf)
    for start in range(0, len(x), batch_size):
        xb = tf.convert_to_tensor(np.asarray(x[start:start + batch_size]), dtype=in_dtype)
        best = np.maximum(best, step(xb).numpy())
    return [float(v) for v in best]


def write_x_n_json(path, layers, x_n, dataset=None, split="train"):
    """Write X_n as JSON (spec §5.6), atomically: ``{"layers", "x_n", "dataset", "split"}``.

    Args:
        path: the JSON file.
        layers: the hidden-layer names, or the TTFS model itself.
        x_n: one finite value per hidden layer.
        dataset, split: where X_n was measured (recorded as is).

    Returns ``path``.
    """
    if hasattr(layers, "spiking_layers"):
        layers = [l.name for l in layers.spiking_layers()]
    layers, x_n = list(layers), [float(v) for v in x_n]
    if len(layers) != len(x_n):
        raise UserError(f"X_n has {len(x_n)} values for {len(layers)} hidden layers")
    bad = [n for n, v in zip(layers, x_n) if not math.isfinite(v)]
    if bad:
        raise UserError(f"X_n is not finite for layers {bad}")
    write_json_atomic(path, {"layers": layers, "x_n": x_n, "dataset": dataset, "split": split})
    return path


def read_x_n_json(path, model):
    """Read X_n written by :func:`write_x_n_json` for ``model`` (a TTFSModel) and validate it.

    Returns:
        a list of floats, one per ``model.spiking_layers()``, ready for ``model.reset_windows``.

    Raises:
        UserError: one line naming ``path``: the file is missing or not JSON, has no ``"x_n"`` list,
            has another number of values than the model has spiking layers, or a value that is not a
            finite number > 0 (a window of width 0 would make every spike a window violation). Each
            message ends with what to do (:data:`X_N_HINT`).
    """
    data = read_json(path, "X_n", X_N_HINT)
    if not isinstance(data, dict) or "x_n" not in data:
        raise UserError(f"{path} has no \"x_n\" entry (expected {{\"layers\", \"x_n\", \"dataset\", \"split\"}}); "
                        f"{X_N_HINT}")
    x_n = data["x_n"]
    if not isinstance(x_n, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x_n):
        raise UserError(f"{path}: \"x_n\" must be a list of numbers, got {json.dumps(x_n)[:80]}; {X_N_HINT}")
    n_layers = len(model.spiking_layers())
    if len(x_n) != n_layers:
        raise UserError(f"{path} has {len(x_n)} X_n values, the model has {n_layers} spiking layers; {X_N_HINT}")
    names = data.get("layers")
    names = names if isinstance(names, list) and len(names) == len(x_n) else [f"#{i}" for i in range(len(x_n))]
    bad = [f"{n}={v}" for n, v in zip(names, x_n) if not (math.isfinite(v) and v > 0)]
    if bad:
        raise UserError(f"{path}: X_n must be finite and > 0, got {', '.join(map(str, bad))}; {X_N_HINT}")
    return [float(v) for v in x_n]
