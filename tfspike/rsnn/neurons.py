"""Registry of the RSNN hidden neurons: one :class:`NeuronSpec` per neuron, free of TensorFlow.

A descriptor declares in one place everything the builder, the presets, the reference-checkpoint
import and the command line need to know about a neuron:

* ``layer`` / ``cell``: its sequence layer and ``keras.layers.RNN`` cell as ``"module:Class"``
  strings, imported only when a model is built (so ``--help`` and flag errors never load TensorFlow);
* ``parameters``: its trainable neuron weights (attributes of the cell);
* ``hidden_arguments``: the preset / override keys handed to the sequence layer;
* ``presets``: per task, its preset row (init ranges, readout init, loss window, training recipe);
* ``reference_keys``: reference checkpoint key (PyTorch state-dict name, "." → "/") → cell weight;
* ``flags``: its command-line flags (:class:`NeuronFlag`);
* ``readout_bias``: whether ``use_bias=True`` also gives the readout a bias.

Adding a neuron is one new module (cell + sequence layer) and one :func:`register_neuron` call.

Example:
    >>> neuron_spec("BRF").presets["ECG"]["omega_init"]
    (3.0, 5.0)
    >>> neuron_overrides("BRF", argparse.Namespace(omega_init=[3, 6]))
    {'omega_init': (3, 6)}
"""

import copy
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Tuple, Union

from tfspike.cli.common import positive_float
from tfspike.errors import UserError
from tfspike.rsnn.tasks import NETWORK_COLUMNS, OPTIONAL_COLUMNS, TASKS, TRAIN_KEYS


@dataclass(frozen=True)
class NeuronFlag:
    """One command-line flag ``--<name>`` that sets the preset key ``key`` (default: ``name``).

    Args:
        name: flag name without dashes; also the argparse ``dest``.
        help: help text (the neurons it applies to are appended).
        type: argparse ``type`` of each value.
        nargs: argparse ``nargs`` (2 for a range or a (mean, std)); values then become a tuple.
        metavar: argparse ``metavar``.
        key: the preset / override key the flag sets.

    Example:
        >>> NeuronFlag("omega_init", "U(low, high) init of raw omega", nargs=2, metavar=("LOW", "HIGH"))
    """

    name: str
    help: str
    type: Callable = float
    nargs: Optional[int] = None
    metavar: Union[str, Tuple[str, ...], None] = None
    key: Optional[str] = None

    @property
    def preset_key(self):
        return self.key or self.name

    def argparse_kwargs(self, owners=()):
        """Keyword arguments of ``add_argument`` (default None: "not given"), help naming ``owners``."""
        kwargs = {"type": self.type, "default": None,
                  "help": f"{self.help} [{', '.join(owners)}]" if owners else self.help}
        if self.nargs is not None:
            kwargs["nargs"] = self.nargs
        if self.metavar is not None:
            kwargs["metavar"] = self.metavar
        return kwargs


