"""Opening the files tfspike reads: every one is checked, and a bad one is one line, never a traceback.

Each reader takes ``what`` (the kind of file, e.g. ``"MNIST"``, ``"SNN weight"``, ``"X_n"``) and
``hint`` (what the user can do about it, e.g. ``"re-download it"``) and raises a
:class:`~tfspike.errors.UserError` (``error=`` picks a subclass such as
:class:`~tfspike.errors.MissingDataError` for datasets) whose message names the file, says what is
wrong and what to do::

    MNIST file not found: data/mnist/mnist.npz (re-download it)
    MNIST file data/mnist/mnist.npz is empty (0 bytes); re-download it
    cannot read MNIST file data/mnist/mnist.npz: not a valid .npz archive (truncated or corrupt?): ...; re-download it
    WeightMismatchError: SNN weight file w.weights.h5 does not fit model 'snn': layer 'dense' ...

Only the exceptions a reader raises for bad *content* are turned into one line (``OSError``,
``zipfile.BadZipFile``, ``EOFError``, ``ValueError``, ...); a programming error still gives its
traceback. NumPy, h5py, SciPy and Keras are imported inside the functions, so importing this module
loads none of them.
"""

import gzip
import json
import os
import pickle
import re
import warnings
import zipfile
import zlib

from tfspike.errors import UserError, WeightMismatchError

REDOWNLOAD = "re-download it or delete it so it is fetched again"
RERUN = "rerun the command that wrote it"

# What numpy's zip reader raises for a truncated, corrupt or non-zip .npz (pickled data: ValueError).
_NPZ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)
# What unpickling a truncated or overwritten file raises (garbage opcodes, huge frame lengths, ...).
PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError, TypeError,
                  AttributeError, ImportError, UnicodeDecodeError, OverflowError, MemoryError)
_GZIP_ERRORS = (OSError, EOFError, zlib.error)  # gzip.BadGzipFile is an OSError
# What keras.saving.load_model / Model.load_weights raise for a file that is unreadable or does not fit.
_KERAS_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile)


def first_line(exc):
    """The first non-empty line of an exception's message (its class name when it has none)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def _with_hint(message, hint, sep="; "):
    return message + (f"{sep}{hint}" if hint else "")


def file_error(path, what, problem, hint="", error=UserError):
    """The one-line error for a file that exists but cannot be used: ``cannot read <what> file <path>: <problem>``."""
    return error(_with_hint(f"cannot read {what} file {os.fspath(path)}: {problem}", hint))


def check_file(path, what, hint="", error=UserError):
    """``path`` (as a string) if it is a readable, non-empty regular file; else a one-line ``error``.

    Missing: ``<what> file not found: <path> (<hint>)``; a folder, an unreadable or an empty
    (0 bytes) file: ``<what> file <path> is ...; <hint>``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise error(_with_hint(f"{what} file not found: {path}", f"({hint})" if hint else "", sep=" "))
    if os.path.isdir(path):
        raise error(_with_hint(f"{what} file {path} is a folder, not a file", hint))
    if not os.access(path, os.R_OK):
        raise error(_with_hint(f"{what} file {path} is not readable (permission denied)", hint))
    if os.path.getsize(path) == 0:
        raise error(_with_hint(f"{what} file {path} is empty (0 bytes)", hint))
    return path


def require_keys(path, what, keys, required, hint="", error=UserError):
    """One line if any of ``required`` is not among ``keys`` (a file of the wrong kind): it names the
    missing keys and those the file has."""
    keys = sorted({str(k) for k in keys})  # str: CIFAR pickles have bytes keys
    missing = [str(k) for k in required if str(k) not in keys]
    if missing:
        raise file_error(path, what, f"wrong kind of file: missing {', '.join(missing)} "
                         f"(it has {', '.join(keys) or 'nothing'})", hint, error)


def open_npz(path, what, hint=REDOWNLOAD, required=(), error=UserError):
    """Every array of the ``.npz`` archive ``path`` as a dict (read eagerly, so a bad member fails here).

    ``required``: keys that must be present (a wrong-kind archive names the missing ones).
    """
    import numpy as np

    path = check_file(path, what, hint, error)
    if not zipfile.is_zipfile(path):  # a truncated archive has lost its central directory at the end
        with open(path, "rb") as f:
            npy = f.read(6) == b"\x93NUMPY"
        problem = "it is a single .npy array, not an .npz archive" if npy else \
            "not an .npz archive (truncated or corrupt?)"
        raise file_error(path, what, problem, hint, error)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}  # a bad CRC shows when a member is read
    except _NPZ_ERRORS as e:
        raise file_error(path, what, f"not a valid .npz archive (truncated or corrupt?): {first_line(e)}",
                         hint, error) from None
    require_keys(path, what, arrays, required, hint, error)
    return arrays


