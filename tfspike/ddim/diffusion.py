"""Denoising Diffusion Implicit Model (keras-io example by A. Béres) around the tfspike U-Net.

Continuous cosine schedule, EMA network over all weights (BN statistics included), MAE noise loss,
image loss (MAE of the predicted clean image, a metric), KID on validation batches, deterministic DDIM
sampling (η = 0). The block activation of the U-Net is swish (ANN) or a fixed FS-Swish layer trained
end to end through its surrogate gradient (spec fs.md §5).
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from tfspike.ddim.kid import KID
from tfspike.ddim.unet import fs_layers, residual_unet
from tfspike.distribute import batch_share, synchronized_batch_norm


@keras.saving.register_keras_serializable(package="tfspike")
class DiffusionModel(keras.Model):
    """DDIM with an EMA copy of the U-Net.

    Args:
        image_size, channels: image shape S×S×C.
        widths, block_depth, activation, fs_params, voltage_scaling, embedding_dims,
            embedding_max_frequency: the U-Net (:func:`tfspike.ddim.unet.residual_unet`).
        min_signal_rate, max_signal_rate: cosine schedule end points (0.02, 0.95).
        ema: EMA decay of the evaluation network (0.999).
        kid_diffusion_steps: DDIM steps of the images generated for KID (5).
        kid_encoder: a Keras model, images in [0, 1] → features; ``None``: no KID metric.
        kid_name: the KID metric name, e.g. ``kid_fmnist_cnn128`` (history key ``val_<kid_name>``).
        seed: seed of the noise and diffusion-time generator.
        synchronized_bn: BatchNormalization statistics over all replicas of the ``tf.distribute`` strategy in
            scope (None: :func:`tfspike.distribute.synchronized_batch_norm`; :func:`tfspike.ddim.unet.residual_unet`).

    Input shape: images ``(batch, S, S, C)`` in [0, 1] (``fit``/``evaluate`` data).
    Output shape: ``generate(n, steps)`` → ``(n, S, S, C)`` in [0, 1].

    Example:
        >>> model = DiffusionModel(32, 1, widths=(32, 64, 96, 128), activation="fs_swish",
        ...                        fs_params="published")
        >>> model.normalizer.adapt(train_images)
        >>> model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4), jit_compile=True)
        >>> model.fit(train_ds, epochs=1, validation_data=val_ds)
        >>> images = model.generate(16, 20)
    """

    def __init__(self, image_size, channels=3, widths=(32, 64, 96, 128), block_depth=2, activation="swish",
                 fs_params="published", voltage_scaling="abs_plus_one", embedding_dims=32,
                 embedding_max_frequency=1000.0, min_signal_rate=0.02, max_signal_rate=0.95, ema=0.999,
                 kid_diffusion_steps=5, kid_encoder=None, kid_name="kid", seed=None, synchronized_bn=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.channels = int(image_size), int(channels)
        self.widths, self.block_depth = [int(w) for w in widths], int(block_depth)
        self.activation_name = activation if isinstance(activation, str) else None
        self.fs_params = fs_params if isinstance(fs_params, str) else None
        self.voltage_scaling = voltage_scaling
        self.embedding_dims, self.embedding_max_frequency = int(embedding_dims), float(embedding_max_frequency)
        self.min_signal_rate, self.max_signal_rate = float(min_signal_rate), float(max_signal_rate)
        self.ema, self.kid_diffusion_steps = float(ema), int(kid_diffusion_steps)
        self.kid_name, self.seed = kid_name, seed
        self.normalizer = layers.Normalization(name="normalizer")
        if synchronized_bn is None:
            synchronized_bn = synchronized_batch_norm()
        self.network = residual_unet(image_size, channels, widths, block_depth, activation, fs_params,
                                     voltage_scaling, embedding_dims,
                                     embedding_max_frequency=embedding_max_frequency,
                                     synchronized_bn=bool(synchronized_bn), name="network")
        self.ema_network = keras.models.clone_model(self.network)
        self.ema_network.name = "ema_network"
        self.ema_network.set_weights(self.network.get_weights())
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.noise_loss_tracker = keras.metrics.Mean(name="n_loss")
        self.image_loss_tracker = keras.metrics.Mean(name="i_loss")
        self.kid_metric = KID(kid_encoder, name=kid_name) if kid_encoder is not None else None
        self._generate_fns = {}
        # Sub-networks are functional and built already; adapt() later fills the normaliser.
        self.normalizer.build((None, self.image_size, self.image_size, self.channels))
        self.built = True

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "channels": self.channels,
                "widths": self.widths, "block_depth": self.block_depth,
                "activation": self.activation_name or "swish", "fs_params": self.fs_params or "published",
                "voltage_scaling": self.voltage_scaling, "embedding_dims": self.embedding_dims,
                "embedding_max_frequency": self.embedding_max_frequency,
                "min_signal_rate": self.min_signal_rate, "max_signal_rate": self.max_signal_rate,
                "ema": self.ema, "kid_diffusion_steps": self.kid_diffusion_steps, "seed": self.seed}

    @property
    def metrics(self):
        m = [self.noise_loss_tracker, self.image_loss_tracker]
        return m + ([self.kid_metric] if self.kid_metric is not None else [])

    # -- schedule and denoising ----------------------------------------------------------------

    def diffusion_schedule(self, diffusion_times):
        """Continuous cosine schedule: (noise_rates, signal_rates) = (sin, cos) of the angle."""
        start_angle = math.acos(self.max_signal_rate)
        end_angle = math.acos(self.min_signal_rate)
        angles = start_angle + diffusion_times * (end_angle - start_angle)
        return ops.sin(angles), ops.cos(angles)

    def denoise(self, noisy_images, noise_rates, signal_rates, training):
        """``(pred_noises, pred_images)`` of the training network (``training=True``) or the EMA network."""
        network = self.network if training else self.ema_network
        pred_noises, pred_images, _ = self._predict(network, noisy_images, noise_rates, signal_rates, training)
        return pred_noises, pred_images

    @staticmethod
    def _predict(network, noisy_images, noise_rates, signal_rates, training):
        """``(pred_noises, pred_images, extra outputs)`` of ``network``: the U-Net, or a probe whose first
        output is the predicted noise (:func:`fs_spike_probe`)."""
        outputs = network([noisy_images, noise_rates ** 2], training=training)
        if isinstance(outputs, (list, tuple)):
            pred_noises, extras = outputs[0], list(outputs[1:])
        else:
            pred_noises, extras = outputs, []
        pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates
        return pred_noises, pred_images, extras

    def reverse_step(self, noisy_images, diffusion_times, step_size, network=None):
        """One deterministic DDIM step (η = 0) from t = ``diffusion_times`` to t − ``step_size``.

        The noise predicted by ``network`` (default the EMA network; a probe from :func:`fs_spike_probe`
        also works) gives the clean-image estimate, which is remixed with the same noise at the next
        rates. Returns ``(next_noisy_images, pred_images, extra)``, where ``extra`` lists the network's
        outputs after the first (empty for the U-Net).
        """
        network = self.ema_network if network is None else network
        noise_rates, signal_rates = self.diffusion_schedule(diffusion_times)
        pred_noises, pred_images, extras = self._predict(network, noisy_images, noise_rates, signal_rates,
                                                         training=False)
        next_noise_rates, next_signal_rates = self.diffusion_schedule(diffusion_times - step_size)
        return next_signal_rates * pred_images + next_noise_rates * pred_noises, pred_images, extras

    def denormalize(self, images):
        images = self.normalizer.mean + images * ops.sqrt(self.normalizer.variance)
        return ops.clip(images, 0.0, 1.0)

    def reverse_diffusion(self, initial_noise, diffusion_steps):
        """Deterministic DDIM (η = 0) from t = 1 in ``diffusion_steps`` equal steps; returns the
        last predicted (normalised) clean images.

        The steps run in a symbolic loop (``keras.ops.fori_loop``), so the network appears once in the
        graph: unrolling it would make XLA compile ``diffusion_steps`` copies of the U-Net, which for
        FS layers (16 unrolled neuron steps per site) takes many minutes on a CPU.
        """
        num_images = ops.shape(initial_noise)[0]
        step_size = 1.0 / diffusion_steps

        def body(step, state):
            noisy_images, _ = state
            diffusion_times = ops.ones((num_images, 1, 1, 1)) - ops.cast(step, "float32") * step_size
            next_noisy_images, pred_images, _ = self.reverse_step(noisy_images, diffusion_times, step_size)
            return next_noisy_images, pred_images

        _, pred_images = ops.fori_loop(0, diffusion_steps, body, (initial_noise, ops.zeros_like(initial_noise)))
        return pred_images

    def _generate(self, initial_noise, diffusion_steps):
        return self.denormalize(self.reverse_diffusion(initial_noise, diffusion_steps))

    def generate(self, num_images, diffusion_steps, initial_noise=None, seed=None):
        """``num_images`` images in [0, 1] from Gaussian noise (or ``initial_noise``) in
        ``diffusion_steps`` DDIM steps, through one XLA-compiled function per (shape, steps)."""
        if initial_noise is None:
            initial_noise = keras.random.normal((num_images, self.image_size, self.image_size, self.channels),
                                                seed=seed if seed is not None else self.seed_generator)
        # XLA unless the model was compiled without it (Keras turns XLA off on CPU by default).
        jit = bool(self.jit_compile) if self.compiled else True
        key = (int(initial_noise.shape[0]), int(diffusion_steps), jit)
        if key not in self._generate_fns:
            self._generate_fns[key] = tf.function(lambda noise: self._generate(noise, key[1]),
                                                  jit_compile=jit, reduce_retracing=True, autograph=False)
        return self._generate_fns[key](tf.convert_to_tensor(initial_noise, tf.float32))

    # -- training and evaluation ---------------------------------------------------------------

    @property
    def optimized_variables(self):
        """The variables the optimizer updates: the training network's (the EMA copy follows by averaging)."""
        return self.network.trainable_weights

    def prepare_global_batch(self, images, training):
        """``(images, noises, diffusion_times)`` of one batch, plus for evaluation with a KID metric the
        initial noise of the generated images: drawn from the model's seed generator in the order one
        device's step draws them. ``tfspike.distribute`` calls it once per global batch before splitting the
        batch over the replicas, so each replica gets the noise one device would draw for its rows."""
        shape = (ops.shape(images)[0], self.image_size, self.image_size, self.channels)
        noises = keras.random.normal(shape, seed=self.seed_generator)
        diffusion_times = keras.random.uniform((shape[0], 1, 1, 1), 0.0, 1.0, seed=self.seed_generator)
        drawn = (images, noises, diffusion_times)
        if not training and self.kid_metric is not None:
            drawn += (keras.random.normal(shape, seed=self.seed_generator),)
        return drawn

    def _noisy(self, images, noises, diffusion_times):
        """``(noise_rates, signal_rates, noisy_images)``: the images mixed with the noise at the schedule's rates."""
        noise_rates, signal_rates = self.diffusion_schedule(diffusion_times)
        return noise_rates, signal_rates, signal_rates * images + noise_rates * noises

    def _drawn(self, data, training):
        # Keras' fit/evaluate pass the images; tfspike.distribute passes this replica's rows of the drawn batch
        return tuple(data) if isinstance(data, (tuple, list)) else self.prepare_global_batch(data, training)

    def train_step(self, data):
        images, noises, diffusion_times = self._drawn(data, training=True)
        images = self.normalizer(images, training=True)
        noise_rates, signal_rates, noisy_images = self._noisy(images, noises, diffusion_times)
        share = batch_share(ops.shape(images)[0])  # 1 on one device; the gradients are summed over replicas
        with tf.GradientTape() as tape:
            pred_noises, pred_images = self.denoise(noisy_images, noise_rates, signal_rates, training=True)
            noise_loss = ops.mean(ops.abs(noises - pred_noises))
            image_loss = ops.mean(ops.abs(images - pred_images))
            replica_loss = noise_loss * share
        gradients = tape.gradient(replica_loss, self.network.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.network.trainable_weights))
        self.noise_loss_tracker.update_state(noise_loss, sample_weight=share)
        self.image_loss_tracker.update_state(image_loss, sample_weight=share)
        # EMA over all weights, BN moving statistics included (keras-io); the same on every replica.
        for weight, ema_weight in zip(self.network.weights, self.ema_network.weights):
            ema_weight.assign(self.ema * ema_weight + (1.0 - self.ema) * weight)
        return self._logs()

    def get_metrics_result(self):
        # "loss" (= n_loss, the optimised noise loss) is the key the shared NaN stop reads
        # (keras.callbacks.TerminateOnNaN, tfspike.utils.callbacks.SafeCheckpoint); tfspike.distribute logs
        # the metrics' results, Keras' fit the step's logs (_logs): both carry it
        results = super().get_metrics_result()
        results["loss"] = results["n_loss"]
        return results

    def _logs(self):
        results = self.get_metrics_result()
        return {k: results[k] for k in ("loss", "n_loss", "i_loss")}

    def test_step(self, data):
        images, noises, diffusion_times, *kid_noise = self._drawn(data, training=False)
        images = self.normalizer(images, training=False)
        noise_rates, signal_rates, noisy_images = self._noisy(images, noises, diffusion_times)
        share = batch_share(ops.shape(images)[0])
        pred_noises, pred_images = self.denoise(noisy_images, noise_rates, signal_rates, training=False)
        self.noise_loss_tracker.update_state(ops.mean(ops.abs(noises - pred_noises)), sample_weight=share)
        self.image_loss_tracker.update_state(ops.mean(ops.abs(images - pred_images)), sample_weight=share)
        logs = self._logs()
        if self.kid_metric is not None:
            real = self.denormalize(images)
            generated = self._generate(kid_noise[0], self.kid_diffusion_steps)
            self.kid_metric.update_state(real, generated)
            logs[self.kid_name] = self.kid_metric.result()
        return logs

    def noise_gradients(self, images, seed=0):
        """Gradients of the noise loss w.r.t. the trainable weights for one batch (no update; tests, E4)."""
        images = self.normalizer(images, training=True)
        gen = keras.random.SeedGenerator(seed)
        batch = ops.shape(images)[0]
        noises = keras.random.normal(ops.shape(images), seed=gen)
        noise_rates, signal_rates, noisy_images = self._noisy(images, noises,
                                                              keras.random.uniform((batch, 1, 1, 1), seed=gen))
        with tf.GradientTape() as tape:
            pred_noises, _ = self.denoise(noisy_images, noise_rates, signal_rates, training=True)
            loss = ops.mean(ops.abs(noises - pred_noises))
        return loss, tape.gradient(loss, self.network.trainable_weights)


