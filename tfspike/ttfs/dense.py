"""TTFS dense layer."""

import keras
import tensorflow as tf

from tfspike.ttfs.base import TTFSSpikingLayer


@keras.saving.register_keras_serializable(package="tfspike")
class TTFSDense(TTFSSpikingLayer):
    """Fully connected layer of B1 time-to-first-spike neurons, or the non-spiking readout.

    A hidden neuron i fires once, at t_i = t_max − (Σ_j W_ji x_j + D_i) if that is before t_max, where
    x_j = t_max^(n−1) − t_j are the input spikes' relative times; otherwise it stays silent. The
    readout (``output=True``) returns its membrane potential at t_min, Wᵀx + D: the ReLU logits.

    Args:
        units: number of neurons.
        output: readout layer (no spikes, no window).
        kernel_initializer, bias_initializer, kernel_regularizer: as ``keras.layers.Dense``.
        **kwargs: window and robustness options of :class:`TTFSSpikingLayer`, and base layer
            arguments (``name``, ``dtype``).

    Input shape: ``(batch, n_in)`` relative spike times (= activations) of the previous layer.
    Output shape: ``(batch, units)`` relative spike times (0 = silent), or logits for the readout.

    Example:
        >>> layer = TTFSDense(340, name="dense_1")
        >>> r = layer(keras.ops.ones((2, 784)))
    """

    def __init__(self, units, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), self.units),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer)
        self.n_neurons = self.units
        self.build_window()

    def linear(self, r):
        return tf.matmul(r, self.effective_kernel()) + self.bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      bias_initializer=keras.initializers.serialize(self.bias_initializer),
                      kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer))
        return config
