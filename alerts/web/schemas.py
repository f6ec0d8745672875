"""Shapes of the JSON API: what comes in (``*In``) and what goes out (``*Out``), kept apart from
the store's rows (FastAPI full-stack template style)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from alerts.workflow import ACTIONS, OUTCOMES, STATUSES

Status = Literal[STATUSES]  # type: ignore[valid-type]
Action = Literal[ACTIONS]  # type: ignore[valid-type]
OutcomeName = Literal[OUTCOMES]  # type: ignore[valid-type]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class UserOut(BaseModel):
    username: str
    role: str
    street: str | None
    district: str | None


class ReasonOut(BaseModel):
    code: str
    value: float | str | None = None
    text: str = Field(description="In the language asked for (Accept-Language or ?lang=).")


class SlaOut(BaseModel):
    stored_at: datetime
    acknowledge_due: datetime
    on_site_due: datetime
    overdue: Literal["acknowledge", "on_site"] | None


class AlertOut(BaseModel):
    alert_id: str
    enterprise_id: str
    enterprise_name: str
    street: str
    district: str
    grid: str
    category: str
    level: str
    size_band: str | None
    score: float
    status: Status
    queue: str
    queues: list[str]
    reasons: list[ReasonOut]
    raised_at: datetime
    opened_at: datetime
    model_version: str
    sla: SlaOut
    silenced_until: datetime | None
    escalated_at: datetime | None
    assignee: str | None


class TransitionIn(BaseModel):
    to: Status
    note: str | None = Field(None, max_length=4000)
    action: Action | None = None
    outcome: OutcomeName | None = None


class TransitionOut(BaseModel):
    id: int
    alert_id: str
    from_status: str
    to_status: str
    action: str | None
    outcome: str | None
    note: str | None
    actor: str
    recorded_at: datetime


class HistoryItemOut(BaseModel):
    at: datetime
    kind: Literal["pipeline", "person"]
    actor: str
    note: str | None = None
    # pipeline revisions
    change: str | None = None
    level: str | None = None
    score: float | None = None
    revision: int | None = None
    # people's steps
    from_status: str | None = None
    to_status: str | None = None
    action: str | None = None
    outcome: str | None = None


class AssigneeIn(BaseModel):
    assignee: str | None = Field(None, description="An inspector or supervisor of the district; null to unassign.")


class EscalateIn(BaseModel):
    note: str | None = Field(None, max_length=4000)


class SilenceIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    expires_at: datetime


class SilenceOut(BaseModel):
    id: int
    enterprise_id: str
    reason: str
    expires_at: datetime
    created_by: str
    created_at: datetime


class EnterpriseOut(BaseModel):
    enterprise_id: str
    name: str
    industry: str
    district: str
    street: str
    community: str
    grid: str
    headcount: int
    registered_capital: float | None
    legal_representative: str | None
    address: str | None
    alerts: list[AlertOut]
    silences: list[SilenceOut]


class AuditOut(BaseModel):
    id: int
    actor: str
    action: str
    target: str
    district: str | None
    detail: dict
    recorded_at: datetime


class FeedbackOut(BaseModel):
    feedback_id: int
    alert_id: str
    enterprise_id: str
    outcome: str
    label: int
    actions: list[str]
    note: str | None
    resolved_by: str
    resolved_at: str
    category: str | None
    level: str | None
    score: float | None
    model_version: str | None
