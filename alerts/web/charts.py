"""Inline SVG charts of an enterprise file, built from the ledger of accepted signals (their JSON
payloads): electricity and water against the enterprise's own baseline, wages due and paid per
period with the days late, and complaints and inspections on a timeline.

Pure functions of the payloads; the server renders the markup, no JavaScript involved.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

from models.features import GRACE_DAYS
from models.state import COMPLAINT_KINDS

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 34
BASELINE_DAYS, RECENT_DAYS = 56, 7  # the features' electricity_ratio_7d_56d


@dataclass(frozen=True)
class UtilitySeries:
    days: list[date]
    daily: list[float | None]  # total over the meters, None for a day with no reading
    recent: list[float | None]  # mean of the last 7 days
    baseline: list[float | None]  # mean of the 56 days before those


def utility_series(payloads: list[dict], utility: str, days_shown: int = 120) -> UtilitySeries | None:
    per_meter_day: dict[tuple[date, str], float] = {}
    for p in payloads:
        if p.get("type") == "utility" and p.get("utility") == utility:
            per_meter_day[(date.fromisoformat(p["reading_date"]), p["meter_id"])] = float(p["consumption"])
    if not per_meter_day:
        return None
    totals: dict[date, float] = {}
    for (day, _), value in per_meter_day.items():
        totals[day] = totals.get(day, 0.0) + value
    last = max(totals)
    first_shown = max(min(totals), last - timedelta(days=days_shown - 1))
    days = [first_shown + timedelta(days=i) for i in range((last - first_shown).days + 1)]

    def mean(start: date, n: int) -> float | None:
        values = [totals[d] for d in (start + timedelta(days=i) for i in range(n)) if d in totals]
        return sum(values) / len(values) if len(values) >= min(3, n) else None

    recent = [mean(d - timedelta(days=RECENT_DAYS - 1), RECENT_DAYS) for d in days]
    baseline = [mean(d - timedelta(days=RECENT_DAYS + BASELINE_DAYS - 1), BASELINE_DAYS) for d in days]
    return UtilitySeries(days, [totals.get(d) for d in days], recent, baseline)


@dataclass(frozen=True)
class WagePeriod:
    period: str
    due: float
    paid: float
    days_late: int | None  # None: not paid in full yet
    due_date: date


def wage_periods(payloads: list[dict], today: date | None = None, kept: int = 13) -> list[WagePeriod]:
    latest: dict[str, dict] = {}
    for p in payloads:
        if p.get("type") == "wage":
            latest[p["period"]] = p  # the ledger is in event order: the last record of a period wins
    out = []
    for period in sorted(latest)[-kept:]:
        p = latest[period]
        due_date = date.fromisoformat(p["due_date"])
        due, paid = float(p["wages_due"]), float(p["wages_paid"])
        late = None
        if p.get("paid_date") and paid >= due - 0.5:
            late = max(0, (date.fromisoformat(p["paid_date"]) - due_date).days)
        out.append(WagePeriod(period, due, paid, late, due_date))
    return out


@dataclass(frozen=True)
class Event:
    day: date
    kind: str
    workers: int
    findings: tuple[str, ...]
    note: str | None

    @property
    def complaint(self) -> bool:
        return self.kind in COMPLAINT_KINDS


def inspection_events(payloads: list[dict]) -> list[Event]:
    from models.calendar import CHINA_TZ
    from streams.validation import parse_timestamp

    out = []
    for p in payloads:
        if p.get("type") == "inspection":
            day = parse_timestamp(p["observed_at"]).astimezone(CHINA_TZ).date()
            out.append(Event(day, p["kind"], int(p.get("workers_involved") or 0), tuple(p.get("findings") or ()),
                             p.get("note")))
    return sorted(out, key=lambda e: e.day)


# -- drawing ---------------------------------------------------------------------------------
def _svg(body: list[str], label: str, height: int = HEIGHT) -> str:
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
            f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _y_axis(top_value: float, plot_h: float, fmt=lambda v: f"{v:,.0f}") -> list[str]:
    out = []
    for i in range(5):
        value = top_value * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{escape(fmt(value))}</text>')
    return out


def _path(points: list[tuple[float, float] | None]) -> str:
    parts, pen_down = [], False
    for point in points:
        if point is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{point[0]:.1f},{point[1]:.1f}")
        pen_down = True
    return " ".join(parts)


def utility_chart(series: UtilitySeries, *, title: str, unit: str, daily_label: str, recent_label: str,
                  baseline_label: str, date_fmt) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for v in series.daily + series.baseline if v is not None]
    top = _nice_max(max(values) if values else 1.0)
    n = len(series.days)
    x = lambda i: LEFT + (plot_w * i / max(1, n - 1))  # noqa: E731
    y = lambda v: TOP + plot_h - plot_h * v / top  # noqa: E731
    body = [f"<title>{escape(title)}</title>", *_y_axis(top, plot_h)]
    bar_w = max(1.0, plot_w / max(1, n) * 0.7)
    for i, v in enumerate(series.daily):
        if v is not None:
            body.append(f'<rect class="daily" x="{x(i) - bar_w / 2:.1f}" y="{y(v):.1f}" width="{bar_w:.1f}" '
                        f'height="{TOP + plot_h - y(v):.1f}"><title>{escape(date_fmt(series.days[i]))}: '
                        f'{v:,.1f} {escape(unit)}</title></rect>')
    body.append(f'<path class="baseline" d="{_path([(x(i), y(v)) if v is not None else None for i, v in enumerate(series.baseline)])}"/>')
    body.append(f'<path class="recent" d="{_path([(x(i), y(v)) if v is not None else None for i, v in enumerate(series.recent)])}"/>')
    for i in sorted({0, n - 1, *range(0, n, max(1, n // 5))}):
        body.append(f'<text x="{x(i):.1f}" y="{HEIGHT - 14}" text-anchor="middle" class="tick">'
                    f'{escape(date_fmt(series.days[i]))}</text>')
    legend_y = HEIGHT - 2
    body.append(f'<rect class="daily" x="{LEFT}" y="{legend_y - 9}" width="10" height="9"/>'
                f'<text x="{LEFT + 14}" y="{legend_y}" class="legend">{escape(daily_label)} ({escape(unit)})</text>'
                f'<line class="recent" x1="{LEFT + 190}" x2="{LEFT + 214}" y1="{legend_y - 4}" y2="{legend_y - 4}"/>'
                f'<text x="{LEFT + 218}" y="{legend_y}" class="legend">{escape(recent_label)}</text>'
                f'<line class="baseline" x1="{LEFT + 380}" x2="{LEFT + 404}" y1="{legend_y - 4}" y2="{legend_y - 4}"/>'
                f'<text x="{LEFT + 408}" y="{legend_y}" class="legend">{escape(baseline_label)}</text>')
    return _svg(body, title)


def wage_chart(periods: list[WagePeriod], *, title: str, due_label: str, paid_label: str, late_label: str,
               money_fmt, unpaid_mark: str = "!") -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM - 14
    top = _nice_max(max([p.due for p in periods] + [p.paid for p in periods] + [1.0]))
    slot = plot_w / max(1, len(periods))
    bar_w = min(22.0, slot * 0.35)
    y = lambda v: TOP + 14 + plot_h - plot_h * v / top  # noqa: E731
    body = [f"<title>{escape(title)}</title>"]
    for i in range(5):
        value = top * i / 4
        yy = y(value)
        body.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        body.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" class="tick">{escape(_short(value))}</text>')
    for i, p in enumerate(periods):
        cx = LEFT + slot * (i + 0.5)
        late_cls = "late" if p.days_late is None or p.days_late > GRACE_DAYS else "ontime"
        late_txt = unpaid_mark if p.days_late is None else str(p.days_late)
        body.append(f'<rect class="due" x="{cx - bar_w:.1f}" y="{y(p.due):.1f}" width="{bar_w:.1f}" '
                    f'height="{y(0) - y(p.due):.1f}"><title>{escape(p.period)} {escape(due_label)}: '
                    f'{escape(money_fmt(p.due))}</title></rect>')
        body.append(f'<rect class="paid" x="{cx:.1f}" y="{y(p.paid):.1f}" width="{bar_w:.1f}" '
                    f'height="{y(0) - y(p.paid):.1f}"><title>{escape(p.period)} {escape(paid_label)}: '
                    f'{escape(money_fmt(p.paid))}</title></rect>')
        body.append(f'<text x="{cx:.1f}" y="{TOP + 8}" text-anchor="middle" class="tick {late_cls}">'
                    f'{escape(late_txt)}<title>{escape(late_label)}</title></text>')
        body.append(f'<text x="{cx:.1f}" y="{HEIGHT - 14}" text-anchor="middle" class="tick">{escape(p.period)}</text>')
    legend_y = HEIGHT - 2
    body.append(f'<rect class="due" x="{LEFT}" y="{legend_y - 9}" width="10" height="9"/>'
                f'<text x="{LEFT + 14}" y="{legend_y}" class="legend">{escape(due_label)}</text>'
                f'<rect class="paid" x="{LEFT + 120}" y="{legend_y - 9}" width="10" height="9"/>'
                f'<text x="{LEFT + 134}" y="{legend_y}" class="legend">{escape(paid_label)}</text>'
                f'<text x="{LEFT + 240}" y="{legend_y}" class="legend">{escape(late_label)} '
                f'(&gt; {GRACE_DAYS}: <tspan class="late">red</tspan>; {escape(unpaid_mark)} = unpaid)</text>')
    return _svg(body, title)


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def timeline_chart(events: list[Event], start: date, end: date, *, title: str, kind_fmt, date_fmt) -> str:
    height = 120
    plot_w = WIDTH - LEFT - RIGHT
    span = max(1, (end - start).days)
    x = lambda d: LEFT + plot_w * min(max((d - start).days, 0), span) / span  # noqa: E731
    axis_y = 60
    body = [f"<title>{escape(title)}</title>",
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{axis_y}" y2="{axis_y}" class="axis"/>']
    for i in range(6):
        d = start + timedelta(days=round(span * i / 5))
        body.append(f'<text x="{x(d):.1f}" y="{height - 8}" text-anchor="middle" class="tick">{escape(date_fmt(d))}</text>')
    for e in events:
        cy = axis_y - 18 if e.complaint else axis_y + 18
        r = 5 + min(10, e.workers / 10)
        cls = "complaint" if e.complaint else ("finding" if e.findings else "inspection")
        detail = f"{date_fmt(e.day)} {kind_fmt(e.kind)}"
        if e.workers:
            detail += f", {e.workers}"
        if e.findings:
            detail += ": " + ", ".join(e.findings)
        body.append(f'<circle class="{cls}" cx="{x(e.day):.1f}" cy="{cy}" r="{r:.1f}"><title>{escape(detail)}</title></circle>')
    return _svg(body, title, height)
