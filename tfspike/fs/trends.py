"""TBPI trend lines (Jeong et al. 2024, spec fs.md §3.2): the published coefficients, and fitting
quadratic / logarithmic curves of t = k + 1 to trained h, d, T.

TBPI initialises an FS neuron from smooth curves through a trained neuron's parameters. This module
holds the curves and their fits; the three-stage pipeline that uses them is :mod:`tfspike.fs.pipeline`.
NumPy only at import time (the curve-initialised neuron's MSE loads TensorFlow when it is scored).
"""

import itertools
from dataclasses import dataclass, field

import numpy as np

from tfspike.errors import UserError
from tfspike.fs.param_set import FSParams
from tfspike.fs.targets import CANONICAL_GRID, grid_mse

FORMS = ("quadratic", "log")
PARAM_NAMES = ("h", "d", "T")
SELECT_RULES = ("init_mse", "rss", "aicc")

# Published trend coefficients (TBPI repo e10336c2, FS_conversion_swish.ipynb; golden JSON
# `tbpi_swish_trend`). quadratic: a t² + b t + c; log: a ln t + b.
PUBLISHED_TRENDS = {
    4: ("quadratic", {"h": (0.6408, -4.8293, 10.186), "d": (0.5732, -4.6423, 10.203),
                      "T": (0.5399, -4.4211, 9.6514)}),
    8: ("log", {"h": (-1.378, 3.5742), "d": (-1.92, 4.0338), "T": (-3.663, 7.1379)}),
    12: ("quadratic", {"h": (0.0289, -0.7486, 4.9117), "d": (0.0078, -0.4573, 4.0149),
                       "T": (-0.0495, 0.3057, 1.0462)}),
    16: ("quadratic", {"h": (-0.018, 0.2526, 0.3753), "d": (-0.0284, 0.3955, 0.0063),
                       "T": (-0.021, 0.1795, -0.0105)}),
}


def eval_curve(form, coeffs, K):
    """Curve values at t = 1..K in float32 (t and ln t in float32, as the published code)."""
    t = np.arange(1, K + 1, dtype=np.float32)
    c = [np.float32(v) for v in coeffs]
    if form == "quadratic":
        return (c[0] * t * t + c[1] * t + c[2]).astype(np.float32)
    if form == "log":
        return (c[0] * np.log(t) + c[1]).astype(np.float32)
    raise UserError(f"unknown trend form {form!r} (choose from {FORMS})")


def _lstsq(form, p, include):
    t = np.arange(1, p.shape[0] + 1, dtype=np.float64)[include]
    y = np.asarray(p, np.float64)[include]
    if form == "quadratic":
        coeffs = np.polyfit(t, y, 2)
        pred = np.polyval(coeffs, t)
    else:
        coeffs = np.polyfit(np.log(t), y, 1)
        pred = np.polyval(coeffs, np.log(t))
    return tuple(float(c) for c in coeffs), float(np.sum((y - pred) ** 2)), int(include.sum())


@dataclass
class TrendFit:
    """Per-parameter trend curves for one K: ``forms[p]`` and ``coeffs[p]`` for p in h, d, T."""

    K: int
    forms: dict
    coeffs: dict
    rss: dict = field(default_factory=dict)
    candidates: list = field(default_factory=list)
    select: str = "fixed"
    include_dead_h: bool = True
    source: str = "fit"

    @property
    def form(self):
        """The common form, or "mixed" when parameters use different forms."""
        forms = set(self.forms.values())
        return forms.pop() if len(forms) == 1 else "mixed"

    def values(self):
        return {p: eval_curve(self.forms[p], self.coeffs[p], self.K) for p in PARAM_NAMES}

    def params(self, name=None):
        v = self.values()
        return FSParams(v["h"], v["d"], v["T"], name=name or f"trend_k{self.K}_{self.form}",
                        meta={"init": "trend", "trend": self.to_dict()})

    def to_dict(self):
        return {"K": self.K, "form": self.form, "forms": dict(self.forms),
                "coeffs": {p: list(c) for p, c in self.coeffs.items()}, "rss": dict(self.rss),
                "candidates": self.candidates, "select": self.select,
                "include_dead_h": self.include_dead_h, "source": self.source}


