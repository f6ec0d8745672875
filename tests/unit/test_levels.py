"""Blue and yellow chosen at training by the inspectors' workload, and how the stream uses them."""
from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from config.files import load_configs
from config.settings import CONFIG_DIR
from models.scoring import RulesScorer, Scored
from models.train import MIN_NO_DISPUTE_ENTERPRISES, recommend_levels

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
    levels = recommend_levels(scores, ids, days, {}, window_start=START, last_day=last, budget=0.10)
    assert levels["yellow"] == 0.13  # 8% reach it; at 0.12, 30%
    assert levels["blue"] == pytest.approx(0.104) and levels["budget_met"]
    assert levels["no_dispute_enterprises"] == 100 and levels["no_dispute_yellow_share"] == 0.08
    assert levels["window"] == [date.fromordinal(START).isoformat(), date.fromordinal(last).isoformat()]
    # A tighter budget moves yellow up; rows before the window (all 0.99) never counted.
    assert recommend_levels(scores, ids, days, {}, window_start=START, last_day=last, budget=0.05)["yellow"] == 0.21


def test_enterprises_with_a_dispute_do_not_count():
    highest = [0.40] * 20 + [0.02] * 80
    scores, ids, days, last = _world(highest)
    disputes = {f"E{i:03d}": [START + 30] for i in range(20)}  # the 20 high scorers had their dispute
    levels = recommend_levels(scores, ids, days, disputes, window_start=START, last_day=last, budget=0.10)
    assert levels["yellow"] == 0.05 and levels["no_dispute_enterprises"] == 80


def test_a_short_window_is_put_on_a_year_footing():
    """5% reaching yellow in a quarter is about 19% in a year: over the budget."""
    highest = [0.30] * 5 + [0.15] * 6 + [0.02] * 89
    scores, ids, days, last = _world(highest, window_days=91)
    levels = recommend_levels(scores, ids, days, {}, window_start=START, last_day=last, budget=0.10)
    assert levels["yellow"] == 0.31  # at 0.16: 5% of a quarter, 1 - 0.95 ** (365 / 91) = 19% a year
    assert levels["no_dispute_yellow_share_per_year"] == 0.0
    year = recommend_levels(*_world(highest)[:3], {}, window_start=START, last_day=START + 364, budget=0.10)
    assert year["yellow"] == 0.16  # over a whole year 5% is 5%


def test_too_few_enterprises_without_a_dispute_give_no_recommendation():
    scores, ids, days, last = _world([0.5] * (MIN_NO_DISPUTE_ENTERPRISES - 1))
    assert recommend_levels(scores, ids, days, {}, window_start=START, last_day=last, budget=0.10) == {}


def test_a_budget_nothing_meets_gives_the_top_of_the_grid_and_says_so():
    scores, ids, days, last = _world([0.9] * 50)
    levels = recommend_levels(scores, ids, days, {}, window_start=START, last_day=last, budget=0.10)
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