def seeded_trajectories(model, sampling_step, num_images, diffusion_steps, seed=0, batch_size=None):
    """Run ``sampling_step(noisy_images, diffusion_times) -> (next_noisy_images, extra)`` along the DDIM
    trajectories of ``num_images`` images from seeded noise (``np.random.default_rng(seed)``, in batches of
    ``batch_size``) and yield ``extra`` of every step. The spike statistics and the energy counter use it,
    so both see the same trajectories."""
    step_size = 1.0 / diffusion_steps
    gen = np.random.default_rng(seed)
    batch_size = int(batch_size or num_images)
    done = 0
    while done < num_images:
        b = min(batch_size, num_images - done)
        noisy = tf.constant(gen.standard_normal((b, model.image_size, model.image_size, model.channels)),
                            tf.float32)
        for step in range(diffusion_steps):
            noisy, extra = sampling_step(noisy, tf.fill((b, 1, 1, 1), 1.0 - step * step_size))
            yield extra
        done += b


def fs_spike_probe(network):
    """A model ``[noisy, variance] -> [pred_noises, input of each FS layer...]`` and the FS layers
    (in graph order); ``(None, [])`` for a network without FS layers."""
    sites = fs_layers(network)
    if not sites:
        return None, []
    return keras.Model(network.inputs, [network.output] + [layer.input for layer in sites]), sites


