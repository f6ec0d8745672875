"""streams.pipeline.Pipeline with no broker: duplicates, redeliveries, staleness, collective
incidents, batch-size independence and the contract samples (driven as streams.backtest does)."""
from __future__ import annotations

import io
import itertools
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from alerts.registry import read_enterprises
from alerts.routing import Router
from config.files import load_configs
from config.settings import CONFIG_DIR
from models.features import features
from models.scoring import RulesScorer
from streams.backtest import MemorySeen, contract_alert, run_backtest
from streams.ingest import split_lines
from streams.pipeline import EnterpriseRecord, Envelope, Outcome, Pipeline
from tests.unit.test_state_features import utility

CONFIGS = load_configs(CONFIG_DIR)
NOW = datetime(2025, 7, 1, tzinfo=timezone.utc)
EID = "91440306BXKFLJ2K06"
OTHER = "91440306P0MQ25QYJW"
REGISTRY = {
    EID: {"enterprise_id": EID, "name": "Xixiang Electronics", "industry": "manufacturing",
          "district": "baoan", "street": "xixiang", "community": "xixiang-c1", "grid": "xixiang-c1-g1",
          "headcount": 120},
    OTHER: {"enterprise_id": OTHER, "name": "Hangcheng Retail", "industry": "retail",
            "district": "baoan", "street": "hangcheng", "community": "hangcheng-c1",
            "grid": "hangcheng-c1-g5", "headcount": 57},
}
SHARED = Path(__file__).resolve().parents[3] / "shared"
SAMPLES = SHARED / "contract" / "samples"
CONTRACT = Path(__file__).resolve().parents[2] / "config" / "contract"
_ids = itertools.count(1)


# --- contract-shaped signals -----------------------------------------------------------------
def inspection(day: str, *, eid: str = EID, kind: str = "complaint", workers: int = 3, findings=(),
               signal_id: str | None = None) -> dict:
    return {
        "signal_id": signal_id or f"ins-{next(_ids):08d}",
        "type": "inspection",
        "enterprise_id": eid,
        "observed_at": f"{day}T15:00:00+08:00",
        "source": "inspection-app",
        "kind": kind,
        "workers_involved": workers,
        "findings": list(findings),
    }


def unpaid_wage(period: str, due_date: str, observed_day: str, *, eid: str = EID,
                signal_id: str | None = None) -> dict:
    return {
        "signal_id": signal_id or f"pay-{next(_ids):08d}",
        "type": "wage",
        "enterprise_id": eid,
        "observed_at": f"{observed_day}T18:00:00+08:00",
        "source": "payroll-bank",
        "period": period,
        "headcount": 120,
        "wages_due": 800_000.0,
        "wages_paid": 0.0,
        "due_date": due_date,
        "paid_date": None,
    }


class Harness:
    """The pipeline with an in-memory record store and signal ledger, committed like the backtest."""

    def __init__(self, topic: str = "laborwatch.signals"):
        self.pipeline = Pipeline(CONFIGS, RulesScorer(CONFIGS.rules))
        self.records: dict[str, EnterpriseRecord] = {}
        self.seen = MemorySeen()
        self.topic = topic
        self.offsets = itertools.count(0)

    def envelope(self, signal: dict | bytes, *, offset: int | None = None, partition: int = 0) -> Envelope:
        raw = signal if isinstance(signal, bytes) else json.dumps(signal).encode()
        return Envelope(raw=raw, topic=self.topic, partition=partition,
                        offset=next(self.offsets) if offset is None else offset, received_at=NOW)

    def process(self, envelopes: list[Envelope], *, commit: bool = True, observe=None) -> Outcome:
        outcome = self.pipeline.process(
            envelopes, registry=REGISTRY, load_record=self.records.get, seen=self.seen, now=NOW, observe=observe
        )
        if commit:
            self.commit(outcome)
        return outcome

    def commit(self, outcome: Outcome) -> None:
        self.records.update(outcome.records)
        for accepted in outcome.accepted:
            key = (accepted.signal["enterprise_id"], accepted.signal["signal_id"])
            self.seen.first[key] = accepted.envelope.coords


