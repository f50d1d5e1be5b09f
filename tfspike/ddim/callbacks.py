"""DDIM training callbacks: per-epoch results JSON (resumable) and a PNG grid of generated images."""

import json
import math
import os
import time

import keras
import numpy as np

from tfspike.utils.io import save_figure_atomic, write_json_atomic

# results-JSON list → Keras history key (``{kid}`` is the KID metric name)
RESULT_KEYS = {
    "noise_loss": "n_loss",
    "image_loss": "i_loss",
    "val_noise_loss": "val_n_loss",
    "val_image_loss": "val_i_loss",
    "kid": "val_{kid}",
}


class ResultsWriter(keras.callbacks.Callback):
    """Rewrite ``path`` atomically after every epoch with per-epoch lists ``noise_loss``, ``image_loss``
    (training means), ``val_noise_loss``, ``val_image_loss``, ``kid`` (validation) and ``epoch_time_s``.

    With ``resume=True`` an existing file with the same ``config`` is continued: lists are cut at the
    epoch Keras resumes from (``BackupAndRestore``), so they always hold one value per finished epoch.
    """

    def __init__(self, path, config, kid_name, resume=True, extra=None):
        super().__init__()
        self.path, self.kid_name = path, kid_name
        self.results = {"config": config, **(extra or {})}
        for k in list(RESULT_KEYS) + ["epoch_time_s"]:
            self.results[k] = []
        self.best_kid = None
        if resume and os.path.exists(path):
            try:
                with open(path) as f:
                    old = json.load(f)
            except (OSError, ValueError):
                old = None
            if old and old.get("config") == config and not old.get("finished"):
                for k in list(RESULT_KEYS) + ["epoch_time_s"]:
                    self.results[k] = list(old.get(k) or [])
                kids = [v for v in self.results["kid"] if isinstance(v, (int, float))]
                self.best_kid = min(kids) if kids else None
        self._t0 = None

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key, hkey in RESULT_KEYS.items():
            v = logs.get(hkey.format(kid=self.kid_name))
            self.results[key] = self.results[key][:epoch] + [None if v is None else float(v)]
        self.results["epoch_time_s"] = self.results["epoch_time_s"][:epoch] + [time.perf_counter() - self._t0]
        self._update_best()
        write_json_atomic(self.path, self.results)

    def _update_best(self):
        kids = [(v, i) for i, v in enumerate(self.results["kid"]) if isinstance(v, float) and math.isfinite(v)]
        if kids:
            best, epoch = min(kids)
            self.results["best_kid"], self.results["best_epoch"] = best, epoch + 1

    def finish(self, summary=None):
        self.results.update(summary or {})
        self.results["finished"] = True
        self._update_best()
        write_json_atomic(self.path, self.results)


def save_image_grid(images, path, title=None, cols=6):
    """Save images (N, S, S, C) in [0, 1] as one PNG grid, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    n = len(images)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.5 * rows + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = images[i]
            if img.shape[-1] == 1:
                ax.imshow(img[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            else:
                ax.imshow(np.clip(img, 0.0, 1.0))
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=80)


class ImageGridCallback(keras.callbacks.Callback):
    """After every epoch, generate ``num_images`` images from a fixed noise batch with the EMA network
    (``diffusion_steps`` DDIM steps) and save ``<directory>/epoch_NNN.png``."""

    def __init__(self, directory, num_images=18, diffusion_steps=20, seed=0):
        super().__init__()
        self.directory, self.num_images, self.diffusion_steps, self.seed = directory, num_images, diffusion_steps, seed

    def on_epoch_end(self, epoch, logs=None):
        m = self.model
        noise = np.random.default_rng(self.seed).standard_normal(
            (self.num_images, m.image_size, m.image_size, m.channels)).astype("float32")
        images = keras.ops.convert_to_numpy(m.generate(self.num_images, self.diffusion_steps, initial_noise=noise))
        save_image_grid(images, os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png"),
                        title=f"epoch {epoch + 1}, {self.diffusion_steps} DDIM steps (EMA network)")
