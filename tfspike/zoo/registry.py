"""Preset cards and their files, free of TensorFlow (``main.py --list_presets`` and ``--help`` stay instant).

A preset is a folder ``tfspike/zoo/presets/<name>/`` holding ``card.json`` and, for small models, the
weight file itself (package data). A card names everything needed to rebuild, evaluate and trust the
model:

* ``family`` (TTFS | FS | RSNN | DDIM), ``model_type`` (``main.py --model_type``), ``task``,
  ``dataset``, ``input`` (shape, dtype, preprocessing), ``outputs``;
* ``flags``: the ``main.py`` flags that rebuild the network (``--preset`` uses them as defaults);
* ``files``: ``{flag: {"file": name} | {"url": ..., "file": name}, "sha256": ..., "bytes": ...}`` — the
  weight file goes to ``--load``, a PS-MNIST permutation to ``--permutation``;
* ``metrics`` (measured by the project's own evaluation, ``main.py --preset=NAME --epochs=0``),
  ``energy`` (the ``--energy`` block), ``parameters``, ``training`` (the exact commands, seed),
  ``versions``, ``provenance`` and ``licence``.

Files named by a URL are fetched once with ``keras.utils.get_file`` into ``$TFSPIKE_HOME/presets/<name>/``
(default ``~/.cache/tfspike``); every file's SHA-256 is checked before use, also for package files.
"""

import os

from tfspike.errors import UserError

PRESET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets")
CARD = "card.json"
FAMILIES = ("TTFS", "FS", "RSNN", "DDIM")
# what running a preset needs; a shipped card has all of CARD_KEYS (tests/test_zoo_presets.py)
RUN_KEYS = ("name", "family", "model_type", "flags", "files")
CARD_KEYS = RUN_KEYS + ("task", "dataset", "input", "outputs", "metrics", "parameters", "training", "versions",
                        "provenance", "licence")


def preset_dirs():
    """Folders searched for presets: ``$TFSPIKE_PRESETS`` (``os.pathsep``-separated), then the package."""
    extra = [d for d in os.environ.get("TFSPIKE_PRESETS", "").split(os.pathsep) if d]
    return extra + [PRESET_DIR]


def _folders():
    found = {}
    for root in preset_dirs():
        if not os.path.isdir(root):
            continue
        for name in sorted(os.listdir(root)):
            folder = os.path.join(root, name)
            if name not in found and os.path.isfile(os.path.join(folder, CARD)):
                found[name] = folder
    return found


def list_presets(family=None):
    """Names of the available presets (sorted), optionally of one ``family`` (TTFS, FS, RSNN, DDIM)."""
    names = sorted(_folders())
    if family is None:
        return names
    if family not in FAMILIES:
        raise UserError(f"unknown family {family!r} (choose from {', '.join(FAMILIES)})")
    return [n for n in names if card(n)["family"] == family]


def preset_folder(name):
    """The folder of preset ``name``; an unknown name is a one-line error listing the known ones."""
    folders = _folders()
    if name not in folders:
        raise UserError(f"unknown preset {name!r} (choose from {', '.join(sorted(folders)) or 'none'}; "
                        f"python main.py --list_presets shows them)")
    return folders[name]


def card(name):
    """The model card of preset ``name`` as a dict (a fresh copy; see the module docstring for its keys)."""
    from tfspike.utils.files import read_json

    path = os.path.join(preset_folder(name), CARD)
    data = read_json(path, f"model card of preset {name}", "reinstall tfspike or fix the card")
    missing = [k for k in RUN_KEYS if k not in data]
    if missing:
        raise UserError(f"{path}: model card lacks {', '.join(missing)}")
    if data["family"] not in FAMILIES:
        raise UserError(f"{path}: family {data['family']!r} is not one of {', '.join(FAMILIES)}")
    return data


def tfspike_home():
    """The download cache root: ``$TFSPIKE_HOME``, default ``~/.cache/tfspike``."""
    return os.path.expanduser(os.environ.get("TFSPIKE_HOME") or os.path.join("~", ".cache", "tfspike"))


