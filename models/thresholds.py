"""What other level thresholds would have done: one replay with a model, every candidate yellow
threshold read from it.

An enterprise's first yellow-or-higher alert comes with the first signal whose score reaches the
yellow threshold (alerts are raised and escalated, never lowered, and every flagged score has a
reason), so one replay that keeps each signal's score answers for any threshold: the share of
disputes warned 14 or more days ahead, the median lead, and the share of enterprises with no
dispute sent to yellow. Choose on worlds kept apart from those you report on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    pipeline = _ScoreKeeping(configs, scorer)
    replay = Replay.of_files(pipeline, enterprises, signals)
    replay.feed(0, len(replay.lines), progress.step(f"replaying signals ({scorer.version})", len(replay.lines)))
    found = read_disputes(disputes)
    known = set(replay.records)
    last_day = max((r.state.clock_day for r in replay.records.values() if r.state.clock_day), default=0)
    out = []
    for yellow in sorted(candidates):
        # Only the yellow threshold moves; warning_figures reads the first yellow+ event of each
        # enterprise, which is the first signal scored at or above it.
        events = [{"enterprise_id": eid, "category": "risk", "level": "yellow", "raised_at": observed_at}
                  for eid, observed_at, score in pipeline.scored if score >= yellow]
        figures = warning_figures(events, found, known, last_day)
        out.append(Row(yellow, figures["warned_14d_share"], figures["lead_days_median"], figures["false_alarm_share"],
                       figures["disputes"], figures["no_dispute_enterprises"]))
    return out
