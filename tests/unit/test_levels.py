"""Blue and yellow chosen at training by the inspectors' workload, and how the stream uses them."""
from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from config.files import load_configs
from config.settings import CONFIG_DIR
from models.scoring import RulesScorer, Scored
from models.train import (MIN_NO_DISPUTE_ENTERPRISES, TrainResult, calibrate, candidates,
                          cross_fitted_scores, enterprise_group, recommend_levels, temporal_folds)

CONFIGS = load_configs(CONFIG_DIR)
START = date(2025, 1, 6).toordinal()


def _world(highest: list[float], *, days_per_row: int = 0, window_days: int = 365):
    """One row per enterprise at ``START`` with the given score, plus a low row before the window."""
    ids = [f"E{i:03d}" for i in range(len(highest))]
    scores = np.array([0.99] * len(ids) + highest)  # the first rows lie before the window: ignored
    enterprise_ids = np.array(ids + ids)
    days = np.array([START - 1] * len(ids) + [START + days_per_row] * len(ids))
    return scores, enterprise_ids, days, START + window_days - 1


def test_yellow_is_the_lowest_that_keeps_the_no_dispute_share_within_the_budget():
    # 100 enterprises without a dispute: 30 reach 0.12, 8 of them 0.20, 5 of those 0.31.
    highest = [0.31] * 5 + [0.20] * 3 + [0.12] * 22 + [0.02] * 70
    scores, ids, days, last = _world(highest)
    levels = recommend_levels(scores, ids, days, {}, first_day=START, last_day=last, budget=0.10)
    assert levels["yellow"] == 0.13  # 8% reach it; at 0.12, 30%
    assert levels["blue"] == pytest.approx(0.104) and levels["budget_met"]
    assert levels["no_dispute_enterprises"] == 100 and levels["no_dispute_yellow_share"] == 0.08
    assert levels["window"] == [date.fromordinal(START).isoformat(), date.fromordinal(last).isoformat()]
    # A tighter budget moves yellow up; rows before the window (all 0.99) never counted.
    assert recommend_levels(scores, ids, days, {}, first_day=START, last_day=last, budget=0.05)["yellow"] == 0.21


def test_enterprises_with_a_dispute_do_not_count():
    highest = [0.40] * 20 + [0.02] * 80
    scores, ids, days, last = _world(highest)
    disputes = {f"E{i:03d}": [START + 30] for i in range(20)}  # the 20 high scorers had their dispute
    levels = recommend_levels(scores, ids, days, disputes, first_day=START, last_day=last, budget=0.10)
    assert levels["yellow"] == 0.05 and levels["no_dispute_enterprises"] == 80


def test_a_short_window_is_put_on_a_year_footing():
    """5% reaching yellow in a quarter is about 19% in a year: over the budget."""
    highest = [0.30] * 5 + [0.15] * 6 + [0.02] * 89
    scores, ids, days, last = _world(highest, window_days=91)
    levels = recommend_levels(scores, ids, days, {}, first_day=START, last_day=last, budget=0.10)
    assert levels["yellow"] == 0.31  # at 0.16: 5% of a quarter, 1 - 0.95 ** (365 / 91) = 19% a year
    assert levels["no_dispute_yellow_share_per_year"] == 0.0
    year = recommend_levels(*_world(highest)[:3], {}, first_day=START, last_day=START + 364, budget=0.10)
    assert year["yellow"] == 0.16  # over a whole year 5% is 5%


def test_every_year_of_the_history_counts_and_the_worst_one_decides():
    """Two years of weekly rows at 0.02. In the first year 12 of 100 enterprises reach 0.30 once,
    in the second 5 others; E099 has its dispute in the second year."""
    ids, days, scores = [], [], []
    for i in range(100):
        for day in range(0, 730, 7):
            ids.append(f"E{i:03d}")
            days.append(START + day)
            scores.append(0.30 if (i < 12 and day == 98) or (50 <= i < 55 and day == 497) else 0.02)
    scores, ids, days = np.array(scores), np.array(ids), np.array(days)
    disputes = {"E099": [START + 600]}
    levels = recommend_levels(scores, ids, days, disputes, first_day=START, last_day=START + 729, budget=0.10)
    assert levels["yellow"] == 0.31  # 12% in every year that holds day 98; the second year's 5% alone would pass
    assert levels["years"] == 15  # from days 0, 28, ..., 364 (while a year fits) and 365 (ending on the last day)
    relaxed = recommend_levels(scores, ids, days, disputes, first_day=START, last_day=START + 729, budget=0.15)
    assert relaxed["yellow"] == 0.05 and relaxed["no_dispute_yellow_share"] == 0.12
    worst = [date.fromisoformat(d).toordinal() for d in relaxed["worst_year"]]
    assert worst[0] <= START + 98 <= worst[1] and worst[1] - worst[0] == 364
    # E099 counts in a year that ends before its dispute, not in one that holds it.
    assert relaxed["no_dispute_enterprises"] == (100 if worst[1] < START + 600 else 99)


def test_the_larger_of_two_estimates_decides_and_the_card_names_it():
    """The cross-fitted scores can sit on a lower scale than the final model's (little data): a
    year's share is the larger of the two estimates."""
    highest = [0.31] * 5 + [0.20] * 3 + [0.12] * 22 + [0.02] * 70
    scores, ids, days, last = _world(highest)
    low = np.where(scores > 0.9, scores, 0.02)  # the first estimate: every enterprise calm
    both = np.column_stack([low, scores])
    levels = recommend_levels(both, ids, days, {}, first_day=START, last_day=last, budget=0.10,
                              estimates=("cross-fitted", "final model"))
    assert levels["yellow"] == 0.13 and levels["worst_estimate"] == "final model"
    alone = recommend_levels(low, ids, days, {}, first_day=START, last_day=last, budget=0.10)
    assert alone["yellow"] == 0.05 and alone["worst_estimate"] == "scores"
    with pytest.raises(ValueError, match="2 columns of scores for 1 estimates"):
        recommend_levels(both, ids, days, {}, first_day=START, last_day=last, budget=0.10)


