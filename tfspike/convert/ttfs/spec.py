"""Typed layer specs: the planner's description of each layer of the TTFS model it will build.

One frozen dataclass per TTFS layer kind, with float64 NumPy weights and the provenance that the
mapping report shows (``sources``: the original layers folded into it; ``rules``: what was done).
"""

import dataclasses
from typing import ClassVar

import numpy as np


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class LayerSpec:
    """Base: the TTFS layer's name, its source layers and the applied rules."""

    kind: ClassVar[str]
    name: str
    sources: tuple
    rules: tuple

    def report(self):
        """This layer's entry of the mapping report (JSON-ready)."""
        return {"ttfs_layer": self.name, "kind": self.kind, "sources": list(self.sources), "rules": list(self.rules),
                "bias_map": False, "negative_pool_signs": None}


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class LinearSpec(LayerSpec):
    """Base of Dense and Conv2D specs: folded float64 kernel and bias.

    ``readout`` marks the final, non-spiking layer (the logits). ``compare_with`` names the original
    layer whose output a hidden layer's output must equal (its ReLU), for the float64 check.
    """

    kernel: np.ndarray
    bias: np.ndarray
    readout: bool
    compare_with: str = None

    @property
    def units(self):
        return int(self.kernel.shape[-1])

    def report(self):
        entry = super().report()
        entry["kind"] = self.kind + ("_readout" if self.readout else "")
        return entry


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class DenseSpec(LinearSpec):
    """A :class:`tfspike.ttfs.TTFSDense`: kernel (n_in, units)."""

    kind: ClassVar[str] = "dense"


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class ConvSpec(LinearSpec):
    """A :class:`tfspike.ttfs.TTFSConv2D`: kernel (kh, kw, c_in, filters), optional bias correction map."""

    kind: ClassVar[str] = "conv"
    kernel_size: tuple
    strides: tuple
    padding: str
    correction: np.ndarray = None  # (H_out, W_out, filters) border correction of spec §3.3, or None

    def report(self):
        entry = super().report()
        entry["bias_map"] = self.correction is not None
        return entry


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class PoolSpec(LayerSpec):
    """A :class:`tfspike.ttfs.TTFSMaxPool2D`; ``sign`` −1 takes the latest spike in that channel (spec §4)."""

    kind: ClassVar[str] = "pool"
    pool_size: tuple
    strides: tuple
    padding: str
    sign: np.ndarray

    def report(self):
        entry = super().report()
        entry["negative_pool_signs"] = int((self.sign < 0).sum())
        return entry


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class FlattenSpec(LayerSpec):
    """A ``keras.layers.Flatten`` (channels last)."""

    kind: ClassVar[str] = "flatten"
