"""Presets, training recipes and the builder of the benchmark RSNNs (spec §4.2/§4.3).

A preset is the task's network shape (:mod:`tfspike.rsnn.tasks`) plus the neuron's row for that task
(:mod:`tfspike.rsnn.neurons`), with overrides applied. :func:`preset` and :func:`recipe` are free of
TensorFlow; :func:`build_rsnn` loads it when it builds the model.

Example:
    >>> recipe("BRF", "ECG")["batch_size"]
    16
    >>> model = build_rsnn("BRF", "ECG")          # 4-36-6, 1,734 parameters
    >>> logits = model(x)                          # (batch, 1300, 6)
"""

from tfspike.errors import UserError
from tfspike.rsnn.neurons import neuron_names, neuron_spec
from tfspike.rsnn.tasks import NETWORK_COLUMNS, OPTIONAL_COLUMNS, TRAIN_KEYS, task_shape

# Override keys every neuron accepts: the shape, the loss window, the readout, and the hidden-layer
# arguments common to all sequence layers (surrogate, BPTT form).
COMMON_HIDDEN_ARGUMENTS = ("surrogate", "bptt")
COMMON_NETWORK_KEYS = (("input_units", "hidden_units", "output_units", "steps", "per_step_labels", "use_bias")
                       + NETWORK_COLUMNS + OPTIONAL_COLUMNS + COMMON_HIDDEN_ARGUMENTS)


def preset(neuron, task, **overrides):
    """The full preset (network and training) of ``neuron`` on ``task`` with ``overrides`` applied.

    ``None`` overrides are ignored. A key of another neuron (e.g. ``omega_init`` for ALIF) or an
    unknown key raises :class:`UserError`.
    """
    spec = neuron_spec(neuron)
    p = task_shape(task)
    p.update(spec.preset_row(task))
    p["use_bias"] = False
    p.setdefault("tbptt", 0)
    allowed = set(COMMON_NETWORK_KEYS) | set(TRAIN_KEYS) | set(spec.hidden_arguments)
    others = {k for name in neuron_names() for k in neuron_spec(name).hidden_arguments}
    unknown = sorted(set(overrides) - allowed - others)
    if unknown:
        raise UserError(f"unknown preset override(s): {', '.join(unknown)}")
    foreign = sorted(set(overrides) - allowed)
    if foreign:
        raise UserError(f"preset override(s) {', '.join(foreign)} do not apply to neuron {neuron}")
    p.update({k: v for k, v in overrides.items() if v is not None})
    p["neuron"], p["task"] = neuron, task
    return p


def recipe(neuron, task, **overrides):
    """Training hyperparameters of the preset (learning rate, batch sizes, epochs E, global clip norm)."""
    p = preset(neuron, task, **overrides)
    return {k: p[k] for k in TRAIN_KEYS}


def build_rsnn(neuron, task, **overrides):
    """The RSNN of ``neuron`` (any registered neuron: BRF | RF | ALIF | ...) for ``task``
    (SMNIST | PSMNIST | ECG | SHD), built.

    ``overrides`` replace preset entries, e.g. ``hidden_units=64``, ``omega_init=(3, 5)``,
    ``sub_seq_length=10``, ``use_bias=True`` or ``surrogate=DoubleGaussian(form="fgi")``.
    """
    # Delayed import: preset() and the command line's flag checks stay free of TensorFlow.
    from tfspike.rsnn.model import RSNN

    spec = neuron_spec(neuron)
    p = preset(neuron, task, **overrides)
    hidden = {"use_bias": p["use_bias"]}
    hidden.update({k: p[k] for k in spec.hidden_arguments + COMMON_HIDDEN_ARGUMENTS if k in p})
    readout = {"tau_mem_init": p["tau_out_init"], "use_bias": p["use_bias"] and spec.readout_bias}
    model = RSNN(neuron, p["hidden_units"], p["output_units"], hidden_config=hidden, readout_config=readout,
                 per_step_labels=p["per_step_labels"], label_last=p["label_last"],
                 sub_seq_length=p["sub_seq_length"], tbptt=p["tbptt"], name=f"{task.lower()}_{neuron.lower()}_rsnn")
    model.build((None, p["steps"], p["input_units"]))
    return model
