"""DDIM data: Oxford Flowers 102 (tensorflow-datasets, online) and Fashion-MNIST / MNIST (offline).

- Flowers: the keras-io splits ``train[:80%]+validation[:80%]+test[:80%]`` (6551 images) and
  ``train[80%:]+validation[80%:]+test[80%:]`` (1638), centre crop, resize to 64 with antialias, /255,
  clip to [0, 1], ``dataset_repetitions`` 5.
- FMNIST / MNIST: ``tfspike.data.images.load_image_dataset`` (``../shared/data``), zero-padded by 2
  pixels to 32×32 (the U-Net halves the size three times), 1 channel (or repeated to 3); training =
  train split, validation = test split, ``dataset_repetitions`` 1.

Every pipeline: repeat → shuffle → batch(drop_remainder) → prefetch, static shapes (Flowers is
cached after decoding and resizing; the offline arrays are in memory already).
"""

import os

import numpy as np

from tfspike.data.paths import remote_available
from tfspike.errors import MissingDataError, UserError

OFFLINE_DATASETS = ("FMNIST", "MNIST")
FLOWERS_TFDS = "oxford_flowers102"
FLOWERS_TRAIN_SPLIT = "train[:80%]+validation[:80%]+test[:80%]"
FLOWERS_VAL_SPLIT = "train[80%:]+validation[80%:]+test[80%:]"
TFDS_HOST = ("storage.googleapis.com", 443)


def pad_to_32(x):
    """uint8 (N, 28, 28) → uint8 (N, 32, 32, 1), 2 zero pixels on each side."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    return np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))


def load_offline(name, data_dir=None, channels=1):
    """``(x_train, y_train), (x_test, y_test)`` with uint8 images (N, 32, 32, channels)."""
    from tfspike.data.images import load_image_dataset

    if name not in OFFLINE_DATASETS:
        raise UserError(f"offline DDIM data is one of {', '.join(OFFLINE_DATASETS)}, got {name!r}")
    if channels not in (1, 3):
        raise UserError(f"channels must be 1 or 3, got {channels}")
    (xtr, ytr), (xte, yte) = load_image_dataset(name, data_dir)
    xtr, xte = pad_to_32(xtr), pad_to_32(xte)
    if channels == 3:
        xtr, xte = np.repeat(xtr, 3, axis=-1), np.repeat(xte, 3, axis=-1)
    return (xtr, ytr), (xte, yte)


def to_float(x):
    """uint8 images → float32 in [0, 1]."""
    return np.asarray(x, np.float32) / 255.0


def image_pipeline(images_uint8, batch_size, repetitions=1, shuffle=True, seed=0):
    """uint8 images (N, S, S, C) → a batched float32 [0, 1] ``tf.data`` pipeline with static shapes."""
    import tensorflow as tf

    if len(images_uint8) < batch_size:
        raise UserError(f"batch_size {batch_size} is larger than the dataset ({len(images_uint8)} images)")
    ds = tf.data.Dataset.from_tensor_slices(images_uint8).repeat(repetitions)
    if shuffle:
        ds = ds.shuffle(640, seed=seed)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda x: tf.cast(x, tf.float32) / 255.0, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def flowers_available(data_dir=None):
    """(ok, reason): whether Oxford Flowers 102 is prepared locally or downloadable now."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        return False, f"tensorflow-datasets is not installed ({e})"
    builder = tfds.builder(FLOWERS_TFDS, data_dir=data_dir)

    def prepared_at():
        done = builder.is_prepared() if hasattr(builder, "is_prepared") else os.path.isdir(builder.data_dir)
        return builder.data_dir if done else None

    return remote_available("Oxford Flowers 102", prepared_at, TFDS_HOST, hint="use --data_name=FMNIST or MNIST")


def preprocess_flowers(image, image_size=64):
    """keras-io: centre crop to a square, resize with antialias, /255, clip to [0, 1]."""
    import tensorflow as tf

    height, width = tf.shape(image)[0], tf.shape(image)[1]
    crop = tf.minimum(height, width)
    image = tf.image.crop_to_bounding_box(image, (height - crop) // 2, (width - crop) // 2, crop, crop)
    image = tf.image.resize(image, size=[image_size, image_size], antialias=True)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


def flowers_pipelines(batch_size=64, image_size=64, repetitions=5, tfds_dir=None, seed=0):
    """(train, val) pipelines of Oxford Flowers 102 as in keras-io; a one-line error when unavailable."""
    import tensorflow as tf

    ok, reason = flowers_available(tfds_dir)
    if not ok:
        raise MissingDataError(f"needs network: {reason}")
    import tensorflow_datasets as tfds

    out = []
    for split, reps, shuffle in ((FLOWERS_TRAIN_SPLIT, repetitions, True), (FLOWERS_VAL_SPLIT, 1, False)):
        try:
            ds = tfds.load(FLOWERS_TFDS, split=split, shuffle_files=True, data_dir=tfds_dir)
        except Exception as e:  # noqa: BLE001 - download/prepare failures become one line
            raise MissingDataError(f"needs network: loading {FLOWERS_TFDS} failed: "
                                   f"{str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}") from e
        ds = ds.map(lambda d: preprocess_flowers(d["image"], image_size), num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.cache().repeat(reps)
        if shuffle:
            ds = ds.shuffle(10 * batch_size, seed=seed)
        out.append(ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    return tuple(out)
