"""Features: pure functions of an ``EnterpriseState`` at an as-of day.

Names follow ``{signal}_{stat}_{window}``. Every feature is a finite float with a neutral value
when its inputs are missing, so that the same vector feeds the rules, a linear model and trees.
"""
from __future__ import annotations

import bisect
from datetime import date, datetime
from functools import lru_cache

from models.calendar import CHINA_TZ, days_to_next_festival, in_shutdown
from models.state import COMPLAINT_KINDS, EnterpriseState

# The statutory pay day may slip this many days (Shenzhen wage payment regulation, art. 12).
GRACE_DAYS = 5

FEATURE_NAMES: tuple[str, ...] = (
    "electricity_ratio_7d_56d",
    "electricity_ratio_28d_56d",
    "electricity_days_since_reading",
    "electricity_metered",
    "water_ratio_7d_56d",
    "water_ratio_28d_56d",
    "water_days_since_reading",
    "water_metered",
    "wage_days_overdue_max",
    "wage_arrears_months",
    "wage_unpaid_share_past_grace",
    "wage_unpaid_share_after_pay_day",
    "wage_arrears_per_worker",
    "wage_days_late_max_180d",
    "wage_late_count_180d",
    "wage_days_since_record",
    "wage_reported",
    "headcount_band",
    "headcount_change_3m",
    "social_insurance_unpaid_share_past_grace",
    "complaints_count_90d",
    "complaints_workers_max_90d",
    "findings_wage_arrears_180d",
    "findings_social_insurance_180d",
    "findings_owner_absent_90d",
    "findings_equipment_removal_90d",
    "findings_rent_arrears_90d",
    "calendar_shutdown",
    "calendar_days_to_festival",
)

# Cap "days since" figures so that one enterprise silent for years does not dominate a scale.
_DAYS_CAP = 120.0


_RECENT_WINDOWS = (7, 28)
_BASELINE_DAYS = 56
# Age bands (days before the as-of day) the utility ratios are made of: 1-7, 8-28, 29-63, 64-84.
# The 7-day ratio is band 0 against bands 1-2 (ages 8-63); the 28-day one bands 0-1 against 2-3.
_BAND_EDGES = (1, 1 + _RECENT_WINDOWS[0], 1 + _RECENT_WINDOWS[1],
               1 + _RECENT_WINDOWS[0] + _BASELINE_DAYS, 1 + _RECENT_WINDOWS[1] + _BASELINE_DAYS)


