"""tf.data input pipelines (shuffled index batches gathered from in-memory arrays, prefetched).

Keras' array adapter casts float64 arrays to floatx; a ``tf.data.Dataset`` keeps the dtype, so
float64 models really see float64 inputs.
"""

import tensorflow as tf


def make_dataset(x, y=None, batch_size=32, shuffle=False, seed=0, drop_remainder=False, dtype=None,
                 max_batches=None, steps_per_element=1):
    """Batches of ``(x, y)`` (or ``x``) in order, or reshuffled every epoch with ``shuffle=True``.

    ``dtype`` casts the ``x`` batches (e.g. uint8 spikes to float32); ``max_batches`` keeps only the
    first batches of each pass (smoke runs). ``steps_per_element`` > 1 stacks that many consecutive
    batches into one element (a leading axis), for ``tfspike.distribute.fit(steps_per_element=...)``:
    the same batches in the same order (same seed, same permutation), the last elements holding the
    full batches left over and then the short batch alone (a stack needs equal batch shapes).
    """
    n = len(x)
    xt = tf.convert_to_tensor(x)
    yt = None if y is None else tf.convert_to_tensor(y)
    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if steps_per_element > 1:
        if drop_remainder or max_batches:
            raise ValueError("steps_per_element > 1 takes every batch (no drop_remainder, no max_batches)")
        ds = _stacked_index_batches(ds, n, batch_size, steps_per_element)
    else:
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


def _stacked_index_batches(indices, n, batch_size, steps):
    """``(k, batch_size)`` stacks of consecutive index batches (k = ``steps`` but at the end), then the
    short batch as ``(1, n mod batch_size)``: one pass over ``indices`` (a reshuffle is drawn once)."""
    group = batch_size * steps
    full_batches, short = divmod(n, batch_size)

    def split(idx):  # a group of batch_size·steps indices, or the last, shorter group
        k = tf.shape(idx)[0] // batch_size
        stacks = tf.data.Dataset.from_tensors(tf.reshape(idx[:k * batch_size], (k, batch_size)))
        if short:
            rest = tf.data.Dataset.from_tensors(tf.reshape(idx[k * batch_size:], (1, -1)))
            stacks = stacks.concatenate(rest)
        return stacks.filter(lambda s: tf.size(s) > 0)

    elements = -(-full_batches // steps) + (1 if short else 0)
    return indices.batch(group).flat_map(split).apply(tf.data.experimental.assert_cardinality(elements))
