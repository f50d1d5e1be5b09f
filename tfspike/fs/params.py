"""Few-Spike parameter sets by name: built-in and user presets, file loaders and FS-ReLU.

:func:`get_params` turns anything that names a set into :class:`~tfspike.fs.param_set.FSParams`
(post ordering). Preset names are looked up, first match wins, in

1. the folders passed as ``preset_dirs=``,
2. the folders of the environment variable ``TFSPIKE_FS_PRESETS`` (separated by ``os.pathsep``,
   ``:`` on Linux), e.g. ``TFSPIKE_FS_PRESETS=logs/fs/presets``,
3. the package's own ``presets/`` folder (read only: the shipped sets).

:func:`save_preset` writes a user preset into a folder of the caller's choice, never into the
installed package. Loaders of external files take an explicit ``ordering=`` with no default.
NumPy only (no TensorFlow).
"""

import os
import re

import numpy as np

from tfspike.errors import UserError
from tfspike.fs.param_set import ORDERINGS, FSParams, check_triple, pre_to_post
from tfspike.fs.trends import published_trend
from tfspike.utils.files import read_json

BUILTIN_PRESET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets")
PRESETS_ENV = "TFSPIKE_FS_PRESETS"
# Shipped fitted sets: made with `python main.py --model_type=FS ... --save_preset=True`, then copied
# from the run's preset folder into tfspike/fs/presets/ by a maintainer.
FITTED_PRESETS = ("swish_k16_random", "swish_k16_gaussian", "swish_k16_tbpi", "swish_k16_best")
# Names computed from a formula rather than read from a file (they cannot be saved as presets).
_COMPUTED = re.compile(r"relu|relu_k\d+|tbpi_trend_k\d+")
# What to do about a parameter file that cannot be used.
PARAMS_HINT = "give a set written by --save_preset=True or FSParams.save"


def fs_relu(K=10, alpha=25.0):
    """Analytic FS-ReLU: h = d = T = alpha·2^-(k+1) (a K-bit binary expansion of [0, alpha))."""
    K = int(K)
    if K < 1 or K > 64 or not alpha > 0:
        raise UserError(f"fs_relu needs 1 <= K <= 64 and alpha > 0, got K={K}, alpha={alpha}")
    p = (float(alpha) * 2.0 ** -(np.arange(K) + 1.0)).astype(np.float32)
    name = f"relu_k{K}" + ("" if float(alpha) == 25.0 else f"_a{alpha:g}")
    return FSParams(p.copy(), p.copy(), p.copy(), name=name,
                    meta={"target": "relu", "kind": "analytic", "alpha": float(alpha)})


def preset_search_path(preset_dirs=()):
    """The preset folders searched by :func:`get_params`, in order: ``preset_dirs`` (a folder or a
    sequence of folders), then the folders of ``$TFSPIKE_FS_PRESETS``, then the package's ``presets/``."""
    if isinstance(preset_dirs, (str, os.PathLike)):
        preset_dirs = (preset_dirs,)
    env = [p for p in os.environ.get(PRESETS_ENV, "").split(os.pathsep) if p]
    return [os.fspath(p) for p in preset_dirs] + env + [BUILTIN_PRESET_DIR]


def find_preset(name, preset_dirs=()):
    """Path of ``<folder>/<name>.json`` in the first searched folder that has it, else ``None``."""
    for folder in preset_search_path(preset_dirs):
        path = os.path.join(folder, name + ".json")
        if os.path.isfile(path):
            return path
    return None


def preset_names(preset_dirs=()):
    """Every name :func:`get_params` resolves: the presets found in the searched folders and the
    computed ``relu_k10`` / ``tbpi_trend_k<K>`` sets (sorted)."""
    names = set(FITTED_PRESETS) | {"relu_k10"} | {f"tbpi_trend_k{K}" for K in (4, 8, 12, 16)}
    for folder in preset_search_path(preset_dirs):
        if os.path.isdir(folder):
            names |= {f[:-5] for f in os.listdir(folder) if f.endswith(".json")}
    return sorted(names)