@dataclass(frozen=True)
class NeuronSpec:
    """Descriptor of one hidden neuron of the RSNN (see the module docstring for the fields).

    Example:
        >>> spec = NeuronSpec("LIF", layer="mypkg.lif:LIF", cell="mypkg.lif:LIFCell", parameters=("tau_mem",),
        ...                   hidden_arguments=("tau_mem_init",), presets={"ECG": {...}},
        ...                   reference_keys={"hidden/tau_mem": "tau_mem"})
        >>> register_neuron(spec)
    """

    name: str
    layer: str
    cell: str
    parameters: Tuple[str, ...]
    hidden_arguments: Tuple[str, ...]
    presets: Mapping[str, Mapping[str, Any]]
    reference_keys: Mapping[str, str] = field(default_factory=dict)
    flags: Tuple[NeuronFlag, ...] = ()
    readout_bias: bool = False

    def __post_init__(self):
        where = f"neuron {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise UserError(f"neuron name must be a non-empty string, got {self.name!r}")
        for what in ("layer", "cell"):
            ref = getattr(self, what)
            if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
                raise UserError(f"{where}: {what} must be 'module:Class', got {ref!r}")
        bad = set(self.reference_keys.values()) - set(self.parameters)
        if bad:
            raise UserError(f"{where}: reference_keys name {', '.join(sorted(bad))}, not among its parameters "
                            f"{', '.join(self.parameters)}")
        unknown_tasks = set(self.presets) - set(TASKS)
        if unknown_tasks or not self.presets:
            raise UserError(f"{where}: presets must be given for some of {', '.join(TASKS)}, "
                            f"got {', '.join(sorted(self.presets)) or 'none'}")
        required = set(NETWORK_COLUMNS) | set(TRAIN_KEYS)
        allowed = required | set(OPTIONAL_COLUMNS) | set(self.hidden_arguments)
        for task, row in self.presets.items():
            missing, extra = required - set(row), set(row) - allowed
            if missing or extra:
                raise UserError(f"{where}: preset row {task} "
                                + (f"lacks {', '.join(sorted(missing))}" if missing else "")
                                + ("; " if missing and extra else "")
                                + (f"has keys that are not hidden_arguments: {', '.join(sorted(extra))}"
                                   if extra else ""))
        for flag in self.flags:
            if flag.preset_key not in self.hidden_arguments:
                raise UserError(f"{where}: flag --{flag.name} sets {flag.preset_key!r}, not one of its "
                                f"hidden_arguments {', '.join(self.hidden_arguments)}")

    def layer_class(self):
        """The sequence-layer class (imports its module, and with it TensorFlow)."""
        return _import_object(self.layer, self.name)

    def cell_class(self):
        """The ``keras.layers.RNN`` cell class."""
        return _import_object(self.cell, self.name)

    def preset_row(self, task):
        """A deep copy of the preset row of ``task``."""
        if task not in self.presets:
            raise UserError(f"neuron {self.name} has no preset for task {task}; it has {', '.join(self.presets)}")
        return copy.deepcopy(dict(self.presets[task]))


def _import_object(ref, neuron):
    module, name = ref.split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise UserError(f"neuron {neuron}: cannot import {ref}: {e}") from e


# ---------------------------------------------------------------- flags
# The readout is the same for every neuron: its flag applies to all of them.
READOUT_FLAGS = (
    NeuronFlag("tau_out_init", "N(mean, std) init of the readout's raw tau_mem", nargs=2, metavar=("MEAN", "STD")),
)
_READOUT_FLAG_NAMES = {f.name for f in READOUT_FLAGS}
_OMEGA_INIT = NeuronFlag("omega_init", "U(low, high) init of the raw angular frequency omega", nargs=2,
                         metavar=("LOW", "HIGH"))
_B_OFFSET_INIT = NeuronFlag("b_offset_init", "U(low, high) init of the raw damping offset b'", nargs=2,
                            metavar=("LOW", "HIGH"))
_MAX_OMEGA_DT = NeuronFlag("max_omega_dt", "guard: |omega| is clamped to max_omega_dt/dt "
                           "(presets: BRF 0.999, RF no clamp)", type=positive_float)
_TAU_MEM_INIT = NeuronFlag("tau_mem_init", "N(mean, std) init of the raw membrane time constant tau_mem", nargs=2,
                           metavar=("MEAN", "STD"))
_TAU_ADP_INIT = NeuronFlag("tau_adp_init", "N(mean, std) init of the raw adaptation time constant tau_adp",
                           nargs=2, metavar=("MEAN", "STD"))

