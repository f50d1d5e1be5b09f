"""The residual U-Net of the keras-io DDIM example (A. Béres), with a pluggable block activation.

The only nonlinearity of the network is the activation after the first 3×3 convolution of every
residual block. ``activation="swish"`` gives the ANN of the keras-io example; ``activation="fs_swish"``
puts a non-trainable Few-Spike layer (``tfspike.fs.FewSpike``) there instead (spec fs.md §5.2), so a
U-Net with 4 widths and block depth 2 has 6 down + 2 middle + 6 up = 14 FS layers and exactly the
weights of the swish version (FS layers with fixed parameters own no weights).
"""

import math

import keras
from keras import layers, ops

from tfspike.ddim.choices import ACTIVATIONS, fs_params_name
from tfspike.errors import UserError


@keras.saving.register_keras_serializable(package="tfspike")
class SinusoidalEmbedding(layers.Layer):
    """Sinusoidal embedding of the noise variance (keras-io DDIM).

    ``embedding_dims // 2`` frequencies log-spaced in ``[min_frequency, max_frequency]``, angular
    speed 2πf, output ``concat(sin(2πf·x), cos(2πf·x))`` on the last axis.

    Args:
        embedding_dims: output channels (even).
        min_frequency, max_frequency: frequency range.

    Input shape: ``(batch, 1, 1, 1)`` (the noise variance).
    Output shape: ``(batch, 1, 1, embedding_dims)``.

    Example:
        >>> e = SinusoidalEmbedding(32)(keras.ops.ones((2, 1, 1, 1)))  # (2, 1, 1, 32)
    """

    def __init__(self, embedding_dims=32, min_frequency=1.0, max_frequency=1000.0, **kwargs):
        super().__init__(**kwargs)
        if embedding_dims < 2 or embedding_dims % 2:
            raise UserError(f"embedding_dims must be an even number >= 2, got {embedding_dims}")
        if not 0 < min_frequency < max_frequency:
            raise UserError(f"need 0 < min_frequency < max_frequency, got {min_frequency}, {max_frequency}")
        self.embedding_dims = int(embedding_dims)
        self.min_frequency = float(min_frequency)
        self.max_frequency = float(max_frequency)

    def build(self, input_shape):
        self.built = True

    def call(self, x):
        frequencies = ops.exp(ops.linspace(math.log(self.min_frequency), math.log(self.max_frequency),
                                           self.embedding_dims // 2))
        angular_speeds = ops.cast(2.0 * math.pi * frequencies, x.dtype)
        return ops.concatenate([ops.sin(angular_speeds * x), ops.cos(angular_speeds * x)], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.embedding_dims,)

    def get_config(self):
        return {**super().get_config(), "embedding_dims": self.embedding_dims,
                "min_frequency": self.min_frequency, "max_frequency": self.max_frequency}


def activation_factory(activation="swish", fs_params="published", voltage_scaling="abs_plus_one"):
    """A function ``name -> layer`` that makes the block activation.

    Args:
        activation: ``"swish"`` (ANN), ``"fs_swish"`` (non-trainable FewSpike) or a callable
            ``name -> keras layer`` (used as is).
        fs_params: for ``fs_swish``: a ``--fs_params`` choice or anything ``FewSpike(params=...)`` accepts.
        voltage_scaling: surrogate scaling of the FS layer (``"abs_plus_one"`` as the TBPI DDIM).
    """
    if callable(activation):
        return activation
    if activation == "swish":
        return lambda name: layers.Activation("swish", name=name)
    if activation == "fs_swish":
        from tfspike.fs import FewSpike

        params = fs_params_name(fs_params)
        # Build one layer now so a bad parameter-set name fails here, with FewSpike's own message.
        FewSpike(params=params, voltage_scaling=voltage_scaling, trainable_params=False)
        return lambda name: FewSpike(params=params, voltage_scaling=voltage_scaling, trainable_params=False,
                                     name=name)
    raise UserError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")


def residual_unet(image_size, channels=3, widths=(32, 64, 96, 128), block_depth=2, activation="swish",
                  fs_params="published", voltage_scaling="abs_plus_one", embedding_dims=32,
                  embedding_min_frequency=1.0, embedding_max_frequency=1000.0, synchronized_bn=False,
                  name="residual_unet"):
    """The keras-io DDIM U-Net as a functional model ``[noisy_images, noise_variances] -> pred_noises``.

    Args:
        image_size: S; must be divisible by ``2 ** (len(widths) - 1)``.
        channels: C of the images.
        widths: channels per resolution; the last one is the middle.
        block_depth: residual blocks per resolution.
        activation, fs_params, voltage_scaling: see :func:`activation_factory`.
        embedding_dims, embedding_min_frequency, embedding_max_frequency: noise embedding.
        synchronized_bn: BatchNormalization with batch statistics over all replicas of a ``tf.distribute``
            strategy (``synchronized=True``: the statistics of the global batch, as on one device).

    Input shape: ``[(batch, S, S, C), (batch, 1, 1, 1)]``.
    Output shape: ``(batch, S, S, C)``.

    Example:
        >>> net = residual_unet(32, 1, widths=(32, 64, 96, 128), block_depth=2, activation="fs_swish",
        ...                     fs_params="published")
        >>> count_activation_sites(net)  # 14
    """
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise UserError(f"widths needs at least two positive entries, got {widths}")
    if block_depth < 1:
        raise UserError(f"block_depth must be >= 1, got {block_depth}")
    factor = 2 ** (len(widths) - 1)
    if image_size % factor:
        raise UserError(f"image_size {image_size} must be divisible by 2**(len(widths)-1) = {factor}")
    make_activation = activation_factory(activation, fs_params, voltage_scaling)

    def block(x, width, block_name):
        residual = x if x.shape[-1] == width else layers.Conv2D(width, 1, name=f"{block_name}_proj")(x)
        x = layers.BatchNormalization(center=False, scale=False, synchronized=synchronized_bn,
                                      name=f"{block_name}_bn")(x)
        x = layers.Conv2D(width, 3, padding="same", name=f"{block_name}_conv1")(x)
        x = make_activation(f"{block_name}_act")(x)
        x = layers.Conv2D(width, 3, padding="same", name=f"{block_name}_conv2")(x)
        return layers.Add(name=f"{block_name}_add")([x, residual])

    noisy_images = keras.Input(shape=(image_size, image_size, channels), name="noisy_images")
    noise_variances = keras.Input(shape=(1, 1, 1), name="noise_variances")
    e = SinusoidalEmbedding(embedding_dims, embedding_min_frequency, embedding_max_frequency,
                            name="noise_embedding")(noise_variances)
    e = layers.UpSampling2D(size=image_size, interpolation="nearest", name="embedding_upsample")(e)
    x = layers.Conv2D(widths[0], 1, name="input_conv")(noisy_images)
    x = layers.Concatenate(name="input_concat")([x, e])

    skips = []
    for level, width in enumerate(widths[:-1]):
        for i in range(block_depth):
            x = block(x, width, f"down{level}_block{i}")
            skips.append(x)
        x = layers.AveragePooling2D(2, name=f"down{level}_pool")(x)
    for i in range(block_depth):
        x = block(x, widths[-1], f"middle_block{i}")
    for level, width in reversed(list(enumerate(widths[:-1]))):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level}_upsample")(x)
        for i in range(block_depth):
            x = layers.Concatenate(name=f"up{level}_block{i}_concat")([x, skips.pop()])
            x = block(x, width, f"up{level}_block{i}")
    # Zero kernel: the network predicts zero noise at initialisation (spec §5.7).
    x = layers.Conv2D(channels, 1, kernel_initializer="zeros", name="output_conv")(x)
    return keras.Model([noisy_images, noise_variances], x, name=name)


def activation_sites(model):
    """The block-activation layers of a U-Net (names ending in ``_act``), in graph order."""
    return [layer for layer in model.layers if layer.name.endswith("_act")]


def fs_layers(model):
    """The Few-Spike layers of a model (empty for the ANN U-Net)."""
    from tfspike.fs import FewSpike

    return [layer for layer in model.layers if isinstance(layer, FewSpike)]


def neurons_per_image(model, layers_=None):
    """Σ over activation sites of the product of the non-batch input shape (spec §4.3)."""
    total = 0
    for layer in (activation_sites(model) if layers_ is None else layers_):
        total += math.prod(int(s) for s in layer.input.shape[1:])
    return total
