"""Fake quantisation for the TTFS robustness options (spec §9).

Straight-through estimators are allowed in TTFS layers only here: TensorFlow's fake-quant ops pass the
gradient through inside the range and zero it outside.
"""

import tensorflow as tf


def quantize_times(r, delta, bits):
    """Quantise relative spike times r = t_max − t ∈ [0, Δ] on the grid k·Δ/(2^bits − 1).

    The range is passed explicitly as [0, Δ] (the reference's [t_min, t_max] range only worked through
    TF's zero-point nudging). Values outside the range (noise) clip to its ends.
    """
    if not bits:
        return r
    dtype = r.dtype
    q = tf.quantization.fake_quant_with_min_max_vars(
        tf.cast(r, tf.float32), tf.constant(0.0, tf.float32), tf.cast(delta, tf.float32), num_bits=int(bits))
    return tf.cast(q, dtype)


def quantize_weights(w, bits, w_min, w_max):
    """``tf.quantization.fake_quant_with_min_max_args`` semantics (nudged so 0 is representable)."""
    if not bits:
        return w
    q = tf.quantization.fake_quant_with_min_max_args(tf.cast(w, tf.float32), min=float(w_min), max=float(w_max),
                                                     num_bits=int(bits))
    return tf.cast(q, w.dtype)
