"""tf.data input pipelines (shuffled index batches gathered from in-memory arrays, prefetched).

Keras' array adapter casts float64 arrays to floatx; a ``tf.data.Dataset`` keeps the dtype, so
float64 models really see float64 inputs.
"""

import tensorflow as tf


def make_dataset(x, y=None, batch_size=32, shuffle=False, seed=0, drop_remainder=False):
    """Batches of ``(x, y)`` (or ``x``) in order, or reshuffled every epoch with ``shuffle=True``."""
    n = len(x)
    xt = tf.convert_to_tensor(x)
    yt = None if y is None else tf.convert_to_tensor(y)
    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if yt is None:
        ds = ds.map(lambda i: tf.gather(xt, i), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda i: (tf.gather(xt, i), tf.gather(yt, i)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
