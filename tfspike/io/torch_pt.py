"""PyTorch ``.pt`` checkpoints read with NumPy alone: no PyTorch, and no code from the file is run.

A ``.pt`` file written by ``torch.save`` (PyTorch >= 1.6) is a zip archive ``<archive>/data.pkl``
(the pickled object) plus one raw member ``<archive>/data/<key>`` per tensor storage (little-endian
unless ``<archive>/byteorder`` says ``big``). The pickle is read by a restricted unpickler: its only
globals are ``torch._utils._rebuild_tensor_v2``, the typed storage classes (``torch.FloatStorage``,
``torch.LongStorage``, ...) and ``collections.OrderedDict``; any other global (``os.system``,
``builtins.eval``, a module class, ...) is refused before anything is called, as one line::

    ckpt.pt: refuses to load global os.system (a .pt file may only hold tensors and dicts)

Every tensor becomes a NumPy array (a copy: the zip is closed afterwards). The reference BRF
implementation's checkpoints (``AdaptiveAILab/brf-neurons``) are dicts ``{"epoch", "model_state_dict",
"optimizer_state_dict", "loss"}`` of tensors, dicts, lists and numbers, so they read completely.

Example:
    >>> ckpt = read_pt("ecg_brf.pt")
    >>> ckpt["model_state_dict"]["hidden.omega"].shape
    (36,)
    >>> sorted(state_dict_arrays("ecg_brf.pt"))[:2]
    ['epoch', 'hidden/b_offset']
"""

import collections
import io
import pickle
import zipfile
import zlib

import numpy as np

from tfspike.errors import UserError
from tfspike.utils.files import PICKLE_ERRORS, check_file, file_error, first_line

WHAT = "PyTorch checkpoint"
HINT = "give a checkpoint written by torch.save (PyTorch >= 1.6)"

# Typed storage classes → element type (little-endian; swapped for a big-endian archive).
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
    "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "<i1", "ByteStorage": "<u1", "BoolStorage": "?",
}
# The legacy (< 1.6) format is a bare pickle stream that starts with a pickled magic number.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


class _StorageType:
    """What the unpickler hands out for ``torch.<X>Storage``: a name and a dtype, and not callable
    (legitimate pickles only pass it inside a storage's persistent id)."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name, self.dtype = name, np.dtype(dtype)

    def __repr__(self):
        return f"torch.{self.name}"


def _checked_ints(value, what, path):
    if not isinstance(value, tuple) or not all(type(v) is int and v >= 0 for v in value):
        raise UserError(f"{path}: corrupt tensor: {what} {value!r} is not a tuple of non-negative integers")
    return value


def _rebuild_tensor(path, storage, storage_offset, size, stride, *rest):
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])``
    as a NumPy copy; the strides are honoured and checked to stay inside the storage."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise UserError(f"{path}: corrupt tensor: its storage is a {type(storage).__name__}, not a storage")
    size, stride = _checked_ints(tuple(size), "size", path), _checked_ints(tuple(stride), "stride", path)
    if type(storage_offset) is not int or storage_offset < 0 or len(size) != len(stride):
        raise UserError(f"{path}: corrupt tensor: offset {storage_offset!r}, size {size}, stride {stride}")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= len(storage):  # as_strided would read past the buffer
        raise UserError(f"{path}: corrupt tensor: size {size}, stride {stride} and offset {storage_offset} "
                        f"reach element {last} of a storage of {len(storage)}")
    view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=size,
                                           strides=[s * storage.itemsize for s in stride], writeable=False)
    return np.array(view, order="C")  # a C-contiguous copy, whatever the strides


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` with three kinds of global and storages read from the open zip."""

    def __init__(self, file, archive, prefix, path, byteorder):
        super().__init__(file)
        self._zip, self._prefix, self._path, self._byteorder = archive, prefix, path, byteorder
        self._storages = {}  # key → array: tensors that share a storage share it here too

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda *args: _rebuild_tensor(self._path, *args)
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name, STORAGE_DTYPES[name])
        raise UserError(f"{self._path}: refuses to load global {module}.{name} "
                        f"(a .pt file may only hold tensors and dicts)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UserError(f"{self._path}: refuses the persistent id {str(pid)[:80]} (only tensor storages)")
        _, storage_type, key, _location, numel = pid  # any location (cpu, cuda:0, ...): read to host memory
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or type(numel) is not int:
            raise UserError(f"{self._path}: corrupt storage reference {str(pid)[:80]}")
        if key not in self._storages:
            self._storages[key] = self._read_storage(storage_type, key, numel)
        return self._storages[key]

    def _read_storage(self, storage_type, key, numel):
        member = f"{self._prefix}data/{key}"
        try:
            info = self._zip.getinfo(member)
        except KeyError:
            raise UserError(f"{self._path}: storage {member} is missing from the archive (truncated?)") from None
        expected = numel * storage_type.dtype.itemsize
        if info.file_size != expected:  # checked before reading: a corrupt numel allocates nothing
            raise UserError(f"{self._path}: storage {member} has {info.file_size} bytes, {storage_type} of "
                            f"{numel} elements needs {expected} (truncated or corrupt?)")
        data = np.frombuffer(self._zip.read(member), storage_type.dtype.newbyteorder(self._byteorder))
        return data.astype(storage_type.dtype.newbyteorder("="))


def _archive_prefix(archive, path):
    pickles = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
    pickles = [n for n in pickles if n.count("/") <= 1]
    if len(pickles) != 1:
        problem = "no data.pkl" if not pickles else f"{len(pickles)} data.pkl members"
        raise file_error(path, WHAT, f"a zip archive with {problem}: not a PyTorch checkpoint", HINT)
    return pickles[0][:-len("data.pkl")]


def read_pt(path):
    """The object saved in the PyTorch checkpoint ``path``, every tensor as a NumPy array.

    Args:
        path: a ``.pt`` / ``.pth`` file written by ``torch.save`` (zip format, PyTorch >= 1.6).

    Returns:
        The unpickled object: dicts (``OrderedDict`` stays one), lists, tuples, numbers and strings as
        they are, tensors as NumPy arrays of their dtype and shape (``()`` for a scalar tensor).

    Raises:
        UserError: one line naming ``path``: not a zip checkpoint, no ``data.pkl``, a missing or
        truncated storage, a corrupt pickle, or a global outside the allowlist (nothing is run).
    """
    path = check_file(path, WHAT, HINT)
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            legacy = f.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC
        problem = ("the legacy (PyTorch < 1.6) format, not a zip checkpoint; re-save it with torch.save" if legacy
                   else "not a PyTorch zip checkpoint (truncated or corrupt?)")
        raise file_error(path, WHAT, problem, "" if legacy else HINT)
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = _archive_prefix(archive, path)
            byteorder = "little"
            if f"{prefix}byteorder" in archive.namelist():
                byteorder = archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
                if byteorder not in ("little", "big"):
                    raise file_error(path, WHAT, f"unknown byteorder {byteorder[:20]!r}", HINT)
            # In memory (it is small): a corrupt length field then reads as truncated, allocating nothing.
            data = io.BytesIO(archive.read(f"{prefix}data.pkl"))
            return _RestrictedUnpickler(data, archive, prefix, path, "<" if byteorder == "little" else ">").load()
    except UserError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError) as e:
        raise file_error(path, WHAT, f"corrupt zip archive: {first_line(e)}", HINT) from None
    except PICKLE_ERRORS as e:
        raise file_error(path, WHAT, f"data.pkl is not a readable pickle (truncated or corrupt?): {first_line(e)}",
                         HINT) from None


