"""Spiking Heidelberg Digits (SHD, Cramer et al. 2020) from the HDF5 files, binned to (N, T, 700).

Files ``<data_dir>/shd/shd_train.h5`` and ``shd_test.h5`` (optionally ``.h5.gz``, decompressed to a
cache file next to it): ``spikes/times`` (variable-length float arrays, seconds), ``spikes/units``
(variable-length ints 0..699) and ``labels`` (0..19). SHD is not downloaded by tfspike; get it from
https://zenkelab.org/datasets/ and pass ``--data_dir``.

``reference_binning=True`` (default) reproduces Yin et al.'s preprocessing used by the BRF reference,
quirks included: 250 bins of 4 ms; a spike goes to the first bin i with ``t <= i * dt_bin`` compared in
the stored dtype of the times (bin 0 = {t <= 0}); spikes after bin 249 (0.996 s) are dropped;
channel = 700 - unit, so unit 0 is dropped; cells are binary. ``reference_binning=False`` is a clean
alternative: bin = floor(t / dt_bin), channel = unit, configurable ``n_bins``. Results are cached as
uint8 ``.npz`` next to the source file (or in ``cache_dir``).
"""

import hashlib
import os

import numpy as np

from tfspike.data.paths import find_local, missing_data
from tfspike.errors import MissingDataError
from tfspike.utils.files import file_error, open_h5, open_npz, read_gzip, require_keys
from tfspike.utils.io import atomic_path, save_npz_atomic

SHD_FILES = {"train": "shd/shd_train.h5", "test": "shd/shd_test.h5"}
SHD_KEYS = ("spikes/times", "spikes/units", "labels")
REDOWNLOAD_SHD = "download it again from https://zenkelab.org/datasets/"
CHANNELS = 700
DT_BIN = 0.004


def _default_n_bins(dt_bin=DT_BIN, n_bins=None):
    """``n_bins``, or ``int(1 / dt_bin)`` bins (one second) when it is None."""
    return int(1 / dt_bin) if n_bins is None else n_bins


def reference_bin_indices(times, dt_bin=DT_BIN, n_bins=None):
    """Reference bin of each spike time (or ``n_bins`` where it is dropped): first i with t <= i*dt_bin.

    The edges are cast to the dtype of ``times`` before the comparison, as numpy does when the
    reference compares a float16/float32 array with Python floats.
    """
    times = np.asarray(times)
    n_bins = _default_n_bins(dt_bin, n_bins)
    edges = (np.arange(n_bins) * dt_bin).astype(times.dtype)
    # "first edge >= t" == searchsorted(edges, t, side="left"); times beyond the last edge give n_bins
    return np.searchsorted(edges, times, side="left")


def bin_sample(times, units, reference_binning=True, dt_bin=DT_BIN, n_bins=None, channels=CHANNELS):
    """One sample's spikes → a binary uint8 array (n_bins, channels)."""
    times = np.asarray(times)
    units = np.asarray(units).astype(np.int64)
    n_bins = _default_n_bins(dt_bin, n_bins)
    if reference_binning:
        bins = reference_bin_indices(times, dt_bin, n_bins)
        chan = channels - units
        keep = (bins < n_bins) & (units > 0) & (units < channels + 1)
    else:
        bins = np.floor(times.astype(np.float64) / dt_bin).astype(np.int64)
        chan = units
        keep = (bins >= 0) & (bins < n_bins) & (units >= 0) & (units < channels)
    out = np.zeros((n_bins, channels), dtype=np.uint8)
    out[bins[keep], chan[keep]] = 1
    return out


def read_shd_h5(path, reference_binning=True, dt_bin=DT_BIN, n_bins=None):
    """``(x uint8 (N, n_bins, 700), y int64 (N,))`` from one SHD HDF5 file."""
    with open_h5(path, "SHD", REDOWNLOAD_SHD, MissingDataError) as f:
        require_keys(path, "SHD", [k for k in SHD_KEYS if k in f] + list(f), SHD_KEYS, REDOWNLOAD_SHD,
                     MissingDataError)
        times, units = f["spikes/times"], f["spikes/units"]
        labels = np.asarray(f["labels"][()]).astype(np.int64)
        if len(times) != len(units) or len(times) != len(labels):
            raise file_error(path, "SHD", "spikes/times, spikes/units and labels differ in length", REDOWNLOAD_SHD,
                             MissingDataError)
        x = np.stack([bin_sample(times[i], units[i], reference_binning, dt_bin, n_bins) for i in range(len(labels))]) \
            if len(labels) else np.zeros((0, _default_n_bins(dt_bin, n_bins), CHANNELS), np.uint8)
    return x, labels


def _decompressed(path):
    """A ``.gz`` file decompressed once into a cache file next to it."""
    if not path.endswith(".gz"):
        return path
    target = path[:-3]
    if not os.path.exists(target):
        raw = read_gzip(path, "SHD", REDOWNLOAD_SHD, MissingDataError)  # CRC and length checked
        with atomic_path(target, ".h5") as tmp, open(tmp, "wb") as dst:
            dst.write(raw)
    return target


def _cache_path(source, cache_dir, reference_binning, dt_bin, n_bins):
    key = hashlib.sha1(f"{os.path.abspath(source)}:{os.path.getsize(source)}:{os.path.getmtime(source)}:"
                       f"{reference_binning}:{dt_bin}:{n_bins}".encode()).hexdigest()[:12]
    directory = cache_dir or os.path.dirname(source)
    return os.path.join(directory, f"{os.path.basename(source)}.binned-{key}.npz")


def load_shd_file(path, reference_binning=True, dt_bin=DT_BIN, n_bins=None, cache=True, cache_dir=None):
    """Read (or reuse the uint8 cache of) one SHD file; accepts ``.h5`` or ``.h5.gz``."""
    source = _decompressed(path)
    cpath = _cache_path(source, cache_dir, reference_binning, dt_bin, n_bins) if cache else None
    if cpath and os.path.exists(cpath):
        d = open_npz(cpath, "SHD cache", f"delete it: it is rebuilt from {source}", required=("x", "y"),
                     error=MissingDataError)
        return d["x"], d["y"]
    x, y = read_shd_h5(source, reference_binning, dt_bin, n_bins)
    if cpath:
        try:
            save_npz_atomic(cpath, x=x, y=y)
        except OSError:
            pass  # read-only data folder: no cache, still correct
    return x, y


def load_shd(data_dir=None, reference_binning=True, dt_bin=DT_BIN, n_bins=None, cache=True, cache_dir=None):
    """``(x_train, y_train), (x_test, y_test)`` as uint8 (N, 250, 700) and int64 labels.

    ``data_dir`` may be the data folder (with ``shd/``) or the folder holding the two files.
    """
    out = []
    for split in ("train", "test"):
        rel = SHD_FILES[split]
        base = os.path.basename(rel)
        path = find_local(data_dir, rel, rel + ".gz", base, base + ".gz")
        if path is None:
            raise missing_data("SHD", rel, data_dir)
        out.append(load_shd_file(path, reference_binning, dt_bin, n_bins, cache, cache_dir))
    return tuple(out)
