"""Few-Spike networks converted from ANNs: the FS-swish CNN of MNIST / Fashion-MNIST (spec fs.md D7).

    from tfspike.fs.networks import build_cnn, compile_classifier, evaluate_fs_network, fs_network
    ann = compile_classifier(build_cnn("swish"), 1e-3)
    ann.fit(x_train, y_train, batch_size=128, epochs=2)
    fs_model, report = fs_network(ann, "swish_k16_best")          # the swish sites become FS neurons
    stats = evaluate_fs_network(fs_model, x_test, y_test, energy_profile="45nm_fp32")
    stats["accuracy"], stats["spikes_per_neuron"], stats["sites"], stats["energy"]

``main.py --model_type=FS --network cnn`` trains, converts, fine-tunes and evaluates this network.
The conversion is :func:`tfspike.convert.activations_to_fewspike`; the evaluation pass is the counting
pass of :class:`tfspike.energy.fs.FSCounter` (the logits and every spike from one pass).
"""

import keras
import numpy as np

from tfspike.convert.fewspike import activations_to_fewspike
from tfspike.data.pipeline import make_dataset
from tfspike.distribute import predict
from tfspike.energy.fs import FSCounter
from tfspike.energy.profiles import get_profile
from tfspike.errors import UserError, WeightMismatchError
from tfspike.fs.stats import fs_sites
from tfspike.utils.files import load_keras_model

CNN_LAYERS = ("conv1", "pool1", "conv2", "pool2", "flatten", "dense1", "logits")
EVAL_BATCH_SIZE = 500  # fixed, so that every run evaluates with the same batches whatever --batch_size


def build_cnn(activation="swish", input_shape=(28, 28, 1), num_classes=10):
    """The D7 CNN: Conv32(3x3)-MaxPool-Conv64(3x3)-MaxPool-Flatten-Dense128-Dense(num_classes).

    Args:
        activation: activation of conv1, conv2 and dense1 (``"swish"``, ``"relu"``, ...); the logits
            are linear.
        input_shape: image shape (H, W, C).
        num_classes: output units.

    Returns:
        An uncompiled functional ``keras.Model`` named ``"cnn"`` with the layers :data:`CNN_LAYERS`.
    """
    inp = keras.Input(tuple(input_shape), name="image")
    x = keras.layers.Conv2D(32, 3, activation=activation, name="conv1")(inp)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(64, 3, activation=activation, name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation=activation, name="dense1")(x)
    out = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inp, out, name="cnn")


