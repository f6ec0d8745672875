"""The world simulator: formats, determinism, and the domain behaviour the model learns from."""

from __future__ import annotations

import csv
import itertools
import json
import math
import random
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from models import simulate as S
from models.simulate import (
    SPRING_FESTIVAL,
    build_world,
    credit_code,
    is_valid_credit_code,
    iter_signals,
    simulate_world,
)

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "config" / "contract"
CALIBRATION = ROOT.parent / "shared" / "calibration" / "clb_strike_map_2013_2016.json"
FILES = ("enterprises.csv", "signals.jsonl", "disputes.jsonl", "truth.json")
PREFIX = {"grid-power": "pwr", "water-co": "wtr", "payroll-bank": "pay",
          "inspection-app": "ins", "hotline-12345": "cmp"}


# ------------------------------------------------------------------------------ helpers

def _format_checker() -> FormatChecker:
    fc = FormatChecker(formats=())

    @fc.checks("date", raises=ValueError)
    def _date(v):
        if not isinstance(v, str):
            return True
        date.fromisoformat(v)
        return len(v) == 10

    @fc.checks("date-time", raises=ValueError)
    def _dt(v):
        if not isinstance(v, str):
            return True
        if len(v) < 20 or v[10] != "T":
            return False
        return datetime.fromisoformat(v).tzinfo is not None

    return fc


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((CONTRACT / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_format_checker())


def _read(out: Path):
    with open(out / "enterprises.csv", newline="") as fh:
        ents = list(csv.DictReader(fh))
    sigs = [json.loads(line) for line in (out / "signals.jsonl").read_text().splitlines()]
    disputes = [json.loads(line) for line in (out / "disputes.jsonl").read_text().splitlines()]
    truth = json.loads((out / "truth.json").read_text())
    return ents, sigs, disputes, truth


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small noisy world with plenty of trouble (all scenarios) for format checks."""
    out = tmp_path_factory.mktemp("world")
    summary = simulate_world(out, firms=24, months=14, seed=32, trouble_rate=0.4)
    return out, summary


@pytest.fixture(scope="module")
def festival_world(tmp_path_factory):
    """Around the 2025 Spring Festival (2025-01-29), with the default trouble rate."""
    out = tmp_path_factory.mktemp("festival")
    simulate_world(out, firms=40, months=6, seed=21, start=date(2024, 11, 1))
    return out


# ------------------------------------------------------------------------------ credit codes

def test_credit_code_check_character():
    assert is_valid_credit_code("91110000600037341L")
    assert is_valid_credit_code("91512081MA62K0260E")
    assert not is_valid_credit_code("91110000600037341M")
    assert not is_valid_credit_code("91110000600037341")
    rng = np.random.default_rng(1)
    codes = [credit_code(rng) for _ in range(500)]
    assert all(is_valid_credit_code(c) and c.startswith("9144030") for c in codes)
    assert len(set(codes)) == 500
    assert is_valid_credit_code(credit_code(random.Random(3)))
    c = codes[0]
    wrong = S._ALPHABET[(S._ALPHABET.index(c[17]) + 1) % 31]
    assert not is_valid_credit_code(c[:17] + wrong)


# ------------------------------------------------------------------------------ determinism

def test_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    kw = dict(firms=15, months=5, start=date(2024, 11, 1))
    simulate_world(a, seed=9, **kw)
    simulate_world(b, seed=9, **kw)
    simulate_world(c, seed=10, **kw)
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "signals.jsonl").read_bytes() != (c / "signals.jsonl").read_bytes()


def test_iter_signals_is_the_file_feed(world, tmp_path):
    out, _ = world
    lines = (out / "signals.jsonl").read_text().splitlines()
    fed = [json.dumps(s) for s in iter_signals(firms=24, months=14, seed=32, trouble_rate=0.4)]
    assert fed == lines
    # open-ended: keeps going past any horizon, in arrival order
    w = build_world(firms=6, seed=2, start=date(2025, 3, 1))
    feed = list(itertools.islice(w.iter_feed(), 9000))
    arrivals = [a for a, _ in feed]
    assert arrivals == sorted(arrivals)
    assert arrivals[-1] > datetime.fromisoformat("2025-12-01T00:00:00+08:00")


# ------------------------------------------------------------------------------ formats

def test_every_line_is_valid(world):
    out, summary = world
    ents, sigs, disputes, truth = _read(out)
    ev, sv, dv = (_validator(n) for n in
                  ("enterprise.schema.json", "signal.schema.json", "dispute.schema.json"))
    ids = set()
    for row in ents:
        rec = {k: v for k, v in row.items() if v != ""}
        rec["headcount"] = int(rec["headcount"])
        assert not list(ev.iter_errors(rec)), row
        assert is_valid_credit_code(rec["enterprise_id"])
        ids.add(rec["enterprise_id"])
    assert len(ids) == len(ents) == summary.firms == 24
    for s in sigs:
        errors = list(sv.iter_errors(s))
        assert not errors, (errors[0].message, s)
        assert s["enterprise_id"] in ids
        assert s["observed_at"].endswith("+08:00")
        assert s["signal_id"].startswith(PREFIX[s["source"]] + "-")
    for d in disputes:
        assert not list(dv.iter_errors(d)), d
        assert d["enterprise_id"] in ids
    assert summary.signals == len(sigs) and summary.disputes == len(disputes)
    assert set(truth) == ids
    assert {t["scenario"] for t in truth.values()} == set(S.SCENARIOS)  # seed 32: all of them
    assert sum(summary.scenarios.values()) == 24


def test_feed_timing_and_payroll_shape(world):
    out, _ = world
    _, sigs, _, _ = _read(out)
    for s in sigs:
        obs = datetime.fromisoformat(s["observed_at"])
        if s["type"] == "utility":
            lag = (obs.date() - date.fromisoformat(s["reading_date"])).days
            assert lag >= 1
            assert obs.hour == (2 if s["utility"] == "electricity" else 3)
        elif s["type"] == "wage":
            y, m = map(int, s["period"].split("-"))
            nxt = date(y + m // 12, m % 12 + 1, 7)
            assert s["due_date"] == nxt.isoformat()   # the statutory 7th of the next month
            assert s["wages_paid"] <= s["wages_due"]
            assert (s["paid_date"] is not None) == (s["wages_paid"] == s["wages_due"])
    lags = Counter((datetime.fromisoformat(s["observed_at"]).date()
                    - date.fromisoformat(s["reading_date"])).days
                   for s in sigs if s["type"] == "utility")
    assert lags[1] > 0.98 * sum(lags.values())       # next day, except late corrections


def test_feed_noise(world, tmp_path):
    out, _ = world
    lines = (out / "signals.jsonl").read_text().splitlines()
    sigs = [json.loads(x) for x in lines]
    by_id = defaultdict(set)
    for line, s in zip(lines, sigs):
        by_id[s["signal_id"]].add(line)
    dups = [k for k, c in Counter(s["signal_id"] for s in sigs).items() if c > 1]
    assert dups, "no duplicates"
    assert all(len(by_id[k]) == 1 for k in dups), "a duplicate must repeat the same record"
    per_day = defaultdict(set)
    meters = defaultdict(set)
    for s in sigs:
        if s["type"] == "utility":
            per_day[(s["enterprise_id"], s["utility"], s["reading_date"])].add(s["signal_id"])
            meters[(s["enterprise_id"], s["utility"])].add(s["meter_id"])
    assert any(len(v) > 1 for v in per_day.values()), "no late corrections"
    assert any(len(v) > 1 for v in meters.values()), "no meter replacement"
    obs = [s["observed_at"] for s in sigs]
    assert any(b < a for a, b in zip(obs, obs[1:])), "no out-of-order arrival"

    clean = tmp_path / "clean"
    simulate_world(clean, firms=24, months=3, seed=32, trouble_rate=0.4, noise=False)
    _, csigs, _, _ = _read(clean)
    assert len({s["signal_id"] for s in csigs}) == len(csigs)
    keys = [(s["enterprise_id"], s["utility"], s["reading_date"])
            for s in csigs if s["type"] == "utility"]
    assert len(keys) == len(set(keys))
    cobs = [s["observed_at"] for s in csigs]
    assert cobs == sorted(cobs)


# ------------------------------------------------------------------------------ domain behaviour

def _daily_kwh(sigs, eid):
    out = {}
    for s in sigs:
        if s["enterprise_id"] == eid and s["type"] == "utility" and s["utility"] == "electricity":
            d = date.fromisoformat(s["reading_date"])
            out[d] = out.get(d, 0.0) + s["consumption"]   # a split meter day adds up
    return out


def test_spring_festival_shutdown_is_normal(festival_world):
    ents, sigs, _, truth = _read(festival_world)
    cny = SPRING_FESTIVAL[2025]
    industry = {e["enterprise_id"]: e["industry"] for e in ents}
    ratios, after, factory = [], [], []
    for eid, t in truth.items():
        if t["scenario"] != "healthy" or industry[eid] == "construction":
            continue
        kwh = _daily_kwh(sigs, eid)
        if not kwh:
            continue

        def med(a, b):
            vals = [kwh[cny + timedelta(days=i)] for i in range(a, b)
                    if cny + timedelta(days=i) in kwh]
            return statistics.median(vals)

        before = med(-47, -19)   # the four weeks before the festival's ramp-down
        during = med(-3, 7)
        later = med(42, 70)
        ratios.append(during / before)
        after.append(later / before)
        if industry[eid] in ("manufacturing", "electronics", "garment"):
            factory.append(during / before)
    assert len(ratios) >= 15 and len(factory) >= 5
    assert statistics.median(ratios) < 0.2
    assert max(factory) < 0.2              # every healthy factory shuts down
    assert statistics.median(after) > 0.8  # and comes back
    assert min(after) > 0.5


def test_construction_has_no_meters(world):
    ents, sigs, _, _ = _read(world[0])
    building = {e["enterprise_id"] for e in ents if e["industry"] == "construction"}
    assert building
    assert not [s for s in sigs if s["type"] == "utility" and s["enterprise_id"] in building]
    assert {s["enterprise_id"] for s in sigs if s["type"] == "wage"} >= building


def test_disputes_come_from_trouble(world):
    _, sigs, disputes, truth = _read(world[0])
    assert disputes
    for d in disputes:
        t = truth[d["enterprise_id"]]
        assert t["scenario"] in ("decline", "abscond", "construction_arrears")
        assert t["dispute"] == d["occurred_on"]
        assert t["onset"] < d["occurred_on"]
        if t["scenario"] == "abscond":
            assert d["kind"] == "absconding"
        elif d["workers_involved"] >= 30:
            assert d["kind"] == "collective_dispute"
        # the day after, the 12345 hotline carries the group's report
        day_after = (date.fromisoformat(d["occurred_on"]) + timedelta(days=1)).isoformat()
        reports = [s for s in sigs if s["enterprise_id"] == d["enterprise_id"]
                   and s["source"] == "hotline-12345" and s["observed_at"][:10] == day_after
                   and s["workers_involved"] == d["workers_involved"]]
        assert reports, d
        assert "wage_arrears" in reports[0]["findings"]
        if t["scenario"] == "abscond":
            assert "owner_absent" in reports[0]["findings"]
    labelled = {d["enterprise_id"] for d in disputes}
    for eid, t in truth.items():
        if t["scenario"] in ("healthy", "recover"):
            assert eid not in labelled and t["dispute"] is None
    # groups of 30+ only ever report on a dispute's next day
    big = {s["signal_id"] for s in sigs
           if s["type"] == "inspection" and s["workers_involved"] >= 30}
    assert len(big) == sum(d["workers_involved"] >= 30 for d in disputes)


def test_scenario_signatures(world):
    """Each scenario leaves the traces the model is meant to learn from."""
    ents, sigs, _, truth = _read(world[0])
    industry = {e["enterprise_id"]: e["industry"] for e in ents}
    wages = defaultdict(list)
    for s in sigs:
        if s["type"] == "wage":
            wages[s["enterprise_id"]].append(s)
    seen = Counter()
    for eid, t in truth.items():
        kwh = _daily_kwh(sigs, eid)
        onset = date.fromisoformat(t["onset"]) if t["onset"] else None

        def med(a, b, ref):
            lo, hi = ref + timedelta(days=a), ref + timedelta(days=b)
            vals = [v for d, v in kwh.items() if lo <= d < hi]
            return statistics.median(vals) if vals else None

        unpaid_at_due = [w for w in wages[eid] if w["observed_at"][:10] == w["due_date"]
                         and w["paid_date"] is None]
        payroll = bool(wages[eid])  # a firm without a payroll feed shows its trouble elsewhere
        if t["scenario"] == "abscond" and t["dispute"]:
            disp = date.fromisoformat(t["dispute"])
            pre = med(-70, -35, onset)
            if pre:   # utilities collapse between the missed pay day and the dispute
                assert med(-5, 0, disp) < 0.15 * pre
            assert unpaid_at_due or not payroll
            seen["abscond"] += 1
        elif t["scenario"] == "decline" and t["dispute"]:
            disp = date.fromisoformat(t["dispute"])
            if kwh and onset >= date(2024, 7, 1):
                assert med(-21, 0, disp) < 0.8 * med(-28, 0, onset)
            if payroll:
                assert len(unpaid_at_due) >= 1
                assert any(w["social_insurance_paid"] < w["social_insurance_due"] and w["paid_date"]
                           for w in wages[eid])   # wages completed, social insurance left owing
                seen["decline with payroll"] += 1
            seen["decline"] += 1
        elif t["scenario"] == "construction_arrears":
            assert industry[eid] == "construction" and not kwh
            if t["dispute"]:
                disp = date.fromisoformat(t["dispute"])
                fest = min((f for f in SPRING_FESTIVAL.values() if f > disp))
                assert (fest - disp).days <= 25          # just before the festival
                assert len(unpaid_at_due) >= 3 or not payroll  # months of wages held back
                seen["construction_arrears"] += 1
        elif t["scenario"] == "recover":
            assert t["dispute"] is None
            seen["recover"] += 1
    assert set(seen) == {"abscond", "decline", "decline with payroll", "construction_arrears", "recover"}


def test_payroll_coverage_leaves_the_rest_of_the_world_alone(tmp_path):
    """About ``payroll_coverage`` of the firms send wage records, troubled or not; a firm
    without a feed sends nothing else differently, and coverage 1 gives every firm a feed."""
    def wage_firms(out):
        sigs = [json.loads(line) for line in (out / "signals.jsonl").read_text().splitlines()]
        rest = [{k: v for k, v in s.items() if k != "signal_id"} for s in sigs if s["type"] != "wage"]
        return {s["enterprise_id"] for s in sigs if s["type"] == "wage"}, rest

    # Without feed noise: its draws follow the lines, wage lines included.
    for name, coverage in (("part", 0.7), ("all", 1.0)):
        simulate_world(tmp_path / name, firms=200, months=3, seed=4, trouble_rate=0.4, noise=False,
                       payroll_coverage=coverage)
    part, part_rest = wage_firms(tmp_path / "part")
    every, all_rest = wage_firms(tmp_path / "all")
    assert len(every) == 200 and part < every
    assert 0.6 <= len(part) / 200 <= 0.8
    assert part_rest == all_rest  # meters and inspections: the same lines in the same order (ids aside)
    truth = json.loads((tmp_path / "part" / "truth.json").read_text())
    troubled = {e for e, t in truth.items() if t["scenario"] != "healthy"}
    assert troubled - part and troubled & part  # trouble both with and without a feed
    assert (tmp_path / "part" / "disputes.jsonl").read_text() == (tmp_path / "all" / "disputes.jsonl").read_text()


def test_weekly_water_meters_read_the_weeks_consumption_on_mondays(tmp_path):
    """``water_weekly`` of the water meters are read on Mondays with the week's consumption; the
    other meters, payroll, inspections and disputes are those of an all-daily world."""
    def lines(out):
        sigs = [json.loads(line) for line in (out / "signals.jsonl").read_text().splitlines()]
        water = [s for s in sigs if s["type"] == "utility" and s["utility"] == "water"]
        rest = [{k: v for k, v in s.items() if k != "signal_id"} for s in sigs if s not in water]
        return water, rest

    for name, share in (("daily", 0.0), ("half", 0.5)):
        simulate_world(tmp_path / name, firms=80, months=3, seed=4, trouble_rate=0.4, noise=False,
                       water_weekly=share)
    daily_water, daily_rest = lines(tmp_path / "daily")
    half_water, half_rest = lines(tmp_path / "half")
    assert half_rest == daily_rest
    assert (tmp_path / "half" / "disputes.jsonl").read_text() == (tmp_path / "daily" / "disputes.jsonl").read_text()
    by_day = {(s["enterprise_id"], s["reading_date"]): s["consumption"] for s in daily_water}
    days_of = {}
    for s in half_water:
        days_of.setdefault(s["enterprise_id"], []).append(date.fromisoformat(s["reading_date"]))
    weekly = {e for e, days in days_of.items() if all(d.weekday() == 0 for d in days)}
    metered = len(days_of)
    assert 0.3 <= len(weekly) / metered <= 0.7
    for s in half_water:
        if s["enterprise_id"] not in weekly:
            assert by_day[(s["enterprise_id"], s["reading_date"])] == s["consumption"]
            continue
        monday = date.fromisoformat(s["reading_date"])
        week = [by_day.get((s["enterprise_id"], (monday - timedelta(days=n)).isoformat())) for n in range(7)]
        known = [v for v in week if v is not None]
        if len(known) == 7 and monday.day > 7:  # a whole week within the month: the exact sum
            assert s["consumption"] == pytest.approx(sum(known), abs=0.05)
        assert (date.fromisoformat(s["observed_at"][:10]) - monday).days == 1


def test_healthy_firms_are_not_spotless(tmp_path):
    """Healthy firms also pay a few days late now and then, or in two parts: lateness alone
    must not be a giveaway. None of them is more than 5 days late."""
    out = tmp_path / "w"
    simulate_world(out, firms=60, months=12, seed=4, noise=False)
    _, sigs, _, truth = _read(out)
    late, partial = 0, 0
    for s in sigs:
        if s["type"] != "wage" or truth[s["enterprise_id"]]["scenario"] != "healthy":
            continue
        if s["paid_date"]:
            days = (date.fromisoformat(s["paid_date"]) - date.fromisoformat(s["due_date"])).days
            assert days <= 8   # partial payers complete within 8 days (regulation: <= 15)
            late += days > 0
        elif s["wages_paid"] > 0:
            partial += 1
    assert late >= 5 and partial >= 2
    complaints = [s for s in sigs if s["source"] == "hotline-12345"
                  and truth[s["enterprise_id"]]["scenario"] == "healthy"]
    assert complaints and max(s["workers_involved"] for s in complaints) < 10


def test_background_complaints_at_firms_not_in_trouble(tmp_path):
    """Firms that are never in trouble complain at ``background_complaints`` a year (for 50
    workers, growing with the square root of the workforce), one worker at a time; at 0 their
    hotline is silent, as at every firm of the contract's sample world that never reaches a
    dispute."""
    def complaints(out):
        ents, sigs, _, truth = _read(out)
        healthy = {e for e, t in truth.items() if t["scenario"] == "healthy"}
        heads = {row["enterprise_id"]: int(row["headcount"]) for row in ents}
        found = [s for s in sigs if s["type"] == "inspection" and s["enterprise_id"] in healthy
                 and s["kind"] in ("complaint", "hotline", "petition")]
        return found, healthy, heads

    for name, rate in (("silent", 0.0), ("noisy", 2.0)):
        simulate_world(tmp_path / name, firms=120, months=12, seed=5, noise=False, background_complaints=rate)
    silent, _, _ = complaints(tmp_path / "silent")
    assert silent == []
    noisy, healthy, heads = complaints(tmp_path / "noisy")
    expected = sum(min(max(2.0 * math.sqrt(heads[e] / 50), 0.4), 15.0) for e in healthy)
    assert 0.6 * expected <= len(noisy) <= 1.4 * expected
    assert {s["workers_involved"] for s in noisy} == {1}  # one worker's own case: a group is trouble
    with pytest.raises(ValueError, match="background_complaints"):
        build_world(firms=5, background_complaints=-1)


def test_dispute_seasonality_and_sizes():
    w = build_world(firms=600, seed=13)
    disputes = w.disputes(S._add_months(w.start, 24))
    months = Counter(int(d["occurred_on"][5:7]) for d in disputes)
    assert months[12] + months[1] > 2 * (months[3] + months[4])
    sizes = [d["workers_involved"] for d in disputes]
    big = [s for s in sizes if s >= 30]
    assert 0.3 < len(big) / len(sizes) < 0.85           # some disputes under 30 workers
    assert sum(30 <= s <= 200 for s in big) > 0.7 * len(big)   # most 30-200, few larger


def test_realistic_rate_matches_source_district():
    """741 firms: about a dozen collective disputes (30+) a year (source documents: 9)."""
    counts = []
    for seed in range(4):
        w = build_world(firms=741, seed=seed, trouble_rate=S.REALISTIC_TROUBLE_RATE)
        d = w.disputes(S._add_months(w.start, 12))
        counts.append(sum(x["workers_involved"] >= 30 for x in d))
    assert 6 <= statistics.mean(counts) <= 18
    demo = build_world(firms=120)
    truth = demo.truth(S._add_months(demo.start, 14))
    troubled = sum(t["scenario"] != "healthy" for t in truth.values())
    assert 0.12 * 120 <= troubled <= 0.35 * 120


def test_calibration_copy_matches_shared_file():
    if not CALIBRATION.exists():
        pytest.skip("shared/calibration not beside the repository")
    cal = json.loads(CALIBRATION.read_text())
    assert {int(k): v for k, v in cal["month_share_pct_wage_arrears"].items()} == \
        S.CLB_MONTH_SHARE_WAGE_ARREARS
    bands = [b[2] for b in S.CLB_PARTICIPANT_BANDS]
    assert bands == list(cal["participants_band_share_pct"].values())


def test_a_history_before_the_start_leaves_firms_in_trouble_when_the_signals_begin(tmp_path):
    """--history-months: the district lives before --start unrecorded. The signals arrive from the
    start on (a reading of the day before arrives that night), the disputes register keeps the
    earlier disputes, and some firm's trouble began before the signals did and ends in a dispute
    after: the year a feed is switched on, not a district that was calm until then."""
    start = date(2026, 7, 1)
    simulate_world(tmp_path, firms=60, months=4, seed=5, start=start, trouble_rate=0.4, history_months=6)
    signals = [json.loads(line) for line in (tmp_path / "signals.jsonl").read_text().splitlines()]
    observed = [datetime.fromisoformat(s["observed_at"]).date() for s in signals]
    assert min(observed) >= start - timedelta(days=5) and min(observed) < start + timedelta(days=2)
    disputes = [date.fromisoformat(json.loads(line)["occurred_on"])
                for line in (tmp_path / "disputes.jsonl").read_text().splitlines()]
    assert any(d < start for d in disputes) and any(d >= start for d in disputes)
    truth = json.loads((tmp_path / "truth.json").read_text())
    underway = [t for t in truth.values() if t.get("onset") and date.fromisoformat(t["onset"]) < start
                and t.get("dispute") and date.fromisoformat(t["dispute"]) >= start]
    assert underway
    with pytest.raises(ValueError, match="history_months"):
        simulate_world(tmp_path / "bad", firms=5, months=1, history_months=-1)
