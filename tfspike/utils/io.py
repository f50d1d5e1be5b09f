"""Atomic file writing: a crash never leaves a half-written checkpoint or results file behind."""

import contextlib
import json
import math
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path next to ``path``; on success it replaces ``path`` with ``os.replace``.

    ``suffix`` is kept at the end of the temporary name because Keras checks file endings
    (``.keras``, ``.weights.h5``).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + suffix, dir=directory)
    os.close(fd)
    os.unlink(tmp)  # Keras/h5py want to create the file themselves
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a fresh empty folder next to ``path``; on success it takes the place of ``path``.

    A folder already at ``path`` is moved aside, the new one renamed in and the old one deleted, so
    ``path`` never holds a half-written tree (a SavedModel, say). On an exception the temporary
    folder is removed and ``path`` is left as it was. The new folder gets the usual permissions
    (``0o777`` less the umask), not the private ``0o700`` of :func:`tempfile.mkdtemp`.
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        yield tmp
        if os.path.isdir(path) and not os.path.islink(path):
            old = tmp + ".old"
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except OSError:
                os.rename(old, path)  # put the previous folder back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _suffix(path):
    for s in (".weights.h5", ".keras", ".h5", ".json", ".npz", ".npy", ".png"):
        if str(path).endswith(s):
            return s
    return os.path.splitext(str(path))[1]


def save_model_atomic(model, path):
    """``model.save(path)`` (a ``.keras`` file) written to a temporary file and renamed."""
    with atomic_path(path, ".keras") as tmp:
        model.save(tmp)


def save_weights_atomic(model, path):
    """``model.save_weights(path)`` (a ``.weights.h5`` file) written to a temporary file and renamed."""
    with atomic_path(path, ".weights.h5") as tmp:
        model.save_weights(tmp)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def write_json_atomic(path, obj):
    """Write ``obj`` as indented JSON (numpy values converted, NaN → null) atomically."""
    with atomic_path(path, _suffix(path)) as tmp:
        with open(tmp, "w") as f:
            json.dump(_jsonable(obj), f, indent=2, sort_keys=False)
            f.write("\n")


def save_npz_atomic(path, **arrays):
    import numpy as np

    with atomic_path(path, ".npz") as tmp:
        np.savez(tmp, **arrays)


def sha256_file(path):
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_figure_atomic(fig, path, dpi=100):
    """Write a matplotlib figure as a PNG atomically and close it. Returns ``path``."""
    import matplotlib.pyplot as plt

    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path


def write_text_atomic(path, text):
    """Write a text file atomically."""
    with atomic_path(path, _suffix(path)) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def strip_optimizer_state(src, dst):
    """Copy a Keras ``.weights.h5`` or ``.keras`` file to ``dst`` (atomically) without its optimizer state:
    the model's weights only, about a third of the size after Adam training (what a published model needs;
    a fine-tuning run starts a fresh optimizer anyway)."""
    import zipfile

    import h5py

    def copy_h5(source, target):
        with h5py.File(source, "r") as fin, h5py.File(target, "w") as fout:
            for key in fin:
                if key != "optimizer":
                    fin.copy(fin[key], fout, name=key)
            for name, value in fin.attrs.items():
                fout.attrs[name] = value

    with atomic_path(dst, _suffix(dst)) as tmp:
        if str(src).endswith(".keras"):
            with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
                for item in zin.infolist():
                    data = zin.read(item.filename)
                    if item.filename == "model.weights.h5":
                        with tempfile.TemporaryDirectory() as d:
                            inner, stripped = os.path.join(d, "in.h5"), os.path.join(d, "out.h5")
                            with open(inner, "wb") as f:
                                f.write(data)
                            copy_h5(inner, stripped)
                            with open(stripped, "rb") as f:
                                data = f.read()
                    zout.writestr(item, data)
        else:
            copy_h5(src, tmp)
    return dst
