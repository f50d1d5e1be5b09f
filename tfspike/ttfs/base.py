"""Shared machinery of the TTFS spiking layers (B1 model of Stanojevic et al. 2024).

Layers pass **deadline-relative times** r = t_max − t (= the ReLU activation x, r = 0 ⇔ no spike), so
float32 keeps the exactness the closed form promises (spec §2): a hidden layer computes
r_out = max(op(r_in) + D, 0), which is t_out = min(t_max − (Wᵀx + D), t_max) in absolute time.

Each spiking layer owns its window as non-trainable float64 weights ``t_min`` and ``t_max``
(Δ = t_max − t_min) and ``batch_max``, the largest activation of the last training batch, which
:class:`tfspike.ttfs.TTFSModel` uses for the window-growth rule after every optimizer step.

The robustness options act on what the layer emits: Gaussian noise on spike times, then time
quantisation on the layer's own window [0, Δ] — equal to the reference's quantisation of the next
layer's inputs, because fake quantisation is monotone and commutes with max-pooling and flattening.
"""

import keras
import numpy as np
import tensorflow as tf

from tfspike.distribute import replica_max
from tfspike.errors import UserError
from tfspike.ttfs.quantize import quantize_times, quantize_weights

NOISE_MODES = ("reference", "spikes")


def pair(v):
    """An int or a pair of ints as a tuple of two ints (kernel sizes, strides)."""
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(a) for a in v)


def spatial_size(n, k, s, padding):
    """Output length of a sliding window (Keras conventions for "same" and "valid")."""
    if n is None:
        return None
    return -(-n // s) if padding == "same" else (n - k) // s + 1
DEFAULT_X_N = 1000.0
DEFAULT_ZETA = 0.5


class TTFSSpikingLayer(keras.layers.Layer):
    """Base class: window weights, noise, quantisation, weight fake-quant and spike statistics.

    Args:
        output: True for the non-spiking readout (returns the membrane potential = logits; no window).
        x_n: expected largest activation; the initial window is Δ = (1 + zeta)·x_n (reference 1000 → 1500).
        zeta: window margin.
        noise: std of Gaussian spike-time noise (τ_c units); 0 = off (bitwise the noise-free path).
        noise_mode: "reference" (every neuron jittered, silent ones too) or "spikes" (only emitted spikes;
            a spike pushed past t_max is lost).
        time_bits: quantise emitted times on the layer's window with this many bits (0 = off).
        weight_bits, w_min, w_max: fake-quantise the kernel in the forward pass (0 = off).
        clamp_to_window: clip activations at Δ (no spike before t_min); off as in the reference.
    """

    def __init__(self, output=False, x_n=DEFAULT_X_N, zeta=DEFAULT_ZETA, noise=0.0, noise_mode="reference",
                 time_bits=0, weight_bits=0, w_min=-1.0, w_max=1.0, clamp_to_window=False, **kwargs):
        super().__init__(**kwargs)
        if noise_mode not in NOISE_MODES:
            raise UserError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if noise < 0:
            raise UserError(f"noise must be >= 0, got {noise}")
        for name, bits in (("time_bits", time_bits), ("weight_bits", weight_bits)):
            if bits and not 2 <= int(bits) <= 16:
                raise UserError(f"{name} must be 0 or in [2, 16], got {bits}")
        if weight_bits and not w_min < w_max:
            raise UserError(f"w_min must be < w_max, got {w_min} >= {w_max}")
        self.readout = bool(output)  # Keras reserves `layer.output`
        self.x_n, self.zeta = float(x_n), float(zeta)
        self.noise, self.noise_mode = float(noise), noise_mode
        self.time_bits, self.weight_bits = int(time_bits), int(weight_bits)
        self.w_min, self.w_max = float(w_min), float(w_max)
        self.clamp_to_window = bool(clamp_to_window)

    # -- weights ---------------------------------------------------------------------------------
    def build_window(self):
        if self.readout:
            return
        delta0 = (1.0 + self.zeta) * self.x_n
        # float64 whatever the layer dtype: absolute times reach ~2e4 (spec §2). The initial value is a
        # NumPy float64: Keras casts a Python float through float32 (Δ = 3.6 would become 3.5999999).
        # Under a tf.distribute strategy the train step assigns them on every replica with the same value
        # (batch_max is the max over all replicas, see spike()); ONLY_FIRST_REPLICA allows that assignment
        # in a replica context and keeps one value everywhere.
        window = dict(shape=(), dtype="float64", trainable=False, aggregation="only_first_replica")
        self.t_min = self.add_weight(name="t_min", initializer=keras.initializers.Constant(1.0), **window)
        self.t_max = self.add_weight(name="t_max", initializer=keras.initializers.Constant(np.float64(1.0 + delta0)),
                                     **window)
        self.batch_max = self.add_weight(name="batch_max", initializer="zeros", **window)

    @property
    def spiking(self):
        return not self.readout

    def delta(self):
        return self.t_max - self.t_min

    def effective_kernel(self):
        return quantize_weights(self.kernel, self.weight_bits, self.w_min, self.w_max)

    # -- forward ---------------------------------------------------------------------------------
    def linear(self, r):
        """op(r) + D: the potential relative to threshold (the ReLU pre-activation)."""
        raise NotImplementedError

    def spike(self, pre, training=False):
        """Emitted relative times from the pre-activation, plus the firing mask (pre-noise)."""
        fired = pre > 0
        r = tf.nn.relu(pre)  # t = min(t̃, t_max); gradient 0 for silent neurons, as ReLU
        delta = tf.cast(self.delta(), r.dtype)
        if self.clamp_to_window:
            r = tf.minimum(r, delta)
        if self.noise > 0:
            eps = tf.random.normal(tf.shape(r), stddev=self.noise, dtype=r.dtype)
            r = r - eps if self.noise_mode == "reference" else tf.where(fired, tf.nn.relu(r - eps), r)
        if training:
            # Growth rule input (spec §1.7): largest activation of this step, noise included, over the
            # global batch: the max over all replicas under a tf.distribute strategy.
            self.batch_max.assign(replica_max(tf.cast(tf.reduce_max(r), "float64")))
        r = quantize_times(r, delta, self.time_bits)
        return r, fired

    def call(self, r, training=False):
        pre = self.linear(r)
        if self.readout:
            return pre
        out, _ = self.spike(pre, training=training)
        return out

    def call_with_stats(self, r):
        """Inference pass returning (output, #fired neurons, #window violations) summed over the batch."""
        pre = self.linear(r)
        if self.readout:
            return pre, None, None
        out, fired = self.spike(pre, training=False)
        delta = tf.cast(self.delta(), pre.dtype)
        n_fired = tf.reduce_sum(tf.cast(fired, tf.float64))
        n_viol = tf.reduce_sum(tf.cast(pre > delta, tf.float64))
        return out, n_fired, n_viol

    def neurons_per_sample(self):
        """Number of spiking neurons of this layer (every (h, w, c) of a conv map)."""
        return 0 if self.readout else self.n_neurons

    def get_config(self):
        config = super().get_config()
        config.update(output=self.readout, x_n=self.x_n, zeta=self.zeta, noise=self.noise,
                      noise_mode=self.noise_mode, time_bits=self.time_bits, weight_bits=self.weight_bits,
                      w_min=self.w_min, w_max=self.w_max, clamp_to_window=self.clamp_to_window)
        return config
