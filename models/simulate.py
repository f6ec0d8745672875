"""World simulator: enterprises, their utility / payroll / inspection signals, and the disputes.

Analysts train and evaluate the risk model on this output and ``make run`` uses it for the demo,
so the world is built from documented domain facts (see ``shared/NOTES.md``, "Domain figures to
build on", and the CLB strike-map calibration) rather than tuned to make the model look good.
Pure Python + numpy; deterministic for a given seed (same bytes out).

Public API
----------
``simulate_world(outdir, *, firms=120, months=14, seed=7, start=date(2024, 7, 1),
district="baoan", noise=True, trouble_rate=DEMO_TROUBLE_RATE,
payroll_coverage=PAYROLL_COVERAGE, water_weekly=WATER_WEEKLY_SHARE,
background_complaints=BACKGROUND_COMPLAINTS) -> WorldSummary``
    Writes ``outdir/enterprises.csv`` (the registry), ``outdir/signals.jsonl`` (every signal in
    arrival order), ``outdir/disputes.jsonl`` (the labels: disputes that happened in the window)
    and ``outdir/truth.json`` (``{enterprise_id: {"scenario", "onset", "dispute", "street"}}``).
    The window is ``[start, start + months)``; the feed is a snapshot taken at noon of the first
    day after the window, so a signal that would arrive later (a late payment, a delayed line) is
    not in it, and a dispute planned after the window is censored (``truth`` keeps the onset,
    ``dispute`` is null): the world does not stop being in trouble because the file ends.

``credit_code(rng, *, division=None) -> str``
    A valid 18-character unified social credit code (GB 32100-2015), ``9144030...`` style;
    ``rng`` is a ``numpy.random.Generator`` or a ``random.Random``.
    ``is_valid_credit_code(code)`` checks one.

``iter_signals(*, firms=120, seed=7, start=date(2024, 7, 1), months=None, district="baoan",
noise=True, trouble_rate=DEMO_TROUBLE_RATE, payroll_coverage=PAYROLL_COVERAGE,
water_weekly=WATER_WEEKLY_SHARE, background_complaints=BACKGROUND_COMPLAINTS) -> Iterator[dict]``
    Live feed for ``laborwatch run --simulate``: yields signal dicts in arrival order. With
    ``months=None`` it never ends (it plans the world a year at a time and renders it a month at
    a time, holding only about a month of look-ahead in memory); with ``months=N`` it yields
    exactly the lines ``simulate_world`` writes for the same arguments. A caller that paces the
    feed in (compressed) real time reads the arrival time with ``World.iter_feed()``, which
    yields ``(arrival: datetime, signal)`` pairs. ``build_world(...)`` returns the ``World``
    (``enterprise_rows()`` to register the firms first, ``truth(end)``, ``disputes(end)``).
    Years covered: the Spring Festival table runs 2000-2050; dates outside raise ValueError.

Rates and honesty
-----------------
``trouble_rate`` is the share of firms that enter a trouble episode per year (decline, abscond,
construction arrears or recover). The source documents give a district of 741 enterprises
(48,000 workers) with 9 collective disputes of 30+ workers in a year; ``REALISTIC_TROUBLE_RATE``
reproduces roughly a dozen such disputes a year for 741 firms (measured over 24 seeds, a
12-month window: 11.8 +- 2.1 disputes of 30+ workers, 17 disputes in all, 27 firms in trouble).
``DEMO_TROUBLE_RATE`` (the default) is about five times that, so a 120-firm, 14-month demo world
has some 20% of its firms in trouble and a dozen or so disputes to learn from. Models trained
on the default world see an inflated base rate: recalibrate, or simulate with
``trouble_rate=REALISTIC_TROUBLE_RATE``, before quoting precision or alert volumes.

World model (each choice is commented where it is made)
-------------------------------------------------------
* Registry: streets / communities / grids of the district, an industry mix heavy in
  manufacturing, electronics and garment, lognormal headcounts (median tens, a few 500-2000).
* Daily electricity and water per meter, next-day delivery (02:00 power, 03:00 water); half the
  water meters (``water_weekly``) are read on Mondays instead, each reading the week's
  consumption, as every water meter of the contract's samples is. Weekly
  rhythm, summer air-conditioning, public holidays, and the Spring Festival shutdown of 2-3
  weeks for every firm, healthy or not. Construction firms have no meters.
* Monthly payroll records: period YYYY-MM due on the 7th of the next month (Shenzhen wage
  regulation), one record per payment event plus a status record on the due date when the
  period is not fully paid by then; healthy firms too are sometimes late (<= 5 days) or pay in
  two parts. Only ``payroll_coverage`` of the firms (0.7, as in the contract's samples) have a
  payroll feed at all, whatever their fate.
* Inspections, daily visits, and 12345 hotline complaints, petitions and calls: a thin
  background of individual complaints at every firm (``background_complaints`` a year at a
  50-worker firm), more and larger groups at firms in trouble.
* Scenarios (``truth.json``): healthy, decline, abscond, construction_arrears, recover (hard
  negatives: trouble signs, no dispute). Troubled firms are drawn a year ("chapter") at a time,
  at most one episode per firm in two consecutive years, weighted by headcount. Dispute dates
  follow the CLB monthly seasonality of wage-arrears incidents (construction: just before the
  festival), sizes the CLB participant bands capped by the workforce; the day after every
  dispute a hotline-12345 complaint carries its workers_involved (30+ only there). The first
  four weeks have no dispute (burn-in); an episode's onset may precede ``start``.
* Feed noise (noise=True): gaps and meter outages, duplicates (same signal_id re-sent later),
  late corrections (new signal_id for a past reading_date), meter replacements (new meter_id,
  with the change-over day split over both meters), and out-of-order arrival (single lines and
  whole water-company batches delayed by hours to days). Every line is valid per the schemas.

Not modelled (know before you trust a metric): orderly closures and relocations (power to zero
with wages paid: a hard negative the real district has), firm entry (an open-ended feed slowly
thins as firms close), gas, rent and property-management signals, wage advances paid by the
government fund (they do not show in payroll-bank), and more than one trouble episode per firm
within 24 months.
"""

from __future__ import annotations

import calendar
import csv
import heapq
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

# Chinese New Year: the features' own table; the shutdown around it is normal for every firm.
from models.calendar import SPRING_FESTIVAL
from streams.validation import (  # one implementation of GB 32100-2015
    CREDIT_CODE_ALPHABET,
    credit_code_check_character,
    is_valid_credit_code,
)

__all__ = [
    "WorldSummary",
    "World",
    "simulate_world",
    "iter_signals",
    "build_world",
    "credit_code",
    "is_valid_credit_code",
    "DEMO_TROUBLE_RATE",
    "REALISTIC_TROUBLE_RATE",
    "SPRING_FESTIVAL",
    "SCENARIOS",
]

# --------------------------------------------------------------------------------------------
# Domain constants
# --------------------------------------------------------------------------------------------

#: Share of firms entering a trouble episode per year. Tuned so that a 741-firm district sees
#: about a dozen collective disputes (30+ workers) a year (source documents: 741 firms, 9).
REALISTIC_TROUBLE_RATE = 0.033
#: Demo default: ~5x realistic, so ~20% of a 120-firm, 14-month world is in some trouble.
DEMO_TROUBLE_RATE = 0.18
#: Share of firms whose wages reach the monitoring platform (a bank payroll feed or the online
#: employment report). The contract's sample world has wage records for 16 of its 24 firms,
#: troubled or not; the others show only their meters and inspections, and a model must warn on
#: those from the meters and complaints alone.
PAYROLL_COVERAGE = 0.7
# Share of the water meters read once a week (Mondays, the week's consumption) instead of daily;
# every water meter of the contract's sample world is read weekly.
WATER_WEEKLY_SHARE = 0.5
#: Individual complaints a year at a 50-worker firm that is not in trouble (a resigned worker's
#: final pay, a contract, overtime), growing with the square root of the workforce. The source
#: documents' 486 petitions a year for 741 firms count those of firms in trouble too, and the
#: contract's sample world has none at all at its 16 firms that never reach a dispute (about
#: 15 months): there, a complaint of unpaid wages is a sign of trouble, not noise. 0.1 keeps a
#: few (about 2 expected in a world of the samples' size), so that a model still meets them.
BACKGROUND_COMPLAINTS = 0.1

SCENARIOS = ("healthy", "decline", "abscond", "construction_arrears", "recover")


