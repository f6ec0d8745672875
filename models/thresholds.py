"""What other level thresholds would have done: one replay with a model, every candidate yellow
threshold read from it.

Scores do not depend on the thresholds, and an enterprise's risk alert is raised by the first
signal (in arrival order) whose level is yellow or more and escalated by each later one whose level
is higher, with that signal's event time (alerts are never lowered, and every flagged score has a
reason). So one replay that keeps each signal's score, in order, answers for any yellow: the
share of disputes warned 14 or more days ahead, the median lead, and the share of enterprises
with no dispute sent to yellow. Choose on worlds kept apart from those you report on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alerts.dedup import decide
from config.files import Configs
from models.evaluate import warning_figures
from models.scoring import Scorer
from models.snapshots import SILENT, Progress, read_disputes
from streams.backtest import Replay
from streams.pipeline import Pipeline

DEFAULT_CANDIDATES = (0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.35, 0.45)


class _ScoreKeeping(Pipeline):
    """The pipeline, keeping (enterprise, observed_at, score) of every scored signal."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scored: list[tuple[str, str, float]] = []

    def _decide(self, record, signal, scored, *args, **kwargs) -> None:
        self.scored.append((signal["enterprise_id"], signal["observed_at"], scored.score))
        super()._decide(record, signal, scored, *args, **kwargs)


@dataclass(frozen=True)
class Row:
    yellow: float
    warned_14d_share: float | None
    lead_days_median: float | None
    false_alarm_share: float | None
    disputes: int
    no_dispute_enterprises: int


def sweep(scorer: Scorer, configs: Configs, enterprises: Path, signals: Path, disputes: Path,
          candidates: tuple[float, ...] = DEFAULT_CANDIDATES, progress: Progress = SILENT) -> list[Row]:
    spans: list[tuple[int, int]] = []  # each scored batch's first and last local day, as the pipeline reads them
    pipeline = _ScoreKeeping(configs, scorer, on_scored=lambda _rows, _scores, _seconds, days: spans.append(
        (min(days), max(days))))
    replay = Replay.of_files(pipeline, enterprises, signals)
    replay.feed(0, len(replay.lines), progress.step(f"replaying signals ({scorer.version})", len(replay.lines)))
    found = read_disputes(disputes)
    known = set(replay.records)
    window = (min((a for a, _ in spans), default=0), max((b for _, b in spans), default=0))  # the data's days
    out = []
    for yellow in sorted(candidates):
        events = alert_events(pipeline.scored, yellow, pipeline.thresholds.orange, pipeline.thresholds.red)
        figures = warning_figures(events, found, known, window)
        out.append(Row(yellow, figures["warned_14d_share"], figures["lead_days_median"], figures["false_alarm_share"],
                       figures["disputes"], figures["no_dispute_enterprises"]))
    return out


def alert_events(scored: list[tuple[str, str, float]], yellow: float, orange: float, red: float) -> list[dict]:
    """The yellow-or-higher risk alert events the pipeline raises from ``scored`` ((enterprise,
    observed_at, score) in arrival order) with this yellow, by the pipeline's own rule
    (``alerts.dedup.decide``: raised at the first level reached, escalated at each higher one, at
    that signal's event time). A signal that arrives late is not the first warning even though its
    event time is earlier, unless it is the first to reach that level (measured: reading the
    earliest event time at or above yellow made one dispute of 69 look warned 14 days ahead that
    the stream warned 11 days ahead)."""
    bounds = ((red, "red"), (orange, "orange"), (yellow, "yellow"))
    books: dict[str, dict[str, dict]] = {}
    events = []
    for enterprise_id, observed_at, score in scored:
        level = next((name for bound, name in bounds if score >= bound), None)
        change = decide(books.setdefault(enterprise_id, {}), enterprise_id=enterprise_id, category="risk",
                        level=level, score=score, reasons=[], signal_id=observed_at, observed_at=observed_at,
                        model_version="")
        if change is not None:
            events.append({"enterprise_id": enterprise_id, "category": "risk", "level": change.level,
                           "raised_at": change.raised_at})
    return events
