"""The TTFS model zoo (spec §6): FC2 (784-340-10) and VGG16 for MNIST/FMNIST and CIFAR, each as a ReLU
network and as a TTFS SNN, with and without BatchNorm, built by name.

Layer names mirror the reference (``dense_1``, ``dense_output``, ``conv2d_k``, ``batch_normalization_k``,
``dense_k``) so weight files interoperate and a ReLU model and its SNN twin line up by name.
"""

import keras

from tfspike.distribute import synchronized_batch_norm
from tfspike.errors import UserError
from tfspike.ttfs import TTFSConv2D, TTFSDense, TTFSInput, TTFSMaxPool2D, TTFSModel

P = "P"
VGG_LAYERS = {
    # data family: (conv widths with pools, hidden dense widths)
    "MNIST": ([64, 64, 128, 128, P, 256, 256, 256, P, 512, 512, 512, P, 512, 512, 512, P], [512, 512]),
    "CIFAR": ([64, 64, P, 128, 128, P, 256, 256, 256, P, 512, 512, 512, P, 512, 512, 512, P], [512]),
}
INPUT_SHAPES = {"MNIST": (28, 28, 1), "FMNIST": (28, 28, 1), "CIFAR10": (32, 32, 3), "CIFAR100": (32, 32, 3)}
NUM_CLASSES = {"MNIST": 10, "FMNIST": 10, "CIFAR10": 10, "CIFAR100": 100}
INPUT_RANGES = {"MNIST": (0.0, 1.0), "FMNIST": (0.0, 1.0), "CIFAR10": (-3.0, 3.0), "CIFAR100": (-3.0, 3.0)}
L2 = 5e-4


CONVERTED_HINT = ("a CNN model is any convolutional TTFS network made by tfspike.convert.relu_to_ttfs: give it "
                  "as --load=<file>.keras (e.g. examples/convert_pretrained.py --save)")


def architecture(model_name):
    """'FC2', 'VGG' or 'CNN' from a model name such as ``FC2_example``, ``VGG_BN_example`` or ``CNN_mnist``.

    'CNN' names a converted convolutional network (:func:`tfspike.convert.relu_to_ttfs`) that is loaded
    from its ``.keras`` file, never built from the name.
    """
    for arch in ("FC2", "VGG", "CNN"):
        if arch in model_name:
            return arch
    raise UserError(f"--model_name must contain FC2, VGG or CNN, got {model_name!r}")


def buildable(model_name):
    """Raise for names whose network only comes from a file (CNN)."""
    if architecture(model_name) == "CNN":
        raise UserError(f"--model_name={model_name} cannot be built from its name; {CONVERTED_HINT}")


def uses_bn(model_name):
    return architecture(model_name) == "VGG" and "BN" in model_name


def family(data_name):
    return "CIFAR" if data_name.startswith("CIFAR") else "MNIST"


def input_shape(model_name, data_name):
    shape = INPUT_SHAPES[data_name]
    if architecture(model_name) == "FC2":
        n = 1
        for d in shape:
            n *= d
        return (n,)
    return shape


def recipe(model_name):
    """Initialisation and regularisation of spec §6.4: (hidden init, output init, regularizer)."""
    if architecture(model_name) == "VGG" and not uses_bn(model_name):
        return "he_uniform", "glorot_uniform", keras.regularizers.L2(L2)
    return "glorot_uniform", "glorot_uniform", None


def make_optimizer(model_name, lr):
    """Adam + ExponentialDecay(5000, 0.9) for FC2 and VGG_BN; SGD(momentum 0.9) for VGG without BN."""
    if architecture(model_name) == "VGG" and not uses_bn(model_name):
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    schedule = keras.optimizers.schedules.ExponentialDecay(lr, decay_steps=5000, decay_rate=0.9)
    return keras.optimizers.Adam(learning_rate=schedule)


def _vgg_plan(data_name):
    convs, dense = VGG_LAYERS[family(data_name)]
    return convs, dense


def _cifar_vgg_dropout(convs, i):
    """cifar-vgg places Dropout after a conv block unless a pool follows (0.3 in block 1, else 0.4)."""
    nxt = convs[i + 1] if i + 1 < len(convs) else P
    if nxt == P:
        return 0.0
    return 0.3 if sum(1 for c in convs[:i] if c == P) == 0 else 0.4