# CLB strike map 2013-2016 (shared/calibration/clb_strike_map_2013_2016.json), embedded so the
# package does not read shared/ at run time; the unit test checks the copy against the file.
# Monthly share (%) of *wage-arrears* incidents: peak Dec/Jan 13.8, trough March 4.9.
CLB_MONTH_SHARE_WAGE_ARREARS = {
    1: 13.8, 2: 7.5, 3: 4.9, 4: 5.7, 5: 5.8, 6: 6.2,
    7: 6.8, 8: 7.7, 9: 8.4, 10: 8.9, 11: 10.6, 12: 13.8,
}
# Participants per incident (%): 1-100 74.5, 100-1000 21.5, 1000-10000 3.9, 10000+ 0.1.
CLB_PARTICIPANT_BANDS = ((1, 100, 74.5), (100, 1000, 21.5), (1000, 10000, 3.9), (10000, 20000, 0.1))

# Districts of Shenzhen with their administrative division codes (GB/T 2260) and streets.
DISTRICTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "baoan": ("440306", ("xixiang", "xinan", "fuyong", "shajing", "songgang", "shiyan",
                         "hangcheng", "fuhai", "yanluo", "xinqiao")),
    "longgang": ("440307", ("pingdi", "pinghu", "buji", "bantian", "nanwan", "henggang",
                            "longgang", "longcheng", "baolong", "jihua", "yuanshan")),
    "longhua": ("440309", ("guanlan", "dalang", "longhua", "minzhi", "fucheng", "guanhu")),
    "guangming": ("440311", ("guangming", "gongming", "xinhu", "fenghuang", "yutang", "matian")),
}
# Streets that are mostly offices, shops and housing (the old town centres and the airport
# area); the others are industrial (Shajing, Songgang, Fuyong ... host the factory parks).
SERVICE_STREETS = {"xixiang", "xinan", "hangcheng", "buji", "longcheng", "longhua", "minzhi"}

INDUSTRIES = ("manufacturing", "electronics", "garment", "construction", "logistics",
              "transportation", "services", "retail", "catering", "other")
# Industry mix of inspected firms in an industrial district of Shenzhen: manufacturing,
# electronics and garment make up over half (Guangdong CLB incidents: 62% manufacturing).
INDUSTRY_MIX = np.array([0.29, 0.17, 0.08, 0.09, 0.07, 0.03, 0.10, 0.07, 0.07, 0.03])
_FACTORY = {"manufacturing", "electronics", "garment", "other"}

# Median headcount by industry; lognormal sigma 1.0 gives most firms 10-200 and a few 500-2000.
# The source district: 741 firms, 48,000 workers (mean 65); this mix gives a mean near 75.
HEADCOUNT_MEDIAN = {"manufacturing": 60, "electronics": 90, "garment": 55, "construction": 70,
                    "logistics": 35, "transportation": 45, "services": 22, "retail": 12,
                    "catering": 18, "other": 20}
# Monthly gross pay per worker (CNY), Shenzhen 2024: factory workers 6-7.5k with overtime
# (matches the contract samples, 6.9-7.8k), construction trades more, shops and kitchens less.
WAGE_PER_WORKER = {"manufacturing": 6800, "electronics": 7200, "garment": 6100,
                   "construction": 8600, "logistics": 7000, "transportation": 7400,
                   "services": 7600, "retail": 5600, "catering": 5300, "other": 6300}
# kWh per worker per working day at full activity (machines, lines, air conditioning); the
# contract samples show 13 (retail) to 43 (manufacturing).
KWH_PER_WORKER = {"manufacturing": 40.0, "electronics": 45.0, "garment": 24.0, "logistics": 16.0,
                  "transportation": 12.0, "services": 9.0, "retail": 14.0, "catering": 22.0,
                  "other": 20.0}
# m3 of water per worker per day: factory dormitories and canteens dominate (Shenzhen factories
# house most migrant workers on site); kitchens use most per head.
WATER_PER_WORKER = {"manufacturing": 0.55, "electronics": 0.6, "garment": 0.5, "logistics": 0.3,
                    "transportation": 0.3, "services": 0.25, "retail": 0.2, "catering": 1.1,
                    "other": 0.4}
# Social-insurance employer contributions as a share of wages (Shenzhen employer rates for
# pension, medical, unemployment, injury and maternity on the contribution base: 11-16%).
SI_RATIO = (0.11, 0.16)

_ALPHABET = CREDIT_CODE_ALPHABET
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)  # GB 11714 organisation code check
_TZ = timezone(timedelta(hours=8))


# --------------------------------------------------------------------------------------------
# Credit codes
# --------------------------------------------------------------------------------------------

def _randint(rng, lo: int, hi: int) -> int:
    """Integer in [lo, hi] from a numpy Generator or a random.Random."""
    if hasattr(rng, "integers"):
        return int(rng.integers(lo, hi + 1))
    return rng.randint(lo, hi)


def credit_code(rng, *, division: str | None = None) -> str:
    """A valid unified social credit code, ``9144030...`` style.

    Position 1 ``9`` (market-regulation authority), 2 ``1`` (company), 3-8 the division: the
    district's code (``440306`` Bao'an) or, as for most firms registered since 2015, the city's
    ``440300``; 9-17 the organisation code: ``MA5`` + 5 characters for post-2015 registrations
    (Shenzhen's series) or 8 digits for older ones, each closed by its GB 11714 check character;
    18 the GB 32100 check character.
    """
    if division is None:
        division = "440300" if _randint(rng, 0, 9) < 6 else "440306"
    if _randint(rng, 0, 9) < 7:
        body = "MA5" + "".join(_ALPHABET[_randint(rng, 0, 30)] for _ in range(5))
    else:
        body = "".join(str(_randint(rng, 0, 9)) for _ in range(8))
    # GB 11714: letters count A=10 ... Z=35 (their place in the Latin alphabet).
    vals = [int(c) if c.isdigit() else ord(c) - ord("A") + 10 for c in body]
    c9 = 11 - sum(v * w for v, w in zip(vals, _ORG_WEIGHTS)) % 11
    org = body + ("X" if c9 == 10 else "0" if c9 == 11 else str(c9))
    code17 = "91" + division + org
    return code17 + credit_code_check_character(code17)


# --------------------------------------------------------------------------------------------
# Calendar helpers
# --------------------------------------------------------------------------------------------

def _month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


