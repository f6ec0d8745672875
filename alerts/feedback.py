"""Outcomes of resolved alerts, published to the feedback topic (``Settings.topic("feedback")``,
key = enterprise_id, value = the JSON of ``workbench.outcome_message``), and read back as labels.

The store is the truth: a resolution is written there first, in the transaction of the step;
this publisher sends what is not marked published yet, marks it after the broker acknowledged,
and retries with back-off when the broker is away. A crash between send and mark sends the same
outcome again (at least once): consumers dedupe on ``feedback_id``.
"""
from __future__ import annotations

import json
import logging
import threading
from datetime import date, datetime
from pathlib import Path

from alerts.store import workbench
from alerts.store.db import Database

log = logging.getLogger("laborwatch.feedback")


class FeedbackPublisher:
    def __init__(self, db: Database, bootstrap: str, topic: str, partitions: int, *, on_published=lambda n: None,
                 interval: float = 5.0):
        self.db = db
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.interval = interval
        self._on_published = on_published
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._producer = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "FeedbackPublisher":
        self._thread = threading.Thread(target=self._loop, name="laborwatch-feedback", daemon=True)
        self._thread.start()
        return self

    def poke(self) -> None:
        """Something was resolved: publish now rather than at the next interval."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)
            except Exception:  # noqa: BLE001 - closing on the way out
                pass

    def _loop(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            try:
                self.publish_pending()
                backoff = self.interval
            except Exception as exc:  # noqa: BLE001 - the broker or the DB is away: try again later
                log.warning("feedback: not published yet (%s); retrying in %.0fs", exc, backoff)
                self._drop_producer()
                backoff = min(backoff * 2, 120.0)
            self._wake.wait(backoff)
            self._wake.clear()

    # -- publishing -------------------------------------------------------------------------
    def _producer_or_new(self):
        if self._producer is None:
            from kafka import KafkaProducer

            from streams.broker import ensure_topics

            ensure_topics(self.bootstrap, {self.topic: self.partitions})
            self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", retries=3, linger_ms=5,
                                           max_in_flight_requests_per_connection=1, request_timeout_ms=15000)
        return self._producer

    def _drop_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
            except Exception:  # noqa: BLE001
                pass
            self._producer = None

    def publish_pending(self) -> int:
        sent = 0
        while True:
            batch = workbench.unpublished_outcomes(self.db)
            if not batch:
                return sent
            producer = self._producer_or_new()
            futures = [producer.send(self.topic, key=m["enterprise_id"].encode(),
                                     value=json.dumps(m, ensure_ascii=False).encode()) for m in batch]
            producer.flush(timeout=30)
            for future in futures:
                future.get(timeout=30)
            workbench.mark_published(self.db, [m["feedback_id"] for m in batch])
            sent += len(batch)
            self._on_published(len(batch))


# -- labels for training -------------------------------------------------------------------------
def read_feedback(path: Path) -> list[dict]:
    """Outcome lines (JSONL, as `laborwatch feedback export` writes and the topic carries)."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            item["enterprise_id"], item["resolved_at"], item["outcome"]  # noqa: B018 - required keys
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}:{number}: not an outcome line (JSON with enterprise_id, outcome, resolved_at)") from None
        out.append(item)
    return out


def positive_days(feedback: list[dict]) -> dict[str, list[int]]:
    """enterprise_id -> day ordinals (China time) of the resolutions that confirmed a problem.

    These join the dispute file's days as positive events; a false alarm adds nothing (the
    absence of a dispute is already the negative label)."""
    from alerts.workflow import POSITIVE_OUTCOMES
    from models.calendar import CHINA_TZ

    days: dict[str, list[int]] = {}
    for item in feedback:
        if item["outcome"] in POSITIVE_OUTCOMES:
            at = datetime.fromisoformat(item["resolved_at"]).astimezone(CHINA_TZ).date()
            days.setdefault(item["enterprise_id"], []).append(date.toordinal(at))
    return days
