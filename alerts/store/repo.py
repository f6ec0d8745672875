"""Reads and idempotent writes of the store.

Writes that the stream makes are keyed on natural keys (enterprise and signal id; topic,
partition and offset; alert id and revision), so that a redelivered batch changes nothing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Iterator, Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from alerts.store.db import Database
from alerts.store.models import Alert, AlertChange, AlertQueue, DeadLetter, Enterprise, SignalRecord
from alerts.workflow import sla_state
from config.files import SlaConfig
from models.calendar import CHINA_TZ
from streams.validation import parse_timestamp, payload_text

ENTERPRISE_FIELDS = (
    "enterprise_id", "name", "industry", "district", "street", "community", "grid", "headcount",
    "registered_capital", "legal_representative", "address",
)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def _insert_ignore(session: Session, model, rows: list[dict]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, in the dialect at hand."""
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # On the Table, not the mapped class: a plain executemany, without the ORM's bulk machinery
    # (a third of the cost of a batch's ledger write).
    session.execute(insert(model.__table__).on_conflict_do_nothing(), rows)


# -- the registry -----------------------------------------------------------------------------
def upsert_enterprises(db: Database, rows: Sequence[dict]) -> tuple[int, int]:
    """Add or update registry rows; returns (added, updated)."""
    added = updated = 0
    now = now_utc()
    with db.session() as session:
        for chunk_start in range(0, len(rows), 500):
            chunk = rows[chunk_start : chunk_start + 500]
            ids = [r["enterprise_id"] for r in chunk]
            existing = {e.enterprise_id: e for e in session.scalars(select(Enterprise).where(Enterprise.enterprise_id.in_(ids)))}
            for row in chunk:
                values = {k: row.get(k) for k in ENTERPRISE_FIELDS}
                current = existing.get(row["enterprise_id"])
                if current is None:
                    enterprise = Enterprise(**values, created_at=now, updated_at=now)
                    session.add(enterprise)
                    existing[row["enterprise_id"]] = enterprise
                    added += 1
                elif any(getattr(current, k) != v for k, v in values.items()):
                    for key, value in values.items():
                        setattr(current, key, value)
                    current.updated_at = now
                    updated += 1
    return added, updated


def enterprise_row(e: Enterprise) -> dict:
    return {k: getattr(e, k) for k in ENTERPRISE_FIELDS}


class DbRegistry:
    """The registry as the stream sees it: a cache, asked of the database on a miss.

    A miss is looked up every time (no negative cache), so an enterprise imported while the
    worker runs is known at its first signal; the whole cache is refreshed now and then so that
    moves between streets reach the routing.
    """

    def __init__(self, db: Database, refresh_seconds: float = 60.0):
        self.db = db
        self.refresh_seconds = refresh_seconds
        self._cache: dict[str, dict] = {}
        self._loaded_at = 0.0

    def _reload(self) -> None:
        with self.db.session() as session:
            self._cache = {e.enterprise_id: enterprise_row(e) for e in session.scalars(select(Enterprise))}
        self._loaded_at = time.monotonic()

    def get(self, enterprise_id: str) -> dict | None:
        if time.monotonic() - self._loaded_at > self.refresh_seconds:
            self._reload()
        row = self._cache.get(enterprise_id)
        if row is None:
            with self.db.session() as session:
                found = session.get(Enterprise, enterprise_id)
                if found is not None:
                    row = self._cache[enterprise_id] = enterprise_row(found)
        return row


# -- the ledger of accepted signals, and dead letters --------------------------------------------
class DbSeenSignals:
    """Where each signal id was first accepted, from the ledger.

    The keys go in as a relation joined on the (enterprise_id, signal_id) unique index (a
    nested loop of index searches), so that a batch costs the same whatever the ledger's size.
    A row-value ``IN (VALUES ...)`` (what SQLAlchemy's ``tuple_().in_()`` renders) made SQLite
    scan the whole index for every batch: 90 ms per 400 keys at 200,000 ledger rows, growing
    with the ledger; a point query per key cost 4-12 us a key, the join about 1."""

    # SQLite before 3.32 allows 999 parameters in a statement.
    SQLITE_KEYS_PER_QUERY = 400

    def __init__(self, db: Database):
        self.db = db

    def lookup(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, int, int]]:
        keys = list(keys)
        found: dict[tuple[str, str], tuple[str, int, int]] = {}
        if not keys:
            return found
        with self.db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                rows = conn.exec_driver_sql(
                    "SELECT s.enterprise_id, s.signal_id, s.topic, s.partition, s.\"offset\" "
                    "FROM unnest(%(e)s::text[], %(s)s::text[]) AS k(enterprise_id, signal_id) "
                    "JOIN signals AS s ON s.enterprise_id = k.enterprise_id AND s.signal_id = k.signal_id",
                    {"e": [k[0] for k in keys], "s": [k[1] for k in keys]},
                ).all()
            else:
                cursor = conn.connection.driver_connection.cursor()
                rows = []
                step = self.SQLITE_KEYS_PER_QUERY
                for start in range(0, len(keys), step):
                    chunk = keys[start : start + step]
                    rows += cursor.execute(
                        f"WITH k(e, s) AS (VALUES {', '.join(['(?, ?)'] * len(chunk))}) "
                        'SELECT s.enterprise_id, s.signal_id, s.topic, s.partition, s."offset" '
                        "FROM k JOIN signals AS s ON s.enterprise_id = k.e AND s.signal_id = k.s",
                        [part for key in chunk for part in key],
                    ).fetchall()
            for eid, sid, topic, partition, offset in rows:
                found[(eid, sid)] = (topic, partition, offset)
        return found