def published_trend(K):
    """The golden TBPI trend lines for K in 4, 8, 12, 16 (coefficients exactly as published)."""
    if K not in PUBLISHED_TRENDS:
        raise UserError(f"published TBPI trends exist for K = 4, 8, 12, 16 only, not K = {K}")
    form, coeffs = PUBLISHED_TRENDS[K]
    return TrendFit(K, {p: form for p in PARAM_NAMES}, {p: tuple(coeffs[p]) for p in PARAM_NAMES},
                    select="published", source="published (TBPI e10336c2)")


def fit_trends(h, d, T, forms=FORMS, include_dead_h=True, select="init_mse", per_parameter=False,
               form=None, target="swish", grid=CANONICAL_GRID):
    """Fit quadratic / logarithmic curves of t = 1..K to the trained h, d, T (float64 least squares).

    Args:
        forms: candidate forms.
        include_dead_h: keep h[K-1] (it only carries its initial value) in the h fit, as published.
        select: ``"init_mse"`` (lowest FS MSE on the grid of the curve-initialised neuron, the
            recommended rule), ``"rss"`` (lowest residual; biased towards the 3-coefficient
            quadratic) or ``"aicc"`` (residual with the small-sample AIC correction).
        per_parameter: try all len(forms)**3 per-parameter combinations instead of one form for all.
        form: fixed form override (skips selection).
    Returns:
        :class:`TrendFit` with every candidate's score recorded.
    """
    if select not in SELECT_RULES:
        raise UserError(f"select must be init_mse, rss or aicc (got {select!r})")
    arrays = {"h": np.asarray(h, np.float32), "d": np.asarray(d, np.float32), "T": np.asarray(T, np.float32)}
    K = arrays["h"].shape[0]
    if K < 3:
        raise UserError(f"trend fits need K >= 3 (got K = {K})")
    if form is not None:
        forms = (form,)
    for f in forms:
        if f not in FORMS:
            raise UserError(f"unknown trend form {f!r} (choose from {FORMS})")
    fits = {}
    for p in PARAM_NAMES:
        include = np.ones(K, bool)
        if p == "h" and not include_dead_h:
            include[-1] = False
        for f in forms:
            fits[p, f] = _lstsq(f, arrays[p], include)
    combos = (list(itertools.product(forms, repeat=3)) if per_parameter
              else [(f, f, f) for f in forms])
    candidates = []
    for combo in combos:
        fdict = dict(zip(PARAM_NAMES, combo))
        trend = TrendFit(K, fdict, {p: fits[p, fdict[p]][0] for p in PARAM_NAMES})
        rss = sum(fits[p, fdict[p]][1] for p in PARAM_NAMES)
        aicc = 0.0
        for p in PARAM_NAMES:
            r, n = fits[p, fdict[p]][1], fits[p, fdict[p]][2]
            k = 3 if fdict[p] == "quadratic" else 2
            aicc += n * np.log(max(r, 1e-300) / n) + 2 * k + (2 * k * (k + 1) / max(n - k - 1, 1))
        # init_mse is recorded for every candidate, whatever the rule (the run log prints it)
        candidates.append({"forms": fdict, "rss": rss, "aicc": float(aicc),
                           "init_mse": grid_mse(trend.params(), target, grid)})
    best = min(candidates, key=lambda c: c[select])
    fdict = best["forms"]
    return TrendFit(K, dict(fdict), {p: fits[p, fdict[p]][0] for p in PARAM_NAMES},
                    rss={p: fits[p, fdict[p]][1] for p in PARAM_NAMES}, candidates=candidates,
                    select=select if form is None else "fixed", include_dead_h=include_dead_h)
