"""Sums of daily totals over age bands before an as-of day, kept up to date as readings arrive
and as the day advances, instead of re-walking every day of the window for every signal.

Totals are integers (thousandths of a unit): a sum updated piece by piece is then exactly the sum
computed afresh, in any order. The stream (which updates a long-lived state), the backtest and
the training snapshots (which may start afresh from a restored state) get bit-identical features.
"""
from __future__ import annotations

from typing import Callable

SCALE = 1000


def to_units(value: float) -> int:
    return round(value * SCALE)


class AgeBands:
    """Sum and count of the daily totals whose age (``as_of - day``) falls in each band.

    Band ``i`` holds ages ``edges[i] <= age < edges[i + 1]``; days for which ``excluded`` is true
    never count. ``changed`` must be called for every change of a daily total, with the total
    before and after (None: no total that day).
    """

    #: Moving the as-of day forward by more than this many days rebuilds instead of shifting.
    SHIFT_LIMIT = 16

    def __init__(self, edges: tuple[int, ...], excluded: Callable[[int], bool]):
        self.edges = edges
        self.excluded = excluded
        self.as_of: int | None = None
        self.sums = [0] * (len(edges) - 1)
        self.counts = [0] * (len(edges) - 1)

    def band(self, age: int) -> int:
        edges = self.edges
        if age < edges[0] or age >= edges[-1]:
            return -1
        i = 0
        while age >= edges[i + 1]:
            i += 1
        return i

    def read(self, as_of: int, totals: dict[int, int]) -> tuple[list[int], list[int]]:
        if self.as_of is None or as_of < self.as_of or as_of - self.as_of > self.SHIFT_LIMIT:
            self._rebuild(as_of, totals)
        elif as_of > self.as_of:
            self._shift(as_of, totals)
        return self.sums, self.counts

    def changed(self, day: int, old: int | None, new: int | None) -> None:
        if self.as_of is None or self.excluded(day):
            return
        i = self.band(self.as_of - day)
        if i < 0:
            return
        if old is not None:
            self.sums[i] -= old
            self.counts[i] -= 1
        if new is not None:
            self.sums[i] += new
            self.counts[i] += 1

    def _rebuild(self, as_of: int, totals: dict[int, int]) -> None:
        self.as_of = as_of
        self.sums = [0] * (len(self.edges) - 1)
        self.counts = [0] * (len(self.edges) - 1)
        for day, total in totals.items():
            self.changed(day, None, total)

    def _shift(self, as_of: int, totals: dict[int, int]) -> None:
        # A day changes band only when its age crosses an edge: old age in [edge - k, edge).
        k = as_of - self.as_of
        old = self.as_of
        days = {old - age for edge in self.edges for age in range(edge - k, edge)}
        for day in days:
            total = totals.get(day)
            if total is None or self.excluded(day):
                continue
            before, after = self.band(old - day), self.band(as_of - day)
            if before == after:
                continue
            if before >= 0:
                self.sums[before] -= total
                self.counts[before] -= 1
            if after >= 0:
                self.sums[after] += total
                self.counts[after] += 1
        self.as_of = as_of