def compile_classifier(model, learning_rate=1e-3, jit_compile="auto"):
    """Compile ``model`` with Adam(``learning_rate``), sparse categorical cross-entropy on logits and
    accuracy. Returns ``model``."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                  jit_compile=jit_compile)
    return model


def fs_network(ann, fs_params, calibration=None, activation="swish", voltage_scaling="abs_plus_one"):
    """The FS twin of ``ann``: its ``activation`` sites replaced by Few-Spike neurons (weights copied).

    Args:
        ann: a functional or Sequential Keras model (e.g. :func:`build_cnn`); it is not modified.
        fs_params: the FS set of every site: a set name (``"swish_k16_best"``, ``"stoeckl_swish_k16"``,
            a saved preset), a ``.json`` path, or anything :func:`tfspike.fs.params.get_params` takes.
        calibration: optional model inputs; the report then holds ``spike_stats`` on them (spikes per
            neuron and input mean/std per site).
        activation: the activation replaced (``"swish"``/``"silu"``, ``"relu"``, ...).
        voltage_scaling: surrogate scaling of the FS layers (changes gradients only).

    Returns:
        ``(fs_model, report)`` as :func:`~tfspike.convert.activations_to_fewspike` returns them
        (``report["sites"]``, ``report["n_fs_neurons"]``, ``report["mapping"]``).
    """
    fs_model, report = activations_to_fewspike(ann, {activation: fs_params}, voltage_scaling=voltage_scaling,
                                               data=calibration)
    if not report["n_sites"]:
        raise UserError(f"model {ann.name!r} has no {activation} activations to replace by FS neurons")
    return fs_model, report


def classifier_scores(logits, y):
    """``(accuracy, loss)`` of ``logits`` (N, classes) against integer labels ``y``: the exact fraction
    of correct argmaxes and the mean cross-entropy, computed in float64."""
    z = np.asarray(logits, np.float64)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if z.ndim != 2 or len(z) != len(y):
        raise UserError(f"logits of shape {z.shape} do not match {len(y)} labels")
    top = z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z - top).sum(axis=1)) + top[:, 0]
    loss = float(np.mean(log_norm - z[np.arange(len(y)), y]))
    return float(np.mean(np.argmax(z, axis=1) == y)), loss


def evaluate_ann(model, x, y, batch_size=EVAL_BATCH_SIZE):
    """``{"accuracy", "loss"}`` of a classifier on ``(x, y)`` (exact count; loss in float64)."""
    logits = predict(model, make_dataset(x, batch_size=batch_size))
    accuracy, loss = classifier_scores(logits, y)
    return {"accuracy": accuracy, "loss": loss}


def evaluate_fs_network(model, x, y, energy_profile=None, batch_size=EVAL_BATCH_SIZE, jit_compile=True):
    """Accuracy, loss and spikes of an FS network on ``(x, y)``, from one compiled pass.

    The pass is :meth:`tfspike.energy.fs.FSCounter.count` with ``return_outputs=True``: the logits (the
    network's own forward values) and every FS site's spikes, on all of ``x``.

    Args:
        model: a flat functional Keras model with ``FewSpike`` layers (:func:`fs_network` returns one).
        x, y: inputs and integer labels.
        energy_profile: ``None``, or an energy profile name (``"45nm_fp32"``, ``"loihi"``, ...): also
            return the operation counts against the ANN twin.
        batch_size: evaluation batch size.
        jit_compile: XLA-compile the pass.

    Returns:
        ``{"accuracy", "loss", "n_samples", "n_fs_neurons", "spikes_per_neuron", "sites"}`` — per site
        (FS layer name) ``{"n_neurons", "spikes_per_neuron"}``; spikes per neuron are per sample — and,
        with ``energy_profile``, ``"energy"`` (``EnergyReport.to_dict(energy_profile)``) and
        ``"energy_report"`` (the :class:`~tfspike.energy.report.EnergyReport`).
    """
    if energy_profile is not None:
        get_profile(energy_profile)  # an unknown profile fails before the pass
    counter = FSCounter(model, jit_compile=jit_compile)
    if not counter.fs_sites:
        raise UserError(f"model {model.name!r} has no FewSpike layers")
    report, logits = counter.count(x, batch_size=batch_size, return_outputs=True)
    accuracy, loss = classifier_scores(logits, y)
    spikes = {layer.name: layer.spikes for layer in report.layers if layer.kind == "fs"}
    sites = {s["layer"].name: {"n_neurons": s["n_neurons"],
                               "spikes_per_neuron": spikes[s["layer"].name] / s["n_neurons"]} for s in counter.fs_sites}
    n_neurons = sum(s["n_neurons"] for s in counter.fs_sites)
    stats = {"accuracy": accuracy, "loss": loss, "n_samples": int(report.n_samples), "n_fs_neurons": n_neurons,
             "spikes_per_neuron": sum(spikes.values()) / n_neurons, "sites": sites}
    if energy_profile is not None:
        stats["energy"] = report.to_dict(energy_profile)
        stats["energy_report"] = report
    return stats


def load_fs_network(path, input_shape=None, num_classes=None, hint=""):
    """An FS network saved as ``.keras`` (e.g. by ``main.py --model_type=FS --network cnn --save=True``).

    Args:
        path: the ``.keras`` file.
        input_shape: if given, the (H, W, C) the network must take.
        num_classes: if given, the number of logits it must give.
        hint: what to do when the file does not fit (appended to the error).

    Returns:
        ``(model, sites)``: the model and its FS sites (``tfspike.fs.stats.fs_sites``). A file that is not
        loadable, has no ``FewSpike`` layers or has other shapes is a one-line :class:`UserError`.
    """
    tail = f"; {hint}" if hint else ""
    model = load_keras_model(path, "FS network", hint, expected=keras.Model)
    sites = fs_sites(model)
    if not sites:
        raise WeightMismatchError(f"FS network file {path} holds model {model.name!r} without FewSpike layers "
                                  f"(an ANN?){tail}")
    shape = tuple(model.inputs[0].shape[1:])
    if input_shape is not None and (len(model.inputs) != 1 or shape != tuple(input_shape)):
        raise WeightMismatchError(f"FS network file {path} takes inputs of shape {shape}, the data have shape "
                                  f"{tuple(input_shape)}{tail}")
    classes = model.outputs[0].shape[-1]
    if num_classes is not None and (len(model.outputs) != 1 or classes != num_classes):
        raise WeightMismatchError(f"FS network file {path} gives {classes} outputs, the data have {num_classes} "
                                  f"classes{tail}")
    return model, sites
