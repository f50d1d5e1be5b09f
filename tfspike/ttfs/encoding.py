"""Input layer of a TTFS network: pixels → input spike times in the window [0, 1]."""

import keras
import tensorflow as tf

from tfspike.errors import UserError
from tfspike.ttfs.quantize import quantize_times

INPUT_KINDS = ("time", "value")


@keras.saving.register_keras_serializable(package="tfspike")
class TTFSInput(keras.layers.Layer):
    """The input window [t_min⁽⁰⁾, t_max⁽⁰⁾] = [0, 1] of a TTFS network.

    With ``input_is="time"`` (the reference's convention) the model input is the input spike time
    t⁽⁰⁾ = 1 − u ∈ [0, 1] (bright pixels spike early; t⁽⁰⁾ = 1 is silence). With ``input_is="value"``
    the model takes the same inputs as the original ReLU network and encodes them itself:
    u = (x − p)/(q − p). Either way it emits the relative times r⁽⁰⁾ = 1 − t⁽⁰⁾ = u that the first
    spiking layer integrates, quantised on [0, 1] when ``time_bits`` > 0.

    Args:
        input_is: "time" or "value".
        p, q: input range mapped to [0, 1] (``input_is="value"`` only; MNIST 0, 1; CIFAR −3, 3).
        time_bits: quantise input spike times with this many bits (0 = off).

    Input shape: any; output shape: the same.

    Example:
        >>> r0 = TTFSInput("value", p=-3.0, q=3.0)(keras.ops.zeros((1, 32, 32, 3)))  # all 0.5
    """

    def __init__(self, input_is="time", p=0.0, q=1.0, time_bits=0, **kwargs):
        super().__init__(**kwargs)
        if input_is not in INPUT_KINDS:
            raise UserError(f"input_is must be one of {INPUT_KINDS}, got {input_is!r}")
        if not q > p:
            raise UserError(f"input range needs q > p, got p={p}, q={q}")
        self.input_is, self.p, self.q, self.time_bits = input_is, float(p), float(q), int(time_bits)

    def call(self, x):
        x = tf.cast(x, self.compute_dtype)
        r = 1.0 - x if self.input_is == "time" else (x - self.p) / (self.q - self.p)
        return quantize_times(r, 1.0, self.time_bits)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(input_is=self.input_is, p=self.p, q=self.q, time_bits=self.time_bits)
        return config