def _ids_of(outcome: Outcome) -> list[str]:
    return [a.signal["signal_id"] for a in outcome.accepted]


# --- the registry in the state ------------------------------------------------------------------
def test_the_state_carries_the_registrys_headcount_as_at_its_last_signal():
    p = Harness()
    p.process([p.envelope(utility("2025-06-01", 100.0))])
    assert p.records[EID].state.headcount == 120
    assert features(p.records[EID].state)["headcount_band"] == 2.0  # 100-299
    moved = dict(REGISTRY[EID], headcount=1500)  # the registry was re-imported meanwhile
    outcome = p.pipeline.process([p.envelope(utility("2025-06-02", 100.0))], registry={EID: moved},
                                 load_record=p.records.get, seen=p.seen, now=NOW)
    assert outcome.records[EID].state.headcount == 1500
    assert features(outcome.records[EID].state)["headcount_band"] == 4.0


# --- duplicates and redeliveries ---------------------------------------------------------------
def test_duplicate_signal_id_in_a_later_batch():
    h = Harness()
    signal = inspection("2025-03-01", signal_id="ins-dup")
    first = h.process([h.envelope(signal)])
    assert _ids_of(first) == ["ins-dup"]
    again = h.process([h.envelope(dict(signal, note="sent twice"))])
    assert again.accepted == []
    assert [d["reason"] for d in again.dead_letters] == ["duplicate"]
    dl = again.dead_letters[0]
    assert dl["signal_id"] == "ins-dup"
    assert dl["offset"] == 1
    assert "offset 0" in dl["detail"]
    assert h.records[EID].state.signals_applied == 1


def test_duplicate_signal_id_in_the_same_batch():
    h = Harness()
    signal = inspection("2025-03-01", signal_id="ins-dup")
    outcome = h.process([h.envelope(signal), h.envelope(inspection("2025-03-02")), h.envelope(signal)])
    assert len(outcome.accepted) == 2
    assert _ids_of(outcome).count("ins-dup") == 1
    assert [(d["reason"], d["offset"]) for d in outcome.dead_letters] == [("duplicate", 2)]
    assert "(laborwatch.signals partition 0 offset 0)" in outcome.dead_letters[0]["detail"]


def test_a_duplicate_in_a_file_names_the_line_of_the_first():
    h = Harness()
    at = lambda line, signal: Envelope(json.dumps(signal).encode(), "file:s.jsonl", 0, line, NOW)  # noqa: E731
    signal = inspection("2025-03-01", signal_id="ins-dup")
    outcome = h.process([at(7, signal), at(8, inspection("2025-03-02")), at(9, signal)])
    assert outcome.dead_letters[0]["detail"] == "signal_id 'ins-dup' was accepted before (s.jsonl line 7)"


def test_same_signal_id_at_another_enterprise_is_not_a_duplicate():
    h = Harness()
    outcome = h.process([h.envelope(inspection("2025-03-01", signal_id="ins-x")),
                         h.envelope(inspection("2025-03-01", signal_id="ins-x", eid=OTHER))])
    assert len(outcome.accepted) == 2
    assert outcome.dead_letters == []


def test_redelivered_envelope_is_skipped_silently():
    h = Harness()
    # Three months of unpaid wages: the signal raises a red risk alert.
    raising = unpaid_wage("2025-01", "2025-02-07", "2025-04-15")
    env = h.envelope(raising)
    first = h.process([env])
    assert _ids_of(first) == [raising["signal_id"]]
    assert [(a["category"], a["level"]) for a in first.alerts] == [("risk", "red")]
    applied = h.records[EID].state.signals_applied

    again = h.process([env])  # same topic, partition and offset: a redelivery after a crash
    assert again.accepted == []
    assert again.dead_letters == []
    assert again.alerts == []
    assert h.records[EID].state.signals_applied == applied


