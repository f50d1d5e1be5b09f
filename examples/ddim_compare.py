"""ANN swish vs FS-Swish DDIM on offline Fashion-MNIST: same seed and budget, one table and one plot.

    python examples/ddim_compare.py --data_dir ../shared/data --logging_dir logs/ddim_compare \\
        --widths 16,32,48,64 --epochs 3 --steps_per_epoch 40 --max_kid_batches 2 --ema 0.95

Runs ``main.py --model_type=DDIM`` once with ``--activation=swish`` and once per FS parameter set
(published, random, gaussian, tbpi, best; a set whose fit does not exist yet is reported as missing
and skipped), one after the other, then writes ``<logging_dir>/DDIM_comparison.md`` (a markdown table:
image loss and KID per epoch, best KID, FS spikes per neuron during sampling) and
``<logging_dir>/DDIM_comparison.png``. ``--report_only`` rebuilds the table and plot from the results
files already there. Extra flags after ``--`` go to every ``main.py`` call.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tfspike.cli.ddim import run_prefix  # noqa: E402  (no TensorFlow at import)
from tfspike.ddim.choices import FS_PARAM_SETS, fs_params_name  # noqa: E402

SETS = tuple(FS_PARAM_SETS)


def fs_set_available(choice):
    from tfspike.errors import UserError
    from tfspike.fs import get_params

    try:
        get_params(fs_params_name(choice))
        return True, ""
    except UserError as e:
        return False, str(e)


def runs(sets):
    out = [("swish", "ann")]
    out += [("fs_swish", s) for s in sets]
    return out


def report(logging_dir, data_name, sets, missing, command):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfspike.utils.io import atomic_path, save_figure_atomic

    rows, curves = [], []
    for activation, tag in runs(sets):
        prefix = run_prefix(argparse.Namespace(activation=activation, fs_params=tag, data_name=data_name))
        path = os.path.join(logging_dir, f"{prefix}_results.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            res = json.load(f)
        label = "ANN swish" if activation == "swish" else f"FS-Swish ({tag})"
        spikes = (res.get("sampling_spike_stats") or {}).get("spikes_per_neuron")
        rows.append((label, res, spikes))
        curves.append((label, res))
    if not rows:
        print("no results found")
        return
    kid_name = rows[0][1].get("kid_extractor", "kid")
    n_epochs = max(len(r[1]["kid"]) for r in rows)
    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
    head = (["run"] + [f"image loss e{e + 1}" for e in range(n_epochs)] + [f"{kid_name} e{e + 1}" for e in range(n_epochs)]
            + ["best KID", "noise loss (last)", "spikes/FS neuron (sampling)", "s epoch 1 (incl. XLA compile)",
               "s/epoch after"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, res, spikes in rows:
        il = res["val_image_loss"] + [None] * (n_epochs - len(res["val_image_loss"]))
        kd = res["kid"] + [None] * (n_epochs - len(res["kid"]))
        t = res.get("epoch_time_s") or []
        cells = ([label] + [fmt(v) for v in il] + [fmt(v) for v in kd]
                 + [fmt(res.get("best_kid")), fmt(res["noise_loss"][-1] if res["noise_loss"] else None),
                    "— (ANN)" if spikes is None else f"{spikes:.3f}",
                    f"{t[0]:.0f}" if t else "—", f"{sum(t[1:]) / len(t[1:]):.0f}" if len(t) > 1 else "—"])
        lines.append("| " + " | ".join(cells) + " |")
    cfg = rows[0][1]["config"]
    notes = [f"Data {data_name} (32×32×1), widths {cfg['widths']}, block depth {cfg['block_depth']}, batch "
             f"{cfg['batch_size']}, {cfg['epochs']} epochs × {rows[0][1]['steps_per_epoch']} steps, EMA {cfg['ema']}, "
             f"seed {cfg['seed']}; "
             f"image loss = validation MAE of the predicted clean image (normalised pixels); {kid_name} = KID with "
             f"the features of the project's own {data_name} classifier (not comparable with Inception KIDs), "
             f"{rows[0][1]['validation_batches']} validation batches of {cfg['batch_size']} real vs "
             f"{cfg['kid_diffusion_steps']}-step DDIM samples; spikes per FS neuron per network call while "
             f"sampling {cfg['spike_stats_images']} images with {cfg['plot_diffusion_steps']} DDIM steps."]
    if missing:
        notes.append("Not run (parameter set not available yet): " + "; ".join(f"{k}: {v}" for k, v in missing.items()))
    notes.append(f"Command: `{command}`")
    text = "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"
    with atomic_path(os.path.join(logging_dir, "DDIM_comparison.md"), ".md") as tmp, open(tmp, "w") as f:
        f.write(text)
    print(text)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, res in curves:
        ep = range(1, len(res["kid"]) + 1)
        style = "k--" if label.startswith("ANN") else "-"
        axes[0].plot(ep, res["val_image_loss"], style, marker="o", label=label)
        axes[1].plot(ep, res["kid"], style, marker="o", label=label)
    axes[0].set(xlabel="epoch", ylabel="validation image loss (MAE)", title="image loss")
    axes[1].set(xlabel="epoch", ylabel=kid_name, title=f"KID ({kid_name}, project classifier features)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, os.path.join(logging_dir, "DDIM_comparison.png"), dpi=100)
    print(f"wrote {os.path.join(logging_dir, 'DDIM_comparison.png')}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "data"))
    p.add_argument("--logging_dir", default="logs/ddim_compare")
    p.add_argument("--data_name", default="FMNIST", choices=("FMNIST", "MNIST"))
    p.add_argument("--widths", default="16,32,48,64")
    p.add_argument("--block_depth", default="2")
    p.add_argument("--batch_size", default="64")
    p.add_argument("--epochs", default="3")
    p.add_argument("--steps_per_epoch", default="40")
    p.add_argument("--max_kid_batches", default="2")
    p.add_argument("--ema", default="0.95", help="EMA decay; 0.999 leaves 89 %% of the initial weights after 120 steps")
    p.add_argument("--spike_stats_images", default="8")
    p.add_argument("--seed", default="0")
    p.add_argument("--sets", default=",".join(SETS), help="FS parameter sets to try, comma-separated")
    p.add_argument("--skip_ann", action="store_true", help="do not (re)run the ANN swish baseline")
    p.add_argument("--report_only", action="store_true")
    args, extra = p.parse_known_args()
    # main.py runs with cwd=ROOT while the report reads from here: both need the same absolute paths.
    args.logging_dir, args.data_dir = os.path.abspath(args.logging_dir), os.path.abspath(args.data_dir)
    extra = [a for a in extra if a != "--"]
    sets = [s for s in args.sets.split(",") if s]
    available, missing = [], {}
    for s in sets:
        ok, why = fs_set_available(s)
        (available.append(s) if ok else missing.__setitem__(s, why))
    command = " ".join(["python examples/ddim_compare.py"] + [a for a in sys.argv[1:] if a != "--report_only"])
    if not args.report_only:
        todo = [r for r in runs(available) if not (args.skip_ann and r[0] == "swish")]
        for activation, tag in todo:
            cmd = [sys.executable, os.path.join(ROOT, "main.py"), "--model_type=DDIM", f"--activation={activation}",
                   f"--data_name={args.data_name}", f"--data_dir={args.data_dir}",
                   f"--logging_dir={args.logging_dir}", f"--widths={args.widths}",
                   f"--block_depth={args.block_depth}", f"--batch_size={args.batch_size}", f"--epochs={args.epochs}",
                   f"--steps_per_epoch={args.steps_per_epoch}", f"--max_kid_batches={args.max_kid_batches}",
                   f"--seed={args.seed}", f"--ema={args.ema}",
                   f"--spike_stats_images={args.spike_stats_images}", "--verbose=2"] + ([f"--fs_params={tag}"] if activation == "fs_swish" else [])
            print(" ".join(cmd[1:]), flush=True)
            rc = subprocess.call(cmd + extra, cwd=ROOT)
            if rc:
                print(f"run {activation}/{tag} failed with exit status {rc}", flush=True)
    report(args.logging_dir, args.data_name, available, missing, command)


if __name__ == "__main__":
    main()
