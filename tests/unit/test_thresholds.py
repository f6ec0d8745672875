"""models.thresholds: one replay answers for every yellow threshold, and at the configured one it
says what the pipeline's own alerts say."""
from __future__ import annotations


import pytest

from config.files import load_configs
from config.settings import CONFIG_DIR
from models.evaluate import warning_figures
from models.registry import scorer_for
from models.simulate import simulate_world
from models.snapshots import read_disputes
from models.thresholds import sweep
from streams.backtest import Replay
from streams.pipeline import Pipeline

CONFIGS = load_configs(CONFIG_DIR)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("thresholds")
    simulate_world(folder, firms=40, months=12, seed=23, trouble_rate=0.3)
    return folder, scorer_for(tmp_path_factory.mktemp("no-registry"), CONFIGS)  # the shipped model


def test_lower_thresholds_warn_more_and_alarm_more(world):
    folder, scorer = world
    rows = sweep(scorer, CONFIGS, folder / "enterprises.csv", folder / "signals.jsonl", folder / "disputes.jsonl",
                 candidates=(0.5, 0.05, 0.15, 0.3))
    assert [r.yellow for r in rows] == [0.05, 0.15, 0.3, 0.5]
    assert rows[0].disputes > 0
    warned = [r.warned_14d_share for r in rows]
    alarms = [r.false_alarm_share for r in rows]
    assert warned == sorted(warned, reverse=True) and alarms == sorted(alarms, reverse=True)
    assert alarms[0] > alarms[-1]  # the sweep really moves


def test_at_the_threshold_in_use_it_agrees_with_the_pipelines_alerts(world):
    folder, scorer = world
    yellow = CONFIGS.levels.thresholds_for(scorer.levels).yellow  # the shipped card's
    (row,) = sweep(scorer, CONFIGS, folder / "enterprises.csv", folder / "signals.jsonl",
                   folder / "disputes.jsonl", candidates=(yellow,))
    replay = Replay.of_files(Pipeline(CONFIGS, scorer), folder / "enterprises.csv", folder / "signals.jsonl")
    replay.feed(0, len(replay.lines))
    last_day = max(r.state.clock_day for r in replay.records.values())
    real = warning_figures(replay.alerts, read_disputes(folder / "disputes.jsonl"), set(replay.records), last_day)
    assert (row.warned_14d_share, row.lead_days_median, row.false_alarm_share) == (
        real["warned_14d_share"], real["lead_days_median"], real["false_alarm_share"])