def sample_fs_spike_stats(model, num_images, diffusion_steps, seed=0, batch_size=None):
    """Spikes per FS neuron per network call during deterministic DDIM sampling with the EMA network.

    Runs the sampler step by step (one XLA-compiled function per step); at every step the input of each
    FS layer is read through a probe model that shares the EMA network's layers, and its spikes are
    counted with ``tfspike.fs.fs_forward(..., return_spike_count=True)``; the layer output is never
    changed. Returns ``{"spikes_per_neuron": total spikes / (Σ neurons · images · steps),
    "n_neurons": Σ neurons per image, "num_images", "diffusion_steps", "per_site": {name:
    {"n_neurons", "spikes_per_neuron"}}}``, or ``None`` for a network without FS layers.
    """
    from tfspike.fs import fs_forward

    probe, sites = fs_spike_probe(model.ema_network)
    if probe is None:
        return None
    params = [_layer_params(layer) for layer in sites]
    batch_size = batch_size or num_images
    step_size = 1.0 / diffusion_steps

    @tf.function(jit_compile=bool(model.jit_compile) if model.compiled else True)
    def sampling_step(noisy_images, diffusion_times):
        next_noisy_images, _, fs_inputs = model.reverse_step(noisy_images, diffusion_times, step_size, probe)
        counts = []
        for x, (h, d, T, scaling) in zip(fs_inputs, params):
            _, n = fs_forward(x, h, d, T, voltage_scaling=scaling, return_spike_count=True)
            counts.append(tf.reduce_sum(tf.cast(n, tf.float64)))  # float32 sums lose integers above 2^24
        return next_noisy_images, tf.stack(counts)

    totals = np.zeros(len(sites), np.float64)
    for counts in seeded_trajectories(model, sampling_step, num_images, diffusion_steps, seed, batch_size):
        totals += counts.numpy().astype(np.float64)
    per_site, n_total = {}, 0
    calls = num_images * diffusion_steps
    for layer, total in zip(sites, totals):
        n = math.prod(int(s) for s in layer.input.shape[1:])
        n_total += n
        per_site[layer.name] = {"n_neurons": n, "spikes_per_neuron": float(total / (n * calls))}
    return {"spikes_per_neuron": float(totals.sum() / (n_total * calls)), "n_neurons": n_total,
            "num_images": num_images, "diffusion_steps": diffusion_steps, "per_site": per_site}


def _layer_params(layer):
    h, d, T = layer.current_params()
    return h, d, T, layer.voltage_scaling
