"""`laborwatch backtest`: the live pipeline's code over files, with no broker.

The signal file is replayed in its line order, which is the order `ingest` publishes it in and
so the order the stream sees it in; event time (``observed_at``) is the clock inside, as in the
stream. Each input's coordinates are ("file:<name>", 0, line number).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, TextIO

from alerts.registry import read_enterprises
from alerts.routing import Router
from config.files import Configs
from models.scoring import RulesScorer, Scorer
from streams.ingest import split_lines
from streams.pipeline import Coords, EnterpriseRecord, Envelope, Pipeline

ALERT_FIELDS = json.loads(
    (Path(__file__).resolve().parents[1] / "config" / "contract" / "alert.schema.json").read_text()
)["properties"].keys()


def contract_alert(alert: dict) -> dict:
    """Only the contract's fields of an alert, in the contract's order."""
    return {k: alert[k] for k in ALERT_FIELDS if k in alert}


class MemorySeen:
    def __init__(self) -> None:
        self.first: dict[tuple[str, str], Coords] = {}

    def lookup(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Coords]:
        return {k: self.first[k] for k in keys if k in self.first}


@dataclass
class BacktestResult:
    lines: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    alerts: int = 0
    records: dict[str, EnterpriseRecord] = field(default_factory=dict)


def run_backtest(
    configs: Configs,
    enterprises: Path,
    signals: Path,
    out: TextIO,
    *,
    scorer: Scorer | None = None,
    batch_size: int = 2000,
) -> BacktestResult:
    rows, _ = read_enterprises(enterprises)
    registry = {row["enterprise_id"]: row for row in rows}
    pipeline = Pipeline(configs, scorer or RulesScorer(configs.rules))
    router = Router(configs.routing)
    seen = MemorySeen()
    result = BacktestResult()
    lines = split_lines(signals.read_bytes())
    result.lines = len(lines)
    topic = f"file:{signals.name}"
    now = datetime.now(timezone.utc)
    for start in range(0, len(lines), batch_size):
        envelopes = [
            Envelope(raw=line, topic=topic, partition=0, offset=start + i + 1, received_at=now)
            for i, line in enumerate(lines[start : start + batch_size])
        ]
        outcome = pipeline.process(
            envelopes, registry=registry, load_record=result.records.get, seen=seen, now=now
        )
        result.records.update(outcome.records)
        for accepted in outcome.accepted:
            seen.first[(accepted.signal["enterprise_id"], accepted.signal["signal_id"])] = accepted.envelope.coords
        result.accepted += len(outcome.accepted)
        result.rejected.update(d["reason"] for d in outcome.dead_letters)
        for alert in outcome.alerts:
            out.write(json.dumps(contract_alert(router.routed(alert)), ensure_ascii=False) + "\n")
            result.alerts += 1
    return result
