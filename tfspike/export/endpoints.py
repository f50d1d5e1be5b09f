"""The SavedModel endpoints of every model family, with the sample inputs and the Keras reference that
``tfspike.export`` checks them against.

A family is recognised by the model's class: :class:`~tfspike.ddim.diffusion.DiffusionModel`,
:class:`~tfspike.rsnn.model.RSNN`, :class:`~tfspike.ttfs.TTFSModel`, a Keras model holding
:class:`~tfspike.fs.FewSpike` layers, or any other single-input functional/Sequential Keras model
(ReLU twins). Each endpoint is a plain function of named tensors that returns a dict of named tensors;
it is traced once by ``keras.export.ExportArchive``.
"""

import sys
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from tfspike.errors import UserError

FAMILIES = ("ddim", "rsnn", "ttfs", "fs", "keras")
DEFAULT_BATCH = 4  # sample inputs made up when the caller gives none
DEFAULT_STEPS = 32  # RSNN sample sequence length when the caller gives none
DDIM_DEFAULTS = {"seed": 0, "num_images": 2, "diffusion_steps": 3}


@dataclass
class Endpoint:
    """One signature: ``fn(*tensors) -> {name: tensor}`` with ``specs`` (named ``tf.TensorSpec``s),
    ``sample`` (input name → array) and ``reference(sample) -> {name: array}`` (the Keras model's
    outputs on the sample). ``counts`` names the outputs that are spike counts (compared exactly);
    ``tolerances`` gives outputs their own ``(atol, rtol, mean_atol)`` (see :data:`GENERATION_TOLERANCE`)."""

    name: str
    fn: object
    specs: list
    sample: dict
    reference: object
    counts: tuple = ()
    tolerances: dict = None


# A DDIM U-Net with Few-Spike activations: FS neurons are thresholds, so a float32 reordering between the
# eager Keras model and the SavedModel graph (~1e-7) that moves a potential across a threshold flips a
# spike, which shifts the values behind it; in generation the flip carries through the following U-Net
# calls. Measured on the trained fs_ddim_fashion_mnist preset: one denoise call, 14 of 4096 noise values off
# by up to 0.0027; a 20-step trajectory, max |Δ| 0.004 on images in [0, 1]. A wrong export (other weights,
# schedule or noise) moves every value by O(0.1). So: each value within 0.01 (denoise) / 0.02 (generate)
# and the mean within 1e-4 / 1e-3.
DENOISE_TOLERANCE = (1e-2, 0.0, 1e-4)
GENERATION_TOLERANCE = (2e-2, 0.0, 1e-3)


def _loaded_class(module, name):
    """``module.name`` if ``module`` is imported already, else None: a model cannot be an instance of a
    class whose module was never loaded, so dispatching costs no import of the other families."""
    mod = sys.modules.get(module)
    return getattr(mod, name, None) if mod is not None else None


def _isinstance(model, module, name):
    cls = _loaded_class(module, name)
    return cls is not None and isinstance(model, cls)


def _fs_sites(model):
    if _loaded_class("tfspike.fs.layer", "FewSpike") is None:
        return []
    from tfspike.fs.stats import fs_sites

    return fs_sites(model)


def family(model):
    """``"ddim"``, ``"rsnn"``, ``"ttfs"``, ``"fs"`` or ``"keras"``; :class:`UserError` naming the class for
    anything else."""
    if _isinstance(model, "tfspike.ddim.diffusion", "DiffusionModel"):
        return "ddim"
    if _isinstance(model, "tfspike.rsnn.model", "RSNN"):
        return "rsnn"
    if _isinstance(model, "tfspike.ttfs.model", "TTFSModel"):
        return "ttfs"
    if not isinstance(model, keras.Model):
        raise UserError(f"cannot export a {type(model).__name__}: tfspike.export takes a Keras model "
                        f"(TTFS, Few-Spike or ReLU feed-forward), an RSNN or a DiffusionModel")
    try:
        has_fs = bool(_fs_sites(model))
    except UserError:  # shared FS layers: still an FS network, only the spike counter cannot see them
        has_fs = True
    return "fs" if has_fs else "keras"


