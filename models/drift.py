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


#: A calendar month's own shares are kept when the training rows hold at least this many of it.
MIN_MONTH_ROWS = 500


def reference_bins(X: np.ndarray, feature_names: Sequence[str], bins: int = 10,
                   months: Sequence[int] | None = None) -> dict[str, dict]:
    """Per feature: inner bin edges (distinct quantiles) and the training share in each bin;
    bins are (-inf, e0], (e0, e1], ..., so a value equal to an edge (a 0/1 flag) falls below it.

    With ``months`` (each row's calendar month, 1-12), also the shares of each month's rows on
    the same edges (``shares_by_month``): meters follow the seasons (air conditioning in summer,
    the Spring Festival), so a few weeks of live rows are compared with the same months of the
    training data, not with the whole year, and an October is not "drift" from a July."""
    out: dict[str, dict] = {}
    month_rows = {}
    if months is not None:
        months = np.asarray(months)
        month_rows = {int(m): months == m for m in np.unique(months) if (months == m).sum() >= MIN_MONTH_ROWS}
    for j, name in enumerate(feature_names):
        column = X[:, j]
        edges = sorted(set(np.quantile(column, np.linspace(0, 1, bins + 1)[1:-1]).round(6).tolist()))
        out[name] = {"edges": edges, "shares": _shares(edges, column)}
        if month_rows:
            out[name]["shares_by_month"] = {str(m): _shares(edges, column[rows]) for m, rows in month_rows.items()}
    return out


def _shares(edges: list[float], column: np.ndarray) -> list[float]:
    counts = np.bincount(np.searchsorted(edges, column, side="left"), minlength=len(edges) + 1)
    return (counts / max(1, len(column))).round(6).tolist()


def psi(reference: dict, values: Sequence[float], months: Sequence[int] | None = None) -> float:
    """PSI of ``values`` against ``reference``. With ``months`` (each value's calendar month) and
    a reference that has them, the expected shares are those of the same months of the training
    data, mixed in the live values' proportions (a month the reference lacks counts at the
    whole year's shares)."""
    if not len(values):
        return 0.0
    edges, shares = reference["edges"], np.asarray(reference["shares"], dtype=float)
    by_month = reference.get("shares_by_month")
    if months is not None and by_month:
        expected = np.zeros(len(shares))
        for month, n in zip(*np.unique(np.asarray(months), return_counts=True)):
            expected += n * np.asarray(by_month.get(str(int(month)), shares), dtype=float)
        shares = expected / len(values)
    counts = np.bincount(np.searchsorted(edges, np.asarray(values, dtype=float), side="left"),
                         minlength=len(edges) + 1)
    live = counts / len(values)
    return float(sum((l - r) * math.log(max(l, _FLOOR) / max(r, _FLOOR)) for l, r in zip(live, shares)))