def test_redelivery_within_one_batch_is_skipped_silently():
    h = Harness()
    env = h.envelope(inspection("2025-03-01", workers=45))
    outcome = h.process([env, env])
    assert len(outcome.accepted) == 1
    assert outcome.dead_letters == []
    # one collective incident, and one risk alert (a complaint is evidence), each raised once
    assert sorted((a["category"], a["revision"]) for a in outcome.alerts) == [
        ("collective_incident", 1), ("risk", 1),
    ]


def test_redelivery_when_ledger_but_not_state_was_committed_is_applied_not_duplicate():
    """The ledger says the signal was accepted at these very coordinates but the enterprise record
    was lost: the redelivery is the same input, so it is applied, not rejected as a duplicate."""
    h = Harness()
    env = h.envelope(inspection("2025-03-01", signal_id="ins-lost"))
    h.seen.first[(EID, "ins-lost")] = env.coords
    outcome = h.process([env])
    assert _ids_of(outcome) == ["ins-lost"]
    assert outcome.dead_letters == []


def test_invalid_input_does_not_take_its_neighbours_down():
    h = Harness()
    good_before, good_after = inspection("2025-03-01"), inspection("2025-03-02")
    outcome = h.process([h.envelope(good_before), h.envelope(b'{"signal_id": '), h.envelope(good_after)])
    assert _ids_of(outcome) == [good_before["signal_id"], good_after["signal_id"]]
    assert [(d["reason"], d["offset"]) for d in outcome.dead_letters] == [("invalid_json", 1)]


# --- staleness -------------------------------------------------------------------------------
def test_stale_signal_is_rejected_and_recent_enough_one_accepted():
    h = Harness()
    h.process([h.envelope(inspection("2025-06-01"))])
    old = inspection("2024-04-27")  # 400 days before 2025-06-01
    late = inspection("2025-05-02")  # 30 days before
    outcome = h.process([h.envelope(old), h.envelope(late)])
    assert _ids_of(outcome) == [late["signal_id"]]
    assert [(d["reason"], d["signal_id"]) for d in outcome.dead_letters] == [("stale", old["signal_id"])]
    assert "365 days" in outcome.dead_letters[0]["detail"]
    assert h.records[EID].state.clock_day == datetime(2025, 6, 1).toordinal()


def test_staleness_is_per_enterprise():
    h = Harness()
    h.process([h.envelope(inspection("2025-06-01"))])
    outcome = h.process([h.envelope(inspection("2024-04-27", eid=OTHER))])
    assert len(outcome.accepted) == 1
    assert outcome.dead_letters == []


# --- alerts ----------------------------------------------------------------------------------
def test_collective_complaint_raises_a_collective_incident():
    h = Harness()
    complaint = inspection("2025-03-01", workers=63, findings=["wage_arrears", "owner_absent"])
    outcome = h.process([h.envelope(complaint)])
    collective = [a for a in outcome.alerts if a["category"] == "collective_incident"]
    assert len(collective) == 1
    alert = collective[0]
    assert alert["size_band"] == "51-200"
    assert alert["level"] == "red"
    assert alert["score"] == 1.0
    assert alert["triggered_by"] == complaint["signal_id"]
    assert alert["enterprise_id"] == EID
    assert alert["reasons"][0]["code"] == "collective_incident"
    assert alert["reasons"][0]["value"] == 63
    assert alert["reasons"][0]["text"].startswith("63 workers acting together (complaint via inspection-app)")
    assert alert["labels"]["street"] == "xixiang"
    routed = Router(CONFIGS.routing).routed(alert)
    assert [q["queue"] for q in routed["queues"]] == ["street:xixiang", "district:baoan-command"]
    # The owner-absent finding also scores the enterprise as a risk, separately.
    risk = [a for a in outcome.alerts if a["category"] == "risk"]
    assert [a["level"] for a in risk] == ["red"]
    assert risk[0]["alert_id"] != alert["alert_id"]


