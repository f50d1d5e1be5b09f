"""TTFSModel: a chain of TTFS layers that owns the window chain and the growth rule."""

import keras
import numpy as np
import tensorflow as tf

from tfspike.ttfs.base import DEFAULT_X_N, DEFAULT_ZETA, TTFSSpikingLayer
from tfspike.ttfs.encoding import TTFSInput

GROWTH_FACTOR = 10.0  # Δ ≥ 10 × the largest activation seen in training (spec §1.7)


@keras.saving.register_keras_serializable(package="tfspike")
class TTFSModel(keras.Sequential):
    """A ``keras.Sequential`` of TTFS layers with the window chain of spec §1.2.

    Windows are chained back to back: t_min⁽¹⁾ = 1, t_max⁽ⁿ⁾ = t_min⁽ⁿ⁾ + Δ⁽ⁿ⁾, t_min⁽ⁿ⁺¹⁾ = t_max⁽ⁿ⁾.
    After every optimizer step (inside the compiled train step) each hidden layer's width grows to
    Δ⁽ⁿ⁾ ← max(Δ⁽ⁿ⁾, 10·x̂⁽ⁿ⁾) with x̂ the batch's largest activation, and the chain is rebuilt;
    ``evaluate``/``predict`` never change windows. Windows do not affect the logits (they cancel in
    relative time), only latency, quantisation ranges and window violations.

    Example:
        >>> model = TTFSModel([keras.Input((784,)), TTFSInput(), TTFSDense(340), TTFSDense(10, output=True)])
        >>> model.latency()
        1501.0
    """

    def build(self, input_shape=None):
        super().build(input_shape)
        layers = self.spiking_layers()
        if layers and all(l.built for l in layers):
            self.chain_windows()

    def spiking_layers(self):
        return [l for l in self.layers if isinstance(l, TTFSSpikingLayer) and l.spiking]

    def _chain(self, grow):
        t_min = tf.constant(1.0, tf.float64)
        for layer in self.spiking_layers():
            delta = layer.t_max - layer.t_min
            if grow:
                delta = tf.maximum(delta, GROWTH_FACTOR * layer.batch_max)
            layer.t_min.assign(t_min)
            layer.t_max.assign(t_min + delta)
            t_min = t_min + delta

    def chain_windows(self):
        """Re-chain t_min/t_max from the current widths (after editing Δ by hand or loading)."""
        self._chain(grow=False)

    def train_step(self, data):
        logs = super().train_step(data)
        self._chain(grow=True)
        return logs

    def reset_windows(self, x_n=DEFAULT_X_N, zeta=DEFAULT_ZETA):
        """Set Δ⁽ⁿ⁾ = (1 + ζ)·X_n (X_n a scalar or one value per hidden layer) and re-chain.

        Each layer's ``x_n`` and ``zeta`` are updated too, so ``get_config()`` describes these windows.
        """
        layers = self.spiking_layers()
        xs = np.broadcast_to(np.asarray(x_n, dtype=np.float64), (len(layers),))
        for layer, x in zip(layers, xs):
            layer.x_n, layer.zeta = float(x), float(zeta)
            layer.t_min.assign(0.0)  # store the width exactly as [0, Δ]; chain_windows places the windows
            layer.t_max.assign((1.0 + layer.zeta) * layer.x_n)
        self.chain_windows()

    def configure(self, noise=0.0, noise_mode="reference", time_bits=0, weight_bits=0, w_min=-1.0, w_max=1.0):
        """Set the robustness options of every layer (spec §9) on a built or loaded model.

        The options are read when the step functions are traced, so the model's compiled
        train/test/predict functions are dropped and re-traced on next use.
        """
        for layer in self.layers:
            if isinstance(layer, TTFSInput):
                layer.time_bits = int(time_bits)
            elif isinstance(layer, TTFSSpikingLayer):
                layer.weight_bits, layer.w_min, layer.w_max = int(weight_bits), float(w_min), float(w_max)
                if layer.spiking:
                    layer.noise, layer.noise_mode, layer.time_bits = float(noise), noise_mode, int(time_bits)
        self.train_function = self.test_function = self.predict_function = None
        self._ttfs_steps = None  # compiled helper steps (evaluate_ttfs, measure_x_n) trace the options too
        return self

    def compiled_step(self, key, make):
        """``make(self)`` (an XLA-compiled helper step), built once per model and ``configure()`` call.

        Kept in a plain holder object, so a SavedModel export does not trace and save it.
        """
        steps = getattr(self, "_ttfs_steps", None)
        if steps is None:
            steps = self._ttfs_steps = _Steps()
        if key not in steps.fns:
            steps.fns[key] = make(self)
        return steps.fns[key]

    def windows(self):
        """[(t_min, t_max)] of the hidden spiking layers, in τ_c."""
        return [(float(l.t_min.numpy()), float(l.t_max.numpy())) for l in self.spiking_layers()]

    def deltas(self):
        return [b - a for a, b in self.windows()]

    def latency(self):
        """Time at which the logits are read: L = 1 + Σ Δ⁽ⁿ⁾ (τ_c)."""
        return 1.0 + float(sum(self.deltas()))

    def n_hidden_neurons(self):
        return int(sum(l.neurons_per_sample() for l in self.spiking_layers()))

    def spike_times(self, x):
        """Absolute spike times of every hidden layer for inputs ``x`` (float64; t_max = silent).

        Returns a list of ``(layer_name, times)``; meant for inspection of a few samples.
        """
        out, r = [], tf.convert_to_tensor(x)
        for layer in self.layers:
            r = layer(r, training=False) if isinstance(layer, TTFSSpikingLayer) else layer(r)
            if isinstance(layer, TTFSSpikingLayer) and layer.spiking:
                out.append((layer.name, layer.t_max.numpy() - np.asarray(r, dtype=np.float64)))
        return out



class _Steps:
    """Compiled helper steps of a :class:`TTFSModel` by key (not a trackable: export skips it)."""

    def __init__(self):
        self.fns = {}