def build_relu_model(model_name, data_name, dtype=None, dropout=None):
    """The ReLU network of the zoo.

    Args:
        model_name: contains FC2 or VGG; "BN" in a VGG name adds BatchNorm after every ReLU.
        data_name: MNIST | FMNIST | CIFAR10 | CIFAR100.
        dtype: layer dtype ("float32" default, "float64" for exactness checks).
        dropout: None (no dropout, as the reference's builder with rate 0) or "cifar-vgg" (the
            rates and places of geifmany/cifar-vgg).
    """
    buildable(model_name)
    arch = architecture(model_name)
    hidden_init, out_init, reg = recipe(model_name)
    n_cls = NUM_CLASSES[data_name]
    kw = {"dtype": dtype} if dtype else {}
    layers = [keras.Input(input_shape(model_name, data_name), dtype=dtype or "float32")]
    if arch == "FC2":
        layers += [keras.layers.Dense(340, kernel_initializer=hidden_init, name="dense_1", **kw),
                   keras.layers.ReLU(name="relu_1", **kw),
                   keras.layers.Dense(n_cls, kernel_initializer=out_init, name="dense_output", **kw)]
        return keras.Sequential(layers, name=f"{model_name}_relu")
    bn = uses_bn(model_name)
    sync_bn = synchronized_batch_norm()  # global-batch statistics under a tf.distribute strategy
    convs, dense = _vgg_plan(data_name)
    k = b = p = 0
    for i, c in enumerate(convs):
        if c == P:
            p += 1
            layers.append(keras.layers.MaxPooling2D(2, name=f"max_pooling2d_{p}", **kw))
            continue
        k += 1
        layers += [keras.layers.Conv2D(c, 3, padding="same", kernel_initializer=hidden_init, kernel_regularizer=reg,
                                       name=f"conv2d_{k}", **kw),
                   keras.layers.ReLU(name=f"relu_conv_{k}", **kw)]
        if bn:
            b += 1
            layers.append(keras.layers.BatchNormalization(name=f"batch_normalization_{b}", synchronized=sync_bn, **kw))
        if dropout == "cifar-vgg" and _cifar_vgg_dropout(convs, i):
            layers.append(keras.layers.Dropout(_cifar_vgg_dropout(convs, i), name=f"dropout_conv_{k}", **kw))
    if dropout == "cifar-vgg":
        layers.append(keras.layers.Dropout(0.5, name="dropout_flatten", **kw))
    layers.append(keras.layers.Flatten(name="flatten", **kw))
    for j, units in enumerate(dense, start=1):
        layers += [keras.layers.Dense(units, kernel_initializer=hidden_init, kernel_regularizer=reg, name=f"dense_{j}",
                                      **kw),
                   keras.layers.ReLU(name=f"relu_dense_{j}", **kw)]
        if bn:
            b += 1
            layers.append(keras.layers.BatchNormalization(name=f"batch_normalization_{b}", synchronized=sync_bn, **kw))
        if dropout == "cifar-vgg":
            layers.append(keras.layers.Dropout(0.5, name=f"dropout_dense_{j}", **kw))
    layers.append(keras.layers.Dense(n_cls, kernel_initializer=out_init, kernel_regularizer=reg,
                                     name=f"dense_{len(dense) + 1}", **kw))
    return keras.Sequential(layers, name=f"{model_name}_relu")


def build_snn_model(model_name, data_name, dtype=None, input_is="time", noise=0.0, noise_mode="reference",
                    time_bits=0, weight_bits=0, w_min=-1.0, w_max=1.0, x_n=1000.0):
    """The TTFS SNN of the zoo (never has BN: "BN" in the name only selects the recipe and the mapping
    source). The input is the input spike time t⁽⁰⁾ = 1 − u (``input_is="time"``, the reference's
    convention) or the ReLU network's input (``input_is="value"``)."""
    buildable(model_name)
    arch = architecture(model_name)
    hidden_init, out_init, reg = recipe(model_name)
    n_cls = NUM_CLASSES[data_name]
    p, q = INPUT_RANGES[data_name]
    kw = {"dtype": dtype} if dtype else {}
    spiking = dict(noise=noise, noise_mode=noise_mode, time_bits=time_bits, weight_bits=weight_bits,
                   w_min=w_min, w_max=w_max, x_n=x_n, **kw)
    readout = dict(output=True, weight_bits=weight_bits, w_min=w_min, w_max=w_max, **kw)
    layers = [keras.Input(input_shape(model_name, data_name), dtype=dtype or "float32"),
              TTFSInput(input_is=input_is, p=p, q=q, time_bits=time_bits, name="input_encoding", **kw)]
    if arch == "FC2":
        layers += [TTFSDense(340, kernel_initializer=hidden_init, name="dense_1", **spiking),
                   TTFSDense(n_cls, kernel_initializer=out_init, name="dense_output", **readout)]
        return TTFSModel(layers, name=f"{model_name}_snn")
    convs, dense = _vgg_plan(data_name)
    k = pool = 0
    for c in convs:
        if c == P:
            pool += 1
            layers.append(TTFSMaxPool2D(2, name=f"max_pooling2d_{pool}", **kw))
            continue
        k += 1
        layers.append(TTFSConv2D(c, 3, padding="same", kernel_initializer=hidden_init, kernel_regularizer=reg,
                                 name=f"conv2d_{k}", **spiking))
    layers.append(keras.layers.Flatten(name="flatten", **kw))
    for j, units in enumerate(dense, start=1):
        layers.append(TTFSDense(units, kernel_initializer=hidden_init, kernel_regularizer=reg, name=f"dense_{j}",
                                **spiking))
    layers.append(TTFSDense(n_cls, kernel_initializer=out_init, kernel_regularizer=reg,
                            name=f"dense_{len(dense) + 1}", **readout))
    return TTFSModel(layers, name=f"{model_name}_snn")


def copy_weights_by_name(src, dst):
    """Copy kernels and biases from a BN-free ReLU model into its SNN twin (identity mapping, spec §1.4)."""
    by_name = {l.name: l for l in src.layers}
    for layer in dst.layers:
        if isinstance(layer, (TTFSDense, TTFSConv2D)):
            s = by_name.get(layer.name)
            if s is None:
                raise UserError(f"no layer named {layer.name!r} in the ReLU model to copy from")
            for w_dst, w_src in ((layer.kernel, s.kernel), (layer.bias, s.bias)):
                if tuple(w_dst.shape) != tuple(w_src.shape):
                    raise UserError(f"layer {layer.name}: {w_dst.name} shape {tuple(w_dst.shape)} != "
                                    f"{tuple(w_src.shape)} in the ReLU model")
                w_dst.assign(keras.ops.cast(w_src.value, w_dst.dtype))
