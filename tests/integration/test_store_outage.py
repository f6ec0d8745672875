"""The database goes away in the middle of a stream and comes back: the worker waits with its
batch intact, and in the end nothing is lost or doubled.

PostgreSQL only (the outage is real: connections to the test database are refused and the
worker's are cut), so it runs where LABORWATCH_TEST_DATABASE_URL is set, as in CI.
"""
from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from sqlalchemy.engine import make_url

from alerts.store.db import Database
from alerts.store.repo import counts
from streams.broker import EmbeddedBroker
from tests.conftest import POSTGRES_URL, _fresh_postgres_database
from tests.support import (SAMPLES, RunningPipeline, alert_changes, backtest_samples, base_env, cli,
                           metric_sums, stored_alert_changes, wait_for_verdicts, wait_until)

pytestmark = pytest.mark.broker


@pytest.fixture
def postgres_url():
    if not POSTGRES_URL:
        pytest.skip("LABORWATCH_TEST_DATABASE_URL is not set")
    url, drop = _fresh_postgres_database()
    yield url
    drop()


@contextmanager
def outage(database_url: str):
    """Refuse new connections to the database and cut the open ones; allow them again after."""
    import psycopg

    name = make_url(database_url).database
    admin = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_a_database_outage_mid_stream_loses_and_doubles_nothing(tmp_path, shared_dir, postgres_url):
    expected = json.loads((SAMPLES / "expected.json").read_text())
    with EmbeddedBroker(tmp_path / "broker").start() as broker:
        env = base_env(tmp_path / "home", postgres_url, LABORWATCH_BROKER=broker.url,
                       LABORWATCH_BROKER_FLAVOR="tansu", LABORWATCH_BATCH_SIZE="200")
        run = RunningPipeline(tmp_path / "home", env, postgres_url).start()
        db = Database(postgres_url, run_migrations=False)
        try:
            cli(["enterprises", "import", str(SAMPLES / "enterprises.csv")], env)
            # The promoted model in shadow too: it must decide, and be counted, as the promoted one.
            promoted = next(line.split()[1] for line in cli(["models", "list"], env).stdout.splitlines()
                            if line.startswith("* "))
            cli(["models", "shadow", promoted], env)
            wait_until(lambda: f"shadow scoring with model {promoted}" in run.output(), timeout=30,
                       what="the worker to start shadow scoring")
            cli(["ingest", str(SAMPLES / "signals.jsonl")], env)
            wait_until(lambda: counts(db).accepted >= 2000, timeout=120, what="the worker to get going")
            db.dispose()
            with outage(postgres_url):
                # Long enough for the batches and for the timers (console summary every 2 s,
                # gauges every 10 s) to find the store gone: none of them may stop the worker.
                wait_until(lambda: all(text in run.output() for text in (
                    "retrying the batch", "the console summary skipped", "gauges skipped")),
                    timeout=60, what="the batches and the timers to find the store gone")
                assert counts_or_none(db) is None  # really gone
                assert run.proc.poll() is None, run.output()[-3000:]
            wait_for_verdicts(db, expected["lines"], what="the worker to finish after the outage")

            want = alert_changes(backtest_samples(tmp_path, env))
            wait_until(lambda: len(stored_alert_changes(db)) >= len(want), timeout=60, what="the alert store")
            final = counts(db)
            assert (final.accepted, final.rejected) == (expected["accepted"], len(expected["rejected"]))
            assert stored_alert_changes(db) == want
            # The batch redone after the outage decides again on every signal since the last
            # checkpoint; the counters count each signal and each decision once all the same.
            signals = {name: metric_sums(run, f"laborwatch_signals_{name}_total").get((), 0.0)
                       for name in ("accepted", "rejected")}
            assert signals == {"accepted": expected["accepted"], "rejected": len(expected["rejected"])}
            scored = metric_sums(run, "laborwatch_score_count").get((), 0.0)  # one score per accepted signal
            assert scored == expected["accepted"]
            assert metric_sums(run, "laborwatch_alert_decisions_total", "role") == {
                ("promoted",): len(want), ("shadow",): len(want)}
            assert run.proc.poll() is None, "the worker must wait the outage out, not stop"
        finally:
            assert run.stop() == 0, run.output()[-3000:]
            db.dispose()


def counts_or_none(db: Database):
    from sqlalchemy.exc import OperationalError

    try:
        return counts(db)
    except OperationalError:
        return None
