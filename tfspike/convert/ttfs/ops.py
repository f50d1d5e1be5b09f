"""Primitive operations: what a conversion rule turns one Keras layer into (spec §5.1).

- :class:`LinearOp`   — Dense / Conv2D (weights read in float64);
- :class:`ReluOp`     — ``activation="relu"``, ``ReLU()`` or ``Activation("relu")``;
- :class:`AffineOp`   — a per-channel map a·v + s: BatchNormalization (inference form), Rescaling, Normalization;
- :class:`PoolOp`     — MaxPooling2D;  :class:`FlattenOp` — Flatten;
- :class:`IdentityOp` — inference-time identities (Dropout & co.), removed;
- :class:`SoftmaxOp`  — a final softmax, removed.

Every op keeps the Keras ``layer`` it came from (for names, shapes and messages) and a ``note`` that
the mapping report quotes. Ops hold NumPy arrays, so they compare by identity (``eq=False``).
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """Sliding-window geometry of a Conv2D or MaxPooling2D (channels last)."""

    size: tuple  # (kh, kw): kernel or pool size
    strides: tuple  # (sh, sw)
    padding: str  # "same" or "valid"


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Op:
    """Base of the primitive operations: the source layer and a note for the report."""

    layer: object
    note: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class LinearOp(Op):
    """Dense (``conv is None``, kernel (n_in, n_out)) or Conv2D (kernel (kh, kw, c_in, c_out))."""

    kernel: np.ndarray
    bias: np.ndarray
    conv: ConvGeometry = None


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class ReluOp(Op):
    """A plain ReLU: the preceding linear layer becomes a spiking layer."""


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class AffineOp(Op):
    """v ↦ scale·v + shift, per channel (or one scalar each)."""

    scale: np.ndarray
    shift: np.ndarray


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class PoolOp(Op):
    """Max-pooling over ``pool`` (becomes sign-aware when a pending affine has negative scales)."""

    pool: ConvGeometry


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class FlattenOp(Op):
    """Flatten in channels-last order."""


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class IdentityOp(Op):
    """An inference-time identity (Dropout & co.): removed."""


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SoftmaxOp(Op):
    """A final softmax: removed, the TTFS model returns logits."""
