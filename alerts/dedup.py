"""One open alert per enterprise and category; a new signal may raise its level, never lower it.

The book of open alerts lives in the enterprise's stream state, so that deciding is local and
deterministic: replaying the same signals yields the same alert ids and revisions, which is what
makes the downstream writes idempotent.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from alerts.levels import LEVEL_RANK, band_rank


def alert_id(enterprise_id: str, category: str, opening_signal_id: str) -> str:
    digest = hashlib.sha1(f"{enterprise_id}|{category}|{opening_signal_id}".encode()).hexdigest()
    return f"AL-{digest[:16]}"


@dataclass
class Change:
    """An alert raised, or an open alert whose level (or size band) went up."""

    alert_id: str
    enterprise_id: str
    category: str
    level: str
    score: float
    reasons: list[dict]
    raised_at: str
    triggered_by: str
    model_version: str
    revision: int
    change: str  # "raised" | "escalated"
    opened_at: str
    size_band: str | None = None
    extra: dict = field(default_factory=dict)

    def to_alert(self) -> dict:
        """The contract's alert fields (``queue`` is added by the router) plus our own."""
        alert = {
            "alert_id": self.alert_id,
            "enterprise_id": self.enterprise_id,
            "category": self.category,
            "level": self.level,
            "score": self.score,
            "reasons": self.reasons,
            "raised_at": self.raised_at,
            "triggered_by": self.triggered_by,
            "model_version": self.model_version,
            "status": "new",
            "revision": self.revision,
            "change": self.change,
            "opened_at": self.opened_at,
        }
        if self.size_band is not None:
            alert["size_band"] = self.size_band
        alert.update(self.extra)
        return alert


def decide(
    book: dict[str, dict],
    *,
    enterprise_id: str,
    category: str,
    level: str | None,
    score: float,
    reasons: list[dict],
    signal_id: str,
    observed_at: str,
    model_version: str,
    size_band: str | None = None,
) -> Change | None:
    """Update ``book`` (category -> open alert) for one scored signal; return the change, if any."""
    if level is None:
        return None
    current = book.get(category)
    if current is None:
        entry = {
            "alert_id": alert_id(enterprise_id, category, signal_id),
            "level": level,
            "size_band": size_band,
            "revision": 1,
            "opened_at": observed_at,
        }
        book[category] = entry
        change = "raised"
    else:
        higher_level = LEVEL_RANK[level] > LEVEL_RANK[current["level"]]
        bigger = band_rank(size_band) > band_rank(current.get("size_band"))
        if not (higher_level or bigger):
            return None
        entry = current
        entry["level"] = level if higher_level else entry["level"]
        entry["size_band"] = size_band if bigger else entry.get("size_band")
        entry["revision"] += 1
        change = "escalated"
    return Change(
        alert_id=entry["alert_id"],
        enterprise_id=enterprise_id,
        category=category,
        level=entry["level"],
        score=score,
        reasons=reasons,
        raised_at=observed_at,
        triggered_by=signal_id,
        model_version=model_version,
        revision=entry["revision"],
        change=change,
        opened_at=entry["opened_at"],
        size_band=entry.get("size_band"),
    )
