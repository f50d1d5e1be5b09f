"""Weight-file readers: legacy Keras 2 ``.h5`` files (``tfspike.io.keras2_h5``) and a dispatcher over
Keras 3 ``.weights.h5`` / ``.keras`` / Keras 2 ``.h5`` (:func:`load_relu_weights`)."""

from tfspike.io.keras2_h5 import CIFAR10VGG_SHA256, CIFAR10VGG_SIZE, load_keras2_h5, load_relu_weights  # noqa: F401