# ---------------------------------------------------------------- presets (spec §4.2, §4.3)
# BRF and RF share one column.
_RESONATOR_PRESETS = {
    "SMNIST": dict(omega_init=(15.0, 50.0), b_offset_init=(0.1, 1.0), tau_out_init=(20.0, 5.0), label_last=True,
                   sub_seq_length=0, learning_rate=0.1, batch_size=256, val_batch_size=256, test_batch_size=256,
                   epochs=300, clipnorm=1.0),
    "PSMNIST": dict(omega_init=(15.0, 85.0), b_offset_init=(0.1, 1.0), tau_out_init=(20.0, 1.0), label_last=False,
                    sub_seq_length=0, learning_rate=0.1, batch_size=256, val_batch_size=256, test_batch_size=256,
                    epochs=300, clipnorm=1.0),
    "ECG": dict(omega_init=(3.0, 5.0), b_offset_init=(0.1, 1.0), tau_out_init=(20.0, 1.0), label_last=False,
                sub_seq_length=0, learning_rate=0.1, batch_size=16, val_batch_size=61, test_batch_size=141,
                epochs=400, clipnorm=None),
    "SHD": dict(omega_init=(5.0, 10.0), b_offset_init=(2.0, 3.0), tau_out_init=(20.0, 5.0), label_last=False,
                sub_seq_length=0, learning_rate=0.075, batch_size=32, val_batch_size=256, test_batch_size=256,
                epochs=20, clipnorm=None),
}
_ALIF_PRESETS = {
    # (P)S-MNIST ALIF trains with the reference's TBPTT(50): 17 Adam updates per minibatch (spec §4.3).
    "SMNIST": dict(tau_mem_init=(20.0, 5.0), tau_adp_init=(200.0, 50.0), tau_out_init=(20.0, 5.0), label_last=True,
                   sub_seq_length=0, learning_rate=1e-3, batch_size=256, val_batch_size=256, test_batch_size=256,
                   epochs=300, clipnorm=None, tbptt=50),
    "PSMNIST": dict(tau_mem_init=(20.0, 5.0), tau_adp_init=(200.0, 50.0), tau_out_init=(20.0, 5.0), label_last=False,
                    sub_seq_length=0, learning_rate=1e-3, batch_size=256, val_batch_size=256, test_batch_size=256,
                    epochs=300, clipnorm=None, tbptt=50),
    "ECG": dict(tau_mem_init=(20.0, 0.5), tau_adp_init=(7.0, 0.2), tau_out_init=(20.0, 0.5), label_last=False,
                sub_seq_length=10, learning_rate=0.05, batch_size=64, val_batch_size=61, test_batch_size=141,
                epochs=400, clipnorm=None),
    "SHD": dict(tau_mem_init=(20.0, 5.0), tau_adp_init=(150.0, 10.0), tau_out_init=(20.0, 5.0), label_last=False,
                sub_seq_length=10, learning_rate=0.075, batch_size=32, val_batch_size=256, test_batch_size=256,
                epochs=20, clipnorm=None),
}
_RESONATOR_REFERENCE_KEYS = {"hidden/omega": "omega", "hidden/b_offset": "b_offset"}

BUILTIN_NEURONS = (
    NeuronSpec("BRF", layer="tfspike.rsnn.brf:BRF", cell="tfspike.rsnn.brf:BRFCell", parameters=("omega", "b_offset"),
               hidden_arguments=("omega_init", "b_offset_init", "dt", "theta", "gamma", "max_omega_dt"),
               presets=_RESONATOR_PRESETS, reference_keys=_RESONATOR_REFERENCE_KEYS,
               flags=(_OMEGA_INIT, _B_OFFSET_INIT, _MAX_OMEGA_DT)),
    NeuronSpec("RF", layer="tfspike.rsnn.brf:RF", cell="tfspike.rsnn.brf:RFCell", parameters=("omega", "b_offset"),
               hidden_arguments=("omega_init", "b_offset_init", "dt", "theta", "max_omega_dt"),
               presets=_RESONATOR_PRESETS, reference_keys=_RESONATOR_REFERENCE_KEYS,
               flags=(_OMEGA_INIT, _B_OFFSET_INIT, _MAX_OMEGA_DT)),
    NeuronSpec("ALIF", layer="tfspike.rsnn.alif:ALIF", cell="tfspike.rsnn.alif:ALIFCell",
               parameters=("tau_mem", "tau_adp"), hidden_arguments=("tau_mem_init", "tau_adp_init", "theta0", "beta"),
               presets=_ALIF_PRESETS, reference_keys={"hidden/tau_mem": "tau_mem", "hidden/tau_adp": "tau_adp"},
               flags=(_TAU_MEM_INIT, _TAU_ADP_INIT), readout_bias=True),
)

