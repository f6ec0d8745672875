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

    levels = None  # no thresholds of its own: config/levels.yaml's

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


class ModelScorer:
    """A trained, calibrated model from the registry, scoring whole batches at once.

    Reasons are the features that pushed this enterprise's score: for each, how much the
    probability falls when that feature alone is put back to its "nothing unusual" value. They
    are computed only for rows at or above ``explain_above`` (the rows that can raise an alert),
    in one more batched call, and a feature is named only when its value is a sign an inspector
    can check (``models.features.is_sign``); when none is, the reason is the overall pattern.
    """

    def __init__(self, estimator, card, explain_above: float = 0.2, max_reasons: int = 3):
        from models.features import CONTEXT_FEATURES, FEATURE_NAMES, NEUTRAL

        self.estimator = estimator
        self.card = card
        self.version = card.version
        self.levels = card.levels or None  # blue and yellow chosen at training (models.train.recommend_levels)
        self.explain_above = explain_above
        self.max_reasons = max_reasons
        self._names = list(FEATURE_NAMES)
        self._explained = [i for i, n in enumerate(self._names) if n not in CONTEXT_FEATURES]
        reference = {**NEUTRAL, **(card.reference or {})}
        self._reference = [reference[n] for n in self._names]

    def score(self, rows: Sequence[dict[str, float]]) -> list[Scored]:
        if not rows:
            return []
        # One native thread: the worker shares two cores with the broker and Faust, and an
        # OpenMP pool waiting for a busy core stalled whole batches (measured by make bench:
        # 258 signals/s with the default pool and a busy core, 1,969 with one thread).
        with _thread_limits().limit(limits=1):
            return self._score(rows)

    def _score(self, rows: Sequence[dict[str, float]]) -> list[Scored]:
        import numpy as np

        from models.features import describe, is_sign

        X = np.array([[row[n] for n in self._names] for row in rows], dtype=float)
        p = self.estimator.predict_proba(X)[:, 1]
        flagged = np.flatnonzero(p >= self.explain_above)
        reasons: dict[int, tuple[dict, ...]] = {}
        if flagged.size:
            k = len(self._explained)
            probes = np.repeat(X[flagged], k, axis=0)
            for j, col in enumerate(self._explained):
                probes[j::k, col] = self._reference[col]
            without = self.estimator.predict_proba(probes)[:, 1].reshape(flagged.size, k)
            for r, i in enumerate(flagged):
                pushes = sorted(
                    ((p[i] - without[r, j], col) for j, col in enumerate(self._explained)
                     if is_sign(self._names[col], X[i, col])), reverse=True
                )
                chosen = [
                    {"code": self._names[col], "text": describe(self._names[col], X[i, col]),
                     "value": round(float(X[i, col]), 4), "weight": round(float(delta), 4)}
                    for delta, col in pushes[: self.max_reasons]
                    if delta > 0.01
                ]
                reasons[int(i)] = tuple(chosen) or (
                    {"code": "pattern", "text": f"the overall pattern of signals (risk {p[i]:.0%})", "value": None},
                )
        return [Scored(score=round(float(p[i]), 6), reasons=reasons.get(i, ())) for i in range(len(rows))]


_CONTROLLER = None


def _thread_limits():
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER
