"""Training: temporal folds over the as-of dates, two model families, calibration, selection.

Folds are by as-of date only (never by shuffling rows): the earliest ~60% of the dates train,
the next ~20% calibrate and select, the last ~20% are a holdout that is only reported. An
enterprise appears in several folds (at different dates), as it does in real life; the label
windows of a fold's last weeks reach into the next fold's dates, the usual price of a temporal
split on little data (purging them would cost ``horizon_days`` of every fold).

Candidates: a regularised logistic regression (standardised features, C over a small grid, with
or without balanced class weights) and a histogram gradient-boosted tree model (learning rate,
leaves, L2 over a small grid). Each is fitted on the training fold, then calibrated on the
calibration fold (isotonic when that fold has ``ISOTONIC_MIN_POSITIVES`` positives, else sigmoid) with
``CalibratedClassifierCV(FrozenEstimator(fitted))``. The candidate with the best PR-AUC on the
calibration fold wins (ties: the lower Brier score). PR-AUC is measured on the uncalibrated
scores (calibration is fitted on that fold, and a monotone map barely changes the ranking).

The final model is the chosen candidate as fitted on the training fold and calibrated on the
calibration fold: the simplest honest choice. Refitting on train + calibration would leave no
unseen data to calibrate on, and calibration is what the levels of ``config/levels.yaml`` read.
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from models.snapshots import SILENT, Progress, Snapshots

FOLDS = ("train", "calibration", "holdout")
FRACTIONS = (0.6, 0.2, 0.2)
# Isotonic regression needs many positives to estimate its step function; with fewer it leaves
# wide plateaus (measured: a step at 0.625 on 79 positives put healthy enterprises at orange) and
# 0/1 steps. Below this, Platt scaling (sigmoid), which keeps the ranking and the scale smooth.
ISOTONIC_MIN_POSITIVES = 300


# The recommended levels (``recommend_levels``): yellow from 0.05 to 0.50 in steps of 0.01, blue
# at 80% of it, and no recommendation from fewer enterprises without a dispute than this.
YELLOW_GRID = tuple(round(0.05 + 0.01 * i, 2) for i in range(46))
BLUE_OF_YELLOW = 0.8
MIN_NO_DISPUTE_ENTERPRISES = 30


def metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """ROC-AUC, PR-AUC (average precision) and Brier score; None where undefined (one class)."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y = np.asarray(y)
    both = 0 < y.sum() < len(y)
    return {
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "base_rate": float(y.mean()) if len(y) else None,
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
        "brier": float(brier_score_loss(y, p, labels=[0, 1])) if len(y) else None,
    }


def data_hash(*paths: Path, **settings) -> str:
    """sha256 of the files' bytes and the settings that turn them into training data."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    digest.update(repr(sorted(settings.items())).encode())
    return digest.hexdigest()


def temporal_folds(as_of: np.ndarray, mask: np.ndarray, fractions=FRACTIONS) -> dict[str, np.ndarray]:
    """fold name -> boolean row index; folds are consecutive runs of the sorted as-of dates of the
    rows that ``mask`` keeps, so every date of one fold is before every date of the next."""
    dates = np.unique(as_of[mask])
    if len(dates) < 5:
        raise ValueError(f"only {len(dates)} as-of dates with labels: too little history for temporal folds")
    cuts = np.cumsum([round(f * len(dates)) for f in fractions[:-1]])
    cuts = np.clip(cuts, 1, len(dates) - 1)
    bounds = [dates[0], dates[cuts[0]], dates[cuts[1]], dates[-1] + 1]
    return {name: mask & (as_of >= bounds[i]) & (as_of < bounds[i + 1]) for i, name in enumerate(FOLDS)}


def _window(as_of: np.ndarray, index: np.ndarray) -> list[str]:
    days = as_of[index]
    return [date.fromordinal(int(days.min())).isoformat(), date.fromordinal(int(days.max())).isoformat()]


def candidates(seed: int) -> list[tuple[str, dict, object]]:
    """(family, params, unfitted estimator) of every candidate."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    out = []
    for C, weight in itertools.product((0.1, 1.0, 10.0), (None, "balanced")):
        params = {"C": C, "class_weight": weight}
        out.append(("LogisticRegression", params, Pipeline([
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=C, class_weight=weight, max_iter=5000, random_state=seed)),
        ])))
    for rate, leaves, l2 in itertools.product((0.05, 0.1), (7, 15), (0.0, 1.0)):
        # Leaves of at least 50 rows: a positive enterprise gives ~9 weekly rows, so a leaf holds
        # several enterprises rather than memorising one (measured better on unseen worlds than 20).
        params = {"learning_rate": rate, "max_leaf_nodes": leaves, "l2_regularization": l2, "max_iter": 200,
                  "min_samples_leaf": 50}
        out.append(("HistGradientBoostingClassifier", params, HistGradientBoostingClassifier(
            **params, early_stopping=False, random_state=seed)))
    return out