def test_below_min_workers_is_no_collective_incident():
    h = Harness()
    outcome = h.process([h.envelope(inspection("2025-03-01", workers=29))])
    assert [a for a in outcome.alerts if a["category"] == "collective_incident"] == []


def test_growing_collective_incident_escalates_the_same_alert():
    h = Harness()
    def collective(day: str, workers: int) -> list[dict]:
        alerts = h.process([h.envelope(inspection(day, workers=workers))]).alerts
        return [a for a in alerts if a["category"] == "collective_incident"]

    first = collective("2025-03-01", 40)
    same = collective("2025-03-02", 45)
    grown = collective("2025-03-03", 250)
    assert [(a["size_band"], a["revision"], a["change"]) for a in first] == [("30-50", 1, "raised")]
    assert same == []
    assert [(a["size_band"], a["revision"], a["change"]) for a in grown] == [("201-500", 2, "escalated")]
    assert grown[0]["alert_id"] == first[0]["alert_id"]


def test_risk_alert_escalates_as_wages_stay_unpaid():
    h = Harness()
    s1 = unpaid_wage("2025-01", "2025-02-07", "2025-02-14")  # 7 days overdue: yellow
    s2 = unpaid_wage("2025-01", "2025-02-07", "2025-03-12")  # 33 days: orange
    s3 = unpaid_wage("2025-01", "2025-02-07", "2025-03-13")  # still orange: no news
    outcome = h.process([h.envelope(s) for s in (s1, s2, s3)])
    assert [(a["level"], a["revision"], a["triggered_by"]) for a in outcome.alerts] == [
        ("yellow", 1, s1["signal_id"]), ("orange", 2, s2["signal_id"]),
    ]
    assert len({a["alert_id"] for a in outcome.alerts}) == 1


# --- batch-size independence and the contract samples ----------------------------------------
needs_samples = pytest.mark.skipif(not SAMPLES.exists(), reason="../shared/contract/samples is missing")


def _backtest(batch_size: int) -> tuple[str, object]:
    buf = io.StringIO()
    result = run_backtest(CONFIGS, SAMPLES / "enterprises.csv", SAMPLES / "signals.jsonl", buf,
                          batch_size=batch_size)
    return buf.getvalue(), result


@needs_samples
def test_backtest_output_does_not_depend_on_batch_size():
    outputs = {size: _backtest(size) for size in (1, 7, 2000)}
    text, result = outputs[2000]
    assert result.alerts and text.count("\n") == len(result.alerts)
    for size in (1, 7):
        other_text, other = outputs[size]
        assert other_text == text, f"batch_size {size} differs from 2000"
        assert (other.accepted, dict(other.rejected), len(other.alerts)) == (
            result.accepted, dict(result.rejected), len(result.alerts)
        )


class _Replay:
    def __init__(self, dead_letters, alerts, accepted, lines):
        self.dead_letters, self.alerts, self.accepted, self.lines = dead_letters, alerts, accepted, lines


@pytest.fixture(scope="module")
def replay() -> _Replay:
    """The samples through Pipeline.process as run_backtest drives it, keeping the dead letters."""
    if not SAMPLES.exists():
        pytest.skip("../shared/contract/samples is missing")
    rows, _ = read_enterprises(SAMPLES / "enterprises.csv")
    registry = {row["enterprise_id"]: row for row in rows}
    pipeline = Pipeline(CONFIGS, RulesScorer(CONFIGS.rules))
    router = Router(CONFIGS.routing)
    records: dict[str, EnterpriseRecord] = {}
    seen = MemorySeen()
    lines = split_lines((SAMPLES / "signals.jsonl").read_bytes())
    dead, alerts, accepted = [], [], 0
    for start in range(0, len(lines), 2000):
        envelopes = [
            Envelope(raw=line, topic="file:signals.jsonl", partition=0, offset=start + i + 1, received_at=NOW)
            for i, line in enumerate(lines[start:start + 2000])
        ]
        outcome = pipeline.process(envelopes, registry=registry, load_record=records.get, seen=seen, now=NOW)
        records.update(outcome.records)
        for a in outcome.accepted:
            seen.first[(a.signal["enterprise_id"], a.signal["signal_id"])] = a.envelope.coords
        accepted += len(outcome.accepted)
        dead.extend(outcome.dead_letters)
        alerts.extend(router.routed(a) for a in outcome.alerts)
    return _Replay(dead, alerts, accepted, len(lines))