# ---------------------------------------------------------------- registry
_REGISTRY = {}


def register_neuron(spec):
    """Add ``spec`` to the registry (the builder, presets, reference import and CLI then know it).

    A flag name shared with an already registered neuron must be declared identically.
    Returns ``spec``.
    """
    if not isinstance(spec, NeuronSpec):
        raise UserError(f"register_neuron expects a NeuronSpec, got {type(spec).__name__}")
    if spec.name in _REGISTRY:
        raise UserError(f"neuron {spec.name} is already registered")
    known = {f.name: f for f, _ in neuron_flags()}
    for flag in spec.flags:
        if flag.name in _READOUT_FLAG_NAMES:
            raise UserError(f"neuron {spec.name}: --{flag.name} is a readout flag of every neuron; do not redeclare it")
        if flag.name in known and known[flag.name] != flag:
            raise UserError(f"neuron {spec.name} declares --{flag.name} differently from the registered neurons")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_neuron(name):
    """Remove a neuron from the registry (the inverse of :func:`register_neuron`, e.g. after a test)."""
    neuron_spec(name)
    del _REGISTRY[name]


def neuron_spec(name):
    """The :class:`NeuronSpec` of ``name``; :class:`UserError` for an unknown neuron."""
    if name not in _REGISTRY:
        raise UserError(f"unknown neuron {name!r}; choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def neuron_names():
    """The registered neuron names, in registration order."""
    return tuple(_REGISTRY)


def neuron_flags():
    """``[(flag, owners)]``: every neuron flag once, with the names of the neurons it applies to.

    The readout flags come last and apply to every neuron."""
    flags, owners = {}, {}
    for spec in _REGISTRY.values():
        for flag in spec.flags:
            flags.setdefault(flag.name, flag)
            owners.setdefault(flag.name, []).append(spec.name)
    rows = [(flags[n], tuple(owners[n])) for n in flags]
    return rows + [(flag, neuron_names()) for flag in READOUT_FLAGS]


def add_neuron_arguments(group):
    """Add every neuron flag (``--omega_init``, ``--tau_mem_init``, ...) once to an argparse parser or
    argument group, each with ``default=None`` and a help naming the neurons it applies to."""
    for flag, owners in neuron_flags():
        group.add_argument(f"--{flag.name}", **flag.argparse_kwargs(owners))


def neuron_overrides(neuron, args):
    """The preset overrides given on the command line for ``neuron``: ``{preset key: value}``.

    ``args`` is the parsed namespace (flags absent from it count as not given); ``nargs`` values
    become tuples. A flag given for a neuron it does not apply to raises a one-line :class:`UserError`.
    """
    neuron_spec(neuron)
    overrides = {}
    for flag, owners in neuron_flags():
        value = getattr(args, flag.name, None)
        if value is None:
            continue
        if neuron not in owners:
            if len(owners) == 1:
                raise UserError(f"--{flag.name} applies to --model_type={owners[0]} only")
            raise UserError(f"--{flag.name} does not apply to --model_type={neuron} "
                            f"(only to {', '.join(owners)})")
        overrides[flag.preset_key] = tuple(value) if isinstance(value, list) else value
    return overrides


for _spec in BUILTIN_NEURONS:
    register_neuron(_spec)
del _spec
