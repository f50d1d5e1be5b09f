"""tf.data input pipelines (shuffled index batches gathered from in-memory arrays, prefetched).

Keras' array adapter casts float64 arrays to floatx; a ``tf.data.Dataset`` keeps the dtype, so
float64 models really see float64 inputs.
"""

import tensorflow as tf


def make_dataset(x, y=None, batch_size=32, shuffle=False, seed=0, drop_remainder=False, dtype=None,
                 max_batches=None):
    """Batches of ``(x, y)`` (or ``x``) in order, or reshuffled every epoch with ``shuffle=True``.

    ``dtype`` casts the ``x`` batches (e.g. uint8 spikes to float32); ``max_batches`` keeps only the
    first batches of each pass (smoke runs).
    """
    n = len(x)
    xt = tf.convert_to_tensor(x)
    yt = None if y is None else tf.convert_to_tensor(y)
    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def get_x(i):
        xb = tf.gather(xt, i)
        return xb if dtype is None else tf.cast(xb, dtype)

    if yt is None:
        ds = ds.map(get_x, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda i: (get_x(i), tf.gather(yt, i)), num_parallel_calls=tf.data.AUTOTUNE)
    if max_batches:
        ds = ds.take(max_batches)
    return ds.prefetch(tf.data.AUTOTUNE)
