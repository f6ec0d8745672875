"""The store on SQLite and on PostgreSQL: migrations, idempotent writes, exports."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import func, select, update

from alerts.store.db import Database
from alerts.store.models import Alert, AlertChange, AlertQueue, SignalRecord
from alerts.store.repo import (
    DbRegistry, DbSeenSignals, apply_alert, counts, export_alerts, export_dead_letters, record_batch,
    upsert_enterprises,
)
from streams.pipeline import AcceptedSignal, Envelope
from streams.validation import parse_timestamp
from tests.support import REPO

CONTRACT = REPO / "config" / "contract"
EID = "91440306BXKFLJ2K06"
ENTERPRISE = dict(enterprise_id=EID, name="Shajing Retail", industry="retail", district="baoan",
                  street="shajing", community="shajing-c4", grid="shajing-c4-g5", headcount=37)


def _alert(revision: int, level: str) -> dict:
    return {
        "alert_id": "AL-1", "enterprise_id": EID, "category": "risk", "level": level, "score": 0.5,
        "reasons": [{"code": "wage_overdue", "text": "wages unpaid 12 days", "value": 12}],
        "raised_at": "2025-03-01T02:00:00+08:00", "triggered_by": f"sig-{revision}",
        "model_version": "rules-v1", "status": "new", "revision": revision,
        "change": "raised" if revision == 1 else "escalated", "opened_at": "2025-03-01T02:00:00+08:00",
        "queue": "street:shajing",
        "queues": [{"receiver": "street-team", "queue": "street:shajing"}]
        + ([{"receiver": "district-command", "queue": "district:baoan-command"}] if level == "red" else []),
    }


def test_migrations_are_idempotent_and_registry_upserts(database_url):
    Database(database_url).dispose()
    db = Database(database_url)  # a second start finds the schema at head
    assert upsert_enterprises(db, [ENTERPRISE]) == (1, 0)
    assert upsert_enterprises(db, [ENTERPRISE]) == (0, 0)
    assert upsert_enterprises(db, [{**ENTERPRISE, "street": "xixiang"}]) == (0, 1)
    registry = DbRegistry(db)
    assert registry.get(EID)["street"] == "xixiang"
    assert registry.get("91110000600037341L") is None
    upsert_enterprises(db, [{**ENTERPRISE, "enterprise_id": "91110000600037341L"}])
    assert registry.get("91110000600037341L") is not None, "a miss asks the database again"
    db.dispose()


def test_batches_are_idempotent_and_keep_raw_payloads(database_url):
    db = Database(database_url)
    received = datetime(2025, 3, 1, tzinfo=timezone.utc)
    signal = {"signal_id": "s1", "type": "utility", "enterprise_id": EID, "observed_at": "2025-03-01T02:00:00+08:00"}
    env = Envelope(json.dumps(signal).encode(), "laborwatch.signals", 2, 17, received)
    accepted = [AcceptedSignal(signal, parse_timestamp(signal["observed_at"]), env)]
    nasty = b"\x00\x01 not json \xff\xfe"
    letter = {"reason": "invalid_json", "detail": "not valid JSON", "payload": "unused", "signal_id": None,
              "received_at": received.isoformat(), "topic": "laborwatch.signals", "partition": 2, "offset": 18}
    raw = {("laborwatch.signals", 2, 18): nasty}
    for _ in range(2):  # a redelivered batch writes nothing twice
        record_batch(db, accepted, [letter], raw)
    c = counts(db)
    assert (c.accepted, c.rejected) == (1, 1)
    assert DbSeenSignals(db).lookup([(EID, "s1"), (EID, "s2")]) == {(EID, "s1"): ("laborwatch.signals", 2, 17)}
    with db.session() as session:  # the ledger row reads back as what was accepted
        [row] = session.scalars(select(SignalRecord))
        assert (row.payload, row.observed_at, row.received_at, row.type) == (
            signal, datetime(2025, 2, 28, 18, tzinfo=timezone.utc), received, "utility")
        later = session.scalar(select(func.count()).select_from(SignalRecord)
                               .where(SignalRecord.observed_at > datetime(2025, 2, 28, 17, 59, 59, 999999, tzinfo=timezone.utc)))
        assert later == 1, "stored stamps compare as datetimes"
    [exported] = list(export_dead_letters(db))
    Draft202012Validator(json.loads((CONTRACT / "dead_letter.schema.json").read_text())).validate(exported)
    assert exported["payload"].startswith("base64:")
    import base64
    assert base64.b64decode(exported["payload"].removeprefix("base64:")) == nasty
    db.dispose()


def test_seen_signals_find_exactly_the_stored_pairs(database_url):
    """The duplicate lookup matches on (enterprise, signal id) pairs, not on either alone."""
    db = Database(database_url)
    other = "91440306P0MQ25QYJW"
    received = datetime(2025, 3, 1, tzinfo=timezone.utc)
    accepted = [
        AcceptedSignal({"signal_id": sid, "type": "utility", "enterprise_id": eid,
                        "observed_at": "2025-03-01T02:00:00+08:00"}, received,
                       Envelope(b'{"stand-in": "payload"}', "laborwatch.signals", 1, offset, received))
        for eid, sid, offset in ((EID, "a", 5), (other, "b", 6), (EID, "c", 7))
    ]
    record_batch(db, accepted, [], {})
    keys = [(EID, "a"), (EID, "b"), (other, "a"), (other, "b"), (EID, "zz"), (EID, "c")] * 100
    assert DbSeenSignals(db).lookup(keys) == {
        (EID, "a"): ("laborwatch.signals", 1, 5), (other, "b"): ("laborwatch.signals", 1, 6),
        (EID, "c"): ("laborwatch.signals", 1, 7),
    }
    assert DbSeenSignals(db).lookup([]) == {}
    db.dispose()


def test_alert_revisions_apply_once_and_in_order(database_url):
    db = Database(database_url)
    upsert_enterprises(db, [ENTERPRISE])
    assert apply_alert(db, _alert(1, "yellow"))
    assert apply_alert(db, _alert(2, "red"))
    assert not apply_alert(db, _alert(2, "red")), "the same revision again changes nothing"
    assert not apply_alert(db, _alert(1, "yellow")), "an older revision arriving late changes nothing"
    [alert] = list(export_alerts(db))
    Draft202012Validator(json.loads((CONTRACT / "alert.schema.json").read_text())).validate(alert)
    assert (alert["level"], alert["triggered_by"], alert["queue"]) == ("red", "sig-2", "street:shajing")
    assert alert["raised_at"] == "2025-03-01T02:00:00+08:00"
    with db.session() as session:
        history = session.execute(select(AlertChange.revision, AlertChange.level).order_by(AlertChange.revision)).all()
        queues = set(session.scalars(select(AlertQueue.queue)))
        n = session.scalar(select(func.count()).select_from(AlertChange))
    assert [tuple(h) for h in history] == [(1, "yellow"), (2, "red")] and n == 2
    assert queues == {"street:shajing", "district:baoan-command"}
    db.dispose()


def test_alerts_past_their_acknowledgement_sla(database_url):
    from datetime import timedelta

    from alerts.store.repo import alerts_past_sla
    from config.files import SlaConfig

    def sla(**acknowledge_hours) -> SlaConfig:
        hours = {"red": 2, "orange": 8, "yellow": 24, "blue": 72, **acknowledge_hours}
        return SlaConfig(config_version=1, levels={level: {"acknowledge_hours": h, "on_site_hours": 2 * h}
                                                   for level, h in hours.items()})

    db = Database(database_url)
    apply_alert(db, _alert(1, "red"))
    soon, later = datetime.now(timezone.utc) + timedelta(hours=1), datetime.now(timezone.utc) + timedelta(hours=3)
    assert alerts_past_sla(db, sla(), now=soon)["acknowledge"] == {}
    assert alerts_past_sla(db, sla(), now=later)["acknowledge"] == {("red", "street:shajing"): 1}
    assert alerts_past_sla(db, sla(red=4), now=later)["acknowledge"] == {}
    # Nobody on site: red's on-site deadline is twice its acknowledgement one here (4 hours).
    assert alerts_past_sla(db, sla(), now=later)["on_site"] == {}
    much_later = later + timedelta(hours=2)
    assert alerts_past_sla(db, sla(), now=much_later)["on_site"] == {("red", "street:shajing"): 1}
    with db.session() as session:  # acknowledged, but still nobody on site
        session.execute(update(Alert).values(status="acknowledged"))
    assert alerts_past_sla(db, sla(), now=much_later)["acknowledge"] == {}
    assert alerts_past_sla(db, sla(), now=much_later)["on_site"] == {("red", "street:shajing"): 1}
    with db.session() as session:
        session.execute(update(Alert).values(status="in_progress"))
    assert alerts_past_sla(db, sla(), now=much_later)["on_site"] == {}
    db.dispose()


@pytest.fixture
def silent_server():
    """A TCP port whose kernel completes the handshake and then nobody ever answers: a database
    server that hangs."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.mark.timeout(30)  # without a bound the connection would hang the suite
@pytest.mark.parametrize("how", ["default", "url"])
def test_a_postgresql_server_that_never_answers_is_given_up_on(silent_server, monkeypatch, how):
    """The worker writes its ledger on the event loop, so a connection may not wait for ever
    (libpq's default): the default timeout reaches libpq, and a URL's own parameter wins."""
    import time

    from alerts.store import db as store_db
    from alerts.store.db import StoreError

    url = f"postgresql+psycopg://laborwatch@127.0.0.1:{silent_server}/laborwatch"
    if how == "default":
        monkeypatch.setitem(store_db.PG_CONNECT_DEFAULTS, "connect_timeout", 2)
    else:
        monkeypatch.setitem(store_db.PG_CONNECT_DEFAULTS, "connect_timeout", 600)
        url += "?connect_timeout=2"
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot reach the database"):
        Database(url)
    # it waited on the silent server (older libpq counts whole seconds: a 2 s timeout may end after 1)
    assert 0.9 < time.monotonic() - started < 10
