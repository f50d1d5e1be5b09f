"""TTFS max-pooling: the earliest spike wins (or, per channel, the latest)."""

import keras
import tensorflow as tf

from tfspike.errors import UserError
from tfspike.ttfs.base import pair, spatial_size


@keras.saving.register_keras_serializable(package="tfspike")
class TTFSMaxPool2D(keras.layers.Layer):
    """Max-pooling of relative spike times r = t_max − t, i.e. the earliest spike in each window.

    It adds no neurons: pooled units are not counted in spike statistics. A per-channel sign s_c
    (non-trainable weight, default +1) makes the pool sign-aware: s_c = −1 pools the *latest* spike
    (a silent input wins). The ReLU→TTFS converter sets s_c = −1 where a BatchNorm with negative
    scale sat between ReLU and max-pool (spec §4): pooled_c = s_c·maxpool(s_c·x_c).

    Args:
        pool_size: int or pair (default 2).
        strides: int or pair (default ``pool_size``).
        padding: "valid" (default) or "same".

    Input shape: ``(batch, H, W, C)``. Output shape: ``(batch, H_out, W_out, C)``.

    Example:
        >>> pooled = TTFSMaxPool2D(2)(keras.ops.ones((2, 28, 28, 64)))
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pair(pool_size)
        self.strides = pair(strides) if strides is not None else self.pool_size
        self.padding = padding.lower()
        if self.padding not in ("same", "valid"):
            raise UserError(f"TTFSMaxPool2D {self.name!r}: padding must be 'same' or 'valid', got {padding!r}")

    def build(self, input_shape):
        self.sign = self.add_weight(name="sign", shape=(int(input_shape[-1]),), trainable=False,
                                    initializer="ones")

    def call(self, r):
        s = tf.cast(self.sign, r.dtype)
        pooled = tf.nn.max_pool2d(r * s, ksize=self.pool_size, strides=self.strides, padding=self.padding.upper())
        return pooled * s

    def compute_output_shape(self, input_shape):
        return (input_shape[0], spatial_size(input_shape[1], self.pool_size[0], self.strides[0], self.padding),
                spatial_size(input_shape[2], self.pool_size[1], self.strides[1], self.padding), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, strides=self.strides, padding=self.padding)
        return config
