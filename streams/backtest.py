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
from typing import Callable, Iterable, TextIO

from alerts.registry import read_enterprises
from alerts.routing import Router
from config.files import Configs
from models.scoring import RulesScorer, Scorer
from streams.ingest import read_lines
from streams.pipeline import Coords, EnterpriseRecord, Envelope, Outcome, Pipeline

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
class Replay:
    """``Pipeline.process`` over the lines of a signal file: coordinates ("file:<name>", 0, line
    number), one ``now``, a memory of first-seen ids. The backtest and the training snapshots
    both replay through it."""

    pipeline: Pipeline
    registry: dict[str, dict]
    lines: list[bytes]
    topic: str
    now: datetime
    records: dict[str, EnterpriseRecord] = field(default_factory=dict)
    seen: MemorySeen = field(default_factory=MemorySeen)
    alerts: list[dict] = field(default_factory=list)  # unrouted alert events, in order
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    first_rejected: list[dict] = field(default_factory=list)  # the first few dead letters: where, why
    batch_size: int = 2000  # the outcome does not depend on it (a test proves it)
    on_outcome: Callable[[Outcome], None] | None = None  # sees every batch's outcome, in order

    @classmethod
    def of_files(cls, pipeline: Pipeline, enterprises: Path, signals: Path, **kwargs) -> "Replay":
        """A replay of the signal file ``signals`` against the registry file ``enterprises``."""
        rows, rejected = read_enterprises(enterprises)
        if not rows:
            # Every signal would be an unknown enterprise: a wrong file, not a quiet district.
            first = f"; line {rejected[0].line}: {rejected[0].reason}" if rejected else ""
            raise ValueError(f"{enterprises}: no valid enterprise in the registry file "
                             f"({len(rejected)} rows rejected{first})")
        return cls(pipeline, {row["enterprise_id"]: row for row in rows}, read_lines(signals),
                   f"file:{signals.name}", datetime.now(timezone.utc), **kwargs)

    def feed(self, start: int, stop: int, advance: Callable[[float], None] = lambda n=1: None) -> int:
        """Process lines[start:stop]; returns how many were accepted."""
        accepted = 0
        for first in range(start, stop, self.batch_size):
            last = min(stop, first + self.batch_size)
            envelopes = [
                Envelope(raw=self.lines[i], topic=self.topic, partition=0, offset=i + 1, received_at=self.now)
                for i in range(first, last)
            ]
            outcome = self.pipeline.process(
                envelopes, registry=self.registry, load_record=self.records.get, seen=self.seen, now=self.now
            )
            self.records.update(outcome.records)
            if self.on_outcome is not None:
                self.on_outcome(outcome)
            for item in outcome.accepted:
                self.seen.first[(item.signal["enterprise_id"], item.signal["signal_id"])] = item.envelope.coords
            accepted += len(outcome.accepted)
            self.rejected.update(d["reason"] for d in outcome.dead_letters)
            if outcome.dead_letters and len(self.first_rejected) < FIRST_REJECTED:
                # a batch's dead letters come validation's first: put them back in line order
                self.first_rejected.extend(sorted(
                    ({"line": d["offset"], "reason": d["reason"], "detail": d["detail"]} for d in outcome.dead_letters),
                    key=lambda d: d["line"],
                )[: FIRST_REJECTED - len(self.first_rejected)])
            self.alerts.extend(outcome.alerts)
            advance(last - first)
        self.accepted += accepted
        return accepted

    def account(self) -> str:
        return signal_account(self.accepted, self.rejected, self.first_rejected)


#: How many rejected lines a replay keeps, to show where the trouble is.
FIRST_REJECTED = 3


def signal_account(accepted: int, rejected: dict[str, int], first: list[dict]) -> str:
    """One line on what a signal file gave: lines accepted, lines set aside by reason (the
    dead-letter reasons of the stream), and where the first of those are."""
    if not rejected:
        return f"signals: {accepted:,} accepted, none rejected"
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0])))
    where = "; ".join(f"line {d['line']} {d['reason']}: {d['detail']}" for d in first)
    return f"signals: {accepted:,} accepted, {sum(rejected.values()):,} rejected ({reasons}); first: {where}"


def run_backtest(
    configs: Configs,
    enterprises: Path,
    signals: Path,
    out: TextIO,
    *,
    scorer: Scorer | None = None,
    batch_size: int = 2000,
) -> Replay:
    """Replay ``signals`` and write one contract alert line per alert raised or escalated."""
    replay = Replay.of_files(Pipeline(configs, scorer or RulesScorer(configs.rules)), enterprises, signals,
                             batch_size=batch_size)
    replay.feed(0, len(replay.lines))
    router = Router(configs.routing)
    for alert in replay.alerts:
        out.write(json.dumps(contract_alert(router.routed(alert)), ensure_ascii=False) + "\n")
    return replay
