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
from models.state import local_day
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
    days: list[int] = []
    replay = Replay.of_files(Pipeline(CONFIGS, scorer), folder / "enterprises.csv", folder / "signals.jsonl",
                             on_outcome=lambda o: days.extend(local_day(a.observed) for a in o.accepted))
    replay.feed(0, len(replay.lines))
    real = warning_figures(replay.alerts, read_disputes(folder / "disputes.jsonl"), set(replay.records),
                           (min(days), max(days)))
    assert (row.warned_14d_share, row.lead_days_median, row.false_alarm_share) == (
        real["warned_14d_share"], real["lead_days_median"], real["false_alarm_share"])


def test_events_follow_arrival_order_not_the_earliest_event_time():
    """A reading observed on the 10th that arrives after the 13th's does not warn earlier than the
    stream did: the alert was raised by the 13th's; only a higher level raises another event."""
    from models.thresholds import alert_events

    e = "91440306BXKFLJ2K06"
    scored = [(e, "2026-08-13T02:00:00+08:00", 0.64), (e, "2026-08-10T02:00:00+08:00", 0.64),
              (e, "2026-08-09T02:00:00+08:00", 0.85), (e, "2026-08-20T02:00:00+08:00", 0.30)]
    events = alert_events(scored, yellow=0.16, orange=0.6, red=0.8)
    assert [(x["level"], x["raised_at"][:10]) for x in events] == [("orange", "2026-08-13"), ("red", "2026-08-09")]
    assert [x["raised_at"][:10] for x in alert_events(scored, yellow=0.2, orange=0.9, red=0.95)] == ["2026-08-13"]
    assert alert_events(scored, yellow=0.9, orange=0.95, red=0.99) == []
