"""The pure parts of the workbench: workflow rules, SLA state, languages and formats, reasons from
code and value, the charts' series, outcomes as labels, passwords and tokens."""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone

import pytest

from alerts.auth import Tokens, csrf_matches, hash_password, verify_password
from alerts.feedback import positive_days, read_feedback
from alerts.web import charts
from alerts.web.i18n import format_date, format_datetime, format_money, level_text, negotiate, reason_text
from alerts.workflow import TransitionError, check_transition, sla_state
from config.files import load_configs
from config.settings import CONFIG_DIR
from models.features import FEATURE_NAMES, FEATURE_TEXT, describe

SLA = load_configs(CONFIG_DIR).sla


@pytest.mark.parametrize("current,to,action,outcome", [
    ("new", "acknowledged", None, None),
    ("acknowledged", "in_progress", "visit", None),
    ("in_progress", "in_progress", "employer_interview", None),
    ("in_progress", "resolved", None, "wages_paid"),
    ("resolved", "closed", None, None),
])
def test_allowed_steps(current, to, action, outcome):
    check_transition(current, to, action=action, outcome=outcome)


@pytest.mark.parametrize("current,to,action,outcome,message", [
    ("new", "resolved", None, "rectified", "cannot go from new to resolved"),
    ("closed", "new", None, None, "nothing (closed)"),
    ("in_progress", "in_progress", None, None, "give one"),
    ("in_progress", "resolved", None, None, "needs an outcome"),
    ("new", "acknowledged", None, "rectified", "only a resolution"),
    ("in_progress", "resolved", None, "lost", "unknown outcome"),
    ("new", "finished", None, None, "unknown status"),
])
def test_refused_steps(current, to, action, outcome, message):
    with pytest.raises(TransitionError, match=re.escape(message)):
        check_transition(current, to, action=action, outcome=outcome)


def test_sla_from_first_stored_by_level():
    stored = datetime(2025, 6, 2, 2, 0, tzinfo=timezone.utc)
    assert sla_state(SLA, "red", "new", stored, stored + timedelta(hours=1)).overdue is None
    assert sla_state(SLA, "red", "new", stored, stored + timedelta(hours=3)).overdue == "acknowledge"
    assert sla_state(SLA, "red", "acknowledged", stored, stored + timedelta(hours=3)).overdue is None
    assert sla_state(SLA, "red", "acknowledged", stored, stored + timedelta(hours=25)).overdue == "on_site"
    assert sla_state(SLA, "red", "in_progress", stored, stored + timedelta(days=30)).overdue is None
    assert sla_state(SLA, "blue", "new", stored, stored + timedelta(hours=71)).overdue is None


