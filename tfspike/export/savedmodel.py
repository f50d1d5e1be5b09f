"""``tfspike.export(model, directory)``: a TensorFlow SavedModel of any tfspike model, checked in plain
TensorFlow.

The signatures per family (see :mod:`tfspike.export.endpoints`):

============================  =====================================================================
family                        signatures (named inputs → named outputs)
============================  =====================================================================
TTFS, FS, ReLU feed-forward   ``serve(inputs [B, *features]) → {logits}``; TTFS and FS networks also
                              ``spikes(inputs) → {logits, spike_count [B]}``
RSNN                          ``serve(sequences [B, T, I]) → {logits [B, T, O], last_logits [B, O],
                              spike_count [B]}`` (any T)
DiffusionModel                ``generate(seed, num_images, diffusion_steps) → {images [n, S, S, C]}``,
                              ``denoise(noisy_images, noise_rates, signal_rates) → {pred_noises,
                              pred_images}``
============================  =====================================================================

The first signature is also ``serving_default`` (TF-Serving needs one).
"""

import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tfspike.errors import UserError
from tfspike.export import reload as reload_script
from tfspike.export.endpoints import describe_spec, endpoints, stochastic_layers
from tfspike.utils.files import first_line, open_npz, read_json
from tfspike.utils.io import atomic_dir, save_npz_atomic

# (atol, rtol) of float outputs by dtype. Both sides run the same TensorFlow kernels on the CPU; only
# graph rewrites of the loaded SavedModel (constant folding, op fusion, oneDNN blocking) change the
# summation order, which moves float32 results by ~1e-7 relative. 1e-5 leaves a 100x margin and
# still catches every real fault (a missed weight, the wrong noise, the wrong normaliser: >= 1e-3).
TOLERANCES = {"float16": (1e-3, 1e-3), "bfloat16": (1e-2, 1e-2), "float32": (1e-5, 1e-5),
              "float64": (1e-10, 1e-10)}
# (atol, rtol) of spike counts (integers, per sample): exact below 10,000 spikes, else 1 spike in 10^4.
# A count moves only when a membrane value lies within float32 rounding (~1e-7 relative) of its
# threshold and a graph rewrite rounds it the other way: a handful of such ties is possible in a batch
# of a large network (a VGG has ~3e5 neurons per image), far below 1e-4, while a real fault (another
# threshold, a missed weight) changes the counts by percents.
COUNT_TOLERANCE = (0.0, 1e-4)
CHECK_TIMEOUT_S = 1800
SAVED_MODEL_FILE = "saved_model.pb"


def _prepare_directory(directory):
    """The absolute export path, refusing a file, a folder that is not a SavedModel (it would be
    replaced) and a parent that cannot be created or written."""
    try:
        path = os.path.abspath(os.fspath(directory))
    except TypeError:
        raise UserError(f"export directory must be a path, got {directory!r}") from None
    if os.path.lexists(path) and not os.path.isdir(path):
        raise UserError(f"export directory {path} exists and is not a folder")
    if os.path.isdir(path) and os.listdir(path) and not os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
        raise UserError(f"export directory {path} is not empty and holds no SavedModel; refusing to replace it")
    parent = os.path.dirname(path)
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"export directory {path} cannot be created: {existing} is a file, not a folder")
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise UserError(f"export directory {path} cannot be created: {e.strerror or e}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"export directory {path} cannot be created: {parent} is not writable")
    return path


def _signature_table(archive_fns):
    """{name: {"inputs": {name: spec}, "outputs": {name: spec}}} of the traced endpoints."""
    table = {}
    for name, (fn, specs) in archive_fns.items():
        concrete = fn.get_concrete_function()  # traced by add_endpoint for its input_signature
        table[name] = {"inputs": {s.name: describe_spec(s) for s in specs},
                       "outputs": {k: describe_spec(v) for k, v in concrete.structured_outputs.items()}}
    return table


def export(model, directory, *, sample=None, verify=True):
    """Write ``model`` as a TensorFlow SavedModel to ``directory`` (atomically) and check it.

    Args:
        model: a TTFS model (``TTFSModel``), a Keras model with ``FewSpike`` layers, a plain single-input
            Keras model (a ReLU twin), an ``RSNN`` or a ``DiffusionModel``.
        directory: the SavedModel folder; written to a temporary sibling first and renamed, so it never
            holds a half-written model. An existing SavedModel there is replaced; any other non-empty
            folder is refused.
        sample: inputs of the check: an array (or ``{"inputs": ...}``) of feature batches for
            feed-forward models, an array ``[B, T, I]`` (or ``{"sequences": ...}``) for an RSNN, a dict
            with some of ``seed``, ``num_images``, ``diffusion_steps`` for a DiffusionModel. ``None``:
            a few made-up inputs (uniform [0, 1); DDIM: seed 0, 2 images, 3 steps).
        verify: reload the SavedModel in a fresh Python process that does not import tfspike, call
            every signature on ``sample`` and compare with the Keras model (:data:`TOLERANCES` for
            floats; spike counts per sample exactly, or to 1 in 10^4 above 10,000 spikes:
            :data:`COUNT_TOLERANCE`).

    Returns:
        ``{"dir", "family", "signatures": {name: {"inputs": {name: {"shape", "dtype"}}, "outputs":
        {...}}}, "max_abs_diff": {"<signature>/<output>": float}}`` (``max_abs_diff`` empty without
        ``verify``).

    Raises:
        UserError: a model of no family, a sample that does not fit, an unusable directory, or a
            SavedModel that does not reproduce the model (then ``directory`` is left unchanged).
    """
    path = _prepare_directory(directory)
    kind, resources, eps = endpoints(model, sample)
    noisy = stochastic_layers(model)
    if verify and noisy:
        raise UserError(f"cannot verify the export of {model.name!r}: layer(s) {', '.join(noisy)} add random "
                        f"spike-time noise; configure(noise=0) first or pass verify=False")
    archive = keras.export.ExportArchive()
    for resource in resources:
        archive.track(resource)
    traced = {ep.name: (archive.add_endpoint(ep.name, ep.fn, input_signature=ep.specs), ep.specs) for ep in eps}
    signatures = _signature_table(traced)
    try:
        with atomic_dir(path) as tmp:
            archive.write_out(tmp, verbose=False)
            diffs = _verify(tmp, eps, signatures) if verify else {}
    except OSError as e:
        raise UserError(f"cannot write the SavedModel to {path}: {e.strerror or first_line(e)}") from None
    return {"dir": path, "family": kind, "signatures": signatures, "max_abs_diff": diffs}


def _start_reload(saved_dir, inputs, work):
    """Start :mod:`tfspike.export.reload` in a fresh interpreter on ``inputs`` ({"sig/input": array});
    returns ``(process, paths)`` for :func:`_finish_reload`."""
    paths = {k: os.path.join(work, k) for k in ("inputs.npz", "outputs.npz", "signatures.json")}
    save_npz_atomic(paths["inputs.npz"], **inputs)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The CPU only: this process may hold the GPU's memory, and the reference runs on the CPU too.
    env["CUDA_VISIBLE_DEVICES"] = "-1"
    cmd = [sys.executable, "-I", reload_script.__file__, saved_dir, paths["inputs.npz"], paths["outputs.npz"],
           paths["signatures.json"]]
    return subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), paths