def _is_state_dict(obj):
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())


def state_dict_arrays(path):
    """The checkpoint's ``model_state_dict`` as the flat arrays of the golden ``.npz`` layout.

    Args:
        path: a ``.pt`` checkpoint: a dict with ``model_state_dict`` (the reference's training
            checkpoints) or itself a state dict (``torch.save(model.state_dict(), ...)``).

    Returns:
        ``{name.replace(".", "/"): array}`` with each tensor's own dtype (float32 weights), plus
        ``"epoch"`` (an int64 scalar array) when the checkpoint records one.
    """
    obj = read_pt(path)
    if isinstance(obj, dict) and "model_state_dict" in obj:
        state = obj["model_state_dict"]
    else:
        state = obj
    if not _is_state_dict(state):
        what = (f"a dict with keys {', '.join(sorted(map(str, obj))[:8])}" if isinstance(obj, dict)
                else f"a {type(obj).__name__}")
        raise file_error(path, WHAT, f"it holds {what}, not a model_state_dict of tensors", HINT)
    arrays = {key.replace(".", "/"): value for key, value in state.items()}
    if isinstance(obj, dict) and isinstance(obj.get("epoch"), int) and not isinstance(obj["epoch"], bool):
        arrays["epoch"] = np.asarray(obj["epoch"], dtype=np.int64)
    return arrays


def read_permutation_pt(path):
    """The index tensor saved by ``torch.save(torch.randperm(784), ...)`` (the reference's
    ``*_permuted_idx.pt``) as a 1-D int64 array; validating it as a permutation is the caller's job
    (:func:`tfspike.data.smnist.check_permutation`).
    """
    obj = read_pt(path)
    if not isinstance(obj, np.ndarray) or obj.ndim != 1 or not np.issubdtype(obj.dtype, np.integer):
        shape = getattr(obj, "shape", None)
        got = f"an array of shape {shape} dtype {obj.dtype}" if shape is not None else f"a {type(obj).__name__}"
        raise file_error(path, "permutation", f"it holds {got}, not a 1-D integer tensor",
                         "give the reference's *_permuted_idx.pt")
    return obj.astype(np.int64)


__all__ = ["read_pt", "state_dict_arrays", "read_permutation_pt", "STORAGE_DTYPES"]