def read_npy(path, what, hint="", error=UserError):
    """The array stored in the ``.npy`` file ``path`` (no pickled objects)."""
    import numpy as np

    path = check_file(path, what, hint, error)
    try:
        value = np.load(path, allow_pickle=False)
    except _NPZ_ERRORS as e:
        raise file_error(path, what, f"not a valid .npy file (truncated or corrupt?): {first_line(e)}",
                         hint, error) from None
    if not isinstance(value, np.ndarray):
        value.close()
        raise file_error(path, what, "it is an .npz archive, not a single .npy array", hint, error)
    return value


def open_h5(path, what, hint=REDOWNLOAD, error=UserError):
    """``h5py.File(path, "r")`` (use it as a context manager); a non-HDF5 file is one line."""
    import h5py

    path = check_file(path, what, hint, error)
    try:
        return h5py.File(path, "r")
    except OSError as e:  # h5py: "file signature not found", "truncated file: eof = ..."
        raise file_error(path, what, f"not an HDF5 file (truncated or corrupt?): {first_line(e)}",
                         hint, error) from None


def read_json(path, what, hint="", error=UserError):
    """The parsed content of the JSON file ``path``.

    A file that is not JSON: ``<path> is not a readable <what> JSON file (<reason>)``.
    """
    path = check_file(path, what, hint, error)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(_with_hint(f"{path} is not a readable {what} JSON file ({first_line(e)})", hint)) from None


def read_pickle(path, what, hint=REDOWNLOAD, encoding="bytes", required=(), error=UserError):
    """The object pickled in ``path`` (e.g. a CIFAR batch); ``required``: keys the dict must have.

    Pickles execute code when loaded: read only files from a source you trust (the dataset's own).
    """
    path = check_file(path, what, hint, error)
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding=encoding)
    except PICKLE_ERRORS as e:
        raise file_error(path, what, f"not a readable pickle (truncated or corrupt?): {first_line(e)}",
                         hint, error) from None
    if required:
        if not isinstance(obj, dict):
            raise file_error(path, what, f"it holds a {type(obj).__name__}, not a dict: not a {what} file",
                             hint, error)
        require_keys(path, what, obj, required, hint, error)
    return obj


def read_gzip(path, what, hint=REDOWNLOAD, error=UserError):
    """The decompressed bytes of the gzip file ``path`` (CRC and length checked)."""
    path = check_file(path, what, hint, error)
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except _GZIP_ERRORS as e:
        raise file_error(path, what, f"not a valid gzip file (truncated or corrupt?): {first_line(e)}",
                         hint, error) from None


def read_mat(path, what, hint=REDOWNLOAD, required=(), error=UserError):
    """The variables of the MATLAB ``.mat`` file ``path`` (``scipy.io.loadmat``)."""
    import scipy.io

    path = check_file(path, what, hint, error)
    try:
        mat = scipy.io.loadmat(path)
    except (scipy.io.matlab.MatReadError, OSError, EOFError, ValueError, zlib.error) as e:
        raise file_error(path, what, f"not a readable MATLAB file (truncated or corrupt?): {first_line(e)}",
                         hint, error) from None
    require_keys(path, what, [k for k in mat if not k.startswith("__")], required, hint, error)
    return mat


def _check_keras_archive(path, what, hint, error):
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        raise file_error(path, what, "not a .keras archive (truncated or corrupt?)", hint, error)


def _check_h5_signature(path, what, hint, error):
    if path.endswith(".h5"):
        import h5py

        if not h5py.is_hdf5(path):
            raise file_error(path, what, "not an HDF5 file (truncated or corrupt?)", hint, error)


# Keras' warning for a file without (matching) optimizer state, e.g. a zoo preset: harmless, the optimizer
# is rebuilt.
NO_OPTIMIZER_STATE = "Skipping variable loading for optimizer"


