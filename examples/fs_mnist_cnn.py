#!/usr/bin/env python
"""Train a small CNN on MNIST or Fashion-MNIST (../shared/data), convert its activations to
Few-Spike neurons without retraining, and compare ANN and FS test accuracy and spikes per neuron.

    python examples/fs_mnist_cnn.py --dataset=mnist --activation=swish --sets=stoeckl_swish_k16,swish_k16_best
    python examples/fs_mnist_cnn.py --dataset=mnist --activation=relu --sets=relu_k10

Architecture (spec fs.md D7): Conv32(3x3)-pool-Conv64(3x3)-pool-Flatten-Dense128-Dense10, Adam,
batch 128, seeded (``tfspike.fs.networks``; ``main.py --model_type=FS --network cnn`` trains, saves and
evaluates the same network). Writes ``<logging_dir>/fs_cnn_<dataset>_<activation>.json``.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mnist", choices=("mnist", "fmnist"))
    ap.add_argument("--activation", default="swish", choices=("swish", "relu"))
    ap.add_argument("--sets", default="stoeckl_swish_k16", help="comma-separated FS sets to convert with")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--logging_dir", default="logs/fs")
    ap.add_argument("--ann_path", default=None,
                    help="reuse this trained ANN (.keras) if it exists, else train and save it there")
    ap.add_argument("--stats_samples", type=int, default=1000, help="test images used for spike statistics")
    ap.add_argument("--energy", default=None, metavar="PROFILE",
                    help="also count synops/MACs/neuron updates on the whole test set (tfspike.energy.count_fs, "
                         "in the evaluation pass) and report energy under PROFILE, e.g. 45nm_fp32 or loihi")
    args = ap.parse_args(argv)

    import keras
    import numpy as np

    from tfspike.data.images import load_image_dataset
    from tfspike.data.paths import data_dir_from
    from tfspike.data.preprocess import ttfs_preprocess
    from tfspike.fs.networks import build_cnn, compile_classifier, evaluate_ann, evaluate_fs_network, fs_network

    keras.utils.set_random_seed(args.seed)
    shared = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
    data_dir = data_dir_from(args.data_dir) or (shared if os.path.isdir(shared) else None)
    data_name = "MNIST" if args.dataset == "mnist" else "FMNIST"
    (xtr, ytr), (xte, yte) = load_image_dataset(data_name, data_dir)
    xtr, xte = ttfs_preprocess(data_name, xtr), ttfs_preprocess(data_name, xte)  # x/255 with a channel axis
    t0 = time.perf_counter()
    if args.ann_path and os.path.exists(args.ann_path):
        model = keras.saving.load_model(args.ann_path)
        print(f"loaded the trained ANN from {args.ann_path}")
    else:
        model = compile_classifier(build_cnn(args.activation), 1e-3)
        model.fit(xtr, ytr, batch_size=128, epochs=args.epochs, verbose=2)
        if args.ann_path:
            from tfspike.utils.io import save_model_atomic

            save_model_atomic(model, args.ann_path)
    train_s = time.perf_counter() - t0
    ann_acc = evaluate_ann(model, xte, yte)["accuracy"]
    # per-site max pre-activation (a drop of FS-ReLU usually means pre-activations above alpha)
    pre = {}
    for name in ("conv1", "conv2", "dense1"):
        layer = model.get_layer(name)
        cfg = dict(layer.get_config(), activation="linear")
        lin = layer.__class__.from_config(cfg)
        lin.build(layer.input.shape)
        lin.set_weights(layer.get_weights())
        probe = keras.Model(model.inputs, layer.input)
        pre[name] = float(np.max(lin(probe.predict(xte[:2000], verbose=0)).numpy()))
    result = {"dataset": args.dataset, "activation": args.activation, "epochs": args.epochs, "seed": args.seed,
              "ann_test_accuracy": ann_acc, "train_seconds": train_s, "max_preactivation": pre, "fs": {},
              "command": "python examples/fs_mnist_cnn.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(f"ANN ({args.activation}) test accuracy {ann_acc:.4f}")
    for set_name in [s for s in args.sets.split(",") if s]:
        fs_model, rep = fs_network(model, set_name, calibration=xte[:args.stats_samples], activation=args.activation)
        # one pass over the whole test set: the logits, the spikes and (--energy) the operation counts
        ev = evaluate_fs_network(fs_model, xte, yte, energy_profile=args.energy)
        fs_acc, energy = ev["accuracy"], None
        if args.energy:
            report = ev["energy_report"]
            energy = dict(ev["energy"], loihi_joules=report.joules("loihi"),
                          loihi_ann_joules=report.ann_joules("loihi"))
            print(report.table(args.energy))
        st = rep["spike_stats"]
        result["fs"][set_name] = {
            "test_accuracy": fs_acc, "n_sites": rep["n_sites"], "n_fs_neurons": rep["n_fs_neurons"],
            "spikes_per_neuron": st["total"]["spikes_per_neuron"],
            "sites": {k: {"spikes_per_neuron": v["spikes_per_neuron"], "input_mean": v["input_mean"],
                          "input_std": v["input_std"]} for k, v in st["sites"].items()}, "energy": energy,
            "test_spikes_per_neuron": ev["spikes_per_neuron"]}
        print(f"FS {set_name}: test accuracy {fs_acc:.4f} (ANN {ann_acc:.4f}), {rep['n_fs_neurons']} FS neurons, "
              f"{st['total']['spikes_per_neuron']:.3f} spikes/neuron on {st['total']['n_samples']} test images")
    os.makedirs(args.logging_dir, exist_ok=True)
    out = os.path.join(args.logging_dir, f"fs_cnn_{args.dataset}_{args.activation}.json")
    from tfspike.utils.io import write_json_atomic

    write_json_atomic(out, result)
    print(f"results: {out}")
    return result


if __name__ == "__main__":
    main()
