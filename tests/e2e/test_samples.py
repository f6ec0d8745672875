"""The contract's samples through `laborwatch run` on the embedded broker, checked against
expected.json line for line, and the parity of the stream with `laborwatch backtest`."""
from __future__ import annotations

import json
from collections import Counter

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select

from alerts.store.db import Database
from alerts.store.models import AlertChange, SignalRecord
from streams.ingest import split_lines
from tests.support import (SAMPLES, RunningPipeline, backtest_samples, base_env, cli, jsonl, stored_alert_changes,
                           wait_for_verdicts, wait_until)

pytestmark = pytest.mark.broker


def _schema(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SAMPLES.parent / name).read_text()))


@pytest.fixture(scope="module")
def samples_run(module_database_url, tmp_path_factory, shared_dir):
    home = tmp_path_factory.mktemp("home")
    env = base_env(home, module_database_url)
    run = RunningPipeline(home, env, module_database_url).start()
    try:
        imported = cli(["enterprises", "import", str(SAMPLES / "enterprises.csv")], env)
        assert imported.stdout.strip().endswith("added 24, updated 0, rejected 0")
        published = cli(["ingest", str(SAMPLES / "signals.jsonl")], env)
        assert "published 10883 signals" in published.stdout
        db = Database(module_database_url, run_migrations=False)
        expected = json.loads((SAMPLES / "expected.json").read_text())
        wait_for_verdicts(db, expected["lines"])
        # Alerts reach the store two topics after the ledger (alerts, then the queues), so a
        # verdict for every line does not mean every alert is stored yet: wait for as many
        # alert revisions as `laborwatch backtest` raises on the same input (the parity test
        # below compares them one by one).
        backtest = backtest_samples(tmp_path_factory.mktemp("backtest"), env)
        wait_until(lambda: len(stored_alert_changes(db)) >= len(backtest), timeout=60,
                   what="the alert store to catch up")
        yield run, db, env, backtest
        db.dispose()
    finally:
        assert run.stop() == 0, run.output()[-3000:]


def test_samples_match_expected_line_for_line(samples_run):
    run, db, env, _ = samples_run
    expected = json.loads((SAMPLES / "expected.json").read_text())
    lines = split_lines((SAMPLES / "signals.jsonl").read_bytes())
    assert len(lines) == expected["lines"]
    rejected_lines = {r["line"]: r["reason"] for r in expected["rejected"]}

    # Dead letters: exactly the listed lines, each with exactly its reason (matched by payload;
    # identical payloads are compared as a multiset).
    letters = jsonl(cli(["dlq", "export"], env).stdout)
    validator = _schema("dead_letter.schema.json")
    for letter in letters:
        validator.validate(letter)
    got = Counter((d["payload"], d["reason"]) for d in letters)
    want = Counter((lines[n - 1].decode("utf-8"), reason) for n, reason in rejected_lines.items())
    assert got == want
    assert all(d["detail"] for d in letters)

    # Accepted: every other line exactly once, the first occurrence of each signal id.
    accepted_lines = [json.loads(lines[n - 1]) for n in range(1, len(lines) + 1) if n not in rejected_lines]
    assert len(accepted_lines) == expected["accepted"]
    with db.session() as session:
        ledger = session.execute(select(SignalRecord.enterprise_id, SignalRecord.signal_id, SignalRecord.payload)).all()
    assert len(ledger) == expected["accepted"]
    assert {(e, s): p for e, s, p in ledger} == {(s["enterprise_id"], s["signal_id"]): s for s in accepted_lines}

    # Every listed collective incident raised a collective_incident alert with its size band.
    alerts = jsonl(cli(["alerts", "export"], env).stdout)
    alert_validator = _schema("alert.schema.json")
    for alert in alerts:
        alert_validator.validate(alert)
    collective = {(a["enterprise_id"], a["triggered_by"]): a for a in alerts if a["category"] == "collective_incident"}
    for incident in expected["collective_incidents"]:
        alert = collective[(incident["enterprise_id"], incident["signal_id"])]
        assert alert["size_band"] == incident["size_band"]
        assert alert["level"] == "red"
        assert alert["queue"].startswith("street:")
    assert len(collective) == len(expected["collective_incidents"])


def test_stream_raises_the_same_alerts_as_backtest(samples_run):
    run, db, env, backtest = samples_run
    assert backtest, "the samples raise alerts"

    def key(alert_id, level, size_band, triggered_by, score):
        return (alert_id, level, size_band, triggered_by, round(score, 6))

    want = sorted(key(a["alert_id"], a["level"], a.get("size_band"), a["triggered_by"], a["score"]) for a in backtest)

    def stored():
        with db.session() as session:
            rows = session.execute(select(AlertChange.alert_id, AlertChange.level, AlertChange.size_band,
                                          AlertChange.triggered_by, AlertChange.score)).all()
        return sorted(key(*row) for row in rows)

    assert stored() == want
    # And the current state of each alert is the last backtest line for it.
    last = {a["alert_id"]: a for a in backtest}
    exported = {a["alert_id"]: a for a in jsonl(cli(["alerts", "export"], env).stdout)}
    assert exported.keys() == last.keys()
    for alert_id, alert in last.items():
        mine = exported[alert_id]
        assert {k: v for k, v in mine.items() if k != "raised_at"} == {k: v for k, v in alert.items() if k != "raised_at"}


def test_metrics_count_exactly_what_expected_json_says(samples_run):
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    run, db, env, _ = samples_run
    expected = json.loads((SAMPLES / "expected.json").read_text())
    url = json.loads((run.home / "run.json").read_text())["metrics_url"]
    samples = {}
    for family in text_string_to_metric_families(urlopen(url, timeout=10).read().decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def total(name: str) -> float:
        return sum(v for (n, _), v in samples.items() if n == name)

    rejected_by_reason = {
        dict(labels)["reason"]: v for (n, labels), v in samples.items() if n == "laborwatch_signals_rejected_total" and v
    }
    assert rejected_by_reason == Counter(r["reason"] for r in expected["rejected"])
    assert total("laborwatch_signals_accepted_total") == expected["accepted"]
    assert total("laborwatch_signals_received_total") == expected["lines"]
    assert total("laborwatch_alerts_raised_total") >= len(expected["collective_incidents"])
    from models.registry import ModelRegistry

    from config.files import load_configs
    from config.settings import CONFIG_DIR

    registry = ModelRegistry(run.home / "models")
    serving = registry.promoted() or "rules-v1"
    levels = load_configs(CONFIG_DIR).levels.thresholds_for(
        registry.card(serving).levels if serving != "rules-v1" else None)  # the card's, or config's
    labels = (("blue", f"{levels.blue:g}"), ("version", serving), ("yellow", f"{levels.yellow:g}"))
    assert ("laborwatch_model_info", labels) in samples


def test_the_metrics_port_serves_the_workbenchs_metrics_and_the_web_port_none(samples_run):
    """config/prometheus.yml's laborwatch-web job scrapes the metrics port, where the workbench's
    metrics sit beside the worker's; the web port, published to people, serves no metrics."""
    from urllib.error import HTTPError
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    run, _, _, _ = samples_run
    state = json.loads((run.home / "run.json").read_text())
    web_url = state["web_url"].rstrip("/")
    urlopen(f"{web_url}/login", timeout=10).read()  # one request the workbench counts
    text = urlopen(state["metrics_url"], timeout=10).read().decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert {"laborwatch_signals_received_total", "laborwatch_web_requests_total"} <= names
    with pytest.raises(HTTPError) as refused:
        urlopen(f"{web_url}/metrics", timeout=10).read()
    assert refused.value.code == 404
