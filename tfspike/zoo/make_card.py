"""Write or update a preset's model card from the project's own run records.

Two steps, both from results JSON files that ``main.py`` wrote (so no number is typed by hand)::

    # 1. the card: identity, flags, files (copied into the preset folder, SHA-256 and size recorded),
    #    the training commands, seed and versions from the training runs' results
    python -m tfspike.zoo.make_card ttfs_fc2_mnist --family TTFS --model_type SNN \\
        --task "digit classification" --dataset MNIST --flags '{"model_name": "FC2_zoo", "data_name": "MNIST"}' \\
        --file load=logs/MNIST-FC2_zoo_snn.weights.h5 --training relu_results.json snn_results.json \\
        --input '{"shape": [784], ...}' --outputs "10 logits" --provenance "..." --licence "Apache-2.0"
    # 2. the metrics: evaluate the preset with its family's own evaluation, then record them
    python main.py --preset=ttfs_fc2_mnist --energy --logging_dir logs/eval
    python -m tfspike.zoo.make_card ttfs_fc2_mnist --evaluation logs/eval/runs/.../..._results.json

``--dir`` writes into another presets folder (e.g. one on ``$TFSPIKE_PRESETS``) instead of the package.
"""

import argparse
import json
import os
import shutil
import sys

from tfspike.errors import UserError
from tfspike.zoo.registry import CARD, PRESET_DIR

# Keys of an evaluation's results JSON that become card metrics, per family (those present are taken).
METRIC_KEYS = {
    "TTFS": ("test_accuracy", "test_loss", "spikes_per_neuron", "latency"),
    "FS": ("test_accuracy", "test_loss", "spikes_per_neuron", "n_fs_neurons", "mse"),
    "RSNN": ("test_accuracy", "test_loss", "sop_per_sample", "sop_per_step", "firing_rate"),
    "DDIM": ("kid", "val_noise_loss", "val_image_loss", "spikes_per_fs_neuron", "kid_extractor"),
}


def _read(path):
    from tfspike.utils.files import read_json

    return read_json(path, "results")


def _metrics(family, results):
    found = {}
    for key in METRIC_KEYS[family]:
        value = results.get(key)
        if value is None and isinstance(results.get("test"), dict):
            value = results["test"].get(key)
        if isinstance(value, list) and value and key in ("kid", "val_noise_loss", "val_image_loss"):
            value = value[-1]  # per-epoch lists: an evaluate-only run has one entry
        if value is not None:
            found[key] = value
    if not found:
        raise UserError(f"the evaluation results hold none of {', '.join(METRIC_KEYS[family])}")
    return found