def calibrate(fitted, X: np.ndarray, y: np.ndarray, method: str | None = None):
    """(calibrated estimator, method) on data the model was not fitted on; the method by the
    number of positives unless given."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    method = method or ("isotonic" if y.sum() >= ISOTONIC_MIN_POSITIVES else "sigmoid")
    return CalibratedClassifierCV(FrozenEstimator(fitted), method=method).fit(X, y), method


@dataclass
class TrainResult:
    estimator: object  # CalibratedClassifierCV(FrozenEstimator(fitted)): predict_proba over FEATURE_NAMES
    model_class: str
    params: dict
    calibration: str
    horizon_days: int
    seed: int
    data_window: list[str]  # first and last as-of date of the rows used
    folds: dict[str, list[str]]  # fold -> [first, last] as-of date
    chosen: dict  # the chosen candidate's record (family, params, metrics per fold)
    candidates: list[dict] = field(default_factory=list)

    @property
    def metrics(self) -> dict:
        """For the model card: the chosen model on the selection and holdout folds, the folds,
        and every candidate's figures."""
        return {
            "selection": self.chosen["calibration"],
            "holdout": self.chosen["holdout"],
            "train": self.chosen["train"],
            "folds": self.folds,
            "candidates": self.candidates,
        }


def train(snapshots: Snapshots, y: np.ndarray, mask: np.ndarray, *, horizon_days: int, seed: int = 0,
          progress: Progress = SILENT) -> TrainResult:
    folds = temporal_folds(snapshots.as_of, mask)
    X = snapshots.X
    parts = {name: (X[index], y[index]) for name, index in folds.items()}
    for name, (_, labels) in parts.items():
        if name != "holdout" and labels.sum() == 0:
            raise ValueError(f"the {name} fold has no dispute within {horizon_days} days of any as-of date: "
                             "nothing to learn from (more history or more disputes needed)")
        if name == "train" and labels.sum() == len(labels):
            raise ValueError("every training row is a dispute: nothing to tell apart")

    records = []
    fitted_models = []
    pool = candidates(seed)
    advance = progress.step("fitting candidates", len(pool))
    for family, params, estimator in pool:
        estimator.fit(*parts["train"])
        Xc, yc = parts["calibration"]
        raw = estimator.predict_proba(Xc)[:, 1]
        calibrated, method = calibrate(estimator, Xc, yc)
        record = {"family": family, "params": params, "calibration_method": method,
                  "selection_pr_auc_raw": metrics(yc, raw)["pr_auc"]}
        for name, (Xf, yf) in parts.items():
            record[name] = metrics(yf, calibrated.predict_proba(Xf)[:, 1]) if len(yf) else metrics(yf, np.array([]))
        records.append(record)
        fitted_models.append(calibrated)
        advance(1)

    best = selection_order(records)[0]
    chosen = records[best]
    return TrainResult(
        estimator=fitted_models[best],
        model_class=chosen["family"],
        params={**chosen["params"], "calibration": chosen["calibration_method"]},
        calibration=chosen["calibration_method"],
        horizon_days=horizon_days,
        seed=seed,
        data_window=_window(snapshots.as_of, mask),
        folds={name: _window(snapshots.as_of, index) for name, index in folds.items() if index.any()},
        chosen=chosen,
        candidates=records,
    )


