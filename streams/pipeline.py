"""The pipeline's logic, with no broker in it: validate, update state, score, level, dedup.

The Faust agent (``streams.agents``) and ``laborwatch backtest`` both call ``Pipeline.process``
on batches of raw inputs; they differ only in where inputs come from and where outcomes go.
That is what makes the stream and the backtest raise the same alerts.

Exactly-once effect on an at-least-once stream: each input carries its coordinates (topic,
partition, offset; or file and line). The enterprise record remembers the last offset it applied
per partition, so an input redelivered after a crash is recognised and skipped; and the ledger of
accepted signals remembers where each signal id was first accepted, so a redelivery is not
mistaken for a duplicate.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Protocol, Sequence

from alerts.dedup import decide
from alerts.levels import size_band
from config.files import Configs, Thresholds
from models.features import features
from models.scoring import Scorer
from models.state import EnterpriseState, Retention, local_day
from streams.validation import Rejection, parse_timestamp, payload_text, validate_signal

Coords = tuple[str, int, int]  # (topic or "file:<name>", partition, offset or line number)
ENTERPRISE_LABELS = ("district", "street", "community", "grid", "industry")


@dataclass(frozen=True)
class Envelope:
    raw: bytes
    topic: str
    partition: int
    offset: int
    received_at: datetime

    @property
    def coords(self) -> Coords:
        return (self.topic, self.partition, self.offset)


@dataclass
class EnterpriseRecord:
    """What the stream keeps per enterprise: its state, its open alerts, what it has applied."""

    state: EnterpriseState
    alerts: dict[str, dict] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> last offset
    # The open alerts of each model scoring in shadow (version -> category -> alert): kept with the
    # record, so that a restart or a hand-over does not make a shadow raise again on every firm
    # already at risk (its decisions would then outnumber the promoted model's for no reason).
    shadow_alerts: dict[str, dict[str, dict]] = field(default_factory=dict)

    def has_applied(self, env: Envelope) -> bool:
        return self.applied.get(f"{env.topic}/{env.partition}", -1) >= env.offset

    def mark_applied(self, env: Envelope) -> None:
        self.applied[f"{env.topic}/{env.partition}"] = env.offset

    def close_alert(self, alert_id: str) -> str | None:
        """Forget the open alert ``alert_id`` (resolved by a person); its category, or None if
        it is not open."""
        for category, entry in list(self.alerts.items()):
            if entry["alert_id"] == alert_id:
                del self.alerts[category]
                for book in self.shadow_alerts.values():  # resolved for the shadows too: like for like
                    book.pop(category, None)
                return category
        return None

    def keep_shadows(self, shadowed: Sequence[str]) -> None:
        """Forget the open alerts of models no longer scoring in shadow, so that one shadowed
        again later starts afresh at this enterprise."""
        for version in [v for v in self.shadow_alerts if v not in shadowed]:
            del self.shadow_alerts[version]

    # Both directions copy: the table keeps the dict it is given (memory://), and a record that a
    # failed batch changed in place must not change what the retry reads back from the table.
    def to_dict(self) -> dict:
        out = {"state": self.state.to_dict(), "alerts": {c: dict(e) for c, e in self.alerts.items()},
               "applied": dict(self.applied)}
        shadows = {v: {c: dict(e) for c, e in book.items()} for v, book in self.shadow_alerts.items() if book}
        if shadows:  # no key at all without a shadow: the records of a worker that never had one stay as they were
            out["shadow_alerts"] = shadows
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "EnterpriseRecord":
        return cls(
            state=EnterpriseState.from_dict(data["state"]),
            alerts={c: dict(e) for c, e in data["alerts"].items()},
            applied=dict(data["applied"]),
            shadow_alerts={v: {c: dict(e) for c, e in book.items()}
                           for v, book in data.get("shadow_alerts", {}).items()},
        )

    @classmethod
    def new(cls, enterprise_id: str) -> "EnterpriseRecord":
        return cls(state=EnterpriseState(enterprise_id))


@dataclass(frozen=True)
class AcceptedSignal:
    signal: dict
    observed: datetime
    envelope: Envelope


@dataclass
class Outcome:
    dead_letters: list[dict] = field(default_factory=list)
    accepted: list[AcceptedSignal] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)  # unrouted alert events, in order
    records: dict[str, EnterpriseRecord] = field(default_factory=dict)  # the ones changed


@dataclass
class Shadow:
    """A second scorer beside the pipeline's: it scores the same feature rows and decides alerts
    by the same rules, on open alerts of its own (each enterprise record's ``shadow_alerts``
    under the scorer's version), and what it raises stays here (nothing of it is published or
    stored). Two scorers compared on one replay share the validation, the state and the
    features, which do not depend on the scorer."""

    scorer: Scorer
    thresholds: Thresholds
    alerts: list[dict] = field(default_factory=list)  # unrouted alert events, in order


class Registry(Protocol):
    def get(self, enterprise_id: str) -> dict | None: ...


class SeenSignals(Protocol):
    def lookup(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Coords]: ...


def _labels(registry: Registry, enterprise_id: str) -> dict[str, str]:
    """The enterprise's place in the grid, which routing reads (only when an alert is made)."""
    return {k: str(v) for k, v in (registry.get(enterprise_id) or {}).items() if k in ENTERPRISE_LABELS}


