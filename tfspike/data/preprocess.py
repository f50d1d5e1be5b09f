"""Reference preprocessing of the image datasets for the TTFS networks (spec §6.5)."""

import numpy as np

# cifar-vgg's scalar normalisation constants (normalize_production)
CIFAR_STATS = {"CIFAR10": (120.707, 64.15), "CIFAR100": (121.936, 68.389)}


def ttfs_preprocess(data_name, x, flatten=False, dtype="float32"):
    """MNIST/FMNIST: x/255; CIFAR: (x − mean)/(std + 1e-7). Computed in float64, then cast."""
    x = np.asarray(x, dtype=np.float64)
    if data_name in CIFAR_STATS:
        mean, std = CIFAR_STATS[data_name]
        x = (x - mean) / (std + 1e-7)
    else:
        x = x / 255.0
    if x.ndim == 3:  # grey images get a channel axis
        x = x[..., None]
    if flatten:
        x = x.reshape(len(x), -1)
    return x.astype(dtype)


def split_validation(x, y, val_split):
    """The last ``val_split`` of the training arrays, unshuffled, as validation data (never the test set)."""
    if not val_split:
        return (x, y), None
    n_val = int(round(len(x) * val_split))
    return (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])


def jitter_input_times(x, sigma, p, q, mode, seed):
    """Gaussian noise on input spike times t⁽⁰⁾ = 1 − u, drawn once (test set only, spec §9).

    reference: t⁽⁰⁾ ← max(0, t⁽⁰⁾ + ε) for every pixel; spikes: only pixels with t⁽⁰⁾ < 1, clipped to [0, 1].
    Works in the model's input space x = p + (q − p)·u.
    """
    if not sigma:
        return x
    rng = np.random.default_rng(seed)
    u = (np.asarray(x, np.float64) - p) / (q - p)
    t = 1.0 - u
    eps = rng.normal(0.0, sigma, size=t.shape)
    if mode == "reference":
        t = np.maximum(0.0, t + eps)
    else:
        t = np.where(t < 1.0, np.clip(t + eps, 0.0, 1.0), t)
    return (p + (q - p) * (1.0 - t)).astype(x.dtype)
