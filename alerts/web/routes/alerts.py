"""Queues and the triage workflow: the API (/api/alerts ...) and the pages (/queue, /alerts/{id})."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request, status
from fastapi.responses import RedirectResponse

from alerts.store import workbench
from alerts.store.workbench import AlertView, Forbidden, Principal, QueueFilter
from alerts.web.deps import ApiUser, ConfigsDep, NowDep, PageUser, SessionDep, TranslatorDep, check_csrf
from alerts.web.i18n import Translator
from alerts.web.schemas import (
    AlertOut, AssigneeIn, EscalateIn, HistoryItemOut, ReasonOut, SlaOut, TransitionIn, TransitionOut,
)
from alerts.workflow import ACTIONS, NEXT, OUTCOMES, STATUSES

api = APIRouter(prefix="/api/alerts", tags=["alerts"])
pages = APIRouter(include_in_schema=False)

Kind = Literal["street", "command", "all"]


def alert_out(view: AlertView, t: Translator) -> AlertOut:
    a, e = view.alert, view.enterprise
    return AlertOut(
        alert_id=a.alert_id, enterprise_id=a.enterprise_id, enterprise_name=e.name, street=e.street,
        district=e.district, grid=e.grid, category=a.category, level=a.level, size_band=a.size_band, score=a.score,
        status=a.status, queue=a.queue, queues=view.queues,
        reasons=[ReasonOut(code=r.get("code", ""), value=r.get("value"), text=t.reason(r)) for r in a.reasons],
        raised_at=a.raised_at, opened_at=a.opened_at, model_version=a.model_version,
        sla=SlaOut(stored_at=view.stored_at, acknowledge_due=view.sla.acknowledge_due,
                   on_site_due=view.sla.on_site_due, overdue=view.overdue),
        silenced_until=view.silenced.expires_at if view.silenced else None,
        escalated_at=view.triage.escalated_at if view.triage else None,
        assignee=view.triage.assignee if view.triage else None,
    )


def default_kind(user: Principal) -> str:
    return "street" if user.role == "inspector" else "all"


def _queue(session, user: Principal, configs, now, kind: str | None, level, status_, category, grid, overdue):
    kind = kind or default_kind(user)
    if kind == "command" and user.can_supervise:
        # Escalate on read too, so the command queue is right even between two SLA checks.
        workbench.escalate_overdue_in(session, configs, now)
    filters = QueueFilter(kind=kind, level=level or None, status=status_ or None, category=category or None,
                          grid=grid or None, overdue=overdue)
    return workbench.list_alerts(session, user, configs, filters, now)


# -- API -------------------------------------------------------------------------------------------
@api.get("", response_model=list[AlertOut], summary="A queue: red first, then the nearest SLA deadline, then score")
def list_alerts(user: ApiUser, session: SessionDep, configs: ConfigsDep, now: NowDep, t: TranslatorDep,
                kind: Kind | None = Query(None, description="street (an inspector's queue), command (the district "
                                                            "command queue, supervisors), all (everything visible)"),
                level: str | None = None, status: str | None = Query(None, description="a status, open (default) or all"),
                category: str | None = None, grid: str | None = None, overdue: bool = False) -> list[AlertOut]:
    views = _queue(session, user, configs, now, kind, level, status, category, grid, overdue)
    return [alert_out(v, t) for v in views]


@api.get("/{alert_id}", response_model=AlertOut)
def get_alert(alert_id: str, user: ApiUser, session: SessionDep, configs: ConfigsDep, now: NowDep,
              t: TranslatorDep) -> AlertOut:
    return alert_out(workbench.get_alert(session, user, configs, alert_id, now), t)


def _transition(request: Request, session, user, configs, now, alert_id: str, body: TransitionIn):
    step = workbench.transition(session, user, configs, alert_id, body.to, note=body.note, action=body.action,
                                outcome=body.outcome, now=now)
    request.app.state.metrics.transitions.labels(body.to).inc()
    if body.to == "resolved":
        # The publisher reads the store, so it is woken after the commit (see app.count_requests).
        request.state.poke_publisher = True
    return step


@api.post("/{alert_id}/transitions", response_model=TransitionOut, status_code=status.HTTP_201_CREATED,
          summary="One workflow step: new -> acknowledged -> in_progress -> resolved -> closed",
          responses={403: {"description": "not this role's to change"}, 404: {"description": "no such alert, or not yours"},
                     409: {"description": "the workflow does not allow this step"}})
def post_transition(alert_id: str, body: TransitionIn, request: Request, user: ApiUser, session: SessionDep,
                    configs: ConfigsDep, now: NowDep) -> TransitionOut:
    step = _transition(request, session, user, configs, now, alert_id, body)
    out = TransitionOut(id=step.id, alert_id=alert_id, from_status=step.from_status, to_status=step.to_status,
                        action=step.action, outcome=step.outcome, note=step.note, actor=step.actor,
                        recorded_at=step.recorded_at)
    return out


@api.get("/{alert_id}/history", response_model=list[HistoryItemOut])
def get_history(alert_id: str, user: ApiUser, session: SessionDep, configs: ConfigsDep, now: NowDep):
    workbench.get_alert(session, user, configs, alert_id, now)
    return [HistoryItemOut(**{k: v for k, v in item.items() if k not in ("id", "status")})
            for item in workbench.history(session, alert_id)]


@api.post("/{alert_id}/escalate", status_code=status.HTTP_204_NO_CONTENT, summary="Send to the district command queue")
def post_escalate(alert_id: str, body: EscalateIn, user: ApiUser, session: SessionDep, configs: ConfigsDep,
                  now: NowDep) -> None:
    workbench.escalate(session, user, configs, alert_id, body.note, now)


@api.put("/{alert_id}/assignee", status_code=status.HTTP_204_NO_CONTENT, summary="Reassign (supervisors)")
def put_assignee(alert_id: str, body: AssigneeIn, user: ApiUser, session: SessionDep, configs: ConfigsDep,
                 now: NowDep) -> None:
    workbench.reassign(session, user, configs, alert_id, body.assignee, now)


# -- pages -------------------------------------------------------------------------------------------
@pages.get("/queue")
def queue_page(request: Request, user: PageUser, session: SessionDep, configs: ConfigsDep, now: NowDep,
               kind: str | None = None, level: str | None = None, status: str | None = None,
               category: str | None = None, grid: str | None = None, overdue: bool = False):
    from alerts.web.app import render

    if kind not in (None, "street", "command", "all"):
        kind = None
    kind = kind or default_kind(user)
    if kind == "command" and not user.can_supervise and user.role != "analyst":
        raise Forbidden("the command queue is for supervisors")
    views = _queue(session, user, configs, now, kind, level, status, category, grid, overdue)
    grids = sorted({v.enterprise.grid for v in views})
    return render(request, "queue.html", {
        "user": user, "views": views, "kind": kind, "now": now,
        "filters": {"level": level or "", "status": status or "", "category": category or "", "grid": grid or "",
                    "overdue": overdue},
        "levels": ("red", "orange", "yellow", "blue"), "statuses": STATUSES, "categories": ("risk", "collective_incident"),
        "grids": grids,
    })


@pages.get("/alerts/{alert_id}")
def alert_page(alert_id: str, request: Request, user: PageUser, session: SessionDep, configs: ConfigsDep,
               now: NowDep):
    from alerts.web.app import render

    view = workbench.get_alert(session, user, configs, alert_id, now)
    inspectors = []
    if user.can_supervise:
        inspectors = [u for u in workbench_users(session) if u.role in ("inspector", "supervisor")
                      and (u.district in (None, view.enterprise.district))]
    return render(request, "alert.html", {
        "user": user, "view": view, "history": workbench.history(session, alert_id), "now": now,
        "next_steps": NEXT.get(view.alert.status, ()), "actions": ACTIONS, "outcomes": OUTCOMES,
        "inspectors": inspectors,
    })


def workbench_users(session):
    from sqlalchemy import select

    from alerts.store.models import User

    return list(session.scalars(select(User).where(User.active.is_(True)).order_by(User.username)))


@pages.post("/alerts/{alert_id}/transition")
def transition_form(alert_id: str, request: Request, user: PageUser, session: SessionDep, configs: ConfigsDep,
                    now: NowDep, to: Annotated[str, Form()], csrf_token: Annotated[str, Form()] = "",
                    note: Annotated[str, Form()] = "", action: Annotated[str, Form()] = "",
                    outcome: Annotated[str, Form()] = ""):
    check_csrf(request, csrf_token)
    if to not in STATUSES:
        raise ValueError(f"unknown status {to!r}")
    body = TransitionIn.model_construct(to=to, note=note.strip() or None, action=action or None,
                                        outcome=outcome or None)
    _transition(request, session, user, configs, now, alert_id, body)
    return RedirectResponse(f"/alerts/{alert_id}", status_code=303)


@pages.post("/alerts/{alert_id}/escalate")
def escalate_form(alert_id: str, request: Request, user: PageUser, session: SessionDep, configs: ConfigsDep,
                  now: NowDep, csrf_token: Annotated[str, Form()] = "", note: Annotated[str, Form()] = ""):
    check_csrf(request, csrf_token)
    workbench.escalate(session, user, configs, alert_id, note or None, now)
    return RedirectResponse(f"/alerts/{alert_id}", status_code=303)


@pages.post("/alerts/{alert_id}/assignee")
def assignee_form(alert_id: str, request: Request, user: PageUser, session: SessionDep, configs: ConfigsDep,
                  now: NowDep, csrf_token: Annotated[str, Form()] = "", assignee: Annotated[str, Form()] = ""):
    check_csrf(request, csrf_token)
    workbench.reassign(session, user, configs, alert_id, assignee or None, now)
    return RedirectResponse(f"/alerts/{alert_id}", status_code=303)
