"""Operation counts per layer and per sample, and their energy under a profile."""

from dataclasses import dataclass, field

from tfspike.energy.profiles import get_profile

DEFAULT_PROFILE = "45nm_fp32"


@dataclass
class LayerCount:
    """Operations of one layer per sample (averaged over the evaluated samples).

    Args:
        name: layer name.
        kind: what the layer is (``"dense"``, ``"conv"``, ``"pool"``, ``"fs"``, ``"brf"``, ``"readout"``, ...).
        spikes: spikes the layer's neurons emit.
        synops: accumulates done by the layer's *incoming* synapses (its kernel) because of the spikes
            that arrive at its input: Σ over those spikes of each spike's fan-out into this layer. Every
            operation is booked once, on the layer whose weights do it.
        macs: multiply-accumulates of its incoming synapses where its input is analog.
        neuron_updates: state updates of the layer's neurons.
    """

    name: str
    kind: str
    spikes: float = 0.0
    synops: float = 0.0
    macs: float = 0.0
    neuron_updates: float = 0.0

    def joules(self, profile):
        p = get_profile(profile)
        return self.synops * p.synop_j + self.macs * p.mac_j + self.neuron_updates * p.neuron_update_j

    def to_dict(self):
        return {"name": self.name, "kind": self.kind, "spikes": float(self.spikes), "synops": float(self.synops),
                "macs": float(self.macs), "neuron_updates": float(self.neuron_updates)}


@dataclass
class EnergyReport:
    """Counts of a spiking network and of its ANN twin, per sample.

    Args:
        layers: the spiking network's :class:`LayerCount` list, in order.
        ann_layers: the ANN twin's counts (MACs, and for recurrent twins neuron updates), in order.
        n_samples: how many samples the averages are over.
        rule: one line saying how this family is counted.
    """

    layers: list
    ann_layers: list
    n_samples: int
    rule: str = ""
    meta: dict = field(default_factory=dict)

    def total(self, key):
        return float(sum(getattr(layer, key) for layer in self.layers))

    @property
    def synops(self):
        return self.total("synops")

    @property
    def macs(self):
        return self.total("macs")

    @property
    def neuron_updates(self):
        return self.total("neuron_updates")

    @property
    def ann_macs(self):
        return float(sum(layer.macs for layer in self.ann_layers))

    def ann_joules(self, profile=DEFAULT_PROFILE):
        return float(sum(layer.joules(profile) for layer in self.ann_layers))

    def joules(self, profile=DEFAULT_PROFILE):
        """Energy per sample. A device that is not event-driven runs the network as its ANN twin."""
        p = get_profile(profile)
        if not p.event_driven:
            return self.ann_joules(p)
        return float(sum(layer.joules(p) for layer in self.layers))

    def ratio_vs_ann(self, profile=DEFAULT_PROFILE):
        ann = self.ann_joules(profile)
        return self.joules(profile) / ann if ann else float("nan")

    def to_dict(self, profile=DEFAULT_PROFILE):
        """The ``energy`` block of a results JSON (per sample)."""
        p = get_profile(profile)
        return {"profile": p.name, "n_samples": int(self.n_samples), "rule": self.rule,
                "per_sample": {"synops": self.synops, "macs": self.macs, "neuron_updates": self.neuron_updates,
                               "joules": self.joules(p)},
                "layers": [layer.to_dict() for layer in self.layers],
                "ann_twin": {"macs": self.ann_macs, "neuron_updates": float(sum(l.neuron_updates for l in self.ann_layers)),
                             "joules": self.ann_joules(p), "layers": [layer.to_dict() for layer in self.ann_layers]},
                "ratio_vs_ann": self.ratio_vs_ann(p), **self.meta}

    def table(self, profile=DEFAULT_PROFILE):
        """A per-layer text table (per sample)."""
        p = get_profile(profile)
        rows = [f"{'layer':<28}{'kind':<10}{'spikes':>12}{'synops':>14}{'MACs':>14}{'updates':>12}{'joules':>12}"]
        for layer in self.layers:
            rows.append(f"{layer.name[:27]:<28}{layer.kind:<10}{layer.spikes:>12.1f}{layer.synops:>14.1f}"
                        f"{layer.macs:>14.1f}{layer.neuron_updates:>12.1f}{layer.joules(p):>12.3e}")
        rows.append(f"{'total (SNN)':<38}{self.total('spikes'):>12.1f}{self.synops:>14.1f}{self.macs:>14.1f}"
                    f"{self.neuron_updates:>12.1f}{self.joules(p):>12.3e}")
        rows.append(f"{'ANN twin':<38}{'':>12}{'':>14}{self.ann_macs:>14.1f}{'':>12}{self.ann_joules(p):>12.3e}")
        rows.append(f"energy per sample on {p.name}: SNN {self.joules(p):.3e} J, ANN twin {self.ann_joules(p):.3e} J, "
                    f"ratio {self.ratio_vs_ann(p):.4f}")
        return "\n".join(rows)