def load_keras_model(path, what, hint=RERUN, custom_objects=None, expected=None):
    """``keras.saving.load_model(path)`` with the file checked first; any failure is one line.

    Args:
        path: a ``.keras`` file.
        what: the kind of model, for messages (e.g. ``"SNN model"``).
        hint: what to do when it cannot be loaded.
        custom_objects: passed to Keras.
        expected: a class (or tuple) the loaded model must be an instance of; another model is a
            :class:`WeightMismatchError` naming both classes.
    """
    import keras

    path = check_file(path, what, hint)
    if not path.endswith(".keras"):
        raise UserError(_with_hint(f"{what} file {path} is not a .keras file", hint))
    _check_keras_archive(path, what, hint, UserError)
    try:
        with warnings.catch_warnings():  # a published model (a zoo preset) carries no optimizer state
            warnings.filterwarnings("ignore", message=NO_OPTIMIZER_STATE, category=UserWarning)
            model = keras.saving.load_model(path, custom_objects=custom_objects)
    except _KERAS_ERRORS as e:
        raise file_error(path, what, f"Keras cannot load it: {first_line(e)}", hint) from None
    if expected is not None and not isinstance(model, expected):
        names = " or ".join(c.__name__ for c in (expected if isinstance(expected, tuple) else (expected,)))
        raise WeightMismatchError(_with_hint(f"{what} file {path} holds a model of class {type(model).__name__} "
                                             f"({model.name!r}), not {names}", hint))
    return model


_KERAS_LAYER = re.compile(r"for object <\w+ name=([^,>]+)")
_KERAS_SHAPES = re.compile(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))")
_KERAS_VARIABLE = re.compile(r"Target variable: <Variable path=([^,>]+)")
_KERAS_COUNT = re.compile(r"A total of (\d+) objects could not be loaded")
_KERAS_RECEIVED = re.compile(r"Layer '([^']+)' expected (\d+) variables, but received (\d+) variables")


def describe_weight_mismatch(exc):
    """One line from Keras' (multi-line) ``load_weights`` error: the layer, the variable and both shapes
    when Keras names them, else its most telling line."""
    text = str(exc)
    layer, shapes, variable = _KERAS_LAYER.search(text), _KERAS_SHAPES.search(text), _KERAS_VARIABLE.search(text)
    count = _KERAS_COUNT.search(text)
    more = f" ({count.group(1)} layers do not fit)" if count and int(count.group(1)) > 1 else ""
    if shapes:
        where = f"layer {layer.group(1)!r}" if layer else "a layer"
        var = f" variable {variable.group(1)}" if variable else ""
        return (f"{where}{var} has shape {shapes.group(1)} in the model but {shapes.group(2)} in the file"
                f"{more}")
    received = _KERAS_RECEIVED.search(text)
    if received:
        name, expected, got = received.group(1), int(received.group(2)), int(received.group(3))
        if got == 0:
            return f"the file has no weights for layer {name!r}{more}: it was written by another model"
        return f"layer {name!r} has {got} variables in the file, the model expects {expected}{more}"
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    # Keras' first line ("A total of N objects could not be loaded. Example error message for ...") says
    # little; the next one says what is wrong.
    telling = [l for l in lines if not _KERAS_COUNT.search(l) and not l.startswith("List of objects")
               and not l.startswith("[<")]
    return (telling[0] if telling else first_line(exc)) + more


def load_weights_file(model, path, what, hint=RERUN):
    """``model.load_weights(path)`` (a ``.weights.h5`` or ``.keras`` file) into the built ``model``.

    A missing, empty, truncated or non-HDF5/non-zip file is a :class:`UserError`; a file that does not
    fit the model is a :class:`WeightMismatchError` naming the file, the layer and both shapes when
    Keras reports them. Nothing is half-reported: Keras' warnings are re-emitted only when loading
    succeeds. Returns ``path``.
    """
    path = check_file(path, what, hint)
    if not (path.endswith(".weights.h5") or path.endswith(".keras")):
        raise UserError(_with_hint(f"{what} file {path} is neither a .weights.h5 nor a .keras file", hint))
    _check_keras_archive(path, what, hint, UserError)
    _check_h5_signature(path, what, hint, UserError)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except (OSError, EOFError, zipfile.BadZipFile) as e:
            raise file_error(path, what, f"not readable (truncated or corrupt?): {first_line(e)}", hint) from None
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise WeightMismatchError(_with_hint(f"{what} file {path} does not fit model {model.name!r}: "
                                                 f"{describe_weight_mismatch(e)}", hint)) from None
    for w in caught:
        if not str(w.message).startswith(NO_OPTIMIZER_STATE):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return path