def selection_order(records: list[dict]) -> list[int]:
    """The candidates' indices, best first: the highest PR-AUC of the raw scores on the selection
    fold, then the lowest Brier score there, then the first (a card's ``metrics.candidates``)."""
    return sorted(range(len(records)), key=lambda i: (-(records[i].get("selection_pr_auc_raw") or 0.0),
                                                      (records[i].get("calibration") or {}).get("brier", 1.0), i))


CROSS_FIT_GROUPS = 5


def enterprise_group(enterprise_id: str, groups: int = CROSS_FIT_GROUPS) -> int:
    """A fixed group per enterprise, from its id alone (the same in every run and every file)."""
    return int.from_bytes(hashlib.sha256(enterprise_id.encode()).digest()[:4], "big") % groups


def cross_fitted_scores(snapshots: Snapshots, y: np.ndarray, mask: np.ndarray, result: TrainResult,
                        rows: np.ndarray, row_ids: np.ndarray, *, groups: int = CROSS_FIT_GROUPS,
                        progress: Progress = SILENT) -> tuple[np.ndarray, int]:
    """Calibrated probabilities for ``rows`` (feature rows of enterprises ``row_ids``, any date),
    each from a model that never saw its enterprise: the chosen candidate's recipe (family,
    parameters, seed, calibration method) fitted on the training fold and calibrated on the
    calibration fold of the enterprises of the other ``groups`` - 1 groups (``enterprise_group``).

    The final model's own scores are in-sample on the training fold, and the dates after it are
    too short a window on a short history: a few months miss the seasons (measured: a window from
    March to September, with none of the autumn's drops in power, chose a yellow that sent 23.5%
    of an unseen year's no-dispute firms to yellow instead of the 9% it claimed). These scores
    cover the whole history as an unseen district would be scored, on the recipe's scale: on
    little data not quite the final model's, which is why ``recommend_levels`` also reads the
    final model's own scores.
    Returns (scores, groups whose own recipe could not be fitted); those groups' rows get the final
    model's scores."""
    from sklearn.base import clone

    folds = temporal_folds(snapshots.as_of, mask)
    family, params = result.chosen["family"], result.chosen["params"]
    recipe = next(est for fam, par, est in candidates(result.seed) if fam == family and par == params)
    snap_group = np.array([enterprise_group(str(e), groups) for e in snapshots.enterprise_ids])
    names, inverse = np.unique(row_ids, return_inverse=True)
    row_group = np.array([enterprise_group(str(e), groups) for e in names], dtype=int)[inverse]
    out = np.empty(len(rows))
    fallback = 0
    advance = progress.step("scoring the history with models that never saw each enterprise", groups)
    for g in range(groups):
        train_rows = folds["train"] & (snap_group != g)
        cal_rows = folds["calibration"] & (snap_group != g)
        scored = row_group == g
        if 0 < y[train_rows].sum() < train_rows.sum() and 0 < y[cal_rows].sum() < cal_rows.sum():
            fitted = clone(recipe).fit(snapshots.X[train_rows], y[train_rows])
            model, _ = calibrate(fitted, snapshots.X[cal_rows], y[cal_rows], result.calibration)
        else:
            model, fallback = result.estimator, fallback + 1
        if scored.any():
            out[scored] = model.predict_proba(rows[scored])[:, 1]
        advance(1)
    return out, fallback


