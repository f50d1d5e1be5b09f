"""Walk-through: train a ReLU network, convert it to its exact TTFS twin, check, fine-tune, export.

    python examples/convert_pretrained.py --data_dir ../shared/data [--epochs 2] [--train_samples 60000]
    python examples/convert_pretrained.py --data_name MNIST --save logs/CNN_mnist_snn.keras   # the zoo's ttfs_cnn_mnist

1. Train a small VGG_BN-style ReLU network on Fashion-MNIST (or MNIST). BatchNorm sits *after* each ReLU, as in
   geifmany/cifar-vgg, so the converter has to fold it forward (bias maps, sign-aware pooling).
2. Convert with ``tfspike.convert.relu_to_ttfs``. The SNN takes the same inputs (pixels/255) and
   encodes them as input spike times itself; its logits are those of the ReLU network.
3. Check: identical test predictions (float32) and the float64 check the converter ran.
4. Fine-tune the SNN for one epoch at lr 1e-6 (the paper's fine-tuning step), windows grow as needed.
5. Export a TensorFlow SavedModel (``model.export``), reload it and check its outputs.
6. ``--save FILE.keras``: keep the fine-tuned SNN; ``main.py --model_type=SNN --model_name=CNN_<any>
   --data_name=<same> --load=FILE.keras`` evaluates (``--epochs=0``) or fine-tunes it.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfspike.convert import relu_to_ttfs  # noqa: E402
from tfspike.data.images import load_image_dataset  # noqa: E402
from tfspike.data.pipeline import make_dataset  # noqa: E402
from tfspike.ttfs import evaluate_ttfs  # noqa: E402
from tfspike.ttfs.windows import measure_x_n  # noqa: E402
from tfspike.utils.io import save_model_atomic, write_json_atomic  # noqa: E402
from tfspike.utils.models import count_parameters  # noqa: E402
from tfspike.utils.versions import library_versions  # noqa: E402


def vgg_bn_small(n_classes=10, bn_momentum=0.9):
    """Conv → ReLU → BN blocks with max-pooling, then Dense → ReLU → BN → Dense (logits): 28×28×1 input.

    BN momentum 0.9 (Keras default 0.99) lets the moving statistics settle within a short CPU run; with
    0.99 and ~150 steps they keep 20 % of their initial (0, 1) values and the inference network is poor.
    """
    L = keras.layers
    layers = [keras.Input((28, 28, 1))]
    for k, (filters, pool) in enumerate([(16, False), (16, True), (32, True)], start=1):
        layers += [L.Conv2D(filters, 3, padding="same", name=f"conv2d_{k}"), L.ReLU(name=f"relu_{k}"),
                   L.BatchNormalization(momentum=bn_momentum, name=f"batch_normalization_{k}")]
        layers.append(L.MaxPooling2D(2, name=f"max_pooling2d_{k}") if pool else L.Dropout(0.2, name=f"dropout_{k}"))
    layers += [L.Flatten(name="flatten"), L.Dense(64, activation="relu", name="dense_1"),
               L.BatchNormalization(momentum=bn_momentum, name="batch_normalization_4"),
               L.Dropout(0.3, name="dropout_4"),
               L.Dense(n_classes, name="dense_2")]
    return keras.Sequential(layers, name="fmnist_vgg_bn")


def load_images(data_dir, train_samples=None, data_name="FMNIST"):
    (x_train, y_train), (x_test, y_test) = load_image_dataset(data_name, data_dir)
    prep = lambda x: (x.astype("float32") / 255.0)[..., None]  # noqa: E731  input range (p, q) = (0, 1)
    x_train, y_train = prep(x_train)[:train_samples], y_train[:train_samples]
    return (x_train, y_train), (prep(x_test), y_test)


def run(data_dir, epochs=2, train_samples=None, batch_size=128, finetune_lr=1e-6, seed=0, export_dir=None,
        verbose=1, data_name="FMNIST", save=None):
    keras.utils.set_random_seed(seed)
    (x_train, y_train), (x_test, y_test) = load_images(data_dir, train_samples, data_name)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    results = {"train_samples": len(x_train)}

    # 1. the ReLU network
    relu = vgg_bn_small()
    relu.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"], jit_compile=True)
    t0 = time.perf_counter()
    train = make_dataset(x_train, y_train, batch_size, shuffle=True, seed=seed, drop_remainder=True)
    relu.fit(train, epochs=epochs, verbose=verbose)
    results["relu_train_seconds"] = time.perf_counter() - t0
    _, results["relu_test_accuracy"] = relu.evaluate(make_dataset(x_test, y_test, 1000), verbose=0)

    # 2. convert (the converter checks float64 equality layer by layer on test images before returning)
    t0 = time.perf_counter()
    snn, report = relu_to_ttfs(relu, input_range=(0.0, 1.0), verify_inputs=x_test[:64].astype("float64"),
                               return_report=True)
    results["convert_seconds"] = time.perf_counter() - t0
    results["verify_float64_max_abs_dz"] = report["verification"]["max_abs_logit_diff"]
    for layer in report["layers"]:
        rules = layer["rules"][1:] if layer["kind"].startswith(("dense", "conv")) else layer["rules"]
        print(f"  {layer['ttfs_layer']:<16} {layer['kind']:<14} <- {', '.join(layer['sources'])}: {'; '.join(rules)}")

    # 3. identical predictions on the whole test set (float32), spike statistics
    relu_batches = []  # the ReLU logits of the agreement check, kept: one pass of the ReLU net over the test set

    def relu_logits_of(xb):
        relu_batches.append(np.asarray(relu.predict_on_batch(xb)))
        return relu_batches[-1]

    stats = evaluate_ttfs(snn, x_test, y_test, batch_size=1000, reference_logits=relu_logits_of)
    relu_logits = np.concatenate(relu_batches)
    results["snn_test_accuracy_before_finetune"] = stats["accuracy"]
    results["agreement_with_relu"] = stats["agreement_with_relu"]
    results["max_abs_logit_diff_float32"] = stats["max_abs_logit_diff"]
    results["prediction_disagreements"] = int(round((1 - stats["agreement_with_relu"]) * len(x_test)))
    results["spikes_per_neuron"] = stats["spikes_per_neuron"]
    results["latency_default_windows"] = stats["latency"]
    results["x_n"] = measure_x_n(snn, x_train, batch_size=1000)
    results["relu_test_accuracy_from_logits"] = float(np.mean(relu_logits.argmax(-1) == y_test))

    # 4. fine-tune the SNN for one epoch at a small learning rate
    snn.compile(optimizer=keras.optimizers.Adam(finetune_lr), loss=loss, metrics=["accuracy"], jit_compile=True)
    t0 = time.perf_counter()
    train = make_dataset(x_train, y_train, batch_size, shuffle=True, seed=seed + 1, drop_remainder=True)
    snn.fit(train, epochs=1, verbose=verbose)
    results["finetune_seconds"] = time.perf_counter() - t0
    _, results["snn_test_accuracy_after_finetune"] = snn.evaluate(make_dataset(x_test, y_test, 1000), verbose=0)
    results["latency_after_finetune"] = snn.latency()
    results["params"] = count_parameters(snn)[0]
    if save:
        save_model_atomic(snn, save)
        results["saved"] = save

    # 5. SavedModel export (serving endpoint "serve"), reloaded without tfspike's Python classes
    export_dir = export_dir or tempfile.mkdtemp(prefix="ttfs_savedmodel_")
    snn.export(export_dir, verbose=False)
    reloaded = tf.saved_model.load(export_dir)  # keep a reference: its variables die with the object
    served = reloaded.serve(tf.constant(x_test[:256]))
    results["savedmodel_max_abs_diff"] = float(np.max(np.abs(served.numpy() - snn.predict(x_test[:256], verbose=0))))
    results["savedmodel_dir"] = export_dir
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data_dir", default="../shared/data")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train_samples", type=int, default=None, help="use the first N training images")
    ap.add_argument("--batch_size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export_dir", default=None)
    ap.add_argument("--data_name", default="FMNIST", choices=("FMNIST", "MNIST"))
    ap.add_argument("--save", default=None, metavar="FILE.keras", help="keep the fine-tuned SNN here")
    ap.add_argument("--results", default=None, metavar="FILE.json",
                    help="write the results (with the command, seed and versions) here")
    args = ap.parse_args(argv)
    r = run(args.data_dir, args.epochs, args.train_samples, args.batch_size, seed=args.seed,
            export_dir=args.export_dir, verbose=2, data_name=args.data_name, save=args.save)
    if args.results:
        import shlex
        import sys

        r.update(command=shlex.join(["python", "examples/convert_pretrained.py", *(argv or sys.argv[1:])]),
                 seed=args.seed, versions=library_versions(), x_n=None)
        write_json_atomic(args.results, r)
    for k, v in r.items():
        print(f"{k} = {v:.6g}" if isinstance(v, float) else f"{k} = {v}")
    same = r["prediction_disagreements"] == 0
    kept = r["snn_test_accuracy_after_finetune"] >= r["snn_test_accuracy_before_finetune"]
    print(f"identical test predictions: {same}; no accuracy loss after fine-tuning: {kept}")


if __name__ == "__main__":
    main()
