"""Point-in-time feature snapshots for training and evaluation, from the stream's own code.

The signal file is replayed in its line order through ``streams.pipeline.Pipeline`` (validation,
duplicate and stale rules, ``EnterpriseState.update``), driven exactly as ``streams.backtest``
drives it. At each as-of instant (Monday 00:00 China time by default) every enterprise with any
state is read out with ``features(state, as_of_day)``.

No leakage: a snapshot at instant T is taken just before the first *accepted* line observed at or
after T is applied, so the state holds only signals observed before T. The file is in arrival
order, so a line observed before T that arrives after a line observed after T (late data) is, as
in the stream, not known at T and not in that snapshot. To stay exact without a hook inside the
pipeline, the line that may trigger a snapshot (one that passes ``validate_signal`` with
``observed_at >= T``) is processed on its own after the snapshot is read: if the pipeline then
rejects it (duplicate, stale) the state did not move, the reading is dropped and the next such
line decides.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from config.files import Configs
from models.calendar import CHINA_TZ
from models.features import FEATURE_NAMES, features, vector
from models.scoring import Scored, Scorer
from streams.backtest import Replay
from streams.pipeline import Outcome, Pipeline
from streams.validation import parse_timestamp, validate_signal

DISPUTE_SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "contract" / "dispute.schema.json"


# --- progress -----------------------------------------------------------------------------------
class Progress:
    """Progress reporting: ``step(description, total)`` returns ``advance(n)``. Silent by default;
    the CLI passes :func:`rich_progress`'s bars (on stderr)."""

    def step(self, description: str, total: float | None) -> Callable[[float], None]:
        return lambda n=1: None


class _RichProgress(Progress):
    def __init__(self, progress) -> None:
        self._progress = progress

    def step(self, description: str, total: float | None) -> Callable[[float], None]:
        task = self._progress.add_task(description, total=total)
        return lambda n=1: self._progress.advance(task, n)


