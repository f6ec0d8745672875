"""A crash never loses or doubles a signal or an alert.

The broker here belongs to the test (as an external Kafka would), so that it outlives the
worker: `laborwatch run` is killed with SIGKILL in the middle of the samples, a new one takes
over the same consumer group, table changelog and store, and the result must equal an
uninterrupted backtest exactly.
"""
from __future__ import annotations

import json

import pytest

from alerts.store.db import Database
from alerts.store.repo import counts
from streams.broker import EmbeddedBroker
from tests.support import (SAMPLES, RunningPipeline, alert_changes, backtest_samples, base_env, cli,
                           stored_alert_changes, wait_for_verdicts, wait_until)

pytestmark = pytest.mark.broker


def test_killed_worker_loses_and_doubles_nothing(tmp_path, shared_dir):
    database_url = f"sqlite:///{tmp_path / 'laborwatch.db'}"
    expected = json.loads((SAMPLES / "expected.json").read_text())
    with EmbeddedBroker(tmp_path / "broker").start() as broker:
        env = base_env(tmp_path / "home", database_url, LABORWATCH_BROKER=broker.url,
                       LABORWATCH_BROKER_FLAVOR="tansu",
                       LABORWATCH_BATCH_SIZE="200",
                       # The kill lands between checkpoints, whatever the timing: the table holds
                       # nothing of what the first worker did after its initial recovery.
                       LABORWATCH_CHECKPOINT_SECONDS="600")
        first = RunningPipeline(tmp_path / "home", env, database_url).start()
        cli(["enterprises", "import", str(SAMPLES / "enterprises.csv")], env)
        cli(["ingest", str(SAMPLES / "signals.jsonl")], env)
        db = Database(database_url, run_migrations=False)
        wait_until(lambda: counts(db).accepted >= 3000, timeout=120, what="the first worker to get going")
        first.kill()
        done_before_crash = counts(db).accepted
        assert done_before_crash < expected["accepted"], "the crash must come mid-stream"

        second = RunningPipeline(tmp_path / "home", env, database_url).start()
        try:
            wait_for_verdicts(db, expected["lines"], timeout=90, what="the second worker to finish the samples")
            want = alert_changes(backtest_samples(tmp_path, env))
            wait_until(lambda: len(stored_alert_changes(db)) >= len(want), timeout=60, what="the alert store")
            final = counts(db)
            assert final.accepted == expected["accepted"]
            assert final.rejected == len(expected["rejected"])  # no redelivery became a "duplicate"
            assert stored_alert_changes(db) == want
        finally:
            assert second.stop() == 0, second.output()[-3000:]
            db.dispose()
