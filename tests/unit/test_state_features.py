"""models.state (EnterpriseState) and models.features, fed with contract-shaped signal dicts."""
from __future__ import annotations

import itertools
import json
import math
from datetime import date, timedelta

import pytest

from config.files import load_configs
from config.settings import CONFIG_DIR
from models.features import FEATURE_NAMES, features, vector
from models.state import EnterpriseState, Retention
from streams.validation import parse_timestamp

EID = "91440306BXKFLJ2K06"
RETENTION = Retention(**load_configs(CONFIG_DIR).pipeline.state.model_dump())
_ids = itertools.count(1)


# --- contract-shaped signals -----------------------------------------------------------------
def _d(day: date | str) -> date:
    return date.fromisoformat(day) if isinstance(day, str) else day


def ts(day: date | str, hour: int = 18) -> str:
    return f"{_d(day).isoformat()}T{hour:02d}:00:00+08:00"


def wage(period: str, *, due: float = 100_000.0, paid: float | None = None, paid_date: str | None = None,
         observed: str | None = None, headcount: int = 50, due_date: str | None = None,
         si_due: float | None = None, si_paid: float | None = None) -> dict:
    """One pay period; due on the 7th of the next month; paid in full when ``paid_date`` is given."""
    year, month = map(int, period.split("-"))
    nxt = date(year + month // 12, month % 12 + 1, 7)
    due_date = due_date or nxt.isoformat()
    if paid is None:
        paid = due if paid_date else 0.0
    signal = {
        "signal_id": f"pay-{next(_ids):08d}",
        "type": "wage",
        "enterprise_id": EID,
        "observed_at": observed or ts(paid_date or due_date),
        "source": "payroll-bank",
        "period": period,
        "headcount": headcount,
        "wages_due": due,
        "wages_paid": paid,
        "due_date": due_date,
        "paid_date": paid_date,
    }
    if si_due is not None:
        signal["social_insurance_due"] = si_due
        signal["social_insurance_paid"] = si_paid if si_paid is not None else 0.0
    return signal


def utility(reading_date: date | str, consumption: float, *, meter: str = "E30215394",
            kind: str = "electricity", observed: str | None = None) -> dict:
    day = _d(reading_date)
    return {
        "signal_id": f"{'pwr' if kind == 'electricity' else 'wtr'}-{next(_ids):08d}",
        "type": "utility",
        "enterprise_id": EID,
        "observed_at": observed or ts(day + timedelta(days=1), hour=2),
        "source": "grid-power" if kind == "electricity" else "water-co",
        "utility": kind,
        "unit": "kWh" if kind == "electricity" else "m3",
        "meter_id": meter,
        "reading_date": day.isoformat(),
        "consumption": consumption,
    }


def inspection(day: date | str, *, kind: str = "complaint", workers: int = 3, findings=(),
               arrears: float | None = None) -> dict:
    signal = {
        "signal_id": f"ins-{next(_ids):08d}",
        "type": "inspection",
        "enterprise_id": EID,
        "observed_at": ts(day, hour=15),
        "source": "inspection-app",
        "kind": kind,
        "workers_involved": workers,
        "findings": list(findings),
    }
    if arrears is not None:
        signal["arrears_amount"] = arrears
    return signal


def feed(*signals: dict, state: EnterpriseState | None = None) -> EnterpriseState:
    state = state or EnterpriseState(EID)
    for s in signals:
        state.update(s, parse_timestamp(s["observed_at"]), RETENTION)
    return state


def daily(first: date | str, last: date | str, consumption, **kw) -> list[dict]:
    """One reading per day from ``first`` to ``last`` inclusive; ``consumption`` a number or f(day)."""
    first, last = _d(first), _d(last)
    out = []
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        out.append(utility(day, consumption(day) if callable(consumption) else consumption, **kw))
    return out


def day(iso: str) -> int:
    return date.fromisoformat(iso).toordinal()


# --- wages -----------------------------------------------------------------------------------
def test_one_unpaid_period_overdue_days_and_months():
    state = feed(wage("2025-01", observed=ts("2025-02-08")))
    f = features(state, as_of_day=day("2025-03-20"))
    assert f["wage_days_overdue_max"] == 41.0
    assert f["wage_arrears_months"] == 1.0
    assert f["wage_unpaid_share_past_grace"] == 1.0
    assert f["wage_arrears_per_worker"] == pytest.approx(100_000 / 50)


def test_two_unpaid_periods():
    state = feed(
        wage("2025-01", observed=ts("2025-02-08")),
        wage("2025-02", observed=ts("2025-03-08")),
    )
    f = features(state, as_of_day=day("2025-03-20"))
    assert f["wage_arrears_months"] == 2.0
    assert f["wage_days_overdue_max"] == 41.0  # the oldest one
    # Before the second period's pay day, only the first is in arrears.
    assert features(state, as_of_day=day("2025-03-07"))["wage_arrears_months"] == 1.0


def test_a_period_within_its_grace_is_not_yet_in_arrears():
    """Paid within the 5 days after the pay day is lawful: the period counts as arrears (and
    towards the arrears per worker) only after that, while the days past the pay day show at once."""
    state = feed(
        wage("2025-01", observed=ts("2025-02-08")),
        wage("2025-02", observed=ts("2025-03-08")),  # due 2025-03-07
    )
    within = features(state, as_of_day=day("2025-03-12"))  # 5 days after: the last day of grace
    assert within["wage_arrears_months"] == 1.0
    assert within["wage_arrears_per_worker"] == pytest.approx(100_000 / 50)
    assert within["wage_days_overdue_max"] == 33.0  # the first period, since 2025-02-07
    past = features(state, as_of_day=day("2025-03-13"))
    assert past["wage_arrears_months"] == 2.0
    assert past["wage_arrears_per_worker"] == pytest.approx(200_000 / 50)
    only_second = feed(wage("2025-02", observed=ts("2025-03-08")))
    assert features(only_second, as_of_day=day("2025-03-10"))["wage_days_overdue_max"] == 3.0
    assert features(only_second, as_of_day=day("2025-03-10"))["wage_arrears_months"] == 0.0


def test_wage_reported_tells_no_payroll_feed_from_paying_on_time():
    silent = feed(*daily("2025-03-01", "2025-03-20", 100.0))
    paying = feed(wage("2025-02", paid_date="2025-03-05"), *daily("2025-03-01", "2025-03-20", 100.0))
    f_silent, f_paying = features(silent), features(paying)
    assert f_silent["wage_reported"] == 0.0 and f_paying["wage_reported"] == 1.0
    # Otherwise alike: neither owes anything.
    for name in ("wage_arrears_months", "wage_days_overdue_max", "wage_unpaid_share_past_grace"):
        assert f_silent[name] == f_paying[name] == 0.0


@pytest.mark.parametrize("headcount, band", [(None, 0), (0, 0), (29, 0), (30, 1), (99, 1), (100, 2), (299, 2),
                                             (300, 3), (999, 3), (1000, 4), (25_000, 4)])
def test_headcount_band_reads_the_registered_headcount_in_coarse_bands(headcount, band):
    state = feed(*daily("2025-03-01", "2025-03-05", 100.0))
    state.headcount = headcount
    assert features(state)["headcount_band"] == float(band)


def test_headcount_band_ignores_the_payroll_headcount():
    """The payroll's headcount (wage records) is not the registry's: only the latter sets the band."""
    state = feed(wage("2025-02", paid_date="2025-03-05", headcount=5000), *daily("2025-03-01", "2025-03-05", 100.0))
    assert features(state)["headcount_band"] == 0.0
    state.headcount = 50
    assert features(state)["headcount_band"] == 1.0


def test_not_overdue_before_due_date():
    state = feed(wage("2025-02", observed=ts("2025-03-01")))
    f = features(state, as_of_day=day("2025-03-07"))  # due today: not yet overdue
    assert f["wage_days_overdue_max"] == 0.0
    assert f["wage_arrears_months"] == 0.0


def test_later_record_for_same_period_supersedes():
    partial = wage("2025-01", paid=50_000.0, observed=ts("2025-02-10"))
    full = wage("2025-01", paid_date="2025-02-25")
    state = feed(partial)
    assert features(state, as_of_day=day("2025-02-20"))["wage_unpaid_share_past_grace"] == pytest.approx(0.5)
    feed(full, state=state)
    f = features(state, as_of_day=day("2025-03-20"))
    assert f["wage_days_overdue_max"] == 0.0
    assert f["wage_arrears_months"] == 0.0
    assert f["wage_unpaid_share_past_grace"] == 0.0
    assert f["wage_days_late_max_180d"] == 18.0  # paid 2025-02-25, due 2025-02-07
    assert f["wage_late_count_180d"] == 1.0


def test_older_record_arriving_later_does_not_override():
    partial = wage("2025-01", paid=50_000.0, observed=ts("2025-02-10"))
    full = wage("2025-01", paid_date="2025-02-25")
    state = feed(full, partial)  # out of order: the older record arrives last
    assert state.wages["2025-01"].paid == 100_000.0
    assert state.wages["2025-01"].paid_day == day("2025-02-25")
    f = features(state, as_of_day=day("2025-03-20"))
    assert f["wage_days_overdue_max"] == 0.0
    assert f["wage_arrears_months"] == 0.0


def test_paid_late_counts_within_180_days():
    state = feed(
        wage("2024-11", paid_date="2024-12-05"),  # on time
        wage("2024-12", paid_date="2025-01-20"),  # 13 days late
        wage("2025-01", paid_date="2025-02-10"),  # 3 days late: within the 5 days' grace
        wage("2025-02", paid_date="2025-03-21"),  # 14 days late
    )
    f = features(state, as_of_day=day("2025-04-01"))
    assert f["wage_days_late_max_180d"] == 14.0
    assert f["wage_late_count_180d"] == 2.0
    assert f["wage_days_overdue_max"] == 0.0
    # 180 days after the 2024-12 pay day (2025-01-07) it has left the window; 2025-02 still in it.
    later = features(state, as_of_day=day("2025-01-07") + 181)
    assert later["wage_late_count_180d"] == 1.0
    assert later["wage_days_late_max_180d"] == 14.0


def test_unpaid_period_counts_as_late_until_paid():
    state = feed(wage("2025-01", observed=ts("2025-02-08")))
    f = features(state, as_of_day=day("2025-02-20"))
    assert f["wage_days_late_max_180d"] == 13.0
    assert f["wage_late_count_180d"] == 1.0


def test_headcount_change_and_social_insurance():
    state = feed(
        wage("2024-10", paid_date="2024-11-05", headcount=100),
        wage("2024-11", paid_date="2024-12-05", headcount=95),
        wage("2024-12", paid_date="2025-01-05", headcount=90),
        wage("2025-01", paid_date="2025-02-05", headcount=70, si_due=1000.0, si_paid=250.0),
    )
    f = features(state, as_of_day=day("2025-02-13"))  # due 2025-02-07: its 5 days' grace has passed
    assert f["headcount_change_3m"] == pytest.approx(-0.3)
    assert f["social_insurance_unpaid_share_past_grace"] == pytest.approx(0.75)


# The unpaid shares read the last period whose 5 days' grace has passed (due 2025-02-07: grace
# days 02-08 to 02-12; from 02-13 on it has passed).
def test_unpaid_within_the_grace_is_not_an_unpaid_share():
    state = feed(wage("2025-01", observed=ts("2025-02-07"), si_due=20_000.0, si_paid=0.0))
    for as_of in ("2025-02-08", "2025-02-10", "2025-02-12"):
        f = features(state, as_of_day=day(as_of))
        assert f["wage_unpaid_share_past_grace"] == 0.0, as_of
        assert f["social_insurance_unpaid_share_past_grace"] == 0.0, as_of
        assert f["wage_days_overdue_max"] > 0  # overdue all the same: the grace only delays the shares
    f = features(state, as_of_day=day("2025-02-13"))
    assert f["wage_unpaid_share_past_grace"] == 1.0
    assert f["social_insurance_unpaid_share_past_grace"] == 1.0


def test_partly_paid_past_the_grace_gives_the_unpaid_share():
    state = feed(wage("2025-01", paid=70_000.0, observed=ts("2025-02-07"), si_due=20_000.0, si_paid=5_000.0))
    assert features(state, as_of_day=day("2025-02-12"))["wage_unpaid_share_past_grace"] == 0.0
    f = features(state, as_of_day=day("2025-02-20"))
    assert f["wage_unpaid_share_past_grace"] == pytest.approx(0.3)
    assert f["social_insurance_unpaid_share_past_grace"] == pytest.approx(0.75)


def test_the_share_unpaid_after_the_pay_day_shows_within_the_grace():
    """A token payment on the pay day shows the day after, not only once the grace has passed;
    it reads the newest period past its pay day and falls to 0 when the rest is paid."""
    state = feed(wage("2025-01", paid=11_000.0, observed=ts("2025-02-07")))
    assert features(state, as_of_day=day("2025-02-07"))["wage_unpaid_share_after_pay_day"] == 0.0  # the pay day
    f = features(state, as_of_day=day("2025-02-08"))
    assert f["wage_unpaid_share_after_pay_day"] == pytest.approx(0.89)
    assert f["wage_unpaid_share_past_grace"] == 0.0
    feed(wage("2025-02", paid=60_000.0, observed=ts("2025-03-07")), state=state)
    assert features(state, as_of_day=day("2025-03-08"))["wage_unpaid_share_after_pay_day"] == pytest.approx(0.4)
    feed(wage("2025-02", paid_date="2025-03-10"), state=state)
    assert features(state, as_of_day=day("2025-03-11"))["wage_unpaid_share_after_pay_day"] == 0.0


def test_paid_on_grace_day_three_is_never_unpaid():
    state = feed(wage("2025-01", observed=ts("2025-02-07"), si_due=20_000.0, si_paid=0.0))
    before = features(state, as_of_day=day("2025-02-10"))
    assert before["wage_unpaid_share_past_grace"] == 0.0
    feed(wage("2025-01", paid_date="2025-02-10", si_due=20_000.0, si_paid=20_000.0), state=state)
    for as_of in ("2025-02-11", "2025-02-13", "2025-03-01"):
        f = features(state, as_of_day=day(as_of))
        assert f["wage_unpaid_share_past_grace"] == 0.0, as_of
        assert f["social_insurance_unpaid_share_past_grace"] == 0.0, as_of
        assert f["wage_late_count_180d"] == 0.0  # 3 days late: within the grace


def test_the_unpaid_share_reads_the_last_period_past_its_grace_not_the_newest():
    # January half unpaid and past its grace; February due 03-07, unpaid but within its grace.
    state = feed(
        wage("2025-01", paid=50_000.0, observed=ts("2025-02-07")),
        wage("2025-02", observed=ts("2025-03-07")),
    )
    assert features(state, as_of_day=day("2025-03-10"))["wage_unpaid_share_past_grace"] == pytest.approx(0.5)
    assert features(state, as_of_day=day("2025-03-13"))["wage_unpaid_share_past_grace"] == 1.0


def test_memoised_wage_part_follows_the_as_of_day_across_the_grace():
    # The same state read day after day: the memoised wage part must not keep a pre-grace value.
    state = feed(wage("2025-01", observed=ts("2025-02-07")))
    shares = [features(state, as_of_day=day("2025-02-07") + n)["wage_unpaid_share_past_grace"] for n in range(1, 9)]
    assert shares == [0.0] * 5 + [1.0] * 3


# --- utilities -------------------------------------------------------------------------------
def test_electricity_drop_ratio():
    as_of = date(2024, 10, 1)
    state = feed(*daily(as_of - timedelta(days=70), as_of - timedelta(days=8), 1000.0),
                 *daily(as_of - timedelta(days=7), as_of - timedelta(days=1), 220.0))
    assert state.clock_day == as_of.toordinal()
    f = features(state)
    assert f["electricity_ratio_7d_56d"] == pytest.approx(0.22)
    assert f["electricity_ratio_28d_56d"] == pytest.approx((7 * 220 + 21 * 1000) / 28 / 1000)
    assert f["electricity_days_since_reading"] == 0.0
    assert f["electricity_metered"] == 1.0
    assert f["water_metered"] == 0.0
    assert f["water_ratio_7d_56d"] == 1.0  # no water meter: neutral
    assert f["calendar_shutdown"] == 0.0


def test_electricity_silence_counts_days_since_reading():
    state = feed(*daily("2024-08-01", "2024-09-30", 1000.0))
    f = features(state, as_of_day=day("2024-10-13"))
    assert f["electricity_days_since_reading"] == 12.0


def weekly(first: date | str, last: date | str, consumption, **kw) -> list[dict]:
    """One water reading a week (the week's consumption), from ``first`` to ``last``."""
    first, last = _d(first), _d(last)
    return [utility(first + timedelta(days=7 * n), consumption, kind="water", meter="W1", **kw)
            for n in range((last - first).days // 7 + 1)]


def test_a_weekly_meter_is_not_silent_between_its_readings():
    state = feed(*weekly("2024-10-07", "2024-12-30", 700.0))  # Mondays; the last reading 2024-12-30
    assert state.reading_interval("water") == 7
    for as_of, overdue in (("2024-12-31", 0), ("2025-01-06", 0), ("2025-01-07", 1), ("2025-01-16", 10)):
        assert features(state, as_of_day=day(as_of))["water_days_since_reading"] == overdue, as_of
    # A daily meter is overdue the day after a missing reading, as before.
    daily_state = feed(*daily("2024-12-01", "2024-12-30", 30.0, kind="water", meter="W1"))
    assert daily_state.reading_interval("water") == 1
    assert features(daily_state, as_of_day=day("2024-12-31"))["water_days_since_reading"] == 0
    assert features(daily_state, as_of_day=day("2025-01-02"))["water_days_since_reading"] == 2


def test_a_weekly_meter_gives_utility_ratios():
    """A week's reading against the eight before: a weekly feed is not "too thin to say"."""
    steady = feed(*weekly("2024-10-07", "2024-12-23", 700.0), *weekly("2024-12-30", "2024-12-30", 350.0))
    f = features(steady, as_of_day=day("2024-12-31"))
    assert f["water_ratio_7d_56d"] == pytest.approx(0.5)
    assert f["water_ratio_28d_56d"] == pytest.approx((3 * 700 + 350) / 4 / 700)
    # One week before is too little baseline to say; two are a quarter of the eight expected.
    young = feed(*weekly("2024-12-23", "2024-12-23", 700.0), *weekly("2024-12-30", "2024-12-30", 350.0))
    assert features(young, as_of_day=day("2024-12-31"))["water_ratio_7d_56d"] == 1.0
    older = feed(*weekly("2024-12-16", "2024-12-23", 700.0), *weekly("2024-12-30", "2024-12-30", 350.0))
    assert features(older, as_of_day=day("2024-12-31"))["water_ratio_7d_56d"] == pytest.approx(0.5)


def test_short_history_is_neutral():
    state = feed(*daily("2024-09-20", "2024-09-30", 1000.0))  # no 8-week baseline yet
    assert features(state)["electricity_ratio_7d_56d"] == 1.0


def _festival_firm(until: str) -> EnterpriseState:
    """A healthy firm (1000 kWh a day) whose meter is near zero in the 2025 Spring Festival
    shutdown (2025-01-22 .. 2025-02-19; New Year's day 2025-01-29)."""
    def consumption(d: date) -> float:
        return 5.0 if date(2025, 1, 22) <= d <= date(2025, 2, 19) else 1000.0
    return feed(*daily("2024-11-01", until, consumption))


def test_spring_festival_shutdown_is_neutral():
    # Two weeks after New Year's day, in the middle of the shutdown.
    state = _festival_firm("2025-02-11")
    assert state.clock_day == day("2025-02-12")
    f = features(state)
    assert f["calendar_shutdown"] == 1.0
    assert f["electricity_ratio_7d_56d"] == 1.0
    assert f["electricity_ratio_28d_56d"] == 1.0
    assert f["calendar_days_to_festival"] == 366.0  # 370 days to 2026-02-17, capped at 366


@pytest.mark.parametrize("as_of", ["2025-01-20", "2025-01-22", "2025-01-25", "2025-02-19", "2025-02-20",
                                   "2025-02-26", "2025-03-05", "2025-03-19"])
def test_spring_festival_shutdown_days_never_count(as_of):
    state = _festival_firm((date.fromisoformat(as_of) - timedelta(days=1)).isoformat())
    f = features(state)
    assert f["electricity_ratio_7d_56d"] == pytest.approx(1.0)
    assert f["electricity_ratio_28d_56d"] == pytest.approx(1.0)
    shutdown = date(2025, 1, 22) <= date.fromisoformat(as_of) <= date(2025, 2, 19)
    assert f["calendar_shutdown"] == (1.0 if shutdown else 0.0)


def test_calendar_shutdown_window_edges():
    state = feed(inspection("2025-01-01", kind="daily_visit", workers=0))
    assert features(state, as_of_day=day("2025-01-21"))["calendar_shutdown"] == 0.0
    assert features(state, as_of_day=day("2025-01-22"))["calendar_shutdown"] == 1.0
    assert features(state, as_of_day=day("2025-02-19"))["calendar_shutdown"] == 1.0
    assert features(state, as_of_day=day("2025-02-20"))["calendar_shutdown"] == 0.0
    assert features(state, as_of_day=day("2025-01-29"))["calendar_days_to_festival"] == 0.0
    assert features(state, as_of_day=day("2025-01-20"))["calendar_days_to_festival"] == 9.0


def test_meter_reread_replaces_and_two_meters_add():
    d = date(2024, 9, 10)
    state = feed(utility(d, 100.0, meter="E1"), utility(d, 120.0, meter="E1"))
    assert state.utility["electricity"][d.toordinal()] == {"E1": 120.0}
    feed(utility(d, 50.0, meter="E2"), state=state)
    assert state.utility["electricity"][d.toordinal()] == {"E1": 120.0, "E2": 50.0}
    assert state.meters["electricity"] == ["E1", "E2"]


def test_meter_reread_in_features():
    as_of = date(2024, 10, 1)
    base = daily(as_of - timedelta(days=63), as_of - timedelta(days=8), 100.0, meter="E1")
    recent_first = daily(as_of - timedelta(days=7), as_of - timedelta(days=1), 10.0, meter="E1")
    recent_reread = daily(as_of - timedelta(days=7), as_of - timedelta(days=1), 100.0, meter="E1")
    state = feed(*base, *recent_first, *recent_reread)
    assert features(state)["electricity_ratio_7d_56d"] == pytest.approx(1.0)  # not 1.1, not 0.1

    split = daily(as_of - timedelta(days=7), as_of - timedelta(days=1), 60.0, meter="E1") + daily(
        as_of - timedelta(days=7), as_of - timedelta(days=1), 40.0, meter="E2"
    )
    state = feed(*base, *split)
    assert features(state)["electricity_ratio_7d_56d"] == pytest.approx(1.0)  # 60 + 40, not 60


# --- pruning and staleness -------------------------------------------------------------------
def test_pruning_keeps_the_utility_window():
    state = feed(*daily("2024-01-01", "2024-09-30", 100.0), *daily("2024-01-01", "2024-09-30", 3.0, kind="water",
                                                                   meter="W1"))
    today = state.clock_day
    assert today == day("2024-10-01")
    for kind in ("electricity", "water"):
        days = state.utility[kind]
        assert min(days) == today - RETENTION.utility_window_days
        assert max(days) == day("2024-09-30")
        assert len(days) == RETENTION.utility_window_days


def test_pruning_keeps_the_newest_wage_periods():
    periods = [f"{2023 + m // 12}-{m % 12 + 1:02d}" for m in range(20)]  # 2023-01 .. 2024-08
    state = feed(*(wage(p, paid_date=None, observed=ts(f"{p}-28")) for p in periods))
    assert len(state.wages) == RETENTION.wage_periods_kept == 13
    assert sorted(state.wages) == periods[-13:]


def test_pruning_keeps_the_inspection_window():
    state = feed(inspection("2023-01-10"), inspection("2024-01-05"), inspection("2024-06-01"))
    assert [i.day for i in state.inspections] == [day("2024-01-05"), day("2024-06-01")]


def test_is_stale():
    state = feed(inspection("2025-06-01"))
    newest = parse_timestamp(ts("2025-06-01", hour=15))
    assert not EnterpriseState(EID).is_stale(newest - timedelta(days=4000), RETENTION)
    assert state.is_stale(newest - timedelta(days=400), RETENTION)
    assert state.is_stale(newest - timedelta(days=365, seconds=1), RETENTION)
    assert not state.is_stale(newest - timedelta(days=365), RETENTION)
    assert not state.is_stale(newest - timedelta(days=30), RETENTION)
    assert not state.is_stale(newest + timedelta(days=30), RETENTION)


def test_clock_only_moves_forward():
    state = feed(inspection("2025-06-01"), inspection("2025-05-01"))
    assert state.clock_day == day("2025-06-01")
    assert state.signals_applied == 2


# --- serialisation and sanity ----------------------------------------------------------------
def _rich_state() -> EnterpriseState:
    return feed(
        *daily("2024-10-01", "2025-01-10", lambda d: 900.0 + d.day),
        *daily("2024-10-01", "2025-01-10", 12.5, kind="water", meter="W1"),
        utility("2025-01-05", 33.0, meter="E2"),
        wage("2024-10", paid_date="2024-11-06", headcount=80, si_due=900.0, si_paid=900.0),
        wage("2024-11", paid_date="2024-12-20", headcount=78),
        wage("2024-12", paid=1000.0, observed=ts("2025-01-09"), headcount=60, si_due=900.0),
        inspection("2024-12-01", findings=["wage_arrears"], arrears=12345.5),
        inspection("2025-01-02", kind="hotline", workers=12, findings=["owner_absent", "equipment_removal"]),
        inspection("2025-01-03", kind="routine_inspection", workers=0),
    )


def test_to_dict_from_dict_round_trip():
    state = _rich_state()
    state.headcount = 240
    data = json.loads(json.dumps(state.to_dict()))
    again = EnterpriseState.from_dict(data)
    assert again.to_dict() == state.to_dict()
    assert again.clock_day == state.clock_day and again.headcount == 240
    for as_of in (None, day("2024-12-15"), day("2025-02-01"), day("2025-04-15")):
        assert features(again, as_of_day=as_of) == features(state, as_of_day=as_of)
    # And it keeps working after the round trip: a new signal is applied the same way.
    more = wage("2024-12", paid_date="2025-01-20")
    feed(more, state=state)
    feed(more, state=again)
    assert features(again) == features(state)


def test_a_record_written_before_the_headcount_was_kept_restores_without_it():
    data = _rich_state().to_dict()
    del data["headcount"]
    restored = EnterpriseState.from_dict(data)
    assert restored.headcount is None and features(restored)["headcount_band"] == 0.0


def _all_finite(f: dict[str, float]) -> bool:
    return all(isinstance(v, float) and math.isfinite(v) for v in f.values())


@pytest.mark.parametrize(
    "signals",
    [
        [inspection("2025-01-02", kind="daily_visit", workers=0)],
        [wage("2025-01", due=0.0, paid=0.0, headcount=0, observed=ts("2025-02-20"), si_due=0.0)],
        [wage("2025-01", due=10.0, paid=20.0, paid_date="2025-02-01", si_due=5.0, si_paid=10.0)],
        daily("2024-10-01", "2024-12-31", 0.0),
        daily("2024-10-01", "2024-11-20", 0.0) + daily("2024-11-21", "2024-12-31", 1e12),
        [utility("2024-12-01", 0.0, kind="water", meter="W1")],
    ],
    ids=["inspection-only", "zero-due-zero-headcount", "overpaid", "zero-meter", "huge-after-zero", "one-reading"],
)
def test_features_are_finite_and_complete(signals):
    state = feed(*signals)
    for as_of in (None, state.clock_day - 400, state.clock_day + 400):
        f = features(state, as_of_day=as_of)
        assert sorted(f) == sorted(FEATURE_NAMES)
        assert len(vector(f)) == len(FEATURE_NAMES)
        assert _all_finite(f), f


def test_rich_state_features_complete():
    f = features(_rich_state())
    assert sorted(f) == sorted(FEATURE_NAMES)
    assert _all_finite(f)
    assert vector(f) == [f[name] for name in FEATURE_NAMES]


def test_features_need_a_clock():
    with pytest.raises(ValueError):
        features(EnterpriseState(EID))


# --- inspections -----------------------------------------------------------------------------
def test_owner_absent_counts_for_90_days():
    state = feed(inspection("2025-03-01", workers=8, findings=["owner_absent"]))
    reported = day("2025-03-01")
    f = features(state, as_of_day=reported)
    assert f["findings_owner_absent_90d"] == 1.0
    assert f["complaints_count_90d"] == 1.0
    assert f["complaints_workers_max_90d"] == 8.0
    f = features(state, as_of_day=reported + 90)
    assert f["findings_owner_absent_90d"] == 1.0
    assert f["complaints_count_90d"] == 1.0
    f = features(state, as_of_day=reported + 91)
    assert f["findings_owner_absent_90d"] == 0.0
    assert f["complaints_count_90d"] == 0.0
    assert f["complaints_workers_max_90d"] == 0.0


def test_rent_arrears_count_for_90_days():
    state = feed(inspection("2025-03-01", kind="routine_inspection", workers=0, findings=["late_wages", "rent_arrears"]),
                 inspection("2025-03-20", kind="daily_visit", workers=0, findings=["rent_arrears"]))
    assert features(state, as_of_day=day("2025-03-20"))["findings_rent_arrears_90d"] == 2.0
    assert features(state, as_of_day=day("2025-03-01") + 91)["findings_rent_arrears_90d"] == 1.0
    assert features(state, as_of_day=day("2025-03-20") + 91)["findings_rent_arrears_90d"] == 0.0


def test_wage_findings_count_for_180_days():
    state = feed(inspection("2025-03-01", kind="routine_inspection", workers=0,
                            findings=["wage_arrears", "social_insurance_arrears"]))
    reported = day("2025-03-01")
    f = features(state, as_of_day=reported + 180)
    assert f["findings_wage_arrears_180d"] == 1.0
    assert f["findings_social_insurance_180d"] == 1.0
    assert f["complaints_count_90d"] == 0.0  # a routine inspection is no complaint
    assert features(state, as_of_day=reported + 181)["findings_wage_arrears_180d"] == 0.0


def test_inspection_after_as_of_day_is_ignored():
    state = feed(
        inspection("2025-03-01", findings=["owner_absent", "equipment_removal", "wage_arrears"], workers=40)
    )
    f = features(state, as_of_day=day("2025-02-28"))
    assert f["findings_owner_absent_90d"] == 0.0
    assert f["findings_equipment_removal_90d"] == 0.0
    assert f["findings_wage_arrears_180d"] == 0.0
    assert f["complaints_count_90d"] == 0.0
    assert f["complaints_workers_max_90d"] == 0.0


def test_features_followed_signal_by_signal_equal_features_of_a_restored_state():
    """The stream keeps one state object and its incremental window sums for days; the backtest
    after a restart and the training snapshots start from a state restored from JSON. Both must
    give the very same features after every signal: readings out of order, re-reads of a day,
    two meters, days of silence, the Spring Festival, pruning, and as-of days back and forth."""
    import random

    rng = random.Random(11)
    state = EnterpriseState(EID)
    start = date(2025, 11, 1)
    signals = []
    for n in range(260):
        today = start + timedelta(days=n + rng.choice([0, 0, 0, 3]))  # sometimes days of silence
        for kind, meter in (("electricity", "E1"), ("electricity", "E2"), ("water", "W1")):
            if rng.random() < 0.85:
                late = rng.choice([1, 1, 1, 2, 5, 40, 200])  # a few late and some very late readings
                signals.append(utility(today - timedelta(days=late), rng.uniform(0, 900) // 0.1 * 0.1,
                                       kind=kind, meter=meter, observed=ts(today, hour=3)))
        if today.day == 9:
            signals.append(wage(f"{today.year}-{today.month:02d}", paid_date=today.isoformat()))
        if rng.random() < 0.05:
            signals.append(inspection(today, findings=["late_wages"]))
    for i, s in enumerate(signals):
        feed(s, state=state)
        if i % 7 and i < len(signals) - 1:
            continue
        restored = EnterpriseState.from_dict(json.loads(json.dumps(state.to_dict())))
        for as_of in (None, state.clock_day - 30, state.clock_day - 3, state.clock_day + 2, None):
            assert features(state, as_of_day=as_of) == features(restored, as_of_day=as_of), (i, as_of)