@contextmanager
def rich_progress() -> Iterator[Progress]:
    """A :class:`Progress` drawing rich bars on stderr (stdout stays for the command's answer)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    with Bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
              console=Console(stderr=True)) as bars:
        yield _RichProgress(bars)


SILENT = Progress()


# --- replaying a signal file through the pipeline ---------------------------------------------------
class _Silent:
    """A scorer that never raises a risk alert (snapshots only need the state)."""

    version = "snapshots"

    def score(self, rows: Sequence[dict[str, float]]) -> list[Scored]:
        return [Scored(0.0, ()) for _ in rows]


# --- snapshots ----------------------------------------------------------------------------------
def as_of_instant(day: date) -> datetime:
    """00:00 China time on ``day``: the instant a snapshot dated ``day`` is read."""
    return datetime.combine(day, time(0, 0), tzinfo=CHINA_TZ)


def default_as_of_dates(first: datetime, last: datetime, every_days: int = 7) -> list[date]:
    """Mondays (every ``every_days`` days) whose 00:00 China time falls after the first signal
    and not after the last."""
    day = first.astimezone(CHINA_TZ).date() + timedelta(days=1)
    day += timedelta(days=(7 - day.weekday()) % 7)
    out = []
    while as_of_instant(day) <= last:
        out.append(day)
        day += timedelta(days=every_days)
    return out


def read_disputes(path: Path) -> dict[str, list[int]]:
    """enterprise id -> sorted dispute days (date ordinals), from a JSONL file of disputes.

    Blank lines are skipped; any other line that is not a valid dispute is an error naming it."""
    from jsonschema import Draft202012Validator, FormatChecker

    validator = Draft202012Validator(json.loads(DISPUTE_SCHEMA_PATH.read_text()), format_checker=FormatChecker())
    out: dict[str, list[int]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        error = next(iter(sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path))), None)
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path)
            raise ValueError(f"{path}:{number}: not a dispute ({where + ': ' if where else ''}{error.message})")
        try:
            day = date.fromisoformat(record["occurred_on"]).toordinal()
        except ValueError:
            raise ValueError(f"{path}:{number}: occurred_on {record['occurred_on']!r} is not a date") from None
        out.setdefault(record["enterprise_id"], []).append(day)
    return {eid: sorted(days) for eid, days in out.items()}


@dataclass
class Snapshots:
    """One row per (as-of date, enterprise with any state): X in ``FEATURE_NAMES`` column order."""

    X: np.ndarray
    enterprise_ids: np.ndarray  # str
    as_of: np.ndarray  # date ordinals (the as-of instant is 00:00 China time that day)
    streets: np.ndarray  # str, from the registry ("" when it has none)
    first_day: int  # local day of the first signal
    last_day: int  # local day of the last signal: the end of the data, for censoring
    feature_names: tuple[str, ...] = FEATURE_NAMES

    def __len__(self) -> int:
        return len(self.as_of)

    @property
    def as_of_dates(self) -> list[date]:
        return [date.fromordinal(int(d)) for d in np.unique(self.as_of)]

    def rows(self, index: np.ndarray | None = None) -> list[dict[str, float]]:
        """The rows as feature dicts (what a ``Scorer`` takes)."""
        X = self.X if index is None else self.X[index]
        return [dict(zip(self.feature_names, map(float, row))) for row in X]

    def subset(self, index: np.ndarray) -> "Snapshots":
        return Snapshots(self.X[index], self.enterprise_ids[index], self.as_of[index], self.streets[index],
                         self.first_day, self.last_day, self.feature_names)

    def labels(self, disputes: Path | dict[str, list[int]], horizon_days: int = 60, *,
               cooldown_days: int = 365) -> tuple[np.ndarray, np.ndarray]:
        """(y, mask). y = 1 when the enterprise has a dispute on one of the ``horizon_days`` days
        starting at the as-of instant (days D .. D + horizon - 1, the instant being D 00:00).
        mask drops the rows that are no warning target or whose outcome is unknown:

        * the enterprise had a dispute in the ``cooldown_days`` before D (its aftermath: the
          state still remembers the dispute; after that the enterprise is a target again);
        * censored: the horizon runs past the end of the data (``last_day``).
        """
        found = read_disputes(disputes) if isinstance(disputes, Path) else disputes
        n = len(self)
        y = np.zeros(n, dtype=int)
        mask = self.as_of + horizon_days - 1 <= self.last_day
        for i in range(n):
            days = found.get(self.enterprise_ids[i])
            if not days:
                continue
            d = int(self.as_of[i])
            if any(d <= day < d + horizon_days for day in days):
                y[i] = 1
            if any(d - cooldown_days <= day < d for day in days):
                mask[i] = False
        return y, mask


def _observed(lines: list[bytes], registry: dict, now: datetime, advance) -> list[datetime | None]:
    """observed_at of each line that passes validation stages 1-5 (the pipeline's own function)."""
    out: list[datetime | None] = []
    for line in lines:
        signal, rejection = validate_signal(line, is_registered=registry.__contains__, now=now)
        out.append(parse_timestamp(signal["observed_at"]) if rejection is None else None)
        advance(1)
    return out


def replay_with_snapshots(
    enterprises_path: Path,
    signals_path: Path,
    *,
    configs: Configs,
    scorer: Scorer | None = None,
    as_of_dates: list[date] | None = None,
    every_days: int = 7,
    progress: Progress = SILENT,
    on_outcome: Callable[[Outcome], None] | None = None,
    shadows: Sequence[Scorer] = (),
) -> tuple[Snapshots, Replay]:
    """Replay the whole file through the pipeline with ``scorer`` (default: one that raises no
    risk alert), reading snapshots on the way; returns them and the replay (alerts, counts).
    ``on_outcome`` sees each batch's outcome (its accepted signals in the order they were scored).
    Each of ``shadows`` scores the same signals beside ``scorer``: its alerts are in
    ``replay.pipeline.shadows``, in the same order."""
    pipeline = Pipeline(configs, scorer or _Silent())
    for other in shadows:
        pipeline.shadow(other)
    replay = Replay.of_files(pipeline, enterprises_path, signals_path, on_outcome=on_outcome)
    registry, lines, now = replay.registry, replay.lines, replay.now

    observed = _observed(lines, registry, now, progress.step("validating signals", len(lines)))
    known = [t for t in observed if t is not None]
    if not known:
        raise ValueError(f"{signals_path}: no valid signal for a registered enterprise")
    first, last = min(known), max(known)
    if as_of_dates is None:
        as_of_dates = default_as_of_dates(first, last, every_days)
    instants = [as_of_instant(d) for d in sorted(set(as_of_dates))]

    X: list[list[float]] = []
    ids: list[str] = []
    days: list[int] = []
    advance = progress.step("replaying signals", len(lines))
    cursor, j = 0, 0
    while j < len(instants):
        k = next((i for i in range(cursor, len(lines)) if observed[i] is not None and observed[i] >= instants[j]), None)
        if k is None:
            break  # no signal at or after this instant: the data ends before it
        replay.feed(cursor, k, advance)
        due = [t for t in instants[j:] if t <= observed[k]]
        reading = [
            (record.state.enterprise_id, t.date().toordinal(), vector(features(record.state, t.date().toordinal())))
            for t in due
            for record in sorted(replay.records.values(), key=lambda r: r.state.enterprise_id)
            if record.state.signals_applied
        ]
        if replay.feed(k, k + 1, advance):
            for eid, day, row in reading:
                ids.append(eid)
                days.append(day)
                X.append(row)
            j += len(due)
        cursor = k + 1
    replay.feed(cursor, len(lines), advance)

    snapshots = Snapshots(
        X=np.asarray(X, dtype=float).reshape(len(X), len(FEATURE_NAMES)),
        enterprise_ids=np.asarray(ids, dtype=str),
        as_of=np.asarray(days, dtype=int),
        streets=np.asarray([str(registry.get(e, {}).get("street", "")) for e in ids], dtype=str),
        first_day=first.astimezone(CHINA_TZ).date().toordinal(),
        last_day=last.astimezone(CHINA_TZ).date().toordinal(),
    )
    return snapshots, replay


def build_snapshots(
    enterprises_path: Path,
    signals_path: Path,
    *,
    as_of_dates: list[date] | None = None,
    every_days: int = 7,
    configs: Configs,
    progress: Progress = SILENT,
) -> Snapshots:
    """Point-in-time feature snapshots of every enterprise with any state, at each as-of date
    (default: Mondays every ``every_days`` days from the first signal to the last)."""
    snapshots, _ = replay_with_snapshots(
        enterprises_path, signals_path, configs=configs, as_of_dates=as_of_dates, every_days=every_days,
        progress=progress,
    )
    return snapshots
