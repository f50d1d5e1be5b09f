"""Kernel Inception Distance (unbiased, cubic polynomial kernel) and its two feature extractors.

- ``kid(real_features, generated_features)``: the unbiased MMD² estimator of Bińkowski et al. 2018
  with k(a, b) = (a·b / D + 1)³, as in the keras-io DDIM example (can be slightly negative).
- :class:`KID`: a Keras metric that encodes two image batches and averages ``kid`` over batches.
- Feature extractors (images in [0, 1], ``(S, S, C)``):
  - ``inception_encoder``: InceptionV3 with ImageNet weights at 75×75, 2048-d (online; label
    ``kid_inception75``);
  - ``offline_encoder``: the 128-d penultimate layer of a small CNN classifier that the project
    trains on the train split of the same dataset and caches under ``<logging_dir>/cache/`` with a
    SHA-256 of the weight file (label ``kid_<dataset>_cnn128``). Its values are **not** comparable
    with Inception KIDs.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from tfspike.data.paths import remote_available
from tfspike.errors import MissingDataError
from tfspike.utils.io import save_weights_atomic, sha256_file, write_json_atomic

INCEPTION_LABEL = "kid_inception75"
INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_HOST = ("storage.googleapis.com", 443)


def polynomial_kernel(a, b):
    """k(a, b) = (a·bᵀ / D + 1)³ for feature matrices a (n×D) and b (m×D)."""
    d = ops.cast(ops.shape(a)[1], a.dtype)
    return (ops.matmul(a, ops.transpose(b)) / d + 1.0) ** 3.0


def kid(real_features, generated_features):
    """Unbiased KID estimate between feature sets R (n×D) and G (m×D), n, m ≥ 2.

    1/(n(n−1)) Σ_{i≠j} k(r_i, r_j) + 1/(m(m−1)) Σ_{i≠j} k(g_i, g_j) − 2/(nm) Σ_{i,j} k(r_i, g_j).
    """
    real_features = ops.cast(real_features, "float32")
    generated_features = ops.cast(generated_features, "float32")
    n = ops.cast(ops.shape(real_features)[0], "float32")
    m = ops.cast(ops.shape(generated_features)[0], "float32")
    k_rr = polynomial_kernel(real_features, real_features)
    k_gg = polynomial_kernel(generated_features, generated_features)
    k_rg = polynomial_kernel(real_features, generated_features)
    # Off-diagonal sums as total minus trace: no n×n mask needed, and shapes may be dynamic.
    mean_rr = (ops.sum(k_rr) - ops.trace(k_rr)) / (n * (n - 1.0))
    mean_gg = (ops.sum(k_gg) - ops.trace(k_gg)) / (m * (m - 1.0))
    return mean_rr + mean_gg - 2.0 * ops.mean(k_rg)


class _Untracked:
    """Holds a value out of Keras' and TensorFlow's object tracking (not saved with its owner)."""

    def __init__(self, value):
        self.value = value


@keras.saving.register_keras_serializable(package="tfspike")
class KID(keras.metrics.Metric):
    """Mean over batches of :func:`kid` between encoded real and generated images (under a
    ``tf.distribute`` strategy with several replicas: of each global batch).

    Args:
        encoder: a Keras model mapping images in [0, 1] to features (n×D).
        name: the metric name; use the extractor label (e.g. ``kid_fmnist_cnn128``) so logs say
            which features were used.
    """

    def __init__(self, encoder, name="kid", **kwargs):
        super().__init__(name=name, **kwargs)
        # A plain holder, not a tracked attribute: the feature extractor is an evaluation tool with its own
        # file (and SHA-256), so a DiffusionModel's weights file does not carry a copy of it.
        self._extractor = _Untracked(encoder)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, real_images, generated_images, sample_weight=None):
        encoder = self._extractor.value  # private: Keras' saving walks public attributes
        real = encoder(real_images, training=False)
        generated = encoder(generated_images, training=False)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            # KID is a statistic of the whole batch, not a mean over its rows: every replica computes it on
            # the global batch, and the metric (summed over replicas on reading) averages the equal copies
            real, generated = ctx.all_gather(real, axis=0), ctx.all_gather(generated, axis=0)
        self.total.assign_add(kid(real, generated))
        self.count.assign_add(1.0)

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


# ----------------------------------------------------------------------------------------------
# Online extractor: InceptionV3 (ImageNet), 75×75, 2048-d


def inception_available():
    """(ok, reason): whether InceptionV3 ImageNet weights are cached or downloadable now."""
    cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models",
                         INCEPTION_WEIGHTS_FILE)
    return remote_available("InceptionV3 ImageNet weights", cache, INCEPTION_HOST, hint="use --kid_extractor=offline")


@keras.saving.register_keras_serializable(package="tfspike")
class InceptionPreprocess(layers.Layer):
    """Images in [0, 1] → InceptionV3 input: repeat grey to 3 channels, ×255, resize, scale to [−1, 1]."""

    def __init__(self, size=75, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, x):
        if x.shape[-1] == 1:
            x = ops.repeat(x, 3, axis=-1)
        x = ops.image.resize(x * 255.0, (self.size, self.size), interpolation="bilinear")
        return keras.applications.inception_v3.preprocess_input(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, 3)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def inception_encoder(image_size, channels=3, kid_image_size=75, weights="imagenet"):
    """The keras-io KID encoder: [0,1] images → 2048-d InceptionV3 average-pooled features.

    ``weights="imagenet"`` needs the weights cached or a network (checked first, one-line error).
    """
    if weights == "imagenet":
        ok, reason = inception_available()
        if not ok:
            raise MissingDataError(f"needs network: {reason}")
    inputs = keras.Input(shape=(image_size, image_size, channels))
    x = InceptionPreprocess(kid_image_size, name="inception_preprocess")(inputs)
    x = keras.applications.InceptionV3(include_top=False, weights=weights,
                                       input_shape=(kid_image_size, kid_image_size, 3))(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name="inception_encoder")


# ----------------------------------------------------------------------------------------------
# Offline extractor: a CNN classifier trained on the dataset, penultimate 128-d layer


def offline_label(dataset, feature_dims=128):
    return f"kid_{dataset.lower()}_cnn{feature_dims}"


def classifier(image_size, channels=1, num_classes=10, feature_dims=128):
    """Conv32(3×3, relu)–pool–Conv64(3×3, relu)–pool–Flatten–Dense(feature_dims, relu)–Dense(classes)."""
    inputs = keras.Input(shape=(image_size, image_size, channels))
    x = layers.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(feature_dims, activation="relu", name="features")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="kid_classifier")


def offline_encoder(dataset, x_train, y_train, x_test, y_test, cache_dir, epochs=3, batch_size=128, seed=0,
                    feature_dims=128, max_train_samples=None, log=print, verbose=1, weights_file=None):
    """The offline KID extractor: train (or load from ``cache_dir``) the classifier; return
    ``(encoder, info)``, where ``encoder`` maps images to the ``feature_dims``-d penultimate features.

    Images are float32 in [0, 1], shape ``(N, S, S, C)``. The cache holds
    ``<label>-e<epochs>-n<samples>-s<seed>.weights.h5`` and a JSON with its SHA-256 and test accuracy;
    a weight file whose hash does not match its JSON is retrained (atomically replaced).
    ``weights_file`` (e.g. a preset's) is used instead of the cache: KIDs computed with the same
    classifier file are comparable across machines (retraining is not bitwise reproducible everywhere).
    """
    image_size, channels = int(x_train.shape[1]), int(x_train.shape[-1])
    n = len(x_train) if max_train_samples is None else min(len(x_train), int(max_train_samples))
    label = offline_label(dataset, feature_dims)
    model = classifier(image_size, channels, int(np.max(y_train)) + 1, feature_dims)
    if weights_file is not None:
        from tfspike.utils.files import load_weights_file

        load_weights_file(model, weights_file, f"{label} KID classifier weight",
                          "give a .weights.h5 from a DDIM run's cache/ folder")
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        _, acc = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
        info = {"label": label, "dataset": dataset, "feature_dims": feature_dims, "test_accuracy": float(acc),
                "weights": os.path.basename(weights_file), "sha256": sha256_file(weights_file)}
        log(f"{label}: classifier {weights_file} (sha256 {info['sha256'][:12]}…, test accuracy {acc:.4f})")
        encoder = keras.Model(model.inputs, model.get_layer("features").output, name=f"{label}_encoder")
        encoder.trainable = False
        return encoder, dict(info, weights_path=weights_file)
    stem = os.path.join(cache_dir, f"{label}-{image_size}x{channels}-e{epochs}-n{n}-s{seed}")
    weights_path, info_path = stem + ".weights.h5", stem + ".json"
    info = None
    if os.path.exists(weights_path) and os.path.exists(info_path):
        with open(info_path) as f:
            info = json.load(f)
        if info.get("sha256") == sha256_file(weights_path):
            model.load_weights(weights_path)
            log(f"{label}: loaded cached classifier {weights_path} (sha256 {info['sha256'][:12]}…, "
                f"test accuracy {info['test_accuracy']:.4f})")
        else:
            log(f"{label}: cached weights {weights_path} do not match their sha256; retraining")
            info = None
    if info is None:
        keras.utils.set_random_seed(seed)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], jit_compile=True)
        log(f"{label}: training the offline KID classifier on {n} training images, {epochs} epochs")
        model.fit(x_train[:n], y_train[:n], batch_size=batch_size, epochs=epochs, verbose=verbose,
                  shuffle=True)
        _, acc = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
        os.makedirs(cache_dir, exist_ok=True)
        save_weights_atomic(model, weights_path)
        info = {"label": label, "dataset": dataset, "feature_dims": feature_dims, "epochs": epochs,
                "batch_size": batch_size, "seed": seed, "train_samples": n, "test_accuracy": float(acc),
                "weights": os.path.basename(weights_path), "sha256": sha256_file(weights_path)}
        write_json_atomic(info_path, info)
        log(f"{label}: test accuracy {acc:.4f}; weights {weights_path} sha256 {info['sha256']}")
    encoder = keras.Model(model.inputs, model.get_layer("features").output, name=f"{label}_encoder")
    encoder.trainable = False
    return encoder, dict(info, weights_path=weights_path)

