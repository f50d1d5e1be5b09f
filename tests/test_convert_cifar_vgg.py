"""Acceptance tests A3 and A4 (spec §10): exact mapping of the cifar10vgg architecture and of the MNIST
VGG16 with BN after ReLU, through the Keras TTFS model and through the absolute-time reference evaluator.

``cifar_vgg`` rebuilds geifmany/cifar-vgg's 60-layer Keras 2 Sequential layer for layer, with its
Keras 2 layer names, at any width (the tests use scaled-down widths; full widths run as ``slow``).
"""

import keras
import numpy as np
import pytest

from tfspike.convert.ttfs import relu_to_ttfs
from tfspike.reference.ttfs_numpy import reference_forward
from tfspike.ttfs import TTFSMaxPool2D

CIFAR_VGG_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
MNIST_VGG_2D = (64, 64, 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P")


class _Names:
    """Keras 2 auto-naming: conv2d_1, activation_1, batch_normalization_1, …"""

    def __init__(self):
        self.count = {}

    def __call__(self, base):
        self.count[base] = self.count.get(base, 0) + 1
        return f"{base}_{self.count[base]}"


def cifar_vgg(blocks=CIFAR_VGG_BLOCKS, dense=512, n_classes=10, input_shape=(32, 32, 3), dtype=None,
              weight_decay=5e-4):
    """geifmany/cifar-vgg (cifar10vgg.py ``build_model``), layer for layer, Keras 2 names: 60 layers."""
    L, name = keras.layers, _Names()
    reg = keras.regularizers.l2(weight_decay)
    layers = [keras.Input(input_shape, dtype=dtype)]
    for b, block in enumerate(blocks):
        for i, filters in enumerate(block):
            layers += [L.Conv2D(filters, 3, padding="same", kernel_regularizer=reg, name=name("conv2d"), dtype=dtype),
                       L.Activation("relu", name=name("activation"), dtype=dtype),
                       L.BatchNormalization(name=name("batch_normalization"), dtype=dtype)]
            if i < len(block) - 1:
                layers.append(L.Dropout(0.3 if b == 0 else 0.4, name=name("dropout"), dtype=dtype))
        layers.append(L.MaxPooling2D(2, name=name("max_pooling2d"), dtype=dtype))
    layers += [L.Dropout(0.5, name=name("dropout"), dtype=dtype), L.Flatten(name=name("flatten"), dtype=dtype),
               L.Dense(dense, kernel_regularizer=reg, name=name("dense"), dtype=dtype),
               L.Activation("relu", name=name("activation"), dtype=dtype),
               L.BatchNormalization(name=name("batch_normalization"), dtype=dtype),
               L.Dropout(0.5, name=name("dropout"), dtype=dtype),
               L.Dense(n_classes, name=name("dense"), dtype=dtype),
               L.Activation("softmax", name=name("activation"), dtype=dtype)]
    return keras.Sequential(layers, name="cifar10vgg")


def mnist_vgg_bn(layers2d=MNIST_VGG_2D, dense=(512, 512), n_classes=10, dtype=None):
    """The MNIST VGG16 (spec §6.2) as a ReLU VGG_BN with BN after every ReLU; its last block runs at 1×1."""
    L, name = keras.layers, _Names()
    layers = [keras.Input((28, 28, 1), dtype=dtype)]
    for item in layers2d:
        if item == "P":
            layers.append(L.MaxPooling2D(2, name=name("max_pooling2d"), dtype=dtype))
        else:
            layers += [L.Conv2D(item, 3, padding="same", name=name("conv2d"), dtype=dtype),
                       L.ReLU(name=name("re_lu"), dtype=dtype),
                       L.BatchNormalization(name=name("batch_normalization"), dtype=dtype)]
    layers.append(L.Flatten(name="flatten", dtype=dtype))
    for units in dense:
        layers += [L.Dense(units, name=name("dense"), dtype=dtype), L.ReLU(name=name("re_lu"), dtype=dtype),
                   L.BatchNormalization(name=name("batch_normalization"), dtype=dtype)]
    layers.append(L.Dense(n_classes, name=name("dense"), dtype=dtype))
    return keras.Sequential(layers, name="mnist_vgg_bn")


def randomize(model, seed=0, zero_gamma_before_pool=True):
    """Random weights with biases, BN with ≥ 1 negative γ per layer, and one γ = 0 channel before a pool.

    Kernels are rescaled by 1/sqrt(fan-in·E[x²]) so activations stay O(1) through 15 random layers.
    """
    rng = np.random.default_rng(seed)
    layers = [l for l in model.layers]
    zero_done = not zero_gamma_before_pool
    for i, layer in enumerate(layers):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            k = layer.kernel.shape
            fan_in = int(np.prod(k[:-1]))
            layer.set_weights([rng.normal(0, 1.0 / np.sqrt(fan_in), k), rng.normal(0, 0.2, k[-1])])
        elif isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            gamma = rng.uniform(0.5, 1.5, c) * rng.choice([-1.0, 1.0], c, p=[0.3, 0.7])
            gamma[0] = -abs(gamma[0])
            before_pool = any(isinstance(l, keras.layers.MaxPooling2D) for l in layers[i + 1:i + 3])
            if not zero_done and before_pool:
                gamma[1] = 0.0
                zero_done = True
            layer.set_weights([gamma, rng.normal(0, 0.3, c), rng.normal(0.5, 0.2, c), rng.uniform(0.2, 0.6, c)])
    return model


def _logits(model, x):
    """Pre-softmax logits of a model that ends with Dense → Activation('softmax')."""
    if isinstance(model.layers[-1], keras.layers.Activation):
        return keras.Model(model.inputs, model.layers[-2].output).predict(x, verbose=0, batch_size=64)
    return model.predict(x, verbose=0, batch_size=64)


def _check_exact(model, snn, x, check_reference=True):
    z = _logits(model, x)
    assert np.max(np.abs(z)) > 1e-2, "degenerate random model"
    tol = max(1e-9, 1e-11 * np.max(np.abs(z)))
    dz_keras = np.max(np.abs(snn.predict(x, verbose=0, batch_size=64) - z))
    assert dz_keras <= tol, dz_keras
    if check_reference:
        dz_ref = np.max(np.abs(reference_forward(snn, x) - z))
        assert dz_ref <= tol, dz_ref
    return z


def _a3(blocks, dense, n):
    keras.config.set_floatx("float64")
    model = randomize(cifar_vgg(blocks, dense=dense, dtype="float64"), seed=0)
    assert len(model.layers) == 60
    snn, report = relu_to_ttfs(model, input_range=(-3, 3), dtype="float64", return_report=True)
    assert snn.latency() == 21001.0  # 14 hidden layers × 1500 + 1
    # standardized CIFAR range (cifar-vgg constants): [-120.707/64.15, (255-120.707)/64.15]
    x = np.random.default_rng(1).uniform(-1.882, 2.093, (n, 32, 32, 3))
    _check_exact(model, snn, x)
    pools = [l for l in snn.layers if isinstance(l, TTFSMaxPool2D)]
    assert len(pools) == 5 and all(np.any(p.sign.numpy() < 0) for p in pools)
    assert set(np.unique(np.concatenate([p.sign.numpy() for p in pools]))) == {-1.0, 1.0}
    rules = {l["ttfs_layer"]: l["rules"] for l in report["layers"]}
    assert "absorbed affine of input range (-3, 3) with bias map" in rules["conv2d_1"]
    for i in range(2, 14):  # BN after every ReLU: absorbed by the next conv, with a border bias map
        assert f"absorbed affine of batch_normalization_{i - 1} with bias map" in rules[f"conv2d_{i}"], i
    for i in range(1, 14):
        assert "ReLU → spiking layer (activation='relu')" in rules[f"conv2d_{i}"], i
    for i in range(1, 6):  # every pool follows a BN with a negative scale
        assert rules[f"max_pooling2d_{i}"][0].startswith("sign-aware pool: "), i
    assert "pending affine tiled over 1 positions" in rules["flatten_1"]
    assert "absorbed affine of batch_normalization_13" in rules["dense_1"]
    assert rules["dense_2"][-2:] == ["absorbed affine of batch_normalization_14", "readout (logits)"]
    assert len(report["removed"]) == 11  # 10 Dropout + the final softmax


def test_a3_cifar10vgg_architecture_scaled():
    _a3(((4, 4), (6, 6), (8, 8, 8), (8, 8, 8), (8, 8, 8)), dense=16, n=256)


@pytest.mark.slow
def test_a3_cifar10vgg_architecture_full():
    _a3(CIFAR_VGG_BLOCKS, dense=512, n=256)


def _a4(layers2d, dense, n):
    keras.config.set_floatx("float64")
    model = randomize(mnist_vgg_bn(layers2d, dense, dtype="float64"), seed=2)
    snn = relu_to_ttfs(model, input_range=(0, 1), dtype="float64")
    assert snn.latency() == 22501.0  # 15 hidden layers
    # spec §6.2: 28 → 14 → 7 → 3 → 1; the last conv block runs at 3×3 (its 9-value bias map has all
    # 9 regions of size 1) and flattens 512 × 1×1. The 1×1 conv case is covered in test_ttfs_reference.
    last_conv = [l for l in snn.layers if l.name == "conv2d_13"][0]
    assert tuple(last_conv.output.shape[1:3]) == (3, 3) and last_conv.bias_map
    assert tuple(snn.get_layer("flatten").output.shape) == (None, layers2d[-2])
    x = np.random.default_rng(3).uniform(0, 1, (n, 28, 28, 1))
    _check_exact(model, snn, x)


def test_a4_mnist_vgg16_bn_after_relu_scaled():
    small = tuple(c if c == "P" else max(2, c // 32) for c in MNIST_VGG_2D)
    _a4(small, dense=(8, 8), n=256)


@pytest.mark.slow
def test_a4_mnist_vgg16_bn_after_relu_full():
    _a4(MNIST_VGG_2D, dense=(512, 512), n=256)