@pytest.mark.parametrize("header,lang", [
    (None, "zh"), ("", "zh"), ("en-US,en;q=0.9", "en"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
    ("fr-FR,en;q=0.5,zh;q=0.4", "en"), ("fr", "zh"), ("en;q=0.2,zh;q=0.8", "zh"), ("zh;q=0,en", "en"),
])
def test_accept_language(header, lang):
    assert negotiate(header) == lang


def test_levels_dates_and_money_in_both_languages():
    assert level_text("zh", "red") == "红色预警" and level_text("en", "blue") == "蓝 blue"
    ts = datetime(2025, 1, 31, 18, 5, tzinfo=timezone.utc)  # 02:05 on 1 February in China
    assert format_datetime("zh", ts) == "2025年2月1日 02:05"
    assert format_datetime("en", ts) == "01 Feb 2025 02:05"
    assert format_date("zh", date(2025, 3, 9)) == "2025年3月9日"
    assert format_money("zh", 417400) == "41.74万元" and format_money("zh", 950) == "950元"
    assert format_money("en", 417400) == "CNY 417,400"


def test_every_feature_has_chinese_and_reasons_render_from_code_and_value():
    from alerts.web.i18n import FEATURE_TEXT_ZH

    assert set(FEATURE_TEXT_ZH) == set(FEATURE_NAMES) == set(FEATURE_TEXT)
    for name in FEATURE_NAMES:
        assert reason_text("zh", {"code": name, "value": 0.25, "text": "x"}) != "x"
    reason = {"code": "wage_unpaid_share_past_grace", "value": 0.82,
              "text": "82% of the last pay period's wages still unpaid after the 5 days' grace"}
    assert reason_text("zh", reason) == "上一工资周期82%的工资超过5天宽限期仍未发放"
    assert reason_text("en", reason) == reason["text"]
    rule = {"code": "electricity_collapse", "value": 0.1, "text": "electricity has almost stopped"}
    assert reason_text("zh", rule, {"electricity_collapse": "electricity_ratio_7d_56d"}) == "用电量比自身8周基线低90%（近7天）"
    assert reason_text("zh", {"code": "unknown_code", "value": 1, "text": "as written"}) == "as written"
    assert reason_text("zh", {"code": "collective_incident", "value": 45, "text": "x"}).startswith("45名工人")
    # Lateness the regulation allows is said to be lawful, in both languages; beyond it, not.
    assert describe("wage_days_late_max_180d", 2.0) == (
        "wages paid up to 2 days late in the last 180 days (within the 5 days' grace)")
    assert describe("wage_days_late_max_180d", 6.0) == "wages paid up to 6 days late in the last 180 days"
    assert reason_text("zh", {"code": "wage_days_late_max_180d", "value": 2.0}) == "近180天工资最多迟发2天（在5天宽限期内）"
    assert reason_text("zh", {"code": "wage_days_late_max_180d", "value": 6.0}) == "近180天工资最多迟发6天"
    # Counts read as English does: one day, two days.
    assert describe("electricity_days_since_reading", 1.0) == "electricity reading overdue by 1 day"
    assert describe("complaints_count_90d", 1.0) == "1 complaint, petition or hotline call in 90 days"
    assert describe("complaints_count_90d", 3.0) == "3 complaints, petitions or hotline calls in 90 days"
    assert describe("wage_arrears_months", 2.0) == "2 pay periods in arrears"
    rules = {rule.code: rule for rule in load_configs(CONFIG_DIR).rules.rules}
    assert rules["findings_wage_arrears"].render(1.0) == "wage arrears found by inspection or complaint (1 time in 180 days)"
    assert rules["complaints"].render(2.0) == "2 complaints, petitions or hotline calls in the last 90 days"
    assert reason_text("zh", {"code": "complaints_count_90d", "value": 1.0}) == "90天内投诉、信访或热线1次"


def _utility(day: date, meter: str, value: float) -> dict:
    return {"type": "utility", "utility": "electricity", "meter_id": meter, "reading_date": day.isoformat(),
            "consumption": value}


def test_utility_series_against_own_baseline():
    start = date(2025, 1, 1)
    payloads = [_utility(start + timedelta(days=i), "E1", 100.0 if i < 83 else 20.0) for i in range(90)]
    payloads.append(_utility(start + timedelta(days=89), "E1", 10.0))  # a re-read replaces
    payloads.append(_utility(start + timedelta(days=89), "E2", 5.0))  # a second meter adds
    series = charts.utility_series(payloads, "electricity")
    assert series.days[-1] == start + timedelta(days=89) and series.daily[-1] == 15.0
    assert series.baseline[-1] == pytest.approx(100.0)
    assert series.recent[-1] < 30
    svg = charts.utility_chart(series, title="e", unit="kWh", daily_label="d", recent_label="7d",
                               baseline_label="b", date_fmt=str)
    assert svg.startswith("<svg") and 'class="baseline"' in svg
    assert charts.utility_series(payloads, "water") is None


def test_wage_periods_days_late_and_unpaid():
    payloads = [
        {"type": "wage", "period": "2025-01", "wages_due": 100.0, "wages_paid": 100.0, "due_date": "2025-02-10",
         "paid_date": "2025-02-20"},
        {"type": "wage", "period": "2025-02", "wages_due": 100.0, "wages_paid": 40.0, "due_date": "2025-03-10",
         "paid_date": "2025-03-10"},
    ]
    periods = charts.wage_periods(payloads)
    assert [(p.period, p.days_late) for p in periods] == [("2025-01", 10), ("2025-02", None)]
    svg = charts.wage_chart(periods, title="w", due_label="due", paid_label="paid", late_label="late", money_fmt=str)
    assert svg.count('class="paid"') == 3  # two bars and the legend


def test_outcomes_become_positive_days(tmp_path):
    path = tmp_path / "feedback.jsonl"
    lines = [
        {"enterprise_id": "E1", "outcome": "confirmed_arrears", "resolved_at": "2025-03-01T23:30:00+08:00"},
        {"enterprise_id": "E2", "outcome": "false_alarm", "resolved_at": "2025-03-01T10:00:00+08:00"},
        {"enterprise_id": "E1", "outcome": "absconded", "resolved_at": "2025-02-28T17:00:00+00:00"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    days = positive_days(read_feedback(path))
    assert days == {"E1": [date(2025, 3, 1).toordinal(), date(2025, 3, 1).toordinal()]}
    path.write_text("\ufeff" + "\r\n".join(json.dumps(x) for x in lines), encoding="utf-8")  # saved by Notepad
    assert positive_days(read_feedback(path)) == days
    path.write_text('{"enterprise_id": "E1"}\n')
    with pytest.raises(ValueError, match="feedback.jsonl:1"):
        read_feedback(path)


def test_feedback_labels_join_the_disputes(tmp_path):
    from laborwatch.models_cli import _with_feedback

    disputes = tmp_path / "disputes.jsonl"
    disputes.write_text("")
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text(json.dumps({"enterprise_id": "91440306WUCCEUGCLQ", "outcome": "wages_paid",
                                    "resolved_at": "2025-03-01T12:00:00+08:00"}) + "\n")
    days, merged = _with_feedback(disputes, feedback)
    assert merged == {"91440306WUCCEUGCLQ": [date(2025, 3, 1).toordinal()]}
    assert days == {}  # the disputes' own days, kept apart to count what the outcomes added


def test_passwords_tokens_and_csrf():
    hashed = hash_password("long enough")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "long enough") and not verify_password(hashed, "wrong")
    with pytest.raises(ValueError):
        hash_password("short")
    tokens = Tokens("a" * 32, 60)
    token = tokens.issue("wang")
    assert tokens.read(token) == "wang"
    assert Tokens("b" * 32, 60).read(token) is None
    assert tokens.read(token[:-2] + "xx") is None
    assert csrf_matches("abc", "abc") and not csrf_matches("abc", "abd") and not csrf_matches(None, None)
