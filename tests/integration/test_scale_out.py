"""Scale-out (issue 5): two workers of the same app share the partitions, and stopping one hands
its partitions to the other with no signal lost and no alert doubled.

The broker belongs to the test (as an external Kafka would), so that it outlives the workers.
Worker A is stopped gracefully (SIGINT: it leaves the group and commits what it finished) in the
middle of the samples; worker B takes A's partitions, rebuilds A's part of the enterprise table
from the changelog, and resumes from A's committed offsets. The end result must equal an
uninterrupted backtest exactly.

This used to lose signals (and once two early alert revisions): right after a hand-over, Faust
delivered the new assignment's first events before seeking it, then dropped the ones still queued
and committed over them (see ``streams.app._no_streaming_before_seek``). Such a loss shows here
as offsets with neither a stored signal nor a dead letter.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import select

from alerts.store.db import Database
from alerts.store.models import Alert, DeadLetter, SignalRecord
from alerts.store.repo import counts
from streams.broker import EmbeddedBroker
from tests.support import (SAMPLES, RunningPipeline, accepted_by, alert_changes, backtest_samples, base_env, cli,
                           stored_alert_changes, wait_for_verdicts, wait_until)

pytestmark = pytest.mark.broker


def test_two_workers_share_partitions_and_hand_over(tmp_path, shared_dir):
    started = time.monotonic()
    database_url = f"sqlite:///{tmp_path / 'laborwatch.db'}"
    expected = json.loads((SAMPLES / "expected.json").read_text())
    with EmbeddedBroker(tmp_path / "broker").start() as broker:
        # No checkpoint falls due by the clock during the test: every one is made because a
        # rebalance or the stop waits for the acks, which is what a hand-over must not lose.
        common = dict(LABORWATCH_BROKER=broker.url, LABORWATCH_BROKER_FLAVOR="tansu", LABORWATCH_BATCH_SIZE="100",
                      LABORWATCH_LOG_LEVEL="info", LABORWATCH_CHECKPOINT_SECONDS="600")
        env_a = base_env(tmp_path / "a", database_url, **common)
        env_b = {**base_env(tmp_path / "b", database_url, **common), "LABORWATCH_APP_ID": env_a["LABORWATCH_APP_ID"]}
        a = RunningPipeline(tmp_path / "a", env_a, database_url).start()
        b = RunningPipeline(tmp_path / "b", env_b, database_url).start()
        db = Database(database_url, run_migrations=False)
        try:
            cli(["enterprises", "import", str(SAMPLES / "enterprises.csv")], env_a)
            # The samples in two parts, cut at a line end: the second is published while A stops,
            # so that the hand-over happens mid-stream with records waiting in A's partitions
            # however fast the workers got through the first (a whole-file ingest was sometimes
            # all done before A's stop returned).
            data = (SAMPLES / "signals.jsonl").read_bytes()
            cut = data.index(b"\n", len(data) // 2) + 1
            first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
            first.write_bytes(data[:cut])
            second.write_bytes(data[cut:])
            cli(["ingest", str(first)], env_a)
            # Both really work: each accepts signals of its own before the hand-over (a worker
            # can take a few seconds longer to finish its first rebalance).
            wait_until(lambda: counts(db).accepted >= 2000 and accepted_by(a) > 0 and accepted_by(b) > 0,
                       timeout=120, what="both workers to get going")
            stopped: list[int | None] = []
            stopping = threading.Thread(target=lambda: stopped.append(a.stop()))
            stopping.start()  # a clean stop leaves the group: B takes its partitions
            cli(["ingest", str(second)], env_b)  # through B: A is on its way out
            stopping.join(timeout=120)
            assert stopped == [0], a.output()[-3000:]
            try:
                wait_for_verdicts(db, expected["lines"], what="worker B to finish after the hand-over")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; offsets never stored, by partition: {_missing_offsets(db)}") from None

            backtest = backtest_samples(tmp_path, env_a)
            want = alert_changes(backtest)
            try:  # as long as the signals may take: B routes and stores what A raised too
                wait_until(lambda: len(stored_alert_changes(db)) >= len(want), timeout=120, what="the alert store")
            except AssertionError as exc:
                stored = stored_alert_changes(db)
                raise AssertionError(f"{exc}: {len(stored)} of {len(want)} alert changes stored; missing "
                                     f"{sorted(set(want) - set(stored))[:10]}; worker B: {b.output()[-2000:]}") from None

            # No signal lost, none taken twice: every line once, accepted or rejected as expected.
            final = counts(db)
            assert (final.accepted, final.rejected) == (expected["accepted"], len(expected["rejected"]))
            assert _missing_offsets(db) == {}
            # No alert lost or doubled: every revision the backtest raises, each once, and no more.
            assert stored_alert_changes(db) == want
            # Nor an alert opened twice for one episode: the same alerts per (enterprise, category).
            with db.session() as session:
                opened = Counter(tuple(r) for r in session.execute(select(Alert.enterprise_id, Alert.category)))
            episodes = {x["alert_id"]: (x["enterprise_id"], x["category"]) for x in backtest}
            assert opened == Counter(episodes.values())
        finally:
            a.stop()
            assert b.stop() == 0, b.output()[-3000:]
            db.dispose()
    print(f"scale-out test took {time.monotonic() - started:.1f} s")


def _missing_offsets(db: Database) -> dict[int, list[int]]:
    """Offsets of the signal topic with neither an accepted signal nor a dead letter, by partition
    (below the partition's highest stored offset)."""
    with db.session() as session:
        seen = [tuple(r) for r in session.execute(select(SignalRecord.partition, SignalRecord.offset))]
        seen += [tuple(r) for r in session.execute(select(DeadLetter.partition, DeadLetter.offset))]
    by_partition: dict[int, set[int]] = {}
    for partition, offset in seen:
        by_partition.setdefault(partition, set()).add(offset)
    return {p: sorted(set(range(max(offs) + 1)) - offs)[:50]
            for p, offs in sorted(by_partition.items()) if len(offs) != max(offs) + 1}
