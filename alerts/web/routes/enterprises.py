"""The enterprise file (一企一档): registry data, alert history, silences and the charts. Every
read is audited."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import RedirectResponse
from markupsafe import Markup

from alerts.store import workbench
from alerts.store.models import Enterprise
from alerts.store.workbench import Principal
from alerts.web import charts
from alerts.web.deps import ApiUser, ConfigsDep, NowDep, PageUser, SessionDep, TranslatorDep, check_csrf
from alerts.web.i18n import Translator
from alerts.web.routes.alerts import alert_out
from alerts.web.schemas import EnterpriseOut, SilenceIn, SilenceOut
from models.calendar import CHINA_TZ

api = APIRouter(prefix="/api/enterprises", tags=["enterprises"])
pages = APIRouter(include_in_schema=False)


def _read(session, user: Principal, enterprise_id: str, via: str, now: datetime) -> Enterprise:
    enterprise = workbench.get_enterprise(session, user, enterprise_id)
    workbench.audit(session, user.username, "read_enterprise", f"enterprise:{enterprise_id}", enterprise.district,
                    {"via": via}, now)
    return enterprise


def _silence_out(s) -> SilenceOut:
    return SilenceOut(id=s.id, enterprise_id=s.enterprise_id, reason=s.reason, expires_at=s.expires_at,
                      created_by=s.created_by, created_at=s.created_at)


@api.get("/{enterprise_id}", response_model=EnterpriseOut, summary="The enterprise file (audited read)")
def get_enterprise(enterprise_id: str, user: ApiUser, session: SessionDep, configs: ConfigsDep, now: NowDep,
                   t: TranslatorDep) -> EnterpriseOut:
    e = _read(session, user, enterprise_id, "api", now)
    return EnterpriseOut(
        **{k: getattr(e, k) for k in ("enterprise_id", "name", "industry", "district", "street", "community", "grid",
                                      "headcount", "registered_capital", "legal_representative", "address")},
        alerts=[alert_out(v, t) for v in workbench.enterprise_alerts(session, configs, e, now)],
        silences=[_silence_out(s) for s in workbench.silences_for(session, enterprise_id)],
    )


@api.post("/{enterprise_id}/silences", response_model=SilenceOut, status_code=status.HTTP_201_CREATED,
          summary="Silence an enterprise's alerts until a time, with a reason (supervisors)")
def post_silence(enterprise_id: str, body: SilenceIn, user: ApiUser, session: SessionDep, now: NowDep) -> SilenceOut:
    expires = body.expires_at if body.expires_at.tzinfo else body.expires_at.replace(tzinfo=CHINA_TZ)
    silence = workbench.add_silence(session, user, enterprise_id, body.reason, expires, now)
    session.flush()
    return _silence_out(silence)


# -- the page ----------------------------------------------------------------------------------------
def build_charts(t: Translator, signals, today: date) -> dict[str, Markup | None]:
    payloads = [s.payload for s in signals]
    out: dict[str, Markup | None] = {}
    for utility, unit in (("electricity", "kWh"), ("water", "m³")):
        series = charts.utility_series(payloads, utility)
        out[utility] = Markup(charts.utility_chart(
            series, title=t(utility), unit=unit, daily_label=t("daily"), recent_label="7d",
            baseline_label=t("baseline"), date_fmt=lambda d: f"{d.month}/{d.day}" if t.lang == "zh" else d.strftime("%d %b"),
        )) if series else None
    periods = charts.wage_periods(payloads)
    out["wages"] = Markup(charts.wage_chart(periods, title=t("wages"), due_label=t("wages_due"),
                                            paid_label=t("wages_paid"), late_label=t("days_late"),
                                            money_fmt=t.money)) if periods else None
    events = charts.inspection_events(payloads)
    if events:
        start = min(events[0].day, today - timedelta(days=180))
        out["timeline"] = Markup(charts.timeline_chart(events, start, max(today, events[-1].day), title=t("timeline"),
                                                       kind_fmt=t.kind, date_fmt=t.date))
    else:
        out["timeline"] = None
    out["events"] = events[-12:][::-1]
    out["periods"] = periods
    return out


@pages.get("/enterprises/{enterprise_id}")
def enterprise_page(enterprise_id: str, request: Request, user: PageUser, session: SessionDep, configs: ConfigsDep,
                    now: NowDep, t: TranslatorDep):
    from alerts.web.app import render

    e = _read(session, user, enterprise_id, "page", now)
    signals = workbench.enterprise_signals(session, enterprise_id)
    newest = max((s.observed_at for s in signals), default=now)
    views = workbench.enterprise_alerts(session, configs, e, now)
    current = next((v for v in views if v.alert.status in ("new", "acknowledged", "in_progress")), views[0] if views else None)
    return render(request, "enterprise.html", {
        "user": user, "e": e, "views": views, "current": current, "now": now,
        "charts": build_charts(t, signals, newest.astimezone(CHINA_TZ).date()),
        "silences": workbench.silences_for(session, enterprise_id),
        "default_expiry": (now.astimezone(CHINA_TZ) + timedelta(days=14)).date().isoformat(),
    })


@pages.post("/enterprises/{enterprise_id}/silence")
def silence_form(enterprise_id: str, request: Request, user: PageUser, session: SessionDep, now: NowDep,
                 reason: Annotated[str, Form()], until: Annotated[str, Form()],
                 csrf_token: Annotated[str, Form()] = ""):
    check_csrf(request, csrf_token)
    try:
        day = date.fromisoformat(until)
    except ValueError:
        raise ValueError(f"{until!r} is not a date") from None
    expires = datetime.combine(day, time(23, 59), tzinfo=CHINA_TZ)
    workbench.add_silence(session, user, enterprise_id, reason, expires, now)
    return RedirectResponse(f"/enterprises/{enterprise_id}", status_code=303)
