"""The audit log (supervisors: their district's; admins: all) and the analysts' label export."""
from __future__ import annotations

from fastapi import APIRouter, Request

from alerts.store import workbench
from alerts.store.workbench import Forbidden
from alerts.web.deps import ApiUser, NowDep, PageUser, SessionDep
from alerts.web.schemas import AuditOut, FeedbackOut

api = APIRouter(prefix="/api", tags=["audit"])
pages = APIRouter(include_in_schema=False)


@api.get("/audit", response_model=list[AuditOut], summary="Who read or changed what, newest first")
def get_audit(user: ApiUser, session: SessionDep, limit: int = 200, actor: str | None = None) -> list[AuditOut]:
    rows = workbench.audit_entries(session, user, min(max(limit, 1), 1000), actor)
    return [AuditOut(id=r.id, actor=r.actor, action=r.action, target=r.target, district=r.district, detail=r.detail,
                     recorded_at=r.recorded_at) for r in rows]


@api.get("/feedback", response_model=list[FeedbackOut], tags=["labels"],
         summary="Every resolution's outcome: labels for training (analysts, admins)")
def get_feedback(request: Request, user: ApiUser, session: SessionDep, now: NowDep) -> list[dict]:
    if user.role not in ("analyst", "admin"):
        raise Forbidden("labels are exported by analysts")
    workbench.audit(session, user.username, "export_labels", "outcomes", None, {}, now)
    return workbench.export_outcomes(request.app.state.db)


@pages.get("/audit")
def audit_page(request: Request, user: PageUser, session: SessionDep, actor: str | None = None):
    from alerts.web.app import render

    rows = workbench.audit_entries(session, user, 300, actor or None)
    return render(request, "audit.html", {"user": user, "rows": rows, "actor": actor or ""})
