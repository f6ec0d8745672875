"""A small, known world for the workbench's tests: the contract's sample registry, the ledger of
one enterprise's signals, a few alerts in two districts, and one account of every role.

Written straight into the store (the pipeline has its own tests), so the web tests start fast.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from alerts.auth import hash_password
from alerts.registry import read_enterprises
from alerts.store import repo, workbench
from alerts.store.db import Database
from alerts.store.models import SignalRecord
from streams.validation import parse_timestamp
from tests.support import SAMPLES

PASSWORD = "correct horse 1"
# enterprise ids of the samples (tests/../shared/contract/samples/enterprises.csv)
SHAJING = "9144030648Q64JGAX7"      # baoan / shajing: wages, both meters, an inspection
HANGCHENG = "91440306LR1KWD1BLQ"    # baoan / hangcheng
BANTIAN = "914403079G7LR87A5N"      # longgang / bantian

USERS = {
    "insp": ("inspector", "shajing", "baoan"),
    "insp2": ("inspector", "hangcheng", "baoan"),
    "insp3": ("inspector", "bantian", "longgang"),
    "sup": ("supervisor", None, "baoan"),
    "sup2": ("supervisor", None, "longgang"),
    "ana": ("analyst", None, None),
    "adm": ("admin", None, None),
}
ALERTS = {
    "a-red-shajing": (SHAJING, "red", 0.91, "risk"),
    "a-orange-shajing-ci": (SHAJING, "red", 1.0, "collective_incident"),
    "a-orange-hangcheng": (HANGCHENG, "orange", 0.66, "risk"),
    "a-yellow-bantian": (BANTIAN, "yellow", 0.41, "risk"),
}


def _alert(alert_id: str, enterprise_id: str, level: str, score: float, category: str, street: str,
           district: str) -> dict:
    queues = [{"queue": f"street:{street}", "receiver": "street-team"}]
    if level == "red":
        queues.append({"queue": f"district:{district}-command", "receiver": "district-command"})
    reasons = [
        {"code": "wage_days_overdue_max", "text": "wages unpaid 40 days after the statutory pay day", "value": 40.0},
        {"code": "electricity_drop", "text": "electricity 62% below its own 8-week baseline", "value": 0.38},
    ]
    if category == "collective_incident":
        reasons.insert(0, {"code": "collective_incident", "text": "45 workers acting together", "value": 45})
    return {
        "alert_id": alert_id, "enterprise_id": enterprise_id, "category": category, "level": level,
        "size_band": "30-50" if category == "collective_incident" else None, "score": score,
        "queue": queues[0]["queue"], "queues": queues, "reasons": reasons,
        "raised_at": "2025-06-02T10:00:00+08:00", "opened_at": "2025-06-02T10:00:00+08:00",
        "triggered_by": f"sig-{alert_id}", "model_version": "rules-v1", "status": "new", "revision": 1,
        "change": "raised",
    }


def seed(db: Database, *, signals_of: tuple[str, ...] = (SHAJING,), users: bool = True) -> None:
    rows, _ = read_enterprises(SAMPLES / "enterprises.csv")
    repo.upsert_enterprises(db, rows)
    registry = {r["enterprise_id"]: r for r in rows}
    ledger, seen = [], set()
    for line in (SAMPLES / "signals.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            s = json.loads(line)
        except ValueError:
            continue
        if not isinstance(s, dict) or s.get("enterprise_id") not in signals_of or s.get("signal_id") in seen:
            continue
        try:
            observed = parse_timestamp(s["observed_at"])
        except Exception:  # noqa: BLE001 - the samples hold malformed lines on purpose
            continue
        seen.add(s["signal_id"])
        ledger.append(SignalRecord(enterprise_id=s["enterprise_id"], signal_id=s["signal_id"], type=s["type"],
                                   observed_at=observed, payload=s, topic="laborwatch.signals", partition=0,
                                   offset=len(ledger), received_at=datetime.now(timezone.utc)))
    with db.session() as session:
        session.add_all(ledger)
    for alert_id, (eid, level, score, category) in ALERTS.items():
        e = registry[eid]
        repo.apply_alert(db, _alert(alert_id, eid, level, score, category, e["street"], e["district"]))
    if users:
        hashed = hash_password(PASSWORD)  # one hash for all: argon2 is slow on purpose
        for name, (role, street, district) in USERS.items():
            workbench.add_user(db, name, hashed, role, street, district)
