"""One Few-Spike parameter triple (h, d, T) and the two orderings it can be written in.

Every set inside ``tfspike`` is in the canonical "post" ordering (spec fs.md §1.2): the reset after
the spike of step k is h[k]. Stöckl's fitting scripts (``find_coeffs.py``) use the "pre" ordering,
where it is h[k+1]; :func:`pre_to_post` and :func:`post_to_pre` convert exactly.

NumPy only (no TensorFlow): the CLI and the trend fits use it before any model is built.
"""

from dataclasses import dataclass, field

import numpy as np

from tfspike.errors import UserError
from tfspike.utils.io import write_json_atomic

ORDERINGS = ("post", "pre")


def check_triple(h, d, T, name="parameter set"):
    """``(h, d, T)`` as finite float32 vectors of one length K >= 1; ``UserError`` naming ``name`` otherwise."""
    try:
        arrays = [np.asarray(a, dtype=np.float64).astype(np.float32).reshape(-1) for a in (h, d, T)]
    except (TypeError, ValueError) as e:
        raise UserError(f"FS {name}: h, d and T must be lists of numbers ({e})") from None
    K = arrays[0].shape[0]
    if K < 1 or any(a.shape[0] != K for a in arrays):
        raise UserError(f"FS {name}: h, d and T must have the same length K >= 1, "
                        f"got {[a.shape[0] for a in arrays]}")
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise UserError(f"FS {name}: h, d and T must be finite")
    return arrays


@dataclass
class FSParams:
    """One FS parameter triple (float32, post ordering) with provenance.

    Args:
        h, d, T: K-vectors (reset amounts, output weights, thresholds), converted to float32.
        name: label (a preset name, ``"custom"``, ...).
        meta: provenance written next to the numbers by :meth:`save` (target, seed, losses, ...).

    Example:
        >>> p = FSParams([0.5, 0.0], [1.0, 0.5], [0.0, 0.25], name="toy")
        >>> p.K, p.save("toy.json")
    """

    h: np.ndarray
    d: np.ndarray
    T: np.ndarray
    name: str = "custom"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.h, self.d, self.T = check_triple(self.h, self.d, self.T, self.name)

    @property
    def K(self):
        return int(self.h.shape[0])

    def as_tuple(self):
        return self.h, self.d, self.T

    def to_dict(self):
        return {"name": self.name, "K": self.K, "ordering": "post",
                "h": [float(v) for v in self.h], "d": [float(v) for v in self.d],
                "T": [float(v) for v in self.T], **{k: v for k, v in self.meta.items()
                                                    if k not in ("name", "K", "ordering", "h", "d", "T")}}

    def save(self, path):
        """Write the set as JSON (atomically) to ``path``; ``get_params(path)`` reads it back exactly."""
        write_json_atomic(path, self.to_dict())
        return path


def pre_to_post(h, d, T):
    """Stöckl "pre" ordering → "post": h_post[k] = h_pre[k+1] (k < K-1), h_post[K-1] = 0."""
    h, d, T = check_triple(h, d, T, "pre set")
    h_post = np.zeros_like(h)
    h_post[:-1] = h[1:]
    return h_post, d.copy(), T.copy()


def post_to_pre(h, d, T):
    """"post" ordering → Stöckl "pre": h_pre[0] = 0, h_pre[k] = h_post[k-1] (k >= 1)."""
    h, d, T = check_triple(h, d, T, "post set")
    h_pre = np.zeros_like(h)
    h_pre[1:] = h[:-1]
    return h_pre, d.copy(), T.copy()