def _fingerprint_world(n: int = 60, weeks: int = 30, seed: int = 0):
    """Weekly snapshots where nothing but an enterprise's own fixed fingerprint (column 0) tells
    its label: half the enterprises are positive on every row."""
    from models.features import FEATURE_NAMES
    from models.snapshots import Snapshots

    rng = np.random.default_rng(seed)
    eids = np.array([f"E{i:03d}" for i in range(n)])
    fingerprint = rng.random(n)
    rows, ids, as_of, y = [], [], [], []
    for w in range(weeks):
        for i, eid in enumerate(eids):
            row = rng.normal(size=len(FEATURE_NAMES))
            row[0] = fingerprint[i]
            rows.append(row)
            ids.append(eid)
            as_of.append(START + 7 * w)
            y.append(int(i % 2 == 0))
    snaps = Snapshots(np.array(rows), np.array(ids), np.array(as_of), np.array([""] * len(ids)),
                      START, START + 7 * weeks)
    return snaps, np.array(y), np.ones(len(y), dtype=bool)


def test_cross_fitted_scores_come_from_models_that_never_saw_the_enterprise():
    """A tree model memorises each enterprise's fingerprint: in-sample it tells the labels apart,
    but a model that never saw the enterprise cannot, and the cross-fitted scores show that."""
    from sklearn.metrics import roc_auc_score

    snaps, y, mask = _fingerprint_world()
    folds = temporal_folds(snaps.as_of, mask)
    family, params, recipe = next(c for c in candidates(0) if c[0] == "HistGradientBoostingClassifier")
    fitted = recipe.fit(snaps.X[folds["train"]], y[folds["train"]])
    final, method = calibrate(fitted, snaps.X[folds["calibration"]], y[folds["calibration"]], "sigmoid")
    result = TrainResult(estimator=final, model_class=family, params=params, calibration=method, horizon_days=60,
                         seed=0, data_window=[], folds={}, chosen={"family": family, "params": params})
    unseen, fallback = cross_fitted_scores(snaps, y, mask, result, snaps.X, snaps.enterprise_ids)
    assert fallback == 0
    assert roc_auc_score(y, final.predict_proba(snaps.X)[:, 1]) > 0.95  # memorised
    assert roc_auc_score(y, unseen) < 0.7  # nothing to go on
    assert {enterprise_group(e) for e in snaps.enterprise_ids} == set(range(5))


def test_too_few_enterprises_without_a_dispute_give_no_recommendation():
    scores, ids, days, last = _world([0.5] * (MIN_NO_DISPUTE_ENTERPRISES - 1))
    assert recommend_levels(scores, ids, days, {}, first_day=START, last_day=last, budget=0.10) == {}


def test_a_budget_nothing_meets_gives_the_top_of_the_grid_and_says_so():
    scores, ids, days, last = _world([0.9] * 50)
    levels = recommend_levels(scores, ids, days, {}, first_day=START, last_day=last, budget=0.10)
    assert levels["yellow"] == 0.5 and not levels["budget_met"]


def test_card_levels_replace_blue_and_yellow_only_when_config_says_model():
    levels = CONFIGS.levels
    card = {"blue": 0.16, "yellow": 0.2}
    used = levels.thresholds_for(card)
    assert (used.blue, used.yellow, used.orange, used.red) == (0.16, 0.2, levels.thresholds.orange, levels.thresholds.red)
    assert levels.thresholds_for(None) == levels.thresholds and levels.thresholds_for({}) == levels.thresholds
    fixed = levels.model_copy(update={"yellow_from": "config"})
    assert fixed.thresholds_for(card) == levels.thresholds
    # A recommendation that would not sit below orange is not used.
    assert levels.thresholds_for({"blue": 0.5, "yellow": 0.7}) == levels.thresholds


class _Fixed:
    """A scorer giving one score to every row, with the blue and yellow of a card (or none)."""

    def __init__(self, version: str, score: float, levels: dict | None):
        self.version, self.value, self.levels = version, score, levels

    def score(self, rows):
        return [Scored(self.value, ({"code": "x", "text": "x", "value": 1.0},)) for _ in rows]


def test_the_stream_levels_alerts_by_its_scorers_thresholds_and_a_promotion_brings_new_ones():
    from tests.unit.test_pipeline import Harness, inspection

    h = Harness()
    h.pipeline.scorer = _Fixed("m-a", 0.15, {"blue": 0.12, "yellow": 0.14})
    assert h.pipeline.thresholds.yellow == 0.14
    first = h.process([h.envelope(inspection("2025-03-03"))])
    assert [a["level"] for a in first.alerts] == ["yellow"]  # by config/levels.yaml (yellow 0.16) only blue
    h.pipeline.scorer = _Fixed("m-b", 0.15, {"blue": 0.16, "yellow": 0.2})  # promoted: higher levels
    assert h.pipeline.thresholds.yellow == 0.2
    assert h.process([h.envelope(inspection("2025-03-04"))]).alerts == []  # below its blue: nothing new
    h.pipeline.scorer = _Fixed("m-c", 0.65, {"blue": 0.16, "yellow": 0.2})  # orange stays config's 0.60
    assert [a["level"] for a in h.process([h.envelope(inspection("2025-03-05"))]).alerts] == ["orange"]
    h.pipeline.scorer = RulesScorer(CONFIGS.rules)
    assert h.pipeline.thresholds == CONFIGS.levels.thresholds