@pytest.fixture(scope="module")
def expected() -> dict:
    if not SAMPLES.exists():
        pytest.skip("../shared/contract/samples is missing")
    return json.loads((SAMPLES / "expected.json").read_text())


def test_samples_rejections_are_exactly_the_expected_lines(replay, expected):
    got = sorted((d["offset"], d["reason"]) for d in replay.dead_letters)
    want = sorted((r["line"], r["reason"]) for r in expected["rejected"])
    assert got == want
    assert len({d["offset"] for d in replay.dead_letters}) == len(replay.dead_letters)  # each once
    assert replay.lines == expected["lines"]
    assert replay.accepted == expected["accepted"]
    assert replay.accepted + len(replay.dead_letters) == replay.lines


def test_samples_dead_letters_follow_the_contract(replay):
    schema = json.loads((CONTRACT / "dead_letter.schema.json").read_text())
    validator = Draft202012Validator(schema)
    for dl in replay.dead_letters:
        assert list(validator.iter_errors(dl)) == [], dl
        assert dl["topic"] == "file:signals.jsonl"


def test_samples_collective_incidents(replay, expected):
    collective = [a for a in replay.alerts if a["category"] == "collective_incident"]
    for incident in expected["collective_incidents"]:
        hits = [a for a in collective if a["triggered_by"] == incident["signal_id"]]
        assert len(hits) == 1, incident
        alert = hits[0]
        assert alert["enterprise_id"] == incident["enterprise_id"]
        assert alert["size_band"] == incident["size_band"]
        assert alert["level"] == CONFIGS.levels.collective_incident.level
        assert alert["reasons"][0]["value"] == incident["workers_involved"]
        assert "district:" in " ".join(q["queue"] for q in alert["queues"])
    assert len(collective) >= len(expected["collective_incidents"])


def test_samples_alerts_follow_the_contract(replay):
    schema = json.loads((CONTRACT / "alert.schema.json").read_text())
    validator = Draft202012Validator(schema)
    assert replay.alerts
    for alert in replay.alerts:
        assert list(validator.iter_errors(contract_alert(alert))) == [], alert


def test_a_table_value_never_changes_behind_the_tables_back():
    """The worker's table keeps the very dict it is given, and a batch that fails after changing
    its records in place is retried from the table: neither direction may share anything."""
    h = Harness()
    h.process([h.envelope(unpaid_wage("2025-04", "2025-05-07", "2025-05-20"))])
    stored = h.records[EID].to_dict()
    before = json.loads(json.dumps(stored))
    h.records = {EID: EnterpriseRecord.from_dict(stored)}
    h.process([h.envelope(unpaid_wage("2025-05", "2025-06-07", "2025-06-20")),
               h.envelope(inspection("2025-06-21", workers=40, findings=["wage_arrears"]))])
    h.process([h.envelope({**utility("2025-06-21", 120.0, meter="E9"), "enterprise_id": EID})])
    assert json.loads(json.dumps(stored)) == before
    assert h.records[EID].alerts and h.records[EID].alerts != before["alerts"]
    again = h.records[EID].to_dict()
    h.process([h.envelope(inspection("2025-06-25", workers=80, findings=["wage_arrears"]))])
    assert again["applied"] != h.records[EID].to_dict()["applied"]


# --- the shadow's open alerts live in the record --------------------------------------------------
class _Renamed(RulesScorer):
    """The rules under another version: a second model that decides as the first."""

    def __init__(self, version: str):
        super().__init__(CONFIGS.rules)
        self.version = version


