"""TTFS 2-D convolution with an optional bias map."""

import keras
import tensorflow as tf

from tfspike.errors import UserError
from tfspike.ttfs.base import TTFSSpikingLayer, pair, spatial_size


@keras.saving.register_keras_serializable(package="tfspike")
class TTFSConv2D(TTFSSpikingLayer):
    """Convolution of B1 time-to-first-spike neurons (channels last).

    In relative time r = t_max − t the layer computes r_out = max(conv(r_in, W) + d + E, 0): zero
    padding of r is the reference's padding of spike times with t_min (spec §3.1), and the
    convolution replaces the reference's 9× ``extract_patches`` memory.

    ``bias_map=True`` adds a non-trainable correction map E of shape (H_out, W_out, C_out) on top of the
    trainable per-channel bias d. The ReLU→TTFS converter fills it when it folds an affine map
    (BatchNorm after ReLU, input range) into the kernel: the original network zero-pads *after* that
    map, so border positions need their own bias (spec §3.3).

    Args:
        filters: output channels.
        kernel_size: int or pair (default 3).
        strides: int or pair (default 1).
        padding: "same" (default) or "valid".
        bias_map: add the (H_out, W_out, C_out) correction map E.
        bias_map_trainable: train E per position too (default False).
        kernel_initializer, bias_initializer, kernel_regularizer: as ``keras.layers.Conv2D``.
        **kwargs: window and robustness options of :class:`TTFSSpikingLayer`, ``name``, ``dtype``.

    Input shape: ``(batch, H, W, C_in)`` relative spike times.
    Output shape: ``(batch, H_out, W_out, filters)`` relative spike times (0 = silent).

    Example:
        >>> layer = TTFSConv2D(64, 3, padding="same", name="conv2d_1")
        >>> r = layer(keras.ops.ones((2, 28, 28, 1)))
    """

    def __init__(self, filters, kernel_size=3, strides=1, padding="same", bias_map=False,
                 bias_map_trainable=False, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = pair(kernel_size)
        self.strides = pair(strides)
        self.padding = padding.lower()
        if self.padding not in ("same", "valid"):
            raise UserError(f"padding must be 'same' or 'valid', got {padding!r}")
        self.bias_map, self.bias_map_trainable = bool(bias_map), bool(bias_map_trainable)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        c_in = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=self.kernel_size + (c_in, self.filters),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer)
        out = self.compute_output_shape(input_shape)
        if self.bias_map:
            self.bias_correction = self.add_weight(name="bias_correction", shape=tuple(out[1:]),
                                                   initializer="zeros", trainable=self.bias_map_trainable)
        self.n_neurons = int(out[1]) * int(out[2]) * int(out[3])
        self.build_window()

    def linear(self, r):
        y = tf.nn.conv2d(r, self.effective_kernel(), strides=(1,) + self.strides + (1,),
                         padding=self.padding.upper()) + self.bias
        if self.bias_map:
            y = y + self.bias_correction
        return y

    def compute_output_shape(self, input_shape):
        h, w = input_shape[1], input_shape[2]

        return (input_shape[0], spatial_size(h, self.kernel_size[0], self.strides[0], self.padding),
                spatial_size(w, self.kernel_size[1], self.strides[1], self.padding), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                      padding=self.padding, bias_map=self.bias_map, bias_map_trainable=self.bias_map_trainable,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      bias_initializer=keras.initializers.serialize(self.bias_initializer),
                      kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer))
        return config