# ----------------------------------------------------------------------------- samples

def _named_sample(sample, names, what):
    """``sample`` as {input name: array}: a dict with exactly ``names``, or one array for one input."""
    if isinstance(sample, dict):
        if sorted(sample) != sorted(names):
            raise UserError(f"sample for {what} must have the keys {', '.join(names)}, got {', '.join(sorted(sample))}")
        return dict(sample)
    if len(names) != 1:
        raise UserError(f"sample for {what} must be a dict with the keys {', '.join(names)}")
    return {names[0]: sample}


def _as_array(value, shape, dtype, what):
    """``value`` as an array of ``dtype`` whose shape fits ``shape`` (None = any size)."""
    try:
        a = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise UserError(f"sample {what} is not numeric: {e}") from None
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise UserError(f"sample {what} has shape {a.shape}, the signature takes {want}")
    return a


def _feature_input(model):
    """(feature shape, dtype name) of the single input of a functional/Sequential model."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs or len(inputs) != 1:
        raise UserError(f"cannot export {type(model).__name__} {model.name!r}: a feed-forward model needs exactly "
                        f"one Keras input (build it from keras.Input)")
    shape = tuple(inputs[0].shape[1:])
    if any(s is None for s in shape):
        raise UserError(f"cannot export {model.name!r}: its input shape {tuple(inputs[0].shape)} has unknown "
                        f"feature sizes; the serve signature needs a static feature shape")
    if len(model.outputs) != 1:
        raise UserError(f"cannot export {model.name!r}: it has {len(model.outputs)} outputs, the serve "
                        f"signature returns one (logits)")
    return shape, keras.backend.standardize_dtype(inputs[0].dtype)


def _count_dims(x):
    return list(range(1, len(x.shape)))


# ----------------------------------------------------------------------------- feed-forward (TTFS, FS, ReLU)

def _feed_forward(model, sample, kind):
    shape, dtype = _feature_input(model)
    if sample is None:
        sample = np.random.default_rng(0).uniform(0.0, 1.0, (DEFAULT_BATCH,) + shape)
    x = _as_array(_named_sample(sample, ["inputs"], "serve")["inputs"], (None,) + shape, dtype, "inputs")
    specs = [tf.TensorSpec((None,) + shape, dtype, name="inputs")]

    def serve(inputs):
        return {"logits": model(inputs, training=False)}

    def reference(s):
        return {"logits": keras.ops.convert_to_numpy(model(s["inputs"], training=False))}

    endpoints = [Endpoint("serve", serve, specs, {"inputs": x}, reference)]
    spikes = _ttfs_spikes(model) if kind == "ttfs" else _fs_spikes(model) if kind == "fs" else None
    if spikes is not None:
        endpoints.append(Endpoint("spikes", spikes, specs, {"inputs": x},
                                  lambda s: {k: v.numpy() for k, v in spikes(tf.constant(s["inputs"])).items()},
                                  counts=("spike_count",)))
    return endpoints


def _ttfs_spikes(model):
    """``spikes(inputs) -> {"logits", "spike_count"}`` of a TTFSModel: the layers' own inference pass
    (as :func:`tfspike.ttfs.evaluate_ttfs` runs it), counting per sample the hidden neurons that fire
    (each fires at most once)."""
    from tfspike.ttfs.base import TTFSSpikingLayer

    def spikes(inputs):
        r = inputs
        count = tf.zeros(tf.shape(inputs)[:1], tf.float64)
        for layer in model.layers:
            if isinstance(layer, TTFSSpikingLayer) and layer.spiking:
                r, fired = layer.spike(layer.linear(r), training=False)
                count += tf.reduce_sum(tf.cast(fired, tf.float64), axis=_count_dims(fired))
            else:
                r = layer(r, training=False)
        return {"logits": r, "spike_count": tf.cast(count, tf.float32)}

    return spikes


def _fs_spikes(model):
    """``spikes(inputs) -> {"logits", "spike_count"}`` of a Keras model with FewSpike layers: a probe of
    the model's graph reads every FS layer's input, and :meth:`FewSpike.spike_count` counts its spikes
    (as :func:`tfspike.fs.spike_stats` does). None when a site is nested or shared (no probe reaches it)."""
    try:
        sites = _fs_sites(model)
    except UserError:
        return None
    if not sites or any("/" in name for name, _, _ in sites):
        return None
    probe = keras.Model(model.inputs[0], [model.outputs[0]] + [inp for _, _, inp in sites])

    def spikes(inputs):
        outs = probe(inputs, training=False)
        count = tf.zeros(tf.shape(inputs)[:1], tf.float64)
        for (_, layer, _), a in zip(sites, outs[1:]):
            n = layer.spike_count(a)
            count += tf.reduce_sum(tf.cast(n, tf.float64), axis=_count_dims(n))
        return {"logits": outs[0], "spike_count": tf.cast(count, tf.float32)}

    return spikes


# ----------------------------------------------------------------------------- RSNN

def _rsnn(model, sample):
    n_in = int(model.hidden.cell.input_dim)
    if sample is None:
        sample = np.random.default_rng(0).uniform(0.0, 1.0, (DEFAULT_BATCH, DEFAULT_STEPS, n_in))
    x = _as_array(_named_sample(sample, ["sequences"], "serve")["sequences"], (None, None, n_in), "float32",
                  "sequences")
    if x.shape[1] < 1:
        raise UserError("sample sequences need at least one time step")
    specs = [tf.TensorSpec((None, None, n_in), tf.float32, name="sequences")]  # any length: a while loop

    def outputs(logits, spikes):
        # spike_count: hidden spikes per sample, the quantity RSNN logs as "sop" (RSNN.loss_and_stats)
        return {"logits": logits, "last_logits": logits[:, -1], "spike_count": tf.reduce_sum(spikes, axis=[1, 2])}

    def serve(sequences):
        return outputs(*model.forward(sequences, training=False))

    def reference(s):
        return {k: v.numpy() for k, v in outputs(*model.forward(tf.constant(s["sequences"]))).items()}

    return [Endpoint("serve", serve, specs, {"sequences": x}, reference, counts=("spike_count",))]


# ----------------------------------------------------------------------------- DDIM

def _ddim_noise(model, seed, num_images, offset=0):
    """The initial noise of ``generate``: ``tf.random.stateless_normal`` with seed ``[seed, offset]``."""
    shape = tf.stack([tf.cast(num_images, tf.int32), model.image_size, model.image_size, model.channels])
    return tf.random.stateless_normal(shape, seed=tf.stack([tf.cast(seed, tf.int64), tf.constant(offset, tf.int64)]))


def _ddim(model, sample):
    params = dict(DDIM_DEFAULTS)
    if sample is not None:
        if not isinstance(sample, dict) or set(sample) - set(DDIM_DEFAULTS):
            raise UserError(f"sample for a DiffusionModel must be a dict with some of the keys "
                            f"{', '.join(DDIM_DEFAULTS)}, got {sample!r}")
        params.update(sample)
    try:
        seed, n, steps = int(params["seed"]), int(params["num_images"]), int(params["diffusion_steps"])
    except (TypeError, ValueError):
        raise UserError(f"sample seed, num_images and diffusion_steps must be integers, got {params}") from None
    if n < 1 or steps < 1:
        raise UserError(f"sample num_images and diffusion_steps must be >= 1, got {n} and {steps}")
    size, ch = model.image_size, model.channels
    gen_specs = [tf.TensorSpec((), tf.int64, name="seed"), tf.TensorSpec((), tf.int32, name="num_images"),
                 tf.TensorSpec((), tf.int32, name="diffusion_steps")]

    def generate(seed, num_images, diffusion_steps):
        # DDIM (eta = 0) with the EMA network through the model's own reverse_step, in a while loop so
        # the step count is an input; the same steps as DiffusionModel.reverse_diffusion.
        check = tf.debugging.assert_positive(diffusion_steps, message="diffusion_steps must be >= 1")
        with tf.control_dependencies([check]):
            noise = _ddim_noise(model, seed, num_images)
        step_size = 1.0 / tf.cast(diffusion_steps, tf.float32)
        ones = tf.ones(tf.stack([tf.shape(noise)[0], 1, 1, 1]))

        def body(step, noisy, _):
            times = ones - tf.cast(step, tf.float32) * step_size
            next_noisy, pred_images, _ = model.reverse_step(noisy, times, step_size)
            return step + 1, next_noisy, pred_images

        _, _, pred = tf.while_loop(lambda step, *_: step < diffusion_steps, body,
                                   (tf.constant(0), noise, tf.zeros_like(noise)))
        return {"images": model.denormalize(pred)}

    def generate_reference(s):
        # The model's own sampler, run eagerly: generate() would first XLA-compile it (slow on a CPU).
        noise = _ddim_noise(model, s["seed"], s["num_images"])
        images = model.denormalize(model.reverse_diffusion(noise, int(s["diffusion_steps"])))
        return {"images": keras.ops.convert_to_numpy(images)}

    den_specs = [tf.TensorSpec((None, size, size, ch), tf.float32, name="noisy_images"),
                 tf.TensorSpec((None, 1, 1, 1), tf.float32, name="noise_rates"),
                 tf.TensorSpec((None, 1, 1, 1), tf.float32, name="signal_rates")]

    def denoise(noisy_images, noise_rates, signal_rates):
        pred_noises, pred_images = model.denoise(noisy_images, noise_rates, signal_rates, training=False)
        return {"pred_noises": pred_noises, "pred_images": pred_images}

    def denoise_reference(s):
        args = (tf.constant(s[k]) for k in ("noisy_images", "noise_rates", "signal_rates"))
        return {k: keras.ops.convert_to_numpy(v) for k, v in denoise(*args).items()}

    times = np.linspace(0.1, 0.9, n, dtype=np.float32).reshape(n, 1, 1, 1)
    noise_rates, signal_rates = (keras.ops.convert_to_numpy(r) for r in model.diffusion_schedule(times))
    gen_sample = {"seed": np.int64(seed), "num_images": np.int32(n), "diffusion_steps": np.int32(steps)}
    den_sample = {"noisy_images": _ddim_noise(model, seed, n, offset=1).numpy(),
                  "noise_rates": noise_rates.astype(np.float32), "signal_rates": signal_rates.astype(np.float32)}
    spiking = bool(_fs_sites(model.ema_network))
    gen_tol = {"images": GENERATION_TOLERANCE} if spiking else None
    den_tol = dict.fromkeys(("pred_noises", "pred_images"), DENOISE_TOLERANCE) if spiking else None
    return [Endpoint("generate", generate, gen_specs, gen_sample, generate_reference, tolerances=gen_tol),
            Endpoint("denoise", denoise, den_specs, den_sample, denoise_reference, tolerances=den_tol)]


def ddim_resources(model):
    """What a DDIM SavedModel holds: the EMA network and the normaliser (not the training network, the
    optimizer or the KID feature extractor)."""
    return [model.ema_network, model.normalizer]


def endpoints(model, sample=None):
    """``(family, resources to track, [Endpoint, ...])`` of ``model``; :class:`UserError` for a model
    no family takes or a sample that does not fit."""
    kind = family(model)
    if kind == "ddim":
        return kind, ddim_resources(model), _ddim(model, sample)
    if kind == "rsnn":
        if not model.built:
            raise UserError(f"cannot export RSNN {model.name!r}: build it first (build_rsnn builds it)")
        return kind, [model], _rsnn(model, sample)
    return kind, [model], _feed_forward(model, sample, kind)


def stochastic_layers(model):
    """Names of the layers whose inference output is random (TTFS spike-time noise), which a SavedModel
    cannot reproduce call for call."""
    return [l.name for l in getattr(model, "layers", []) if float(getattr(l, "noise", 0.0) or 0.0) > 0
            and hasattr(l, "noise_mode")]


def describe_spec(spec):
    """``{"shape": [...] (None = any size), "dtype": ...}`` of a ``tf.TensorSpec``."""
    return {"shape": None if spec.shape.rank is None else spec.shape.as_list(), "dtype": spec.dtype.name}