def _copy_file(flag, source, folder):
    """Copy a preset file into its folder; Keras weight files lose their optimizer state on the way."""
    from tfspike.utils.files import check_file
    from tfspike.utils.io import atomic_path, sha256_file, strip_optimizer_state

    check_file(source, f"--file {flag}")
    target = os.path.join(folder, os.path.basename(source))
    if os.path.abspath(source) != os.path.abspath(target):
        if source.endswith((".weights.h5", ".keras")):
            strip_optimizer_state(source, target)
        else:
            with atomic_path(target, os.path.splitext(source)[1]) as tmp:
                shutil.copyfile(source, tmp)
    return {"file": os.path.basename(source), "sha256": sha256_file(target), "bytes": os.path.getsize(target)}


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def portable(command, path_map=()):
    """``command`` with absolute paths written relative to the repository (``../shared/data`` for the data
    beside it) and with each ``OLD=NEW`` of ``path_map`` applied first (e.g. a scratch logging folder), so a
    card holds no machine's paths."""
    for item in path_map:
        old, new = item.split("=", 1)
        command = command.replace(old.rstrip("/") + "/", new.rstrip("/") + "/").replace(old.rstrip("/"), new)
    parent = os.path.dirname(REPO)
    return command.replace(REPO + "/", "").replace(parent + "/", "../")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("--dir", default=PRESET_DIR, help="presets folder (default: the package's)")
    ap.add_argument("--family", choices=tuple(METRIC_KEYS))
    ap.add_argument("--model_type")
    ap.add_argument("--task")
    ap.add_argument("--dataset")
    ap.add_argument("--description", default="")
    ap.add_argument("--flags", type=json.loads, help="JSON: main.py flags (dest names) that rebuild the network")
    ap.add_argument("--input", type=json.loads, help="JSON: shape, dtype, preprocessing")
    ap.add_argument("--outputs")
    ap.add_argument("--file", action="append", default=[], metavar="FLAG=PATH",
                    help="a file of the preset for main.py flag FLAG (load, permutation); copied into the folder "
                         "(.weights.h5 / .keras without their optimizer state)")
    ap.add_argument("--url", action="append", default=[], metavar="FLAG=URL",
                    help="instead of shipping the --file of FLAG, fetch it from URL (its SHA-256 is still taken "
                         "from the local --file)")
    ap.add_argument("--training", nargs="*", default=None, help="results JSON files of the training runs, in order")
    ap.add_argument("--training_note", default=None, help="how the run was chosen (e.g. seed by validation loss)")
    ap.add_argument("--training_run", nargs="*", default=None,
                    help="instead of --training: run.json files of training runs whose results file was not "
                         "written (their command is recorded; versions and parameters come from --evaluation)")
    ap.add_argument("--seed", type=int, default=None, help="the training seed, with --training_run")
    ap.add_argument("--evaluation", default=None, help="results JSON of main.py --preset=NAME --epochs=0 [--energy]")
    ap.add_argument("--path_map", action="append", default=[], metavar="OLD=NEW",
                    help="rewrite the absolute path prefix OLD as NEW in the recorded commands (e.g. a scratch "
                         "logging folder as logs/zoo); paths in the repository and beside it become relative")
    ap.add_argument("--provenance")
    ap.add_argument("--licence")
    args = ap.parse_args(argv)

    from tfspike.utils.io import write_json_atomic

    folder = os.path.join(args.dir, args.name)
    path = os.path.join(folder, CARD)
    info = _read(path) if os.path.exists(path) else {"name": args.name, "metrics": {}}
    for key in ("family", "model_type", "task", "dataset", "description", "flags", "input", "outputs",
                "provenance", "licence"):
        if getattr(args, key):
            info[key] = getattr(args, key)
    os.makedirs(folder, exist_ok=True)
    urls = dict(u.split("=", 1) for u in args.url)
    if args.file:
        files = {}
        for item in args.file:
            flag, source = item.split("=", 1)
            if flag in urls:  # hashed from the local copy, not shipped
                from tfspike.utils.io import sha256_file

                files[flag] = {"url": urls[flag], "file": os.path.basename(source), "sha256": sha256_file(source),
                               "bytes": os.path.getsize(source)}
            else:
                files[flag] = _copy_file(flag, source, folder)
        info["files"] = files
    if args.training is not None:
        runs = [_read(p) for p in args.training]
        last = runs[-1]
        info["training"] = {"commands": [portable(r["command"], args.path_map) for r in runs], "seed": last.get("seed"),
                            "train_seconds": sum(float(r.get("train_seconds") or 0) for r in runs) or None}
        info["versions"] = last.get("versions")
        if "parameters" not in info and last.get("params") is not None:
            info["parameters"] = last["params"]
    if args.training_run is not None:
        info["training"] = {"commands": [portable(_read(p)["command"], args.path_map) for p in args.training_run],
                            "seed": args.seed}
    if args.training_note:
        info.setdefault("training", {})["note"] = args.training_note
    if args.evaluation:
        res = _read(args.evaluation)
        info["metrics"] = _metrics(info["family"], res)
        info["evaluation"] = {"command": portable(res.get("command") or "", args.path_map),
                              "versions": res.get("versions")}
        info.setdefault("versions", res.get("versions"))  # presets trained elsewhere: the evaluating versions
        if res.get("energy"):
            e = res["energy"]
            info["energy"] = {k: e[k] for k in ("profile", "per_sample", "ann_twin", "ratio_vs_ann") if k in e}
            if "joules_by_profile" in e:
                info["energy"]["joules_by_profile"] = e["joules_by_profile"]
        params = res.get("params")
        if params is not None:
            info["parameters"] = params
    write_json_atomic(path, info)
    print(f"card: {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