def dead_letter(rejection: Rejection, env: Envelope) -> dict:
    return {
        "reason": rejection.reason,
        "detail": rejection.detail,
        "payload": payload_text(env.raw),
        "signal_id": rejection.signal_id,
        "received_at": env.received_at.isoformat(),
        "topic": env.topic,
        "partition": env.partition,
        "offset": env.offset,
    }


class Pipeline:
    def __init__(self, configs: Configs, scorer: Scorer,
                 on_scored: Callable[[Sequence[dict], list[float], float, list[int]], None] | None = None):
        self.configs = configs
        self.scorer = scorer  # and the thresholds it is levelled by (see the property)
        self.retention = Retention(**configs.pipeline.state.model_dump())
        # (rows, scores, seconds, days) of each batched scoring call, days the China-time day of
        # each row's signal: metrics
        self.on_scored = on_scored
        self.shadows: list[Shadow] = []

    @property
    def scorer(self) -> Scorer:
        return self._scorer

    @scorer.setter
    def scorer(self, scorer: Scorer) -> None:
        """A new scorer (a promotion reaches the stream this way) brings its own blue and yellow
        when its card recommends them and ``config/levels.yaml`` says ``yellow_from: model``."""
        self.thresholds = self.configs.levels.thresholds_for(getattr(scorer, "levels", None))
        self._scorer = scorer

    def shadow(self, scorer: Scorer) -> Shadow:
        """Score every signal with ``scorer`` too, from now on; its alerts are the returned
        shadow's."""
        shadow = Shadow(scorer, self.configs.levels.thresholds_for(getattr(scorer, "levels", None)))
        self.shadows.append(shadow)
        return shadow

    def process(
        self,
        envelopes: Sequence[Envelope],
        *,
        registry: Registry,
        load_record: Callable[[str], EnterpriseRecord | None],
        seen: SeenSignals,
        now: datetime | None = None,
        observe: Callable[[Envelope], bool] | None = None,
    ) -> Outcome:
        """One batch. ``on_scored`` sees the rows of the envelopes ``observe`` keeps (default:
        all): a batch redone after a failure scores the signals of earlier batches again, which
        the metrics saw when their own batch went through."""
        out = Outcome()
        now = now or datetime.now(timezone.utc)
        candidates: list[tuple[Envelope, dict]] = []
        is_registered = lambda eid: registry.get(eid) is not None  # noqa: E731
        for env in envelopes:
            signal, rejection = validate_signal(env.raw, is_registered=is_registered, now=now)
            if rejection is not None:
                out.dead_letters.append(dead_letter(rejection, env))
            else:
                candidates.append((env, signal))

        first_seen = seen.lookup({(s["enterprise_id"], s["signal_id"]) for _, s in candidates})
        pending: list[tuple[EnterpriseRecord, dict, Envelope, datetime, dict[str, float]]] = []
        for env, signal in candidates:
            eid, sid = signal["enterprise_id"], signal["signal_id"]
            record = out.records.get(eid)
            if record is None:
                record = load_record(eid) or EnterpriseRecord.new(eid)
            if record.has_applied(env):
                continue  # redelivered after a crash: its effects are already out
            prior = first_seen.get((eid, sid))
            if prior is not None and tuple(prior) != env.coords:
                where = (f"{prior[0][len('file:'):]} line {prior[2]}" if prior[0].startswith("file:")
                         else f"{prior[0]} partition {prior[1]} offset {prior[2]}")
                out.dead_letters.append(
                    dead_letter(Rejection("duplicate", f"signal_id {sid!r} was accepted before ({where})", sid), env)
                )
                continue
            observed = parse_timestamp(signal["observed_at"])
            if record.state.is_stale(observed, self.retention):
                detail = (
                    f"observed_at {signal['observed_at']} is more than "
                    f"{self.retention.retention_days} days before this enterprise's newest signal"
                )
                out.dead_letters.append(dead_letter(Rejection("stale", detail, sid), env))
                continue
            record.state.headcount = (registry.get(eid) or {}).get("headcount")
            record.state.update(signal, observed, self.retention)
            record.mark_applied(env)
            out.records[eid] = record
            first_seen[(eid, sid)] = env.coords
            out.accepted.append(AcceptedSignal(signal, observed, env))
            pending.append((record, signal, env, observed, features(record.state)))

        if pending:
            started = time.perf_counter()
            rows = [feats for *_, feats in pending]
            scores = self.scorer.score(rows)
            if self.on_scored is not None:
                seconds = time.perf_counter() - started
                kept = [i for i, (_, _, env, _, _) in enumerate(pending) if observe is None or observe(env)]
                if kept:
                    self.on_scored([rows[i] for i in kept], [scores[i].score for i in kept], seconds,
                                   [local_day(pending[i][3]) for i in kept])
            for (record, signal, env, _, _), scored in zip(pending, scores):
                self._decide(record.alerts, signal, scored, registry, out.alerts, env.received_at,
                             self.scorer.version, self.thresholds)
            shadowed = [shadow.scorer.version for shadow in self.shadows]
            for record in out.records.values():
                if record.shadow_alerts:
                    record.keep_shadows(shadowed)
            for shadow in self.shadows:
                version = shadow.scorer.version
                for (record, signal, env, _, _), scored in zip(pending, shadow.scorer.score(rows)):
                    self._decide(record.shadow_alerts.setdefault(version, {}), signal, scored, registry,
                                 shadow.alerts, env.received_at, version, shadow.thresholds)
        return out

    def _decide(self, book: dict[str, dict], signal, scored, registry: Registry, sink: list[dict],
                received_at: datetime, version: str, thresholds: Thresholds) -> None:
        """The alert changes one scored signal makes to ``book`` (category -> open alert), onto
        ``sink``."""
        eid = signal["enterprise_id"]
        common = dict(
            enterprise_id=eid,
            signal_id=signal["signal_id"],
            observed_at=signal["observed_at"],
        )
        collective = self.configs.levels.collective_incident
        workers = signal.get("workers_involved", 0) if signal["type"] == "inspection" else 0
        if workers >= collective.min_workers:
            findings = ", ".join(f.replace("_", " ") for f in signal["findings"]) or "no findings"
            reason = {
                "code": "collective_incident",
                "text": f"{workers} workers acting together ({signal['kind']} via {signal['source']}): {findings}",
                "value": workers,
            }
            change = decide(
                book,
                category="collective_incident",
                level=collective.level,
                score=1.0,
                reasons=[reason, *scored.reasons],
                model_version=version,
                size_band=size_band(workers),
                **common,
            )
            if change is not None:
                change.extra.update(labels=_labels(registry, eid), received_at=received_at.isoformat())
                sink.append(change.to_alert())
        level = self.configs.levels.level_for(scored.score, thresholds)
        if level is not None and scored.reasons:
            change = decide(
                book,
                category="risk",
                level=level,
                score=scored.score,
                reasons=list(scored.reasons),
                model_version=version,
                **common,
            )
            if change is not None:
                change.extra.update(labels=_labels(registry, eid), received_at=received_at.isoformat())
                sink.append(change.to_alert())