def _through_the_table(h: Harness) -> None:
    """What a restart or a hand-over does to the records: the table's JSON, decoded again."""
    h.records = {eid: EnterpriseRecord.from_dict(json.loads(json.dumps(r.to_dict()))) for eid, r in h.records.items()}


def test_a_shadows_open_alerts_outlive_a_restart_and_a_resolution_closes_them():
    h = Harness()
    shadow = h.pipeline.shadow(_Renamed("m-shadow"))
    h.process([h.envelope(unpaid_wage("2025-01", "2025-02-07", "2025-02-14"))])  # yellow, for both
    assert [a["level"] for a in shadow.alerts] == ["yellow"]
    assert set(h.records[EID].to_dict()["shadow_alerts"]["m-shadow"]) == {"risk"}

    _through_the_table(h)
    h.pipeline.shadows.clear()  # a restarted worker reads the shadow again from the model-updates topic
    shadow = h.pipeline.shadow(_Renamed("m-shadow"))
    h.process([h.envelope(unpaid_wage("2025-01", "2025-02-07", "2025-02-15"))])  # still yellow: no news
    assert shadow.alerts == [], "a restart must not make the shadow raise again on a firm already at risk"
    h.process([h.envelope(unpaid_wage("2025-01", "2025-02-07", "2025-03-12"))])  # orange
    assert [(a["level"], a["revision"]) for a in shadow.alerts] == [("orange", 2)]

    # An inspector resolves the promoted model's alert: the shadow's of that category closes too.
    record = h.records[EID]
    assert record.close_alert(record.alerts["risk"]["alert_id"]) == "risk"
    assert record.shadow_alerts == {"m-shadow": {}}
    _through_the_table(h)
    assert "shadow_alerts" not in h.records[EID].to_dict()
    shadow.alerts.clear()
    h.process([h.envelope(unpaid_wage("2025-01", "2025-02-07", "2025-03-13"))])
    assert [(a["level"], a["revision"]) for a in shadow.alerts] == [("orange", 1)], "a new alert, not an escalation"


def test_another_shadow_begins_afresh_and_a_stopped_one_is_forgotten():
    h = Harness()
    h.pipeline.shadow(_Renamed("m-first"))
    h.process([h.envelope(unpaid_wage("2025-01", "2025-02-07", "2025-02-14"))])
    assert set(h.records[EID].shadow_alerts) == {"m-first"}

    h.pipeline.shadows.clear()
    second = h.pipeline.shadow(_Renamed("m-second"))
    h.process([h.envelope(unpaid_wage("2025-01", "2025-02-07", "2025-02-15"))])
    assert [a["level"] for a in second.alerts] == ["yellow"], "the new version has no open alert yet"
    assert set(h.records[EID].shadow_alerts) == {"m-second"}

    h.pipeline.shadows.clear()  # models shadow --off
    h.process([h.envelope(unpaid_wage("2025-01", "2025-02-07", "2025-02-16"))])
    assert h.records[EID].shadow_alerts == {}
    assert "shadow_alerts" not in h.records[EID].to_dict()


def test_the_metrics_see_only_the_rows_a_redone_batch_brings_anew():
    """``observe`` keeps the rows of a batch redone after a failure that the metrics saw before."""
    seen: list[int] = []
    h = Harness()
    h.pipeline.on_scored = lambda rows, scores, seconds, days: seen.append(len(rows))
    first = [h.envelope(unpaid_wage("2025-01", "2025-02-07", "2025-02-14"))]
    again = [h.envelope(unpaid_wage("2025-02", "2025-03-07", "2025-03-14"))]
    h.process(first, commit=False)
    h.process(first + again, observe=lambda env: env.coords in {again[0].coords})
    h.process([h.envelope(unpaid_wage("2025-03", "2025-04-07", "2025-04-14"))], observe=lambda env: False)
    assert seen == [1, 1], "the redone batch's earlier row is not seen again; a batch with none new is not seen"