def record_batch(db: Database, accepted: Sequence, dead_letters: Sequence[dict], raw: dict[tuple, bytes]) -> None:
    """Write a batch's accepted signals and dead letters in one transaction (idempotent).

    ``raw`` maps (topic, partition, offset) to the input's bytes, which the dead letter keeps.
    """
    dead_rows = [
        {**d, "received_at": parse_timestamp(d["received_at"]), "payload": raw[(d["topic"], d["partition"], d["offset"])]}
        for d in dead_letters
    ]
    with db.session() as session:
        _insert_ledger(session, accepted)
        _insert_ignore(session, DeadLetter, dead_rows)


_LEDGER_INSERT = ('INSERT INTO signals (enterprise_id, signal_id, type, observed_at, payload, topic, partition, '
                  '"offset", received_at) VALUES ({}) ON CONFLICT (enterprise_id, signal_id) DO NOTHING')
_LEDGER_SQL = {
    "sqlite": _LEDGER_INSERT.format(", ".join("?" * 9)),
    "postgresql": _LEDGER_INSERT.format("%s, %s, %s, %s, %s::json, %s, %s, %s, %s"),
}


def _sqlite_stamp(value: datetime) -> str:
    """What ``UTCDateTime`` stores on SQLite: naive UTC, SQLAlchemy's text format."""
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")


def _insert_ledger(session: Session, accepted: Sequence) -> None:
    """The accepted signals into the ledger, one driver-level executemany: the ORM's and even
    Core's per-row parameter processing (the JSON payload dumped again, two datetimes
    converted) cost more than the rest of a batch's store write. The payload is the input's own
    JSON text, which the contract's validation parsed into exactly this signal."""
    if not accepted:
        return
    conn = session.connection()
    dialect = conn.dialect.name
    stamp = _sqlite_stamp if dialect == "sqlite" else (lambda value: value)
    stamps: dict[datetime, object] = {}
    rows = []
    for a in accepted:
        signal, env = a.signal, a.envelope
        received = stamps.get(env.received_at)
        if received is None:
            received = stamps[env.received_at] = stamp(env.received_at)
        rows.append((signal["enterprise_id"], signal["signal_id"], signal["type"], stamp(a.observed),
                     str(env.raw, "utf-8"), env.topic, env.partition, env.offset, received))
    conn.exec_driver_sql(_LEDGER_SQL[dialect], rows)


# -- alerts -----------------------------------------------------------------------------------
def apply_alert(db: Database, alert: dict, actor: str = "pipeline") -> bool:
    """Store one routed alert revision; a revision already stored (or older) changes nothing."""
    now = now_utc()
    raised_at = parse_timestamp(alert["raised_at"])
    with db.session() as session:
        current = session.get(Alert, alert["alert_id"])
        if current is not None and current.revision >= alert["revision"]:
            _write_history(session, alert, raised_at, actor, now)  # no-op when already there
            return False
        values = dict(
            enterprise_id=alert["enterprise_id"],
            category=alert["category"],
            level=alert["level"],
            size_band=alert.get("size_band"),
            score=alert["score"],
            queue=alert["queue"],
            reasons=alert["reasons"],
            raised_at=raised_at,
            triggered_by=alert["triggered_by"],
            model_version=alert["model_version"],
            revision=alert["revision"],
            updated_at=now,
        )
        if current is None:
            session.add(Alert(alert_id=alert["alert_id"], status=alert["status"],
                              opened_at=parse_timestamp(alert["opened_at"]), **values))
            session.flush()
        else:
            for key, value in values.items():
                setattr(current, key, value)
        _insert_ignore(
            session,
            AlertQueue,
            [{"alert_id": alert["alert_id"], "queue": q["queue"], "receiver": q["receiver"]} for q in alert["queues"]],
        )
        _write_history(session, alert, raised_at, actor, now)
    return True