def _ratio(recent_sum: int, n_recent: int, base_sum: int, n_base: int, recent: int, interval: int) -> float:
    """Mean total per reading over the last ``recent`` days against the 56 days before them;
    1.0 (no change) when either is too thin to say. A meter read every ``interval`` days brings
    ``recent / interval`` readings to the window: the recent one needs 3 of a daily feed's (one
    odd day is not a trend) and at least one of a weekly one's, the baseline a quarter of its
    expected readings (14 days of a daily feed, 2 weeks of a weekly one)."""
    need_recent = max(1, min(3, recent // interval // 2))
    if n_recent < need_recent or n_base < max(2, _BASELINE_DAYS // 4 // interval) or base_sum <= 0:
        return 1.0
    return min((recent_sum / n_recent) / (base_sum / n_base), 5.0)


def _utility(state: EnterpriseState, utility: str, as_of: int, out: dict[str, float]) -> None:
    # Days in the Spring Festival shutdown never count: near-zero meters then are normal.
    (s1, s2, s3, s4), (n1, n2, n3, n4) = state.utility_bands(utility, as_of, _BAND_EDGES, in_shutdown)
    interval = state.reading_interval(utility)
    out[f"{utility}_ratio_7d_56d"] = _ratio(s1, n1, s2 + s3, n2 + n3, 7, interval)
    out[f"{utility}_ratio_28d_56d"] = _ratio(s1 + s2, n1 + n2, s3 + s4, n3 + n4, 28, interval)
    metered = bool(state.meters[utility])
    last = state.last_reading_day(utility)
    # Days the next reading is overdue: a day's reading comes the next day, so for a daily meter
    # these are the days with no reading since the last one (the name is from then); a meter
    # read weekly is not overdue until a week has passed.
    silent = 0.0 if last is None else float(max(0, as_of - last - interval))
    out[f"{utility}_days_since_reading"] = min(silent, _DAYS_CAP) if metered else 0.0
    out[f"{utility}_metered"] = 1.0 if metered else 0.0


def _wages(state: EnterpriseState, as_of: int, out: dict[str, float]) -> None:
    periods = [state.wages[p] for p in sorted(state.wages)]
    overdue = [w for w in periods if w.due_day < as_of]
    unpaid = [w for w in overdue if w.paid_day is None or w.paid < w.due - 0.5]
    out["wage_days_overdue_max"] = float(max((as_of - w.due_day for w in unpaid), default=0))
    # Arrears, the unpaid shares and social insurance read the periods whose grace has passed
    # (due day + GRACE_DAYS before the as-of day): a firm paying within the grace is not "in
    # arrears" or "100% unpaid" in the meantime. Social insurance is due with the period's wages
    # (the same record and due day), so it gets the same grace. How many days a period is past
    # its pay day is ``wage_days_overdue_max``, which counts from the pay day itself.
    past_grace = [w for w in overdue if w.due_day + GRACE_DAYS < as_of]
    in_arrears = [w for w in unpaid if w.due_day + GRACE_DAYS < as_of]
    out["wage_arrears_months"] = float(len(in_arrears))
    last = past_grace[-1] if past_grace else None
    out["wage_unpaid_share_past_grace"] = (
        max(0.0, 1.0 - last.paid / last.due) if last is not None and last.due > 0 else 0.0
    )
    # The same share from the day after the pay day, grace or not: a firm that pays the rest
    # within days usually pays most of it on time (healthy sample firms 55-90%), while an owner
    # about to vanish pays a token share (11% at one sample firm, 15 days before its workers
    # gathered). How much is missing, not yet whether it is late.
    newest = overdue[-1] if overdue else None
    out["wage_unpaid_share_after_pay_day"] = (
        max(0.0, 1.0 - newest.paid / newest.due) if newest is not None and newest.due > 0 else 0.0
    )
    arrears = sum(max(0.0, w.due - w.paid) for w in in_arrears)
    headcount = periods[-1].headcount if periods else 0
    out["wage_arrears_per_worker"] = arrears / headcount if headcount else 0.0
    recent = [w for w in overdue if as_of - w.due_day <= 180]
    lateness = [
        (w.paid_day if w.paid_day is not None and w.paid >= w.due - 0.5 else as_of) - w.due_day
        for w in recent
    ]
    out["wage_days_late_max_180d"] = float(max([0, *lateness]))
    out["wage_late_count_180d"] = float(sum(1 for days in lateness if days > GRACE_DAYS))
    if periods:
        newest = max(w.observed_ts for w in periods)
        newest_day = datetime.fromtimestamp(newest, CHINA_TZ).date().toordinal()
        out["wage_days_since_record"] = min(float(max(0, as_of - newest_day)), _DAYS_CAP)
    else:
        out["wage_days_since_record"] = 0.0
    # No wage record at all is no payroll feed (a third of the firms in the contract's samples),
    # not a firm paying on time: the wage features above are then silent, not reassuring.
    out["wage_reported"] = 1.0 if periods else 0.0
    if len(periods) >= 4 and periods[-4].headcount > 0:
        out["headcount_change_3m"] = periods[-1].headcount / periods[-4].headcount - 1.0
    else:
        out["headcount_change_3m"] = 0.0
    si = [w for w in past_grace if w.si_due]
    out["social_insurance_unpaid_share_past_grace"] = (
        max(0.0, 1.0 - (si[-1].si_paid or 0.0) / si[-1].si_due) if si else 0.0
    )


def _inspections(state: EnterpriseState, as_of: int, out: dict[str, float]) -> None:
    complaints = wage = social = absent = removal = rent = 0
    workers_max = 0
    for item in state.inspections:
        age = as_of - item.day
        if age < 0:
            continue  # reported after the as-of day: not known yet
        if age <= 90:
            if item.kind in COMPLAINT_KINDS:
                complaints += 1
                workers_max = max(workers_max, item.workers)
            absent += "owner_absent" in item.findings
            removal += "equipment_removal" in item.findings
            # unpaid rent (property management's report, which the migrant-worker wage
            # regulation, art. 38, asks labour departments to watch)
            rent += "rent_arrears" in item.findings
        if age <= 180:
            wage += "wage_arrears" in item.findings or "late_wages" in item.findings
            social += "social_insurance_arrears" in item.findings
    out["complaints_count_90d"] = float(complaints)
    out["complaints_workers_max_90d"] = float(workers_max)
    out["findings_wage_arrears_180d"] = float(wage)
    out["findings_social_insurance_180d"] = float(social)
    out["findings_owner_absent_90d"] = float(absent)
    out["findings_equipment_removal_90d"] = float(removal)
    out["findings_rent_arrears_90d"] = float(rent)


#: Registered headcount band edges: under 30 (below the source documents' smallest collective
#: dispute), 30-99, 100-299, 300-999, 1000 and more.
HEADCOUNT_BANDS = (30, 100, 300, 1000)


def features(state: EnterpriseState, as_of_day: int | None = None) -> dict[str, float]:
    """The feature vector of ``state`` on ``as_of_day`` (a date ordinal; default its clock day)."""
    as_of = as_of_day if as_of_day is not None else state.clock_day
    if as_of is None:
        raise ValueError(f"{state.enterprise_id}: no signal yet, no as-of day")
    out: dict[str, float] = {}
    _utility(state, "electricity", as_of, out)
    _utility(state, "water", as_of, out)
    # Wages and inspections change rarely next to the as-of day's signals: their parts are
    # remembered on the state until either changes.
    _memoised(state, "wages", (as_of, state.wages_version), _wages, as_of, out)
    _memoised(state, "inspections", (as_of, state.inspections_version), _inspections, as_of, out)
    out.update(_calendar(as_of))
    # The registry's headcount, as a prior: a recorded collective dispute needs a crowd (the
    # source documents count disputes of 30+ workers; a quarter of CLB incidents have 100+
    # participants), and the contract's sample firms with a dispute employ a median of about
    # 125 against about 40 for the others.
    # Coarse bands, not the number itself: a model must not learn individual firms by their
    # headcount (a firm's own history is in the other features).
    out["headcount_band"] = float(bisect.bisect_right(HEADCOUNT_BANDS, state.headcount or 0))
    return out


def _memoised(state: EnterpriseState, part: str, key: tuple, compute, as_of: int, out: dict[str, float]) -> None:
    cached = state.memo.get(part)
    if cached is None or cached[0] != key:
        values: dict[str, float] = {}
        compute(state, as_of, values)
        cached = state.memo[part] = (key, values)
    out.update(cached[1])


@lru_cache(maxsize=4096)
def _calendar(as_of: int) -> dict[str, float]:
    return {
        "calendar_shutdown": 1.0 if in_shutdown(as_of) else 0.0,
        "calendar_days_to_festival": float(min(days_to_next_festival(date.fromordinal(as_of)), 366)),
    }


def vector(feats: dict[str, float]) -> list[float]:
    """The features in ``FEATURE_NAMES`` order (the column order every model is trained on)."""
    return [feats[name] for name in FEATURE_NAMES]


# What "nothing unusual" looks like for each feature: explanations measure how much the score
# falls when one feature is put back to it. Context features (is there a meter, what day of the
# year) explain nothing on their own and are not put back.
CONTEXT_FEATURES = frozenset(
    {"electricity_metered", "water_metered", "wage_reported", "headcount_band", "calendar_shutdown",
     "calendar_days_to_festival"}
)
NEUTRAL: dict[str, float] = {name: (1.0 if "_ratio_" in name else 0.0) for name in FEATURE_NAMES}

# How an inspector reads each feature: {value} the feature, {pct} it in percent, {drop} how far
# a ratio fell below 1 in percent, {neg} a fall as a positive percent.
FEATURE_TEXT: dict[str, str] = {
    "electricity_ratio_7d_56d": "electricity {drop:.0f}% below its own 8-week baseline (last 7 days)",
    "electricity_ratio_28d_56d": "electricity {drop:.0f}% below its own 8-week baseline (last 4 weeks)",
    "electricity_days_since_reading": "electricity reading overdue by {value:.0f} day{s}",
    "water_ratio_7d_56d": "water {drop:.0f}% below its own 8-week baseline (last 7 days)",
    "water_ratio_28d_56d": "water {drop:.0f}% below its own 8-week baseline (last 4 weeks)",
    "water_days_since_reading": "water reading overdue by {value:.0f} day{s}",
    "wage_days_overdue_max": "wages unpaid {value:.0f} day{s} after the statutory pay day",
    "wage_arrears_months": "{value:.0f} pay period{s} in arrears",
    "wage_unpaid_share_past_grace":
        f"{{pct:.0f}}% of the last pay period's wages still unpaid after the {GRACE_DAYS} days' grace",
    "wage_unpaid_share_after_pay_day": "{pct:.0f}% of the last pay period's wages unpaid after the pay day",
    "wage_arrears_per_worker": "arrears of about {value:,.0f} yuan per worker",
    "wage_days_late_max_180d": "wages paid up to {value:.0f} day{s} late in the last 180 days",
    "wage_late_count_180d": "wages paid late {value:.0f} time{s} in the last 180 days",
    "wage_days_since_record": "no payroll record for {value:.0f} day{s}",
    "headcount_change_3m": "headcount changed {pct:+.0f}% in three months",
    "social_insurance_unpaid_share_past_grace":
        f"{{pct:.0f}}% of the last period's social insurance still unpaid after the {GRACE_DAYS} days' grace",
    "complaints_count_90d": "{value:.0f} complaint{s}, petition{s} or hotline call{s} in 90 days",
    "complaints_workers_max_90d": "up to {value:.0f} worker{s} in one complaint in 90 days",
    "findings_wage_arrears_180d": "wage arrears found {value:.0f} time{s} in 180 days",
    "findings_social_insurance_180d": "social insurance arrears found {value:.0f} time{s} in 180 days",
    "findings_owner_absent_90d": "the employer was reported absent",
    "findings_equipment_removal_90d": "equipment reported being moved out",
    "findings_rent_arrears_90d": "rent arrears reported {value:.0f} time{s} in 90 days",
    "calendar_shutdown": "during the Spring Festival shutdown",
    "calendar_days_to_festival": "{value:.0f} day{s} before the Spring Festival",
    "electricity_metered": "electricity metered",
    "water_metered": "water metered",
    "wage_reported": "payroll reported",
    "headcount_band": "registered headcount band {value:.0f} (of 0-4: under 30, 30-99, 100-299, 300-999, 1000+)",
}


def is_sign(name: str, value: float) -> bool:
    """Whether ``value`` of feature ``name`` is a sign an inspector can read and check on site,
    which a reason on an alert must be: a meter at least 10% below its baseline, a headcount down
    at least 5%, at least 5% of a period unpaid, any lateness, arrears, complaint or finding. A
    model may still weigh less than that (trees split where the data splits, a headcount up 1%
    among them): it counts in the score, but "headcount changed +1%" is no reason to visit."""
    if "_ratio_" in name:
        return value <= 0.9
    if name == "headcount_change_3m":
        return value <= -0.05
    if "_share_" in name:
        return value >= 0.05
    return value > 0


def within_grace(name: str, value: float) -> bool:
    """A lateness that the wage regulation allows (at most ``GRACE_DAYS``): still a sign the model
    weighs, which the reason says is lawful so that an inspector does not read it as a breach."""
    return name == "wage_days_late_max_180d" and 0 < value <= GRACE_DAYS


def text_fields(value: float) -> dict[str, float | str]:
    """The placeholders of a reason's text (``FEATURE_TEXT``, the Chinese ones, the rules' in
    config/rules.yaml): ``value``; ``pct`` it in percent; ``drop`` how far a ratio fell below 1,
    in percent; ``neg`` a fall as a positive percent; ``s`` a plural's "s", "" when the value
    reads as 1 ("1 day")."""
    return {"value": value, "pct": value * 100, "drop": (1 - value) * 100, "neg": -value * 100,
            "s": "" if round(value) == 1 else "s"}


def describe(name: str, value: float) -> str:
    text = FEATURE_TEXT[name].format(**text_fields(value))
    return f"{text} (within the {GRACE_DAYS} days' grace)" if within_grace(name, value) else text
