"""Few-Spike parameter sets: presets, loaders, savers and the pre/post ordering converters.

Every set inside ``tfspike`` is in the canonical "post" ordering (spec fs.md §1.2). Sets stored in
Stöckl's "pre" ordering (``find_coeffs.py``) are converted with :func:`pre_to_post`; loaders of
external files take an explicit ``ordering=`` with no default.
"""

import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from tfspike.errors import UserError

PRESET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets")
ORDERINGS = ("post", "pre")
# Shipped fitted sets: produced by `python main.py --model_type=FS ... --save_preset=<name>`.
FITTED_PRESETS = ("swish_k16_random", "swish_k16_gaussian", "swish_k16_tbpi", "swish_k16_best")


@dataclass
class FSParams:
    """One FS parameter triple (float32, post ordering) with provenance."""

    h: np.ndarray
    d: np.ndarray
    T: np.ndarray
    name: str = "custom"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.h, self.d, self.T = _check_triple(self.h, self.d, self.T, self.name)

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
        """Write the set as JSON (atomically); ``get_params(path)`` reads it back exactly."""
        from tfspike.utils.io import write_json_atomic

        write_json_atomic(path, self.to_dict())
        return path


def _check_triple(h, d, T, name="parameter set"):
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


def pre_to_post(h, d, T):
    """Stöckl "pre" ordering → "post": h_post[k] = h_pre[k+1] (k < K-1), h_post[K-1] = 0."""
    h, d, T = _check_triple(h, d, T, "pre set")
    h_post = np.zeros_like(h)
    h_post[:-1] = h[1:]
    return h_post, d.copy(), T.copy()


def post_to_pre(h, d, T):
    """"post" ordering → Stöckl "pre": h_pre[0] = 0, h_pre[k] = h_post[k-1] (k >= 1)."""
    h, d, T = _check_triple(h, d, T, "post set")
    h_pre = np.zeros_like(h)
    h_pre[1:] = h[:-1]
    return h_pre, d.copy(), T.copy()


def fs_relu(K=10, alpha=25.0):
    """Analytic FS-ReLU: h = d = T = alpha·2^-(k+1) (a K-bit binary expansion of [0, alpha))."""
    K = int(K)
    if K < 1 or K > 64 or not alpha > 0:
        raise UserError(f"fs_relu needs 1 <= K <= 64 and alpha > 0, got K={K}, alpha={alpha}")
    p = (float(alpha) * 2.0 ** -(np.arange(K) + 1.0)).astype(np.float32)
    name = f"relu_k{K}" + ("" if float(alpha) == 25.0 else f"_a{alpha:g}")
    return FSParams(p.copy(), p.copy(), p.copy(), name=name,
                    meta={"target": "relu", "kind": "analytic", "alpha": float(alpha)})


def builtin_names():
    names = {os.path.splitext(f)[0] for f in os.listdir(PRESET_DIR) if f.endswith(".json")}
    return sorted(names | {"relu_k10"} | set(FITTED_PRESETS))