def save_preset(params, directory, name=None):
    """Save ``params`` as the preset ``<directory>/<name>.json`` (atomically; the folder is created).

    ``name`` defaults to ``params.name``. Find it again with ``get_params(name, preset_dirs=(directory,))``
    or by listing ``directory`` in ``$TFSPIKE_FS_PRESETS``. The package's own ``presets/`` folder is
    refused: a shipped preset is added by copying the file there, not by a run.
    Returns the path written.
    """
    name = params.name if name is None else str(name)
    if not name or os.sep in name or (os.altsep and os.altsep in name) or name.startswith("."):
        raise UserError(f"FS preset name {name!r} must be a plain file name (no folders)")
    if _COMPUTED.fullmatch(name):
        raise UserError(f"FS preset name {name!r} is reserved for a computed set; choose another name")
    directory = os.fspath(directory)
    if os.path.realpath(directory) == os.path.realpath(BUILTIN_PRESET_DIR):
        raise UserError(f"save_preset: {directory} is the installed package's preset folder; "
                        f"save into a folder of your own (e.g. <logging_dir>/presets)")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UserError(f"save_preset: {directory} exists and is not a folder")
    if params.name != name:
        params = FSParams(*params.as_tuple(), name=name, meta=dict(params.meta))
    return params.save(os.path.join(directory, name + ".json"))


def load_params(path, key=None, ordering=None):
    """Load a set from a JSON file: our own format (``{"h", "d", "T", ...}``) or the golden format
    (``{"sets": {key: {...}}}``, pass ``key``; for per-K entries use e.g. ``key="tbpi_swish_pretrained_points/K8"``).

    ``ordering`` ("post" or "pre") is required for external files; a file that declares its
    ordering must agree with it.
    """
    if ordering not in ORDERINGS:
        raise UserError(f"load_params: pass ordering='post' or ordering='pre' (got {ordering!r})")
    path = os.fspath(path)
    obj = read_json(path, "FS parameter", PARAMS_HINT)
    if not isinstance(obj, dict):
        raise UserError(f"{path}: not an FS set (a JSON object with h, d and T expected); {PARAMS_HINT}")
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
    where = f"{path}{'[' + key + ']' if key else ''}"
    if not isinstance(entry, dict) or not all(k in entry for k in ("h", "d", "T")):
        raise UserError(f"{where}: not an FS set (needs h, d and T); {PARAMS_HINT}")
    if declared is not None and declared != ordering:
        raise UserError(f"{path}: the file declares ordering {declared!r} but ordering={ordering!r} was passed")
    h, d, T = check_triple(entry["h"], entry["d"], entry["T"], f"parameter file {where}")
    if ordering == "pre":
        h, d, T = pre_to_post(h, d, T)
    meta = {k: v for k, v in entry.items() if k not in ("h", "d", "T", "K", "ordering", "name")}
    return FSParams(h, d, T, name=entry.get("name", key or os.path.splitext(os.path.basename(path))[0]), meta=meta)


def get_params(obj, preset_dirs=()):
    """Resolve ``obj`` to :class:`FSParams` (float32, post ordering).

    Args:
        obj: an :class:`FSParams`; a name (``relu_k<K>`` and ``tbpi_trend_k<K>`` for K in 4, 8, 12, 16
            are computed; other names are presets: the shipped ``stoeckl_swish_k16``,
            ``stoeckl_sigmoid_k12``, ``swish_k16_random|gaussian|tbpi|best`` or one saved with
            :func:`save_preset`); a path to a saved ``.json`` set (post ordering); a dict
            ``{"h": [...], "d": [...], "T": [...]}``; a tuple ``(h, d, T)``; or an object with
            ``h``, ``d``, ``T`` attributes (e.g. a ``FitResult``).
        preset_dirs: folders searched for a preset name before ``$TFSPIKE_FS_PRESETS`` and the
            package's ``presets/`` (see the module docstring).
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
        return load_params(s, ordering="post")
    m = re.fullmatch(r"relu_k(\d+)", s)
    if m:
        return fs_relu(int(m.group(1)), 25.0)
    if s == "relu":
        return fs_relu(10, 25.0)
    m = re.fullmatch(r"tbpi_trend_k(\d+)", s)
    if m:
        return published_trend(int(m.group(1))).params()
    path = find_preset(s, preset_dirs)
    if path is not None:
        p = load_params(path, ordering="post")
        p.name = s
        return p
    if s in FITTED_PRESETS:
        raise UserError(f"FS preset {s!r} has not been generated yet: run "
                        f"`python main.py --model_type=FS --activation=swish --K=16 --init=... --save_preset=True` "
                        f"and list its preset folder in ${PRESETS_ENV} (see the README, section Few-Spike neurons)")
    folders = os.pathsep.join(preset_search_path(preset_dirs))
    raise UserError(f"unknown FS parameter set {s!r}; known: {', '.join(preset_names(preset_dirs))}, "
                    f"or a path to a .json set (preset folders searched: {folders})")
