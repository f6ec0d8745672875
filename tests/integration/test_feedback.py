"""An inspector's resolution closes the alert in the stream: the next risk raises a new alert
instead of escalating the resolved one.

The outcome message goes to the feedback topic exactly as the workbench's publisher sends it
(``alerts.store.workbench.outcome_message``), keyed by enterprise id; the worker's close-alerts
agent owns the same partitions as the signals.
"""
from __future__ import annotations

import json
from collections import defaultdict
from urllib.request import urlopen

import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from alerts.store.db import Database
from alerts.store.models import AlertChange
from config.settings import Settings
from streams.broker import EmbeddedBroker
from streams.ingest import split_lines
from tests.support import SAMPLES, RunningPipeline, base_env, cli, jsonl, wait_for_verdicts, wait_until

pytestmark = pytest.mark.broker
FEEDBACK = Settings().topic("feedback")


def _closed_by_feedback(run: RunningPipeline) -> float:
    url = json.loads((run.home / "run.json").read_text())["metrics_url"]
    text = urlopen(url, timeout=10).read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "laborwatch_alerts_closed_by_feedback_total")


def test_a_resolved_alert_is_closed_and_the_next_risk_raises_a_new_one(tmp_path, shared_dir):
    database_url = f"sqlite:///{tmp_path / 'laborwatch.db'}"
    env = base_env(tmp_path / "home", database_url)
    # Pick, from the backtest of the samples, a risk alert that the stream later escalates.
    out = tmp_path / "backtest.jsonl"
    cli(["backtest", "--enterprises", str(SAMPLES / "enterprises.csv"),
         "--signals", str(SAMPLES / "signals.jsonl"), "--out", str(out)], env)
    lines = split_lines((SAMPLES / "signals.jsonl").read_bytes())
    line_of = {}
    for i, raw in enumerate(lines):
        try:
            line_of.setdefault(json.loads(raw)["signal_id"], i)
        except (ValueError, KeyError, TypeError):
            continue
    changes = defaultdict(list)
    for alert in jsonl(out.read_text()):
        changes[alert["alert_id"]].append(alert)
    alert_id, (raised, escalated, *_) = next(
        (a, c) for a, c in changes.items() if c[0]["category"] == "risk" and len(c) > 1)
    enterprise = raised["enterprise_id"]
    cut = line_of[raised["triggered_by"]] + 1  # the alert is raised; its escalation is still to come
    assert cut <= line_of[escalated["triggered_by"]]
    (tmp_path / "first.jsonl").write_bytes(b"\n".join(lines[:cut]) + b"\n")
    (tmp_path / "rest.jsonl").write_bytes(b"\n".join(lines[cut:]) + b"\n")

    with EmbeddedBroker(tmp_path / "broker").start() as broker:
        env = base_env(tmp_path / "home", database_url, LABORWATCH_BROKER=broker.url,
                       LABORWATCH_BROKER_FLAVOR="tansu")
        run = RunningPipeline(tmp_path / "home", env, database_url).start()
        db = Database(database_url, run_migrations=False)

        def stored(aid: str | None = None) -> list[tuple]:
            query = select(AlertChange.alert_id, AlertChange.revision, AlertChange.change, AlertChange.level,
                           AlertChange.triggered_by)
            with db.session() as session:
                return [tuple(r) for r in session.execute(query.order_by(AlertChange.id)) if aid in (None, r[0])]

        try:
            cli(["enterprises", "import", str(SAMPLES / "enterprises.csv")], env)
            cli(["ingest", str(tmp_path / "first.jsonl")], env)
            wait_until(lambda: stored(alert_id), timeout=90, what=f"alert {alert_id} to be stored")

            producer = KafkaProducer(bootstrap_servers=broker.url.removeprefix("kafka://"))
            message = {"feedback_id": 1, "alert_id": alert_id, "enterprise_id": enterprise,
                       "outcome": "rectified", "label": 0, "category": "risk"}
            producer.send(FEEDBACK, key=enterprise.encode(), value=json.dumps(message).encode())
            # Redelivered and unknown outcomes change nothing.
            producer.send(FEEDBACK, key=enterprise.encode(), value=json.dumps(message).encode())
            producer.send(FEEDBACK, key=enterprise.encode(), value=b"not json")
            producer.flush()
            producer.close()
            wait_until(lambda: _closed_by_feedback(run) >= 1, timeout=60, what="the worker to close the alert")

            cli(["ingest", str(tmp_path / "rest.jsonl")], env)
            wait_for_verdicts(db, len(lines), what="the rest of the samples")
            # The resolved alert is never escalated; the enterprise's next risk is a new alert,
            # one that the uninterrupted backtest does not have.
            new = wait_until(lambda: [r for r in stored() if r[0] not in changes and r[2] == "raised"
                                      and _enterprise_of(db, r[0]) == enterprise],
                             timeout=60, what="a new risk alert for the enterprise")
            assert [(r[1], r[2]) for r in stored(alert_id)] == [(1, "raised")]
            assert len({r[0] for r in new}) == 1, new
            assert _closed_by_feedback(run) == 1
        finally:
            assert run.stop() == 0, run.output()[-3000:]
            db.dispose()


def _enterprise_of(db: Database, alert_id: str) -> str | None:
    from alerts.store.models import Alert

    with db.session() as session:
        alert = session.get(Alert, alert_id)
        return alert.enterprise_id if alert is not None and alert.category == "risk" else None
