"""Simplified Chinese and English for the workbench: a small message catalogue, the four levels,
dates and money in local forms, and alert reasons rendered from their code and value.

A reason's ``code`` is a feature name (the model's reasons), a rule code of config/rules.yaml
(whose feature the rule names), ``collective_incident`` or ``pattern``; its ``value`` is the
number the text was made from. The English text the pipeline wrote is kept as it was written;
the Chinese is made here from code and value.
"""
from __future__ import annotations

from datetime import date, datetime

from models.calendar import CHINA_TZ
from models.features import GRACE_DAYS, text_fields, within_grace

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

LEVELS = ("red", "orange", "yellow", "blue")
LEVEL_HANZI = {"red": "红", "orange": "橙", "yellow": "黄", "blue": "蓝"}
LEVEL_COLOUR = {"red": "#c62828", "orange": "#ef6c00", "yellow": "#f9a825", "blue": "#1565c0"}

# key -> (zh, en)
MESSAGES: dict[str, tuple[str, str]] = {
    "app_title": ("劳资纠纷预警工作台", "Labour dispute early-warning workbench"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "username": ("用户名", "Username"),
    "password": ("密码", "Password"),
    "login_failed": ("用户名或密码错误", "Wrong username or password"),
    "login_locked": ("登录失败次数过多，请稍后再试", "Too many failed logins; try again later"),
    "my_queue": ("我的队列", "My queue"),
    "command_queue": ("指挥中心队列", "Command queue"),
    "all_alerts": ("全部预警", "All alerts"),
    "audit": ("审计日志", "Audit log"),
    "level": ("等级", "Level"),
    "status": ("状态", "Status"),
    "category": ("类别", "Category"),
    "grid": ("网格", "Grid"),
    "score": ("风险分", "Score"),
    "enterprise": ("企业", "Enterprise"),
    "street": ("街道", "Street"),
    "district": ("区", "District"),
    "community": ("社区", "Community"),
    "industry": ("行业", "Industry"),
    "headcount": ("用工人数", "Headcount"),
    "registered_capital": ("注册资本", "Registered capital"),
    "legal_representative": ("法定代表人", "Legal representative"),
    "address": ("地址", "Address"),
    "raised_at": ("触发时间", "Raised"),
    "deadline": ("时限", "Due"),
    "reasons": ("预警原因", "Reasons"),
    "history": ("处置记录", "History"),
    "filter": ("筛选", "Filter"),
    "any": ("全部", "any"),
    "open": ("未办结", "open"),
    "overdue": ("已超时", "overdue"),
    "overdue_only": ("只看超时", "overdue only"),
    "overdue_acknowledge": ("超时未签收", "not acknowledged in time"),
    "overdue_on_site": ("超时未到场", "nobody on site in time"),
    "silenced": ("已静默", "silenced"),
    "escalated": ("已上报指挥中心", "escalated to the command queue"),
    "no_alerts": ("没有符合条件的预警", "No alerts match"),
    "open_file": ("查看一企一档", "Open the enterprise file"),
    "enterprise_file": ("一企一档", "Enterprise file"),
    "alert": ("预警", "Alert"),
    "next_step": ("下一步", "Next step"),
    "note": ("备注", "Note"),
    "action": ("采取的措施", "Action taken"),
    "outcome": ("处置结果", "Outcome"),
    "submit": ("提交", "Submit"),
    "none": ("无", "none"),
    "registry": ("登记信息", "Registry"),
    "alert_history": ("历史预警", "Alert history"),
    "charts": ("监测图表", "Charts"),
    "electricity": ("用电量", "Electricity"),
    "water": ("用水量", "Water"),
    "baseline": ("自身8周基线", "own 8-week baseline"),
    "daily": ("日用量", "daily use"),
    "wages": ("工资应发与实发", "Wages due and paid"),
    "wages_due": ("应发", "due"),
    "wages_paid": ("实发", "paid"),
    "days_late": ("迟发天数", "days late"),
    "timeline": ("投诉与检查", "Complaints and inspections"),
    "no_data": ("暂无数据", "no data"),
    "no_payroll": ("无工资发放记录：该企业工资未接入监控，走访时请核查工资台账",
                   "no payroll records: this enterprise's wages are not monitored; check its payroll on the visit"),
    "silence": ("静默", "Silence"),
    "silence_reason": ("静默原因", "Reason"),
    "silence_until": ("截止日期", "Until"),
    "silences": ("静默记录", "Silences"),
    "escalate": ("上报指挥中心", "Escalate to command"),
    "reassign": ("改派", "Reassign"),
    "assignee": ("承办人", "Assignee"),
    "when": ("时间", "When"),
    "who": ("人员", "Who"),
    "what": ("操作", "What"),
    "target": ("对象", "Target"),
    "detail": ("详情", "Detail"),
    "pipeline": ("系统", "system"),
    "not_found": ("未找到，或您无权查看", "Not found, or not yours to see"),
    "forbidden": ("您无权执行此操作", "You may not do this"),
    "bad_request": ("无法执行", "Cannot do that"),
    "csrf_failed": ("表单已过期，请重试", "The form expired; please try again"),
    "signed_in_as": ("当前用户", "Signed in as"),
    "language": ("语言", "Language"),
    "sla": ("时限要求", "SLA"),
    "acknowledge_by": ("签收时限", "acknowledge by"),
    "on_site_by": ("到场时限", "on site by"),
    "size_band": ("涉及人数", "workers involved"),
    "model_version": ("模型版本", "model"),
}

STATUS_TEXT = {
    "new": ("新预警", "new"),
    "acknowledged": ("已签收", "acknowledged"),
    "in_progress": ("处置中", "in progress"),
    "resolved": ("已处置", "resolved"),
    "closed": ("已办结", "closed"),
}
# The button that moves an alert to this status.
STEP_TEXT = {
    "acknowledged": ("签收", "Acknowledge"),
    "in_progress": ("开始处置", "Start work"),
    "resolved": ("处置完毕", "Resolve"),
    "closed": ("办结", "Close"),
}
ACTION_TEXT = {
    "visit": ("走访", "visit"),
    "employer_interview": ("约谈", "employer interview"),
    "inspection": ("检查", "inspection"),
    "arbitration_referral": ("移送仲裁", "referral to arbitration"),
}
OUTCOME_TEXT = {
    "confirmed_arrears": ("查实欠薪", "arrears confirmed"),
    "rectified": ("已整改", "rectified"),
    "wages_paid": ("工资已支付", "wages paid"),
    "false_alarm": ("误报", "false alarm"),
    "referred_to_arbitration": ("已移送仲裁", "referred to arbitration"),
    "blacklisted": ("列入黑名单", "blacklisted"),
    "absconded": ("雇主逃匿", "employer absconded"),
}
CATEGORY_TEXT = {"risk": ("欠薪风险", "risk"), "collective_incident": ("群体性事件", "collective incident")}
KIND_TEXT = {
    "routine_inspection": ("日常检查", "routine inspection"),
    "special_inspection": ("专项检查", "special inspection"),
    "daily_visit": ("日常走访", "daily visit"),
    "complaint": ("投诉", "complaint"),
    "petition": ("信访", "petition"),
    "hotline": ("热线", "hotline"),
    "arbitration": ("仲裁", "arbitration"),
}
CHANGE_TEXT = {"raised": ("触发预警", "raised"), "escalated": ("预警升级", "escalated")}
AUDIT_TEXT = {
    "read_enterprise": ("查阅企业档案", "read the enterprise file"),
    "transition": ("处置步骤", "workflow step"),
    "silence": ("设置静默", "silence"),
    "escalate": ("上报", "escalate"),
    "reassign": ("改派", "reassign"),
    "user_add": ("新增用户", "add user"),
    "export_labels": ("导出标签", "export labels"),
}

# Chinese for each feature, with the placeholders of models/features.py's FEATURE_TEXT.
FEATURE_TEXT_ZH: dict[str, str] = {
    "electricity_ratio_7d_56d": "用电量比自身8周基线低{drop:.0f}%（近7天）",
    "electricity_ratio_28d_56d": "用电量比自身8周基线低{drop:.0f}%（近4周）",
    "electricity_days_since_reading": "电表读数已逾期{value:.0f}天",
    "water_ratio_7d_56d": "用水量比自身8周基线低{drop:.0f}%（近7天）",
    "water_ratio_28d_56d": "用水量比自身8周基线低{drop:.0f}%（近4周）",
    "water_days_since_reading": "水表读数已逾期{value:.0f}天",
    "wage_days_overdue_max": "工资超过法定发薪日{value:.0f}天未发",
    "wage_arrears_months": "拖欠{value:.0f}个工资周期",
    "wage_unpaid_share_past_grace": f"上一工资周期{{pct:.0f}}%的工资超过{GRACE_DAYS}天宽限期仍未发放",
    "wage_unpaid_share_after_pay_day": "上一工资周期发薪日后仍有{pct:.0f}%的工资未发放",
    "wage_arrears_per_worker": "人均欠薪约{value:,.0f}元",
    "wage_days_late_max_180d": "近180天工资最多迟发{value:.0f}天",
    "wage_late_count_180d": "近180天工资迟发{value:.0f}次",
    "wage_days_since_record": "已{value:.0f}天无工资发放记录",
    "headcount_change_3m": "三个月内用工人数变化{pct:+.0f}%",
    "social_insurance_unpaid_share_past_grace": f"上一周期{{pct:.0f}}%的社保超过{GRACE_DAYS}天宽限期仍未缴纳",
    "complaints_count_90d": "90天内投诉、信访或热线{value:.0f}次",
    "complaints_workers_max_90d": "90天内单次投诉最多涉及{value:.0f}名工人",
    "findings_wage_arrears_180d": "180天内{value:.0f}次查实欠薪",
    "findings_social_insurance_180d": "180天内{value:.0f}次查实欠缴社保",
    "findings_owner_absent_90d": "有报告称雇主失联",
    "findings_equipment_removal_90d": "有报告称设备被搬离",
    "findings_rent_arrears_90d": "90天内{value:.0f}次发现拖欠租金",
    "calendar_shutdown": "处于春节停工期",
    "calendar_days_to_festival": "距春节还有{value:.0f}天",
    "electricity_metered": "已安装电表",
    "water_metered": "已安装水表",
    "wage_reported": "有工资发放记录",
    "headcount_band": "登记人数档位{value:.0f}（0-4：30人以下、30-99、100-299、300-999、1000人以上）",
}


def negotiate(accept_language: str | None) -> str:
    """The first of our languages in the browser's Accept-Language, by quality; else Chinese."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        lang = tag.split("-")[0]
        if lang in LANGS and quality > 0 and (best is None or (quality, -position) > (best[0], -best[1])):
            best = (quality, position, lang)
    return best[2] if best else DEFAULT_LANG


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[0] if lang == "zh" else pair[1]


def t(lang: str, key: str) -> str:
    pair = MESSAGES.get(key)
    return _pick(pair, lang) if pair else key


def _lookup(table: dict[str, tuple[str, str]], key: str | None, lang: str) -> str:
    if key is None:
        return ""
    return _pick(table[key], lang) if key in table else key


def status_text(lang: str, status: str | None) -> str:
    return _lookup(STATUS_TEXT, status, lang)


def step_text(lang: str, status: str) -> str:
    return _lookup(STEP_TEXT, status, lang)


def action_text(lang: str, action: str | None) -> str:
    return _lookup(ACTION_TEXT, action, lang)


def outcome_text(lang: str, outcome: str | None) -> str:
    return _lookup(OUTCOME_TEXT, outcome, lang)


def category_text(lang: str, category: str | None) -> str:
    return _lookup(CATEGORY_TEXT, category, lang)


def kind_text(lang: str, kind: str | None) -> str:
    return _lookup(KIND_TEXT, kind, lang)


def audit_text(lang: str, action: str | None) -> str:
    return _lookup(AUDIT_TEXT, action, lang)


def level_text(lang: str, level: str) -> str:
    """蓝/黄/橙/红 always; in English the colour's name beside it."""
    hanzi = LEVEL_HANZI.get(level, level)
    return f"{hanzi}色预警" if lang == "zh" else f"{hanzi} {level}"


def _local(ts: datetime) -> datetime:
    return ts.astimezone(CHINA_TZ)


def format_datetime(lang: str, ts: datetime | None) -> str:
    if ts is None:
        return ""
    local = _local(ts)
    if lang == "zh":
        return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"
    return local.strftime("%d %b %Y %H:%M")


def format_date(lang: str, day: date | datetime | None) -> str:
    if day is None:
        return ""
    if isinstance(day, datetime):
        day = _local(day).date()
    return f"{day.year}年{day.month}月{day.day}日" if lang == "zh" else day.strftime("%d %b %Y")


def format_money(lang: str, amount: float | None) -> str:
    if amount is None:
        return ""
    if lang == "zh":
        if abs(amount) >= 10000:
            return f"{amount / 10000:,.2f}万元"
        return f"{amount:,.0f}元"
    return f"CNY {amount:,.0f}"


def format_score(score: float) -> str:
    return f"{score:.0%}"


def reason_text(lang: str, reason: dict, rule_features: dict[str, str] | None = None) -> str:
    """A reason in the chosen language, from its code and value."""
    code = reason.get("code")
    value = reason.get("value")
    written = reason.get("text") or code or ""
    if lang != "zh":
        return written
    if code == "collective_incident":
        return f"{value:.0f}名工人集体行动（群体性事件）" if isinstance(value, (int, float)) else "群体性事件"
    if code == "pattern":
        return "信号的整体模式"
    feature = code if code in FEATURE_TEXT_ZH else (rule_features or {}).get(code)
    if feature not in FEATURE_TEXT_ZH or not isinstance(value, (int, float)):
        return written
    value = float(value)
    text = FEATURE_TEXT_ZH[feature].format(**text_fields(value))
    return f"{text}（在{GRACE_DAYS}天宽限期内）" if within_grace(feature, value) else text


class Translator:
    """Everything a template needs for one language, bound once per request."""

    def __init__(self, lang: str, rule_features: dict[str, str] | None = None):
        self.lang = lang if lang in LANGS else DEFAULT_LANG
        self._rule_features = rule_features or {}

    def __call__(self, key: str) -> str:
        return t(self.lang, key)

    def level(self, level: str) -> str:
        return level_text(self.lang, level)

    def status(self, status: str | None) -> str:
        return status_text(self.lang, status)

    def step(self, status: str) -> str:
        return step_text(self.lang, status)

    def action(self, action: str | None) -> str:
        return action_text(self.lang, action)

    def outcome(self, outcome: str | None) -> str:
        return outcome_text(self.lang, outcome)

    def category(self, category: str | None) -> str:
        return category_text(self.lang, category)

    def kind(self, kind: str | None) -> str:
        return kind_text(self.lang, kind)

    def change(self, change: str | None) -> str:
        return _lookup(CHANGE_TEXT, change, self.lang)

    def audit_action(self, action: str | None) -> str:
        return audit_text(self.lang, action)

    def dt(self, ts: datetime | None) -> str:
        return format_datetime(self.lang, ts)

    def date(self, day) -> str:
        return format_date(self.lang, day)

    def money(self, amount: float | None) -> str:
        return format_money(self.lang, amount)

    def reason(self, reason: dict) -> str:
        return reason_text(self.lang, reason, self._rule_features)
