"""Scorers turn feature rows into a dispute probability with the reasons behind it.

A scorer takes a whole batch at once: the stream scores micro-batches so that a model's fixed
per-call cost is paid once per batch, not once per signal.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from config.files import RulesConfig


@dataclass(frozen=True)
class Scored:
    score: float
    reasons: tuple[dict, ...]  # {"code", "text", "value"}, strongest first


class Scorer(Protocol):
    version: str

    def score(self, rows: Sequence[dict[str, float]]) -> list[Scored]: ...


class RulesScorer:
    """Transparent rules from ``config/rules.yaml`` combined as a noisy-OR."""

    def __init__(self, config: RulesConfig):
        self.config = config
        self.version = config.model_version

    def score_one(self, row: dict[str, float]) -> Scored:
        remaining = 1.0
        fired = []
        for rule in self.config.rules:
            value = row[rule.feature]
            if any(row[name] for name in rule.unless) or not rule.fires(value):
                continue
            remaining *= 1.0 - rule.weight
            fired.append((rule.weight, rule.code, rule.render(value), round(value, 4)))
        fired.sort(key=lambda item: -item[0])
        reasons = tuple({"code": code, "text": text, "value": value} for _, code, text, value in fired)
        return Scored(score=round(1.0 - remaining, 6), reasons=reasons)

    def score(self, rows: Sequence[dict[str, float]]) -> list[Scored]:
        return [self.score_one(row) for row in rows]