def recommend_levels(scores: np.ndarray, enterprise_ids: np.ndarray, days: np.ndarray,
                     disputes: dict[str, list[int]], *, first_day: int, last_day: int, budget: float,
                     estimates: tuple[str, ...] = ("scores",)) -> dict:
    """Blue and yellow for one model's probabilities, from its own data.

    A calibrated probability means "a dispute within the horizon" at the base rate of the world
    it was trained on: in a district where disputes are twice as common, healthy enterprises score
    higher too, and a fixed yellow sends more of them to a visit (measured: yellow 0.10 sent 31% of
    the no-dispute enterprises of a world with 2.3 times the shipped worlds' disputes to yellow).
    So the training picks yellow by the inspectors' workload: the lowest value of ``YELLOW_GRID``
    at which, in every year of the history, at most ``budget`` of the enterprises with no dispute
    reach it.

    ``scores`` are probabilities for the rows the stream scored (one per accepted signal:
    ``enterprise_ids``, local ``days``) from ``first_day`` to ``last_day``; a 2-D array holds one
    column per estimate of them (named by ``estimates``), and a year's share is the largest of
    its estimates'. ``models train`` gives two: each row from a model that never saw its
    enterprise (``cross_fitted_scores``), and the final model's own (in-sample on the training
    fold, so low there; but on little data the cross-fitted models can score on a lower scale than
    the final one, measured: 5% of a calm district's no-dispute firms at 0.05 cross-fitted, 20%
    by the final model, 25% on its unseen year). A year is counted the way ``models
    evaluate`` counts one: the enterprises scored in it that have had no dispute by its end, and
    the share of them whose highest score reaches yellow. The years (``_years``) start every
    ``YEAR_STEP_DAYS``, so every season and the first year (a district's whole population, before
    disputes take the riskier firms out of it) are in; a history shorter than a year is one part,
    put on a year's footing as 1 - (1 - share) ** (365 / days). Returns {} (the configured levels
    stay) when a year holds fewer than ``MIN_NO_DISPUTE_ENTERPRISES`` enterprises without a
    dispute.
    """
    scores = np.asarray(scores, dtype=float)
    scores = scores[:, None] if scores.ndim == 1 else scores
    if scores.shape[1] != len(estimates):
        raise ValueError(f"{scores.shape[1]} columns of scores for {len(estimates)} estimates")
    first_dispute = {eid: min(d) for eid, d in disputes.items() if d}
    years = []
    for start, stop in _years(first_day, last_day):
        inside = (days >= start) & (days <= stop)
        ids, inverse = np.unique(enterprise_ids[inside], return_inverse=True)
        calm = np.array([first_dispute.get(str(eid), stop + 1) > stop for eid in ids], dtype=bool)
        if calm.sum() < MIN_NO_DISPUTE_ENTERPRISES:
            return {}
        highest = np.zeros((len(ids), scores.shape[1]))
        np.maximum.at(highest, inverse, scores[inside])
        years.append((start, stop, [np.sort(column) for column in highest[calm].T]))
    met = budget + 1e-9  # 1 - (1 - 0.05) is a hair above 0.05
    candidates = []
    for yellow in YELLOW_GRID:
        per_year = []
        for start, stop, columns in years:
            for j, highest in enumerate(columns):
                share = 1.0 - np.searchsorted(highest, yellow) / len(highest)
                per_year.append((1.0 - (1.0 - share) ** (365.0 / (stop - start + 1)), share, start, stop,
                                 len(highest), j))
        candidates.append((yellow, max(per_year)))
    # The lowest that keeps within the budget; if none does, the grid's top, said so.
    yellow, worst = next((c for c in candidates if c[1][0] <= met), candidates[-1])
    per_year, share, start, stop, calm, estimate = worst
    return {
        "blue": round(yellow * BLUE_OF_YELLOW, 3),
        "yellow": yellow,
        "workload_budget": budget,
        "budget_met": bool(per_year <= met),
        "window": [date.fromordinal(int(first_day)).isoformat(), date.fromordinal(int(last_day)).isoformat()],
        "years": len(years),
        # the year, and the estimate, with the highest share at this yellow
        "worst_year": [date.fromordinal(int(start)).isoformat(), date.fromordinal(int(stop)).isoformat()],
        "worst_estimate": estimates[estimate],
        "no_dispute_enterprises": int(calm),
        "no_dispute_yellow_share": round(float(share), 4),
        "no_dispute_yellow_share_per_year": round(float(per_year), 4),
    }


YEAR_STEP_DAYS = 28


def _years(first_day: int, last_day: int) -> list[tuple[int, int]]:
    """(first, last) day of each year-long part of the history: one every ``YEAR_STEP_DAYS`` from
    its start while a whole year fits, the last one ending on ``last_day``; a history shorter
    than a year is one part."""
    if last_day - first_day + 1 <= 365:
        return [(first_day, last_day)]
    starts = list(range(first_day, last_day - 364 + 1, YEAR_STEP_DAYS))
    if starts[-1] != last_day - 364:
        starts.append(last_day - 364)
    return [(s, s + 364) for s in starts]
