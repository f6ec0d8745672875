"""Per-enterprise state: what the stream, the backtest and training remember of one enterprise.

A plain, JSON-serialisable class with ``update(signal)`` and a pure read-out (``models.features``),
so that the Faust table, the file-based backtest and the point-in-time training snapshots run the
very same code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from models.calendar import CHINA_TZ
from models.windows import AgeBands, to_units

COMPLAINT_KINDS = frozenset({"complaint", "petition", "hotline", "arbitration"})


def local_day(ts: datetime) -> int:
    """The China-time calendar day of an aware timestamp, as a date ordinal."""
    return ts.astimezone(CHINA_TZ).date().toordinal()


def _day(iso: str) -> int:
    return date.fromisoformat(iso).toordinal()


@dataclass(frozen=True)
class Retention:
    """How far back the state reaches (from ``config/pipeline.yaml``)."""

    retention_days: int = 365
    utility_window_days: int = 120
    wage_periods_kept: int = 13
    inspection_window_days: int = 365


@dataclass
class WagePeriod:
    period: str
    headcount: int
    due: float
    paid: float
    due_day: int
    paid_day: int | None
    si_due: float | None
    si_paid: float | None
    observed_ts: float


@dataclass
class Inspection:
    day: int
    kind: str
    workers: int
    findings: tuple[str, ...]
    arrears: float | None


@dataclass
class EnterpriseState:
    enterprise_id: str
    clock_ts: float | None = None  # newest observed_at seen (epoch seconds): the enterprise's clock
    # utility -> day ordinal -> meter id -> consumption (a re-read of the same meter-day replaces it)
    utility: dict[str, dict[int, dict[str, float]]] = field(
        default_factory=lambda: {"electricity": {}, "water": {}}
    )
    meters: dict[str, list[str]] = field(default_factory=lambda: {"electricity": [], "water": []})
    wages: dict[str, WagePeriod] = field(default_factory=dict)
    inspections: list[Inspection] = field(default_factory=list)
    signals_applied: int = 0
    #: The registry's headcount (一企一档), as at the enterprise's last signal: the pipeline sets it
    #: from the registry, so the stream, the backtest and training read the same number. None in
    #: records written before it was kept.
    headcount: int | None = None

    # Derived from the fields above and never serialised: rebuilt on first use after from_dict.
    # They let features() follow a state signal by signal without re-walking its history.
    _clock_day: int | None = field(default=None, init=False, repr=False, compare=False)
    _totals: dict[str, dict[int, int]] | None = field(default=None, init=False, repr=False, compare=False)
    _last_day: dict[str, int | None] = field(default_factory=dict, init=False, repr=False, compare=False)
    _first_day: dict[str, int | None] = field(default_factory=dict, init=False, repr=False, compare=False)
    _bands: dict[tuple, AgeBands] = field(default_factory=dict, init=False, repr=False, compare=False)
    _pruned_on: int | None = field(default=None, init=False, repr=False, compare=False)
    #: Bumped on every change of ``wages`` / ``inspections``: keys of memoised feature parts.
    wages_version: int = field(default=0, init=False, repr=False, compare=False)
    inspections_version: int = field(default=0, init=False, repr=False, compare=False)
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # -- reading ------------------------------------------------------------------------------
    @property
    def clock_day(self) -> int | None:
        if self._clock_day is None and self.clock_ts is not None:
            self._clock_day = local_day(datetime.fromtimestamp(self.clock_ts, CHINA_TZ))
        return self._clock_day

    def daily_totals(self, utility: str) -> dict[int, int]:
        """Each day's consumption over all its meters, in thousandths of the unit."""
        if self._totals is None:
            self._totals = {
                u: {day: sum(to_units(v) for v in meters.values()) for day, meters in days.items()}
                for u, days in self.utility.items()
            }
            self._last_day = {u: max(days, default=None) for u, days in self.utility.items()}
            self._first_day = {u: min(days, default=None) for u, days in self.utility.items()}
        return self._totals[utility]

    def last_reading_day(self, utility: str) -> int | None:
        self.daily_totals(utility)
        return self._last_day[utility]

    def reading_interval(self, utility: str) -> int:
        """The meter's usual days between readings: the kept readings' span over their count,
        rounded (1 for a daily feed, even with a few readings missing; 7 for a weekly one, as in
        the contract's sample world's water). 1 until there are two readings."""
        totals = self.daily_totals(utility)
        first, last = self._first_day[utility], self._last_day[utility]
        if first is None or last is None or len(totals) < 2:
            return 1
        return max(1, round((last - first) / (len(totals) - 1)))

    def utility_bands(self, utility: str, as_of: int, edges: tuple[int, ...],
                      excluded) -> tuple[list[int], list[int]]:
        """Sums and counts of ``utility``'s daily totals by age band before ``as_of`` (see
        ``models.windows.AgeBands``), kept up to date from one call to the next."""
        totals = self.daily_totals(utility)
        bands = self._bands.get((utility, edges))
        if bands is None:
            bands = self._bands[(utility, edges)] = AgeBands(edges, excluded)
        return bands.read(as_of, totals)

    def _set_total(self, utility: str, day: int) -> None:
        """Bring the derived totals in line with ``self.utility[utility][day]`` (set or deleted)."""
        if self._totals is None:
            return  # built from scratch on first use
        totals = self._totals[utility]
        meters = self.utility[utility].get(day)
        old = totals.get(day)
        new = None if meters is None else sum(to_units(v) for v in meters.values())
        if new is None:
            totals.pop(day, None)
        else:
            totals[day] = new
        for (u, _), bands in self._bands.items():
            if u == utility:
                bands.changed(day, old, new)
        last = self._last_day.get(utility)
        if new is not None and (last is None or day > last):
            self._last_day[utility] = day
        elif new is None and day == last:
            self._last_day[utility] = max(totals, default=None)
        first = self._first_day.get(utility)
        if new is not None and (first is None or day < first):
            self._first_day[utility] = day
        elif new is None and day == first:
            self._first_day[utility] = min(totals, default=None)

    def is_stale(self, observed: datetime, retention: Retention) -> bool:
        """Older than the retention window, measured back from this enterprise's newest signal."""
        if self.clock_ts is None:
            return False
        return self.clock_ts - observed.timestamp() > retention.retention_days * 86400

    # -- writing ------------------------------------------------------------------------------
    def update(self, signal: dict, observed: datetime, retention: Retention) -> None:
        """Apply one validated, accepted signal (``observed`` is its parsed ``observed_at``)."""
        ts = observed.timestamp()
        kind = signal["type"]
        if kind == "utility":
            self._update_utility(signal)
        elif kind == "wage":
            self._update_wage(signal, ts)
        else:
            self._update_inspection(signal, observed)
        if self.clock_ts is None or ts > self.clock_ts:
            self.clock_ts = ts
            self._clock_day = None
        self.signals_applied += 1
        self._prune(retention, signal)

    def _update_utility(self, s: dict) -> None:
        utility, meter = s["utility"], s["meter_id"]
        day = _day(s["reading_date"])
        self.utility[utility].setdefault(day, {})[meter] = float(s["consumption"])
        self._set_total(utility, day)
        known = self.meters[utility]
        if meter not in known:
            known.append(meter)

    def _update_wage(self, s: dict, ts: float) -> None:
        current = self.wages.get(s["period"])
        if current is not None and current.observed_ts > ts:
            return  # a later record for this period already superseded this one
        paid_date = s.get("paid_date")
        self.wages[s["period"]] = WagePeriod(
            period=s["period"],
            headcount=int(s["headcount"]),
            due=float(s["wages_due"]),
            paid=float(s["wages_paid"]),
            due_day=_day(s["due_date"]),
            paid_day=_day(paid_date) if paid_date else None,
            si_due=s.get("social_insurance_due"),
            si_paid=s.get("social_insurance_paid"),
            observed_ts=ts,
        )
        self.wages_version += 1

    def _update_inspection(self, s: dict, observed: datetime) -> None:
        self.inspections.append(
            Inspection(
                day=local_day(observed),
                kind=s["kind"],
                workers=int(s["workers_involved"]),
                findings=tuple(s["findings"]),
                arrears=s.get("arrears_amount"),
            )
        )
        self.inspections_version += 1

    def _prune(self, retention: Retention, applied: dict) -> None:
        today = self.clock_day
        if today is None:
            return
        oldest_reading = today - retention.utility_window_days
        if today != self._pruned_on:
            # The window moved: drop what fell out of it, that is the days between the last
            # prune's bound and this one (everything, after a restore). On the same day only the
            # reading just applied can be out of the window, which is checked below.
            previous = None if self._pruned_on is None else self._pruned_on - retention.utility_window_days
            for utility, days in self.utility.items():
                if previous is None or oldest_reading - previous > len(days):
                    gone = [d for d in days if d < oldest_reading]
                else:
                    gone = [d for d in range(previous, oldest_reading) if d in days]
                for day in gone:
                    del days[day]
                    self._set_total(utility, day)
            self._pruned_on = today
        elif applied["type"] == "utility":
            day = _day(applied["reading_date"])
            if day < oldest_reading and day in self.utility[applied["utility"]]:
                del self.utility[applied["utility"]][day]
                self._set_total(applied["utility"], day)
        if len(self.wages) > retention.wage_periods_kept:
            for period in sorted(self.wages)[: len(self.wages) - retention.wage_periods_kept]:
                del self.wages[period]
            self.wages_version += 1
        oldest_finding = today - retention.inspection_window_days
        if self.inspections and self.inspections[0].day < oldest_finding:
            self.inspections = [i for i in self.inspections if i.day >= oldest_finding]
            self.inspections_version += 1

    # -- serialisation (Faust table values are JSON) ---------------------------------------------
    def to_dict(self) -> dict:
        return {
            "enterprise_id": self.enterprise_id,
            "clock_ts": self.clock_ts,
            "utility": {
                u: {str(d): dict(meters) for d, meters in days.items()} for u, days in self.utility.items()
            },
            "meters": {u: list(m) for u, m in self.meters.items()},
            "wages": {p: list(vars(w).values()) for p, w in self.wages.items()},
            "inspections": [
                [i.day, i.kind, i.workers, list(i.findings), i.arrears] for i in self.inspections
            ],
            "signals_applied": self.signals_applied,
            "headcount": self.headcount,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "EnterpriseState":
        return cls(
            enterprise_id=data["enterprise_id"],
            clock_ts=data["clock_ts"],
            utility={
                u: {int(d): dict(meters) for d, meters in days.items()}
                for u, days in data["utility"].items()
            },
            meters={u: list(m) for u, m in data["meters"].items()},
            wages={p: WagePeriod(*values) for p, values in data["wages"].items()},
            inspections=[
                Inspection(day, kind, workers, tuple(findings), arrears)
                for day, kind, workers, findings, arrears in data["inspections"]
            ],
            signals_applied=data["signals_applied"],
            headcount=data.get("headcount"),
        )