def _write_history(session: Session, alert: dict, raised_at: datetime, actor: str, now: datetime) -> None:
    _insert_ignore(
        session,
        AlertChange,
        [{
            "alert_id": alert["alert_id"], "revision": alert["revision"], "change": alert["change"],
            "level": alert["level"], "size_band": alert.get("size_band"), "score": alert["score"],
            "reasons": alert["reasons"], "raised_at": raised_at, "triggered_by": alert["triggered_by"],
            "model_version": alert["model_version"], "status": alert["status"], "actor": actor,
            "note": None, "recorded_at": now,
        }],
    )


def _iso(ts: datetime) -> str:
    return ts.astimezone(CHINA_TZ).isoformat()


def alert_to_contract(a: Alert) -> dict:
    out = {
        "alert_id": a.alert_id, "enterprise_id": a.enterprise_id, "category": a.category,
        "level": a.level, "score": a.score, "queue": a.queue, "reasons": a.reasons,
        "raised_at": _iso(a.raised_at), "triggered_by": a.triggered_by,
        "model_version": a.model_version, "status": a.status,
    }
    if a.size_band is not None:
        out["size_band"] = a.size_band
    return out


def export_alerts(db: Database) -> Iterator[dict]:
    with db.session() as session:
        for alert in session.scalars(select(Alert).order_by(Alert.raised_at, Alert.alert_id)):
            yield alert_to_contract(alert)


def export_dead_letters(db: Database) -> Iterator[dict]:
    with db.session() as session:
        query = select(DeadLetter).order_by(DeadLetter.topic, DeadLetter.partition, DeadLetter.offset)
        for d in session.scalars(query):
            yield {
                "reason": d.reason, "detail": d.detail, "payload": payload_text(d.payload), "signal_id": d.signal_id,
                "received_at": _iso(d.received_at), "topic": d.topic, "partition": d.partition,
                "offset": d.offset,
            }


def open_alerts_by_level_and_queue(db: Database) -> dict[tuple[str, str], int]:
    with db.session() as session:
        rows = session.execute(
            select(Alert.level, Alert.queue, func.count())
            .where(Alert.status.not_in(("resolved", "closed")))
            .group_by(Alert.level, Alert.queue)
        ).all()
    return {(level, queue): n for level, queue, n in rows}


SLA_DEADLINES = ("acknowledge", "on_site")


def alerts_past_sla(db: Database, sla: SlaConfig, now: datetime | None = None) -> dict[str, dict[tuple[str, str], int]]:
    """Open alerts past each of their level's deadlines, by level and queue, for the gauges, in one
    read: by the workbench's SLA rule (``alerts.workflow.sla_state``, the clock starting when the
    alert was first stored). ``acknowledge``: still `new` past the acknowledgement deadline;
    ``on_site``: nobody on site (still `new` or `acknowledged`) past the on-site deadline."""
    now = now or now_utc()
    first_stored = (
        select(AlertChange.alert_id, func.min(AlertChange.recorded_at).label("stored_at"))
        .group_by(AlertChange.alert_id).subquery()
    )
    with db.session() as session:
        rows = session.execute(
            select(Alert.level, Alert.queue, Alert.status, first_stored.c.stored_at)
            .join(first_stored, first_stored.c.alert_id == Alert.alert_id)
            .where(Alert.status.in_(("new", "acknowledged")))
        ).all()
    late: dict[str, dict[tuple[str, str], int]] = {deadline: {} for deadline in SLA_DEADLINES}
    for level, queue, status, stored_at in rows:
        stored_at = stored_at if stored_at.tzinfo else stored_at.replace(tzinfo=timezone.utc)
        state = sla_state(sla, level, status, stored_at, now)
        for deadline, due in (("acknowledge", state.acknowledge_due), ("on_site", state.on_site_due)):
            if now > due and (deadline == "on_site" or status == "new"):
                late[deadline][(level, queue)] = late[deadline].get((level, queue), 0) + 1
    return late


@dataclass(frozen=True)
class Counts:
    accepted: int
    rejected: int
    alerts: int
    alerts_by_level: dict[str, int]


def counts(db: Database) -> Counts:
    with db.session() as session:
        accepted = session.scalar(select(func.count()).select_from(SignalRecord)) or 0
        rejected = session.scalar(select(func.count()).select_from(DeadLetter)) or 0
        by_level = dict(session.execute(select(Alert.level, func.count()).group_by(Alert.level)).all())
    return Counts(accepted, rejected, sum(by_level.values()), by_level)