def _finish_reload(process, paths, saved_dir):
    """Wait for the child; (outputs {"sig/output": array}, signatures as TensorFlow sees them)."""
    try:
        _, stderr = process.communicate(timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise UserError(f"reloading the SavedModel {saved_dir} in plain TensorFlow took over {CHECK_TIMEOUT_S} s") \
            from None
    if process.returncode != 0:
        lines = [l.strip() for l in stderr.splitlines() if l.strip()]
        raise UserError(f"reloading the SavedModel in plain TensorFlow failed: "
                        f"{lines[-1] if lines else f'exit status {process.returncode}'}")
    hint = "the SavedModel check's child process wrote it"
    return (open_npz(paths["outputs.npz"], "SavedModel check output", hint=hint),
            read_json(paths["signatures.json"], "SavedModel check signatures", hint=hint))


def _verify(saved_dir, eps, signatures):
    """Reload in plain TensorFlow, compare with the Keras model; {"sig/output": max |Δ|} or UserError."""
    inputs = {f"{ep.name}/{k}": np.asarray(v) for ep in eps for k, v in ep.sample.items()}
    with tempfile.TemporaryDirectory(prefix=".export-check.", dir=os.path.dirname(saved_dir)) as work:
        process, paths = _start_reload(saved_dir, inputs, work)
        try:
            with tf.device("/CPU:0"):  # while the child starts up (TensorFlow's import takes seconds)
                references = {ep.name: ep.reference(ep.sample) for ep in eps}
        except BaseException:
            process.kill()
            process.communicate()
            raise
        served, loaded = _finish_reload(process, paths, saved_dir)
    for name, table in signatures.items():
        if loaded.get(name) != table:
            raise UserError(f"the reloaded SavedModel's signature {name!r} is {loaded.get(name)}, expected {table}")
    diffs = {}
    for ep in eps:
        for out, ref in references[ep.name].items():
            key = f"{ep.name}/{out}"
            got, ref = np.asarray(served[key]), np.asarray(ref)
            if got.shape != ref.shape:
                raise UserError(f"exported SavedModel {key} has shape {got.shape}, the Keras model gives {ref.shape}")
            diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
            diffs[key] = float(diff.max()) if diff.size else 0.0
            atol, rtol = COUNT_TOLERANCE if out in ep.counts else TOLERANCES.get(ref.dtype.name, (0.0, 0.0))
            atol, rtol, mean_atol = (ep.tolerances or {}).get(out, (atol, rtol, None))
            bad = ~(diff <= atol + rtol * np.abs(ref.astype(np.float64)))  # NaN on one side only is bad too
            bad &= ~(np.isnan(got.astype(np.float64)) & np.isnan(ref.astype(np.float64)))
            if bad.any():
                raise UserError(f"exported SavedModel differs from the Keras model: {key} max |Δ| {diffs[key]:.3g} "
                                f"({int(bad.sum())} of {bad.size} values beyond atol {atol:g} + rtol {rtol:g})")
            if mean_atol is not None and diff.size and float(np.mean(diff)) > mean_atol:
                raise UserError(f"exported SavedModel differs from the Keras model: {key} mean |Δ| "
                                f"{float(np.mean(diff)):.3g} > {mean_atol:g}")
    return diffs