def _verify(path, entry, name, flag):
    from tfspike.utils.io import sha256_file

    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise UserError(f"{path}: SHA-256 {digest[:16]}… does not match preset {name}'s {flag} file "
                        f"({entry['sha256'][:16]}…); delete it and rerun to fetch it again")
    return path


def _download(entry, folder, name, flag):
    """``keras.utils.get_file`` into ``folder``; a failure says what to fetch and where to put it."""
    target = os.path.join(folder, entry["file"])
    if os.path.exists(target):
        return target
    where = f"download {entry['url']} and save it as {target}"
    if os.environ.get("TFSPIKE_OFFLINE") == "1":
        raise UserError(f"preset {name}: {entry['file']} is not in the cache and downloads are off "
                        f"(TFSPIKE_OFFLINE=1); {where}")
    import keras

    os.makedirs(folder, exist_ok=True)
    try:
        return os.path.normpath(keras.utils.get_file(fname=entry["file"], origin=entry["url"],
                                                     file_hash=entry["sha256"], hash_algorithm="sha256",
                                                     cache_dir=folder, cache_subdir="."))
    except Exception as e:  # network errors come in many types; the message names the file either way
        raise UserError(f"preset {name}: could not fetch {flag} file ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else 'no detail'}); {where}") from None


def preset_files(name):
    """``{flag: local path}`` of preset ``name``'s files, each checked against its card's SHA-256.

    Package files are used in place; URL files are fetched once into ``tfspike_home()/presets/<name>``.
    """
    info, folder = card(name), preset_folder(name)
    paths = {}
    for flag, entry in info["files"].items():
        if "url" in entry:
            path = _download(entry, os.path.join(tfspike_home(), "presets", name), name, flag)
        else:
            path = os.path.join(folder, entry["file"])
            if not os.path.isfile(path):
                raise UserError(f"preset {name}: {path} is missing (reinstall tfspike)")
        paths[flag] = _verify(path, entry, name, flag)
    return paths


def _size(info):
    total = sum(e.get("bytes", 0) for e in info["files"].values())
    return f"{total / 1e6:.2f} MB" if total >= 1e5 else f"{total / 1e3:.0f} kB"


def headline_metric(info):
    """``(label, value text)`` of a card's main test metric."""
    m = info["metrics"]
    if "test_accuracy" in m:
        return "test accuracy", f"{100 * m['test_accuracy']:.2f} %"
    if "kid" in m:
        return "KID", f"{m['kid']:.4g}"
    if "mse" in m:
        return "MSE", f"{m['mse']:.4g}"
    if not m:  # a card made before its evaluation (make_card's first step)
        return "not evaluated", "—"
    key = sorted(m)[0]
    return key, f"{m[key]:.4g}"


def _number(value):
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def presets_table(markdown=False):
    """The preset table of ``--list_presets`` (plain text) or README (``markdown=True``)."""
    rows = []
    for n in list_presets():
        info = card(n)
        label, value = headline_metric(info)
        spikes = info["metrics"].get("spikes_per_neuron", info["metrics"].get("sop_per_sample"))
        energy = info.get("energy") or {}
        ratio = energy.get("ratio_vs_ann")
        task = f"{info['task']} ({info['dataset']})" if markdown else info["dataset"]  # the terminal is narrow
        rows.append([n, info["family"], task, f"{label} {value}",
                     _number(spikes), "—" if ratio is None else f"{ratio:.3g}",
                     f"{info['parameters']:,}", _size(info), "download" if any(
                         "url" in e for e in info["files"].values()) else "package"])
    head = ["preset", "family", "task", "test metric", "spikes per neuron (TTFS, FS) or SOP per sample (RSNN)",
            "energy SNN/ANN (45 nm fp32)",
            "parameters", "size", "weights"]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(["`" + r[0] + "`"] + r[1:]) + " |" for r in rows]
        return "\n".join(lines)
    head[2:5] = ["task", "test metric", "spikes/neuron or SOP/sample"]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*r) for r in rows])