def _month_start(k: int) -> date:
    return date(k // 12, k % 12 + 1, 1)


def _add_months(d: date, n: int) -> date:
    k = _month_index(d) + n
    y, m = k // 12, k % 12 + 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def _due_date(k: int) -> int:
    """Ordinal of the statutory pay day for period k: the 7th of the next month
    (Shenzhen wage payment regulation art. 11: by the 7th day after a monthly period ends)."""
    return date((k + 1) // 12, (k + 1) % 12 + 1, 7).toordinal()


def _cny(year: int) -> int:
    try:
        return SPRING_FESTIVAL[year].toordinal()
    except KeyError:
        raise ValueError(f"no Spring Festival date for {year}: extend SPRING_FESTIVAL") from None


_ISO_CACHE: dict[int, str] = {}


def _iso(o: int) -> str:
    s = _ISO_CACHE.get(o)
    if s is None:
        s = _ISO_CACHE[o] = date.fromordinal(o).isoformat()
    return s


def _ts(o: int, minute: int) -> str:
    """RFC 3339, China Standard Time: the feeds' own local clock."""
    return f"{_iso(o)}T{minute // 60:02d}:{minute % 60:02d}:00+08:00"


# --------------------------------------------------------------------------------------------
# World objects
# --------------------------------------------------------------------------------------------

@dataclass
class WorldSummary:
    firms: int
    signals: int
    disputes: int
    scenarios: dict[str, int]


@dataclass
class Episode:
    """One trouble episode of one firm; dates are ordinals. ``dispute`` may lie after the
    simulated window (censored there)."""
    scenario: str
    onset: int
    dispute: int | None = None
    size: int = 0
    kind: str | None = None
    length: int = 0          # decline: onset -> dispute
    depth: float = 0.0       # decline / recover: activity lost at the worst point
    hdrop: float = 0.0       # decline: share of workers who quit before the dispute
    close: bool = False      # decline: the firm winds down after the dispute
    wind: int = 0            # decline-close: days for power to fade after the dispute
    settle: int | None = None  # day the arrears are paid after the dispute (None: never)
    collapse: int | None = None  # abscond: day the owner vanishes and utilities collapse
    end: int | None = None   # recover: last troubled day
    chapter: int = 0


@dataclass
class Firm:
    idx: int
    enterprise_id: str
    name: str
    industry: str
    street: str
    community: str
    grid: str
    headcount: int
    wage_pp: float
    si_ratio: float
    habit: int               # usual pay day of the month (1-7)
    late_p: float            # healthy: chance a period is paid 1-5 days late
    partial_p: float         # healthy: chance a period is paid in two parts
    kwh: float               # kWh per day at full activity (0: no power meter)
    standby: float           # share of kWh drawn when idle (lights, servers, fridges)
    water: float             # m3 per day at full activity (0: no water meter)
    wstandby: float
    week_e: np.ndarray       # activity by weekday (Mon..Sun)
    week_w: np.ndarray
    hclass: str              # factory / office / shop / logistics / site
    bg_rate: float           # individual complaints per year, any firm
    meters: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    episodes: list[Episode] = field(default_factory=list)
    closed_on: int | None = None   # readings and records stop from this day
    payroll: bool = True           # its wages reach the monitoring platform
    water_every: int = 1           # days between water readings: 1 (daily) or 7 (Mondays)


def _holiday_factor(hclass: str, days: np.ndarray) -> np.ndarray:
    """Statutory holidays other than the Spring Festival: National Day week (Oct 1-7) and
    Labour Day (May 1-5). Offices close; factories run with part of the workforce (overtime at
    triple pay keeps many lines going); shops get busier. Dates approximate each year's rota."""
    f = np.ones(len(days))
    mult = {"factory": (0.75, 0.85), "office": (0.2, 0.25), "shop": (1.1, 1.1),
            "logistics": (0.8, 0.9)}.get(hclass, (1.0, 1.0))
    for j, o in enumerate(days):
        d = date.fromordinal(int(o))
        if d.month == 10 and d.day <= 7:
            f[j] = mult[0]
        elif d.month == 5 and d.day <= 5:
            f[j] = mult[1]
        elif d.month == 1 and d.day == 1:
            f[j] = mult[1]
    return f


class World:
    """The simulated district. Build with :func:`build_world`."""

    def __init__(self, *, firms: int, seed: int, start: date, district: str, noise: bool,
                 trouble_rate: float, payroll_coverage: float = PAYROLL_COVERAGE,
                 water_weekly: float = WATER_WEEKLY_SHARE, background_complaints: float = BACKGROUND_COMPLAINTS):
        if firms < 1:
            raise ValueError("firms must be >= 1")
        if not 0 <= trouble_rate <= 1:
            raise ValueError("trouble_rate must be within [0, 1] (share of firms per year)")
        if not 0 <= payroll_coverage <= 1:
            raise ValueError("payroll_coverage must be within [0, 1] (share of firms)")
        if not 0 <= water_weekly <= 1:
            raise ValueError("water_weekly must be within [0, 1] (share of water meters)")
        if not 0 <= background_complaints <= 12:
            raise ValueError("background_complaints must be within [0, 12] (complaints a year)")
        if district not in DISTRICTS:
            if not re.fullmatch(r"[a-z0-9-]{1,40}", district):
                raise ValueError(f"district {district!r} must match ^[a-z0-9-]{{1,40}}$")
        _cny(start.year)
        self.seed = int(seed)
        self.start = start
        self.district = district
        self.noise = bool(noise)
        self.trouble_rate = float(trouble_rate)
        self.payroll_coverage = float(payroll_coverage)
        self.water_weekly = float(water_weekly)
        self.background_complaints = float(background_complaints)
        self.firms: list[Firm] = []
        self._chapters_planned = 0
        self._zcache: dict[tuple[int, int], float] = {}
        self._water_batch: dict[int, int] = {}
        self._build_registry(firms)

    # ---------------------------------------------------------------- registry
    def _build_registry(self, n: int) -> None:
        rng = np.random.default_rng([self.seed, 0])
        division, streets = DISTRICTS.get(self.district, ("440300", tuple(
            f"{self.district}-s{i}" for i in range(1, 9))))
        # Communities per street (Bao'an streets have 10-30 communities; a sample of them is
        # enough) and grids per community (the grid-management unit of a few hundred homes).
        ncomm = {s: int(rng.integers(6, 13)) for s in streets}
        ngrid = {(s, c): int(rng.integers(4, 11)) for s in streets for c in range(1, ncomm[s] + 1)}
        used: set[str] = set()
        meters: set[str] = set()
        for i in range(n):
            street = streets[int(rng.integers(len(streets)))]
            mix = INDUSTRY_MIX.copy()
            if street in SERVICE_STREETS:
                # old centres: fewer factories, more offices, shops and restaurants
                mix[:3] *= 0.5
                mix[6:9] *= 2.0
            industry = INDUSTRIES[int(rng.choice(len(INDUSTRIES), p=mix / mix.sum()))]
            comm = int(rng.integers(1, ncomm[street] + 1))
            grid = int(rng.integers(1, ngrid[(street, comm)] + 1))
            h0 = int(np.clip(round(HEADCOUNT_MEDIAN[industry] * math.exp(rng.normal(0, 1.0))),
                             3, 2500))
            while True:
                code = credit_code(rng, division="440300" if rng.random() < 0.6 else division)
                if code not in used:
                    used.add(code)
                    break
            hclass = ("site" if industry == "construction" else
                      "factory" if industry in _FACTORY else
                      "office" if industry == "services" else
                      "shop" if industry in ("retail", "catering") else "logistics")
            wage_pp = WAGE_PER_WORKER[industry] * math.exp(rng.normal(0, 0.12))
            si_ratio = float(rng.uniform(*SI_RATIO))
            # Pay day habit: on or before the statutory 7th (the samples pay on the 4th-7th).
            habit = int(rng.choice([1, 3, 4, 5, 6, 7], p=[0.05, 0.1, 0.2, 0.3, 0.15, 0.2]))
            # Healthy firms slip too (regulation allows 5 days); construction, paid through
            # main contractors' progress payments, slips more often.
            late_p = float(rng.uniform(0.02, 0.08)) * (2.0 if hclass == "site" else 1.0)
            partial_p = float(rng.uniform(0.01, 0.04))
            if hclass == "factory":
                # six-day weeks are the norm in Shenzhen factories; Sunday is partial
                week_e = np.array([1, 1, 1, 1, 1, rng.uniform(0.75, 1.0), rng.uniform(0.3, 0.7)])
                week_w = np.array([1, 1, 1, 1, 1, 0.95, 0.8])  # dormitories keep using water
            elif hclass == "office":
                week_e = np.array([1, 1, 1, 1, 1, rng.uniform(0.3, 0.5), rng.uniform(0.25, 0.4)])
                week_w = week_e.copy()
            elif hclass == "shop":
                week_e = np.array([0.95, 0.95, 0.95, 0.95, 1.05, 1.15, 1.15])
                week_w = week_e.copy()
            else:
                week_e = np.array([1, 1, 1, 1, 1, 0.9, rng.uniform(0.6, 0.8)])
                week_w = week_e.copy()
            f = Firm(
                idx=i, enterprise_id=code,
                name=f"Shenzhen {street.replace('-', ' ').title()} {industry.title()} Co. {i:04d}",
                industry=industry, street=street, community=f"{street}-c{comm}",
                grid=f"{street}-c{comm}-g{grid}", headcount=h0, wage_pp=wage_pp,
                si_ratio=si_ratio, habit=habit, late_p=late_p, partial_p=partial_p,
                kwh=0.0, standby=float(rng.uniform(0.03, 0.08)), water=0.0,
                wstandby=float(rng.uniform(0.04, 0.1)), week_e=week_e, week_w=week_w,
                hclass=hclass,
                # BACKGROUND_COMPLAINTS a year for a 50-worker firm, growing with the workforce
                bg_rate=float(np.clip(self.background_complaints * math.sqrt(h0 / 50),
                                      0.2 * self.background_complaints, 7.5 * self.background_complaints)),
            )
            if hclass != "site":   # construction sites have no meters of their own
                f.kwh = KWH_PER_WORKER[industry] * h0 * math.exp(rng.normal(0, 0.35))
                f.meters["electricity"] = self._meter_series(rng, "E", meters)
                # Firms renting in shared buildings pay water in the rent: no water meter.
                if hclass == "shop" and industry == "catering" or rng.random() < 0.85:
                    f.water = WATER_PER_WORKER[industry] * h0 * math.exp(rng.normal(0, 0.35))
                    f.meters["water"] = self._meter_series(rng, "W", meters)
            self.firms.append(f)
        # Drawn apart from the rest, so that a world differs by its coverage in nothing else.
        covered = np.random.default_rng([self.seed, 12]).random(n) < self.payroll_coverage
        for f, has_feed in zip(self.firms, covered):
            f.payroll = bool(has_feed)
        # Likewise the water meters' reading cadence.
        weekly = np.random.default_rng([self.seed, 13]).random(n) < self.water_weekly
        for f, once_a_week in zip(self.firms, weekly):
            f.water_every = 7 if once_a_week else 1

    def _meter_series(self, rng, prefix: str, used: set[str]) -> list[tuple[int, str]]:
        """Meter ids with their first day: one meter, replaced about once in 20 years each
        (a replacement is feed noise: it shows only when noise=True)."""
        def new_id() -> str:
            while True:
                m = f"{prefix}{int(rng.integers(10_000_000, 100_000_000))}"
                if m not in used:
                    used.add(m)
                    return m
        series = [(0, new_id())]
        t = self.start.toordinal() + int(rng.exponential(365 * 20))
        while t < self.start.toordinal() + 365 * 30:
            series.append((t, new_id()))
            t += 1 + int(rng.exponential(365 * 20))
        return series

    def enterprise_rows(self) -> list[dict]:
        """The registry, one dict per firm in enterprise.schema.json's fields."""
        return [{"enterprise_id": f.enterprise_id, "name": f.name, "industry": f.industry,
                 "district": self.district, "street": f.street, "community": f.community,
                 "grid": f.grid, "headcount": f.headcount} for f in self.firms]

    # ---------------------------------------------------------------- planning
    def _chapter_span(self, c: int) -> tuple[int, int]:
        return (_add_months(self.start, 12 * c).toordinal(),
                _add_months(self.start, 12 * (c + 1)).toordinal())

    def _ensure_planned(self, until: int) -> None:
        """Plan chapters (years from start) until every episode with onset <= until is known.
        Onsets precede disputes by at most 180 days, so plan chapters starting before
        until + 240 (margin for pre-onset dips and next-month pay days)."""
        while self._chapter_span(self._chapters_planned)[0] <= until + 240:
            self._plan_chapter(self._chapters_planned)
            self._chapters_planned += 1

    def _plan_chapter(self, c: int) -> None:
        rng = np.random.default_rng([self.seed, 4, c])
        cs, ce = self._chapter_span(c)
        # Burn-in: no dispute in the first four weeks of the world, so that every dispute has
        # at least some history in the feed (onsets may still precede the start: the world
        # does not begin on a quiet day).
        lo = cs + 28 if c == 0 else cs
        eligible = [f for f in self.firms
                    if (f.closed_on is None or f.closed_on > cs)
                    and not any(e.chapter >= c - 1 for e in f.episodes)]
        n = min(len(eligible), int(round(len(self.firms) * self.trouble_rate)))
        if n == 0:
            return
        # Construction is over-represented among wage-arrears incidents (CLB Guangdong: 14.3%
        # of incidents vs ~9% of firms), factories slightly. Trouble that ends in a recorded
        # dispute is size-biased: a quarter of CLB incidents have 100+ participants although
        # only about a fifth of firms employ 100+, and a 10-worker shop's arrears end as
        # individual cases; weight by headcount.
        w = np.array([(1.6 if f.hclass == "site" else 1.1 if f.hclass == "factory" else 1.0)
                      * f.headcount for f in eligible])
        picked = sorted(rng.choice(len(eligible), size=n, replace=False, p=w / w.sum()))
        days = np.arange(lo, ce)
        # Dispute dates of declines and abscondings: CLB monthly shares of wage-arrears
        # incidents (peak Dec/Jan, trough March), spread over each month's days.
        dw = np.array([CLB_MONTH_SHARE_WAGE_ARREARS[date.fromordinal(int(o)).month]
                       / calendar.monthrange(date.fromordinal(int(o)).year,
                                             date.fromordinal(int(o)).month)[1] for o in days])
        dw /= dw.sum()
        cnys = [_cny(y) for y in range(date.fromordinal(cs).year, date.fromordinal(ce).year + 1)
                if lo + 3 <= _cny(y) - 3 and _cny(y) - 3 < ce]
        for j in picked:
            f = eligible[j]
            u = rng.random(12)
            if f.hclass == "site":
                scen = "construction_arrears" if (u[0] < 0.75 and cnys) else "recover"
            else:
                scen = "decline" if u[0] < 0.5 else "abscond" if u[0] < 0.68 else "recover"
            if scen == "recover":
                onset = int(lo + u[1] * (ce - lo))
                ep = Episode("recover", onset, depth=0.2 + 0.25 * u[2],
                             end=onset + 30 + int(60 * u[3]), chapter=c)
            elif scen == "construction_arrears":
                # Wages held back for months, workers demand them just before the festival so
                # they can go home (the yearly winter campaign against wage arrears settles
                # most cases within days).
                fest = cnys[int(u[1] * len(cnys))]
                d = max(lo, fest - 3 - int(23 * u[2]))
                # onset: the first pay day missed, 3-6 months before the dispute
                first = date.fromordinal(d - 90 - int(90 * u[3]))
                onset = (first.replace(day=7) if first.day <= 7 else
                         _add_months(first.replace(day=7), 1)).toordinal()
                ep = Episode("construction_arrears", onset, dispute=d,
                             settle=d + 2 + int(10 * u[4]), chapter=c)
            else:
                d = int(days[rng.choice(len(days), p=dw)])
                fest = _cny(date.fromordinal(d).year)
                if fest - 2 <= d <= fest + 7 and fest - 8 >= lo:
                    # nobody gathers at a shut factory over the holiday: the workers press
                    # for their pay before they leave
                    d = fest - 3 - int(5 * u[7])
                if scen == "decline":
                    # slow: 2-5 months from the first signs to the dispute
                    length = 60 + int(90 * u[1])
                    ep = Episode("decline", d - length, dispute=d, length=length,
                                 depth=0.45 + 0.35 * u[2], hdrop=0.1 + 0.25 * u[3],
                                 close=bool(u[4] < 0.5), wind=10 + int(20 * u[5]), chapter=c)
                    if ep.close:
                        # arrears then go to the government's wage advance fund: not payroll
                        f.closed_on = d + ep.wind + 20 + int(25 * u[6])
                    else:
                        ep.settle = d + 7 + int(33 * u[6])   # mediation settles the arrears
                else:
                    # sudden: the last pay day is missed, the owner vanishes within days, the
                    # workers gather within weeks. Onset = that missed pay day (a 7th).
                    dd = date.fromordinal(d - 7)
                    o = date(dd.year, dd.month, 7) if dd.day >= 7 else \
                        date((_month_index(dd) - 1) // 12, (_month_index(dd) - 1) % 12 + 1, 7)
                    onset = o.toordinal()
                    collapse = onset + 2 + int(u[1] * (min(14, d - onset - 1) - 2))
                    ep = Episode("abscond", onset, dispute=d, collapse=collapse, chapter=c)
                    f.closed_on = d + 14 + int(36 * u[2])
            if ep.dispute is not None:
                ep.size, ep.kind = self._dispute_size(f, ep, rng)
            f.episodes.append(ep)

    def _dispute_size(self, f: Firm, ep: Episode, rng) -> tuple[int, str]:
        """Workers involved: drawn from the CLB participant bands (log-uniform within a band),
        then capped by the workers still there and owed (70-100% of them join). The 1-100 band
        is drawn from 20 up: CLB records group actions, and the source documents' collective
        disputes are 30-50 (3), 51-200 (5), 501-1000 (1); smaller groups come from the cap."""
        shares = np.array([b[2] for b in CLB_PARTICIPANT_BANDS])
        b = int(rng.choice(len(shares), p=shares / shares.sum()))
        lo, hi = CLB_PARTICIPANT_BANDS[b][:2]
        lo = max(lo, 20)
        target = int(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        present = f.headcount * ((1 - ep.hdrop) if ep.scenario == "decline" else 1.0)
        cap = max(3, int(round(present * rng.uniform(0.7, 1.0))))
        size = max(3, min(target, cap))
        if ep.scenario == "abscond":
            kind = "absconding"
        elif size >= 30:
            kind = "collective_dispute"
        elif ep.scenario == "decline" and rng.random() < 0.3:
            kind = "arbitration_case"
        else:
            kind = "wage_arrears_case"
        return size, kind

    # ---------------------------------------------------------------- truth / labels
    def truth(self, end: date) -> dict[str, dict]:
        """What each firm went through in [start, end): the episode that shows in the window
        (the one with a dispute in it, else the first one begun before end)."""
        e_ord = end.toordinal()
        self._ensure_planned(e_ord)
        s_ord = self.start.toordinal()
        out = {}
        for f in self.firms:
            eps = [e for e in f.episodes if e.onset < e_ord]
            eps.sort(key=lambda e: (not (e.dispute is not None and s_ord <= e.dispute < e_ord),
                                    e.onset))
            if eps:
                e = eps[0]
                disp = e.dispute if e.dispute is not None and s_ord <= e.dispute < e_ord else None
                out[f.enterprise_id] = {"scenario": e.scenario, "onset": _iso(e.onset),
                                        "dispute": _iso(disp) if disp else None,
                                        "street": f.street}
            else:
                out[f.enterprise_id] = {"scenario": "healthy", "onset": None, "dispute": None,
                                        "street": f.street}
        return out

    def disputes(self, end: date) -> list[dict]:
        """Disputes that happened in [start, end), by date then firm."""
        e_ord = end.toordinal()
        self._ensure_planned(e_ord)
        s_ord = self.start.toordinal()
        rows = []
        for f in self.firms:
            for e in f.episodes:
                if e.dispute is not None and s_ord <= e.dispute < e_ord:
                    rows.append((e.dispute, f.idx, {"enterprise_id": f.enterprise_id,
                                                    "occurred_on": _iso(e.dispute),
                                                    "workers_involved": int(e.size),
                                                    "kind": e.kind}))
        rows.sort(key=lambda r: (r[0], r[1]))
        return [r[2] for r in rows]

    # ---------------------------------------------------------------- daily levels
    def _z(self, idx: int, k: int) -> float:
        key = (idx, k)
        z = self._zcache.get(key)
        if z is None:
            z = self._zcache[key] = float(np.random.default_rng([self.seed, 2, idx, k]).normal())
        return z

    def _order_level(self, f: Firm, k: int, days: np.ndarray) -> np.ndarray:
        """Business level: an independent monthly shock (sd 7%) interpolated between month
        midpoints, so order books drift smoothly rather than jump on the 1st."""
        m0 = _month_start(k).toordinal()
        ndays = calendar.monthrange(k // 12, k % 12 + 1)[1]
        t = (days - m0 + 0.5) / ndays  # 0..1 within the month
        za, zb, zc = self._z(f.idx, k - 1), self._z(f.idx, k), self._z(f.idx, k + 1)
        z = np.where(t < 0.5, za + (zb - za) * (t + 0.5), zb + (zc - zb) * (t - 0.5))
        return np.exp(0.07 * z)

    def _shutdown(self, f: Firm, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Spring Festival: (activity, presence of workers). Factories close 4-11 days before
        the New Year (migrant workers travel home) and reopen 7-16 days after, so 2-3 weeks at
        standby load, with a ramp-down as workers leave and a slow ramp-up as they come back
        (the post-festival labour shortage). Offices close for the statutory 8 days; half the
        shops and restaurants close for 1-2 weeks, the rest trade at a third. Normal for every
        firm: it is not distress."""
        act = np.ones(len(days))
        pres = np.ones(len(days))
        y0 = date.fromordinal(int(days[0])).year
        for y in (y0, y0 + 1):
            fest = _cny(y)
            if days[-1] < fest - 40 or days[0] > fest + 60:
                continue
            r = np.random.default_rng([self.seed, 11, f.idx, y]).random(4)
            rel = days - fest
            if f.hclass in ("factory", "site"):
                close, reopen = -4 - int(8 * r[0]), 7 + int(10 * r[1])
                down, up, floor = 8, 12 + int(13 * r[2]), 0.0
            elif f.hclass == "logistics":
                close, reopen = -5 - int(5 * r[0]), 6 + int(5 * r[1])
                down, up, floor = 5, 7, 0.15   # a skeleton crew keeps parcels moving
            elif f.hclass == "office":
                close, reopen, down, up, floor = -1, 7, 3, 4, 0.0
            else:
                if r[3] < 0.5:
                    close, reopen = -2 - int(5 * r[0]), 6 + int(7 * r[1])
                    down, up, floor = 3, 5, 0.0
                else:
                    close, reopen, down, up, floor = -5, 10, 3, 4, 0.35
            a = np.ones(len(days))
            ramp_d = (rel >= close - down) & (rel < close)
            a[ramp_d] = 1 - 0.45 * (rel[ramp_d] - (close - down) + 1) / down
            shut = (rel >= close) & (rel < reopen)
            a[shut] = floor
            ramp_u = (rel >= reopen) & (rel < reopen + up)
            a[ramp_u] = 0.35 + 0.65 * (rel[ramp_u] - reopen) / up
            act *= a
            p = np.where(shut, 0.08 + floor, np.where(ramp_d | ramp_u, a, 1.0))
            pres *= p
        return act, pres

    def _episode_levels(self, f: Firm, days: np.ndarray):
        """Multipliers from trouble episodes: electricity activity, water activity, workforce,
        and standby load."""
        n = len(days)
        e, w, h, sb = np.ones(n), np.ones(n), np.ones(n), np.ones(n)
        for ep in f.episodes:
            if ep.onset - 40 > days[-1]:
                continue
            if ep.scenario == "decline":
                # Falling orders: activity and workforce shrink, accelerating towards the dispute
                s = np.clip((days - ep.onset) / ep.length, 0, 1) ** 1.3
                e *= 1 - ep.depth * s
                w *= 1 - 0.6 * ep.depth * s
                h *= 1 - ep.hdrop * s
                if ep.close:
                    t = np.clip((days - ep.dispute) / ep.wind, 0, 1)
                    e *= 1 - t
                    w *= 1 - 0.9 * t
                    h *= 1 - t
                    sb *= 1 - 0.5 * t
            elif ep.scenario == "abscond":
                # a few slack weeks, then the owner removes equipment and vanishes: power drops
                # to a fraction of standby within a day; workers stay in the dormitory until
                # the dispute, then leave.
                pre = (days >= ep.onset - 30) & (days < ep.collapse)
                e[pre] *= 0.9
                after = days >= ep.collapse
                e[after] = 0.0
                sb[after] *= 0.4
                h[after] = 0.0
                w[after] = np.where(days[after] < ep.dispute + 3, 0.25, 0.03)
            elif ep.scenario == "recover":
                # a 1-3 month dip: two weeks down, a hold, three weeks back up
                rel_a = (days - ep.onset) / 14
                rel_b = (ep.end - days) / 21
                b = np.clip(np.minimum(rel_a, rel_b), 0, 1)
                e *= 1 - ep.depth * b
                w *= 1 - 0.5 * ep.depth * b
                h *= 1 - 0.08 * b
        return e, w, h, sb

    def _state_rate(self, f: Firm, o: int) -> tuple[float, Episode | None, float]:
        """Complaint rate (per month) from trouble on day o, the episode, and its severity."""
        for ep in f.episodes:
            # The contract's sample world: one to three complaints in the five weeks or so
            # before a decline's dispute, one or two in an absconding owner's last weeks.
            if ep.scenario == "decline" and ep.onset <= o < ep.dispute:
                s = ((o - ep.onset) / ep.length) ** 1.3
                return (0.0 if s < 0.25 else 0.3 + 2.2 * s), ep, s
            if ep.scenario == "abscond" and ep.onset <= o < ep.dispute:
                return (1.0 if o < ep.collapse else 4.0), ep, 1.0 if o >= ep.collapse else 0.5
            if ep.scenario == "construction_arrears" and ep.onset <= o < ep.dispute:
                start = max(ep.onset + 20, ep.dispute - 60)
                if o < start:
                    return 0.0, ep, 0.3
                p = (o - start) / max(1, ep.dispute - start)
                return 1.0 + 5.0 * p, ep, 0.5 + 0.5 * p
            if ep.scenario == "recover" and ep.onset <= o <= ep.end:
                return 0.3, ep, 0.3
        return 0.0, None, 0.0

    # ---------------------------------------------------------------- payroll
    def _payroll(self, f: Firm, k: int, emit) -> None:
        """Records of pay period k: one per payment event (cumulative amounts: a later record
        supersedes), plus a status record on the due date when the period is not fully paid by
        then (the wage-payment monitoring platform's view)."""
        if not f.payroll:
            return
        ps = _month_start(k).toordinal()
        dd = _due_date(k)
        if f.closed_on is not None and ps >= f.closed_on:
            return
        for ep in f.episodes:
            if ep.scenario == "abscond" and ps >= ep.collapse:
                return
            if ep.scenario == "decline" and ep.close and ps >= ep.dispute:
                return
        rng = np.random.default_rng([self.seed, 5, f.idx, k])
        u = rng.random(12)
        # workforce on the payroll: as at the start of the period (an absconding owner's
        # last period still owes everyone who was there)
        hf = self._episode_levels(f, np.array([ps]))[2][0]
        # after the festival fewer workers come back for a while (the post-festival shortage)
        post = 0.93 if (k % 12 + 1) in (2, 3) and f.hclass in ("factory", "site") else 1.0
        hc = max(1, int(round(f.headcount * math.exp(0.04 * self._z(f.idx, k)) * post
                              * max(hf, 0.05))))
        # pay for hours worked: the festival month pays less to hourly and piece-rate workers
        act, _ = self._shutdown(f, np.arange(ps, _month_start(k + 1).toordinal()))
        due = round(hc * f.wage_pp * (0.55 + 0.45 * float(act.mean())) * (0.97 + 0.06 * u[0]), 2)
        si_due = round(due * f.si_ratio, 2)

        events: list[tuple[int, float, float]] = []   # (day, wage fraction, SI fraction) cum.
        pay_day = date.fromordinal(dd).replace(day=f.habit).toordinal()
        trouble = None
        for ep in f.episodes:
            if ep.scenario == "decline" and ep.onset <= dd and (ps < ep.dispute or
                                                                (ep.settle and dd < ep.settle)):
                trouble = ep
            elif ep.scenario == "abscond" and ep.onset <= dd:
                trouble = ep
            elif ep.scenario == "construction_arrears" and ep.onset <= dd <= ep.dispute:
                trouble = ep
            elif ep.scenario == "recover" and ep.onset <= dd <= ep.end:
                trouble = ep
        if trouble is None or (trouble.scenario == "decline" and
                               ((dd - trouble.onset) / trouble.length) ** 1.3 < 0.12
                               and dd < trouble.dispute):
            # Healthy behaviour: on the habit day; sometimes 1-5 days late (within the 5-day
            # tolerance of the regulation); sometimes part now and the rest within days.
            if u[1] < f.late_p:
                events.append((dd + 1 + int(5 * u[2]), 1.0, 1.0))
            elif u[1] < f.late_p + f.partial_p:
                frac = 0.6 + 0.35 * u[2]
                events.append((pay_day, frac, frac))
                events.append((dd + 1 + int(8 * u[3]), 1.0, 1.0))
            else:
                events.append((pay_day, 1.0, 1.0))
        elif trouble.scenario == "decline":
            ep = trouble
            if dd >= ep.dispute:
                # the period straddling the dispute: nothing more from the firm until the
                # mediation settles it (limp-on branch) or ever (closing branch)
                if ep.settle:
                    events.append((max(ep.settle, dd), 1.0, 0.0))
            else:
                s = min(1.0, ((dd - ep.onset) / ep.length) ** 1.3)
                f1 = max(0.0, 1 - s * (0.8 + 0.5 * u[1]))
                f1 = 0.0 if f1 < 0.05 else f1
                si = 0.0 if s > 0.3 else 1.0  # social insurance falls into arrears first
                done = dd + int(round(s * (20 + 30 * u[2])))
                if f1 > 0:
                    events.append((pay_day if u[3] < 0.5 else dd, f1, si * f1))
                if done >= ep.dispute - 2:
                    if ep.settle:
                        events.append((ep.settle, 1.0, si))
                else:
                    if done - dd > 14 and u[4] < 0.5:
                        events.append((dd + (done - dd) // 2, (1 + f1) / 2, si * (1 + f1) / 2))
                    events.append((max(done, dd + 1), 1.0, si))
        elif trouble.scenario == "abscond":
            if dd == trouble.onset:
                frac = 0.4 * u[1]      # a token payment on the last pay day, never completed
                events.append((dd, frac, 0.0))
            # later periods: the status record at the due date shows nothing paid
        elif trouble.scenario == "construction_arrears":
            ep = trouble
            # a living allowance at first, then nothing; all paid at the settlement
            frac = 0.0 if dd > ep.dispute - 45 else 0.2 + 0.3 * u[1]
            if frac > 0:
                events.append((dd, frac, frac))
            events.append((ep.settle, 1.0, 1.0))
        else:  # recover: late by 1-3 weeks, sometimes a part first
            done = dd + 6 + int(19 * u[1])
            if u[2] < 0.5:
                frac = 0.5 + 0.4 * u[3]
                events.append((dd, frac, 0.0))
            events.append((done, 1.0, 1.0))

        events.sort(key=lambda x: x[0])
        full = next((d for d, wf, _ in events if wf >= 1.0), None)
        if (full is None or full > dd) and not any(d == dd for d, _, _ in events):
            prior = [(wf, sf) for d, wf, sf in events if d < dd]
            wf, sf = prior[-1] if prior else (0.0, 0.0)
            events.append((dd, wf, sf))
            events.sort(key=lambda x: x[0])
        period = f"{k // 12:04d}-{k % 12 + 1:02d}"
        due_iso = _iso(dd)
        seen = set()
        for d, wf, sf in events:
            if d in seen:
                continue
            seen.add(d)
            paid = due if wf >= 1.0 else round(due * wf, 2)
            emit(d, 18 * 60, "pay", {
                "type": "wage", "enterprise_id": f.enterprise_id,
                "source": "payroll-bank", "period": period, "headcount": hc,
                "wages_due": due, "wages_paid": paid, "due_date": due_iso,
                "paid_date": _iso(d) if wf >= 1.0 else None,
                "social_insurance_due": si_due,
                "social_insurance_paid": si_due if sf >= 1.0 else round(si_due * sf, 2)})

    # ---------------------------------------------------------------- inspections
    def _inspections(self, f: Firm, k: int, d0: int, d1: int, emit_) -> None:
        def emit(o: int, minute: int, prefix: str, rec: dict) -> None:
            rec["enterprise_id"] = f.enterprise_id
            emit_(o, minute, prefix, rec)

        rng = np.random.default_rng([self.seed, 6, f.idx, k])
        days = np.arange(d0, d1)
        n = len(days)
        if f.closed_on is not None:
            days = days[days < f.closed_on]
            n = len(days)
        if n == 0:
            return
        dow = np.array([date.fromordinal(int(o)).weekday() for o in days])
        rel_cny = np.array([int(o) - _cny(date.fromordinal(int(o)).year) for o in days])
        in_fest = (rel_cny >= -3) & (rel_cny <= 7)
        workday = (dow < 5) & ~in_fest
        r = rng.random((6, n))
        hf = self._episode_levels(f, days)[2]
        last_special = -10**9

        def special(t: int, minute: int, fnd: list[str]) -> None:
            # the labour bureau's special inspection, on a working day, at most one in 10 days
            nonlocal last_special
            while date.fromordinal(t).weekday() >= 5 or date.fromordinal(t).timetuple()[1:3] \
                    == (1, 1):
                t += 1
            if t - last_special < 10 or (f.closed_on is not None and t >= f.closed_on):
                return
            last_special = t
            emit(t, minute, "ins", self._insp("special_inspection", fnd))

        for j in range(n):
            o = int(days[j])
            rate, ep, sev = self._state_rate(f, o)
            # Routine inspections (~0.8 a year per firm, as in the samples) and grid workers'
            # daily visits (~2.5 a year): mostly nothing found.
            if workday[j] and r[0, j] < 0.8 / 250:
                emit(o, 9 * 60 + 30 + int(rng.integers(0, 450)), "ins",
                     self._insp("routine_inspection", self._visit_findings(rng, ep, sev, o)))
            if workday[j] and r[1, j] < 2.5 / 250:
                emit(o, 9 * 60 + int(rng.integers(0, 480)), "ins",
                     self._insp("daily_visit", self._visit_findings(rng, ep, sev, o)))
            # Background individual complaints, any firm: resigned workers' final pay,
            # contracts, overtime (BACKGROUND_COMPLAINTS).
            if r[2, j] < f.bg_rate / 365:
                fnd = [str(rng.choice(["wage_arrears", "late_wages", "no_contract",
                                       "excessive_overtime", "social_insurance_arrears", "other"],
                                      p=[0.35, 0.15, 0.15, 0.15, 0.12, 0.08]))]
                # one worker's own case: a group, even of two, is trouble (2 to 6 workers
                # in the contract's sample world, and none at its firms without a dispute)
                wk = 1
                rec = self._insp(str(rng.choice(["complaint", "hotline", "petition"],
                                                p=[0.45, 0.4, 0.15])), fnd, wk)
                if fnd[0] == "wage_arrears":
                    rec["arrears_amount"] = round(wk * f.wage_pp * rng.uniform(0.3, 1.5), 2)
                emit(o, 8 * 60 + int(rng.integers(0, 800)), "cmp", rec)
            # Complaints from trouble: more often and in larger groups as it deepens; groups
            # stay under 30 (30+ acting together is the dispute itself).
            if rate > 0 and r[3, j] < rate / 30:
                fnd, wk = self._trouble_findings(rng, ep, sev, o)
                wk = int(min(wk, max(1, round(f.headcount * max(hf[j], 0.3))), 25))
                rec = self._insp(str(rng.choice(["complaint", "hotline", "petition"],
                                                p=[0.45, 0.35, 0.2])), fnd, wk)
                months = 0.5 + 2 * sev
                rec["arrears_amount"] = round(wk * f.wage_pp * months * rng.uniform(0.6, 1.2), 2)
                emit(o, 8 * 60 + int(rng.integers(0, 800)), "cmp", rec)
                # a complaint puts the firm on the key-monitoring list: the labour bureau
                # inspects within two weeks about half the time
                if r[4, j] < 0.5:
                    special(o + 3 + int(rng.integers(0, 12)),
                            9 * 60 + 30 + int(rng.integers(0, 420)), list(fnd))
        # The dispute: the day after, the 12345 hotline carries the group's report.
        for ep in f.episodes:
            if ep.dispute is not None and d0 <= ep.dispute < d1:
                fnd = ["wage_arrears"] + (["owner_absent"] if ep.scenario == "abscond" else [])
                months = {"decline": 1.5 + 1.5 * rng.random(), "abscond": 1 + rng.random(),
                          "construction_arrears": 2 + 3 * rng.random()}[ep.scenario]
                rec = self._insp("complaint", fnd, int(ep.size))
                rec["arrears_amount"] = round(ep.size * f.wage_pp * months, 2)
                emit(ep.dispute + 1, 10 * 60, "cmp", rec)
                # and the labour bureau is on site within days (the red-alert response)
                last_special = -10**9
                special(ep.dispute + 1 + int(rng.integers(0, 3)), 15 * 60, list(fnd))

    @staticmethod
    def _insp(kind: str, findings: list[str], workers: int = 0) -> dict:
        return {"type": "inspection", "kind": kind, "workers_involved": int(workers),
                "findings": findings}

    def _visit_findings(self, rng, ep: Episode | None, sev: float, o: int) -> list[str]:
        if ep is not None and rng.random() < sev:
            if ep.scenario == "abscond" and o >= ep.collapse:
                return ["owner_absent", "equipment_removal"]
            if ep.scenario == "decline" and sev > 0.5:
                return ["late_wages"] + (["rent_arrears"] if rng.random() < 0.4 else [])
            if ep.scenario in ("decline", "recover", "construction_arrears"):
                return ["late_wages"]
        u = rng.random()
        # samples: 4 of 27 routine inspections found missing contracts
        return [] if u < 0.85 else ["no_contract"] if u < 0.93 else \
            ["excessive_overtime"] if u < 0.98 else ["other"]

    def _trouble_findings(self, rng, ep: Episode, sev: float, o: int) -> tuple[list[str], int]:
        """Findings and group size of a complaint from trouble. Factory groups before the
        dispute are small, 2 to 6 workers as in the contract's sample world, from the first
        complaint on; construction crews complain in bigger groups."""
        if ep.scenario == "abscond":
            if o >= ep.collapse:
                fnd = ["wage_arrears"]
                if rng.random() < 0.85:
                    fnd.append("owner_absent")
                if rng.random() < 0.3:
                    fnd.append("equipment_removal")
                return fnd, int(rng.integers(3, 7))
            return ["wage_arrears" if rng.random() < 0.6 else "late_wages"], int(rng.integers(2, 7))
        if ep.scenario == "decline":
            fnd = ["wage_arrears" if sev > 0.35 or rng.random() < 0.5 else "late_wages"]
            if sev > 0.3 and rng.random() < 0.45:
                fnd.append("social_insurance_arrears")
            return fnd, int(rng.integers(2, 7))
        if ep.scenario == "construction_arrears":
            return ["wage_arrears"], 2 + int(rng.poisson(2 + 8 * sev))
        # a firm that recovers hears from single workers, not from a group
        return ["late_wages" if rng.random() < 0.6 else "wage_arrears"], 1

    # ---------------------------------------------------------------- utilities
    def _utilities(self, f: Firm, k: int, d0: int, d1: int, emit) -> None:
        if f.kwh <= 0:
            return
        days = np.arange(d0, d1)
        if f.closed_on is not None:
            days = days[days < f.closed_on]
        n = len(days)
        if n == 0:
            return
        rng = np.random.default_rng([self.seed, 7, f.idx, k])
        nrng = np.random.default_rng([self.seed, 8, f.idx, k])
        dow = np.array([date.fromordinal(int(o)).weekday() for o in days])
        doy = np.array([date.fromordinal(int(o)).timetuple().tm_yday for o in days])
        order = self._order_level(f, k, days)
        hol = _holiday_factor(f.hclass, days)
        act_cny, pres = self._shutdown(f, days)
        ep_e, ep_w, ep_h, sb = self._episode_levels(f, days)
        # Shenzhen summers: air conditioning adds ~12% at the end of July
        summer = 1 + 0.12 * np.cos(2 * np.pi * (doy - 205) / 365.25)
        act = f.week_e[dow] * hol * act_cny * order * summer * ep_e
        kwh = f.kwh * (f.standby * sb + (1 - f.standby) * act) * np.exp(rng.normal(0, 0.07, n))
        self._meter(f, "electricity", days, kwh, 1, nrng, emit)
        if f.water > 0:
            # water: the dormitory share follows who is there, the rest follows the work
            wact = 0.35 * pres * np.minimum(ep_h, 1) * np.where(ep_w < 0.3, ep_w, 1.0) \
                + 0.65 * f.week_w[dow] * hol * act_cny * order * ep_w
            m3 = f.water * (f.wstandby + (1 - f.wstandby) * wact) * np.exp(rng.normal(0, 0.1, n))
            self._meter(f, "water", days, m3, 2, nrng, emit, every=f.water_every)

    def _water_delay(self, o: int) -> int:
        """Days by which the water company's whole batch for reading day o is late (1%)."""
        v = self._water_batch.get(o)
        if v is None:
            r = np.random.default_rng([self.seed, 9, o]).random(2)
            v = self._water_batch[o] = (1 + int(r[1] * 2)) if r[0] < 0.01 else 0
        return v

    def _meter(self, f: Firm, util: str, days: np.ndarray, values: np.ndarray, nd: int,
               nrng, emit, every: int = 1) -> None:
        """Readings of ``values`` (one per day of ``days``); ``every=7``: one on each Monday with
        the week's consumption (a week that began last month, whose days the caller has not
        drawn, is its days in this month scaled to seven)."""
        prefix, source, unit, minute = (("pwr", "grid-power", "kWh", 120) if util == "electricity"
                                        else ("wtr", "water-co", "m3", 180))
        series = f.meters[util]
        n = len(days)
        noise = self.noise
        if every == 7:
            todo = [j for j in range(n) if date.fromordinal(int(days[j])).weekday() == 0]
            weekly = np.zeros(n)
            for j in todo:
                week = values[max(0, j - 6):j + 1]
                weekly[j] = float(week.sum()) * 7 / len(week)
            values = weekly
        else:
            todo = range(n)
        # noise draws happen whether or not noise is on, so the values never depend on it
        rr = nrng.random((5, n))
        outage = np.zeros(n, dtype=bool)
        for j in np.nonzero(rr[0] < 1 / 300)[0]:       # meter-reading outages of 1-5 days
            outage[j:j + 1 + int(rr[1, j] * 5)] = True
        drop = (rr[2] < 0.008) | outage                  # single missing readings
        glitch = rr[3] < 0.003                           # under-reads corrected later
        backfill = rr[4] < 0.3                           # share of gaps re-read later
        lag = nrng.integers(2, 10, n)                    # days until a re-read arrives
        gfrac = nrng.random(n) * 0.5
        for j in todo:
            o = int(days[j])
            val = round(float(values[j]), nd)
            meter = series[0][1]
            split = None
            if noise and len(series) > 1:
                for t, mid in series[1:]:
                    if t <= o:
                        meter = mid
                        if t == o:
                            prev = [m for tt, m in series if tt < t][-1]
                            split = (prev, mid)
            base = {"type": "utility", "enterprise_id": f.enterprise_id, "source": source,
                    "utility": util, "unit": unit}
            delay = self._water_delay(o) * 1440 if (noise and util == "water") else 0
            if noise and drop[j]:
                if backfill[j]:
                    emit(o + 1 + int(lag[j]), minute, prefix,
                         dict(base, meter_id=meter, reading_date=_iso(o), consumption=val))
                continue
            if split is not None:
                # meter replaced during the day: the old meter's last part-day and the new
                # meter's first part-day both carry this reading_date
                part = round(val * float(gfrac[j] + 0.25), nd)
                emit(o + 1, minute, prefix, dict(base, meter_id=split[0], reading_date=_iso(o),
                                                 consumption=part), delay=delay)
                emit(o + 1, minute, prefix, dict(base, meter_id=split[1], reading_date=_iso(o),
                                                 consumption=round(max(val - part, 0.0), nd)),
                     delay=delay)
                continue
            if noise and glitch[j]:
                emit(o + 1, minute, prefix, dict(base, meter_id=meter, reading_date=_iso(o),
                                                 consumption=round(val * float(gfrac[j]), nd)),
                     delay=delay)
                emit(o + 1 + int(lag[j]), minute, prefix,
                     dict(base, meter_id=meter, reading_date=_iso(o), consumption=val))
                continue
            emit(o + 1, minute, prefix, dict(base, meter_id=meter, reading_date=_iso(o),
                                             consumption=val), delay=delay)

    # ---------------------------------------------------------------- the feed
    def iter_feed(self, until: date | None = None) -> Iterator[tuple[datetime, dict]]:
        """(arrival, signal) in arrival order; ``until``: window end (exclusive), the feed is
        the snapshot at noon of that day. None: never ends."""
        for arr, sig in self._iter_raw(until):
            o, minute = divmod(arr, 1440)
            yield (datetime.combine(date.fromordinal(o), datetime.min.time(), _TZ)
                   + timedelta(minutes=minute)), sig

    def _iter_raw(self, until: date | None) -> Iterator[tuple[int, dict]]:
        s_ord = self.start.toordinal()
        cutoff = None if until is None else until.toordinal() * 1440 + 12 * 60
        lo_arrival = s_ord * 1440
        heap: list = []
        noise = self.noise
        drng = np.random.default_rng([self.seed, 10])
        state = {"seq": 0, "counter": 0, "pos": 4096}
        ubuf = np.empty((4096, 4))

        def emit(o: int, minute: int, prefix: str, body: dict, delay: int = 0) -> None:
            state["counter"] += 1
            rec = {"signal_id": f"{prefix}-{state['counter']:08d}", "type": body.pop("type"),
                   "enterprise_id": body.pop("enterprise_id"), "observed_at": _ts(o, minute),
                   "source": body.pop("source", None) or _SOURCE[prefix]}
            rec.update(body)
            arrival = o * 1440 + minute + delay
            if noise:
                if state["pos"] == 4096:
                    ubuf[:] = drng.random((4096, 4))
                    state["pos"] = 0
                u0, u1, u2, u3 = ubuf[state["pos"]].tolist()
                state["pos"] += 1
                if u0 < (0.05 if prefix == "ins" else 0.01):
                    # out of order: an inspector syncs in the evening, a feed re-sends a batch:
                    # 1-20 hours late mostly, sometimes 1-4 days
                    arrival += int(60 + 1140 * u1) if u3 < 0.7 else int(1440 * (1 + 3 * u1))
                if u2 < (0.004 if prefix in ("pwr", "wtr") else 0.008) and arrival >= lo_arrival:
                    # duplicate: the same record (same signal_id) re-sent 1 hour to 3 days later
                    state["seq"] += 1
                    heapq.heappush(heap, (arrival + 60 + int(4260 * u3), state["seq"], rec))
            if arrival < lo_arrival:
                return
            state["seq"] += 1
            heapq.heappush(heap, (arrival, state["seq"], rec))

        k = _month_index(self.start)
        first = True
        while True:
            m0 = max(_month_start(k).toordinal(), s_ord)
            m1 = _month_start(k + 1).toordinal()
            if until is not None:
                m1 = min(m1, until.toordinal())
                if m0 >= m1:
                    break
            self._ensure_planned(m1)
            for f in self.firms:
                if first:
                    self._payroll(f, k - 1, emit)  # last period's pay lands in the window
                self._payroll(f, k, emit)
                self._utilities(f, k, m0, m1, emit)
                self._inspections(f, k, m0, m1, emit)
            first = False
            horizon = m1 * 1440
            while heap and heap[0][0] < horizon:
                arr, _, rec = heapq.heappop(heap)
                yield arr, rec
            k += 1
        while heap:
            arr, _, rec = heapq.heappop(heap)
            if cutoff is not None and arr > cutoff:
                break
            yield arr, rec


_SOURCE = {"pwr": "grid-power", "wtr": "water-co", "pay": "payroll-bank",
           "ins": "inspection-app", "cmp": "hotline-12345"}


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------

def build_world(*, firms: int = 120, seed: int = 7, start: date = date(2024, 7, 1),
                district: str = "baoan", noise: bool = True,
                trouble_rate: float = DEMO_TROUBLE_RATE, payroll_coverage: float = PAYROLL_COVERAGE,
                water_weekly: float = WATER_WEEKLY_SHARE,
                background_complaints: float = BACKGROUND_COMPLAINTS) -> World:
    """The district, its registry and its (lazily planned) trouble episodes."""
    return World(firms=firms, seed=seed, start=start, district=district, noise=noise,
                 trouble_rate=trouble_rate, payroll_coverage=payroll_coverage, water_weekly=water_weekly,
                 background_complaints=background_complaints)


def iter_signals(*, firms: int = 120, seed: int = 7, start: date = date(2024, 7, 1),
                 months: int | None = None, district: str = "baoan", noise: bool = True,
                 trouble_rate: float = DEMO_TROUBLE_RATE,
                 payroll_coverage: float = PAYROLL_COVERAGE,
                 water_weekly: float = WATER_WEEKLY_SHARE,
                 background_complaints: float = BACKGROUND_COMPLAINTS) -> Iterator[dict]:
    """Signals in arrival order; open-ended when months is None (see the module docstring)."""
    world = build_world(firms=firms, seed=seed, start=start, district=district, noise=noise,
                        trouble_rate=trouble_rate, payroll_coverage=payroll_coverage, water_weekly=water_weekly,
                        background_complaints=background_complaints)
    until = None if months is None else _add_months(start, months)
    for _, sig in world._iter_raw(until):
        yield sig


def simulate_world(outdir: Path, *, firms: int = 120, months: int = 14, seed: int = 7,
                   start: date = date(2024, 7, 1), district: str = "baoan", noise: bool = True,
                   trouble_rate: float = DEMO_TROUBLE_RATE,
                   payroll_coverage: float = PAYROLL_COVERAGE,
                   water_weekly: float = WATER_WEEKLY_SHARE,
                   background_complaints: float = BACKGROUND_COMPLAINTS,
                   history_months: int = 0) -> WorldSummary:
    """Write enterprises.csv, signals.jsonl (arrival order), disputes.jsonl and truth.json.

    With ``history_months``, the district lives that many months before ``start`` unrecorded:
    signals.jsonl holds what arrives from ``start`` on, so some firms are already in trouble
    when it begins, as with a feed switched on one day; disputes.jsonl and truth.json keep those
    months too (a disputes register covers the past)."""
    if months < 1:
        raise ValueError("months must be >= 1")
    if history_months < 0:
        raise ValueError("history_months must be >= 0")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    recorded_from = start.toordinal() * 1440  # arrival minutes, as _iter_raw counts them
    world = build_world(firms=firms, seed=seed, start=_add_months(start, -history_months), district=district,
                        noise=noise,
                        trouble_rate=trouble_rate, payroll_coverage=payroll_coverage, water_weekly=water_weekly,
                        background_complaints=background_complaints)
    end = _add_months(start, months)
    rows = world.enterprise_rows()
    with open(outdir / "enterprises.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    n = 0
    dumps = json.dumps
    with open(outdir / "signals.jsonl", "w", encoding="utf-8") as fh:
        buf = []
        for arrival, sig in world._iter_raw(end):
            if arrival < recorded_from:
                continue
            buf.append(dumps(sig))
            n += 1
            if len(buf) >= 20000:
                fh.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            fh.write("\n".join(buf) + "\n")
    disputes = world.disputes(end)
    with open(outdir / "disputes.jsonl", "w", encoding="utf-8") as fh:
        for d in disputes:
            fh.write(dumps(d) + "\n")
    truth = world.truth(end)
    with open(outdir / "truth.json", "w", encoding="utf-8") as fh:
        fh.write(dumps(truth, indent=0) + "\n")
    scen = {s: 0 for s in SCENARIOS}
    for t in truth.values():
        scen[t["scenario"]] += 1
    return WorldSummary(firms=len(rows), signals=n, disputes=len(disputes), scenarios=scen)


if __name__ == "__main__":  # pragma: no cover - a quick look at a world
    import sys
    import time

    t0 = time.perf_counter()
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/laborwatch-world")
    summary = simulate_world(out)
    print(summary, f"{time.perf_counter() - t0:.2f}s")