def load_params(path, key=None, ordering=None):
    """Load a set from a JSON file: our own format (``{"h", "d", "T", ...}``) or the golden format
    (``{"sets": {key: {...}}}``, pass ``key``; for per-K entries use e.g. ``key="tbpi_swish_pretrained_points/K8"``).

    ``ordering`` ("post" or "pre") is required for external files; a file that declares its
    ordering must agree with it.
    """
    if ordering not in ORDERINGS:
        raise UserError(f"load_params: pass ordering='post' or ordering='pre' (got {ordering!r})")
    try:
        with open(path) as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise UserError(f"FS parameter file not found: {path}") from None
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read FS parameter file {path}: {e}") from None
    declared = obj.get("ordering")
    entry = obj
    if "sets" in obj:
        if key is None:
            raise UserError(f"{path} holds several sets ({', '.join(obj['sets'])}); pass key=")
        parts = key.split("/")
        entry = obj["sets"]
        for p in parts:
            if not isinstance(entry, dict) or p not in entry:
                raise UserError(f"{path}: no set {key!r}")
            entry = entry[p]
            declared = entry.get("ordering", declared) if isinstance(entry, dict) else declared
    if not isinstance(entry, dict) or not all(k in entry for k in ("h", "d", "T")):
        raise UserError(f"{path}{'[' + key + ']' if key else ''}: not an FS set (needs h, d and T)")
    if declared is not None and declared != ordering:
        raise UserError(f"{path}: the file declares ordering {declared!r} but ordering={ordering!r} was passed")
    h, d, T = entry["h"], entry["d"], entry["T"]
    if ordering == "pre":
        h, d, T = pre_to_post(h, d, T)
    meta = {k: v for k, v in entry.items() if k not in ("h", "d", "T", "K", "ordering", "name")}
    return FSParams(h, d, T, name=entry.get("name", key or os.path.splitext(os.path.basename(path))[0]), meta=meta)


def get_params(obj):
    """Resolve ``obj`` to :class:`FSParams` (float32, post ordering).

    ``obj`` is an :class:`FSParams`, a built-in name (``stoeckl_swish_k16``, ``stoeckl_sigmoid_k12``,
    ``relu_k10`` or ``relu_k<K>``, ``tbpi_trend_k<K>`` for K in 4, 8, 12, 16, and the fitted
    ``swish_k16_random|gaussian|tbpi|best``), a path to a saved ``.json`` set (post ordering), a dict
    ``{"h": [...], "d": [...], "T": [...]}`` or a tuple ``(h, d, T)``.
    """
    if isinstance(obj, FSParams):
        return obj
    if isinstance(obj, dict):
        if obj.get("ordering", "post") != "post":
            raise UserError("a dict FS set must be in post ordering; convert it with tfspike.fs.pre_to_post")
        if not all(k in obj for k in ("h", "d", "T")):
            raise UserError(f"a dict FS set needs keys h, d and T (got {sorted(obj)})")
        meta = {k: v for k, v in obj.items() if k not in ("h", "d", "T", "K", "ordering", "name")}
        return FSParams(obj["h"], obj["d"], obj["T"], name=obj.get("name", "custom"), meta=meta)
    if isinstance(obj, (tuple, list)) and len(obj) == 3:
        return FSParams(*obj)
    if hasattr(obj, "h") and hasattr(obj, "d") and hasattr(obj, "T"):  # e.g. a FitResult
        return FSParams(obj.h, obj.d, obj.T, name=getattr(obj, "name", "custom"))
    if not isinstance(obj, (str, os.PathLike)):
        raise UserError(f"cannot make FS parameters from {type(obj).__name__}")
    s = os.fspath(obj)
    if s.endswith(".json") or os.sep in s:
        if not os.path.exists(s):
            raise UserError(f"FS parameter file not found: {s}")
        return load_params(s, ordering="post")
    m = re.fullmatch(r"relu_k(\d+)", s)
    if m:
        return fs_relu(int(m.group(1)), 25.0)
    if s == "relu":
        return fs_relu(10, 25.0)
    m = re.fullmatch(r"tbpi_trend_k(\d+)", s)
    if m:
        from tfspike.fs.tbpi import published_trend

        return published_trend(int(m.group(1))).params()
    path = os.path.join(PRESET_DIR, s + ".json")
    if os.path.exists(path):
        p = load_params(path, ordering="post")
        p.name = s
        return p
    if s in FITTED_PRESETS:
        raise UserError(f"FS preset {s!r} has not been generated yet: run "
                        f"`python main.py --model_type=FS --activation=swish --K=16 --init=... --save_preset=True` "
                        f"(see the README, section Few-Spike neurons)")
    raise UserError(f"unknown FS parameter set {s!r}; built-in: {', '.join(builtin_names())}, "
                    f"or a path to a .json set")
