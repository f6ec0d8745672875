"""Population stability index (PSI): how far live feature values moved from the training data.

The reference is each feature's decile edges on the training rows and the share of rows in
each bin; live values are binned on the same edges. PSI = sum((live - ref) * ln(live / ref)).
Common reading: below 0.1 stable, 0.1-0.25 moderate, above 0.25 a significant shift.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

_FLOOR = 1e-4  # empty bins would make the logarithm infinite


def reference_bins(X: np.ndarray, feature_names: Sequence[str], bins: int = 10) -> dict[str, dict]:
    """Per feature: inner bin edges (distinct quantiles) and the training share in each bin;
    bins are (-inf, e0], (e0, e1], ..., so a value equal to an edge (a 0/1 flag) falls below it."""
    out: dict[str, dict] = {}
    for j, name in enumerate(feature_names):
        column = X[:, j]
        edges = sorted(set(np.quantile(column, np.linspace(0, 1, bins + 1)[1:-1]).round(6).tolist()))
        counts = np.bincount(np.searchsorted(edges, column, side="left"), minlength=len(edges) + 1)
        out[name] = {"edges": edges, "shares": (counts / max(1, len(column))).round(6).tolist()}
    return out


def psi(reference: dict, values: Sequence[float]) -> float:
    if not len(values):
        return 0.0
    edges, shares = reference["edges"], reference["shares"]
    counts = np.bincount(np.searchsorted(edges, np.asarray(values, dtype=float), side="left"),
                         minlength=len(edges) + 1)
    live = counts / len(values)
    return float(sum((l - r) * math.log(max(l, _FLOOR) / max(r, _FLOOR)) for l, r in zip(live, shares)))
