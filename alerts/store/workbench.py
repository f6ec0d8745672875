"""The store as the inspectors' workbench uses it: accounts, who may see what, queues, people's
steps on alerts, SLA escalation, silences, outcomes (labels) and the audit log.

Every change a person makes is written together with its audit row, in one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence

from sqlalchemy import and_, delete, exists, false, func, or_, select, true, update
from sqlalchemy.orm import Session

from alerts.store.db import Database
from alerts.store.models import (
    Alert, AlertChange, AlertQueue, AlertTransition, AlertTriage, AuditEntry, Enterprise, LoginFailure, Outcome,
    Silence, SignalRecord, User,
)
from alerts.store.repo import _insert_ignore, now_utc
from alerts.workflow import OPEN_STATUSES, SlaState, check_transition, sla_state
from config.files import Configs

ROLES = ("inspector", "supervisor", "analyst", "admin")
LEVEL_RANK = {"red": 0, "orange": 1, "yellow": 2, "blue": 3}
COMMAND_RECEIVER = "district-command"


@dataclass(frozen=True)
class Principal:
    """The person asking: what the access rules read (a detached copy of the user row)."""

    username: str
    role: str
    street: str | None = None
    district: str | None = None

    @classmethod
    def of(cls, user: User) -> "Principal":
        return cls(user.username, user.role, user.street, user.district)

    @property
    def can_change(self) -> bool:
        return self.role in ("inspector", "supervisor", "admin")

    @property
    def can_supervise(self) -> bool:
        return self.role in ("supervisor", "admin")


class NotFound(LookupError):
    """Not there, or not for this person: the two look the same from outside."""


class Forbidden(PermissionError):
    """Visible to this person, but not theirs to change."""


# -- accounts ----------------------------------------------------------------------------------
def validate_account(role: str, street: str | None, district: str | None) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if role == "inspector" and not street:
        raise ValueError("an inspector needs --street (the street whose queue they work)")
    if role == "supervisor" and not district:
        raise ValueError("a supervisor needs --district")


def check_scope(db: Database, street: str | None, district: str | None) -> None:
    """An account's street and district must name some enterprise of the registry: an inspector
    scoped to a misspelt street would see an empty queue for ever. An empty registry (before the
    first import) cannot say, and lets any name through."""
    known = streets(db)
    if not known:
        return
    if street is not None and street not in {s for _, s, _ in known}:
        raise ValueError(f"street {street!r} has no enterprise in the registry (`laborwatch streets` lists them)")
    if district is not None and district not in {d for d, _, _ in known}:
        raise ValueError(f"district {district!r} has no enterprise in the registry (`laborwatch streets` lists them)")


def add_user(db: Database, username: str, password_hash: str, role: str, street: str | None = None,
             district: str | None = None, actor: str = "cli") -> None:
    validate_account(role, street, district)
    check_scope(db, street, district)
    with db.session() as session:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            raise ValueError(f"user {username!r} exists already")
        session.add(User(username=username, password_hash=password_hash, role=role, street=street,
                         district=district, active=True, created_at=now_utc()))
        audit(session, actor, "user_add", f"user:{username}", district,
              {"role": role, "street": street, "district": district})


def get_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username, User.active.is_(True)))


def set_password_hash(session: Session, username: str, password_hash: str) -> None:
    user = session.scalar(select(User).where(User.username == username))
    if user is not None:
        user.password_hash = password_hash


def list_users(db: Database) -> list[dict]:
    with db.session() as session:
        return [{"username": u.username, "role": u.role, "street": u.street, "district": u.district}
                for u in session.scalars(select(User).order_by(User.username))]


def streets(db: Database) -> list[tuple[str, str, int]]:
    """(district, street, enterprises) of the registry: the names accounts are scoped by."""
    with db.session() as session:
        return [tuple(row) for row in session.execute(
            select(Enterprise.district, Enterprise.street, func.count())
            .group_by(Enterprise.district, Enterprise.street).order_by(Enterprise.district, Enterprise.street))]


# -- login throttling --------------------------------------------------------------------------
def login_locked(session: Session, username: str, max_failures: int, window_seconds: int, now: datetime) -> bool:
    since = now - timedelta(seconds=window_seconds)
    failures = session.scalar(select(func.count()).select_from(LoginFailure)
                              .where(LoginFailure.username == username, LoginFailure.failed_at > since)) or 0
    return failures >= max_failures


def record_login_failure(db: Database, username: str, now: datetime) -> None:
    with db.session() as session:
        session.add(LoginFailure(username=username[:64], failed_at=now))
        # Old rows are no longer evidence of anything; keep the table small.
        session.execute(delete(LoginFailure).where(LoginFailure.failed_at < now - timedelta(days=1)))


def clear_login_failures(session: Session, username: str) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.username == username))


# -- audit ---------------------------------------------------------------------------------------
def audit(session: Session, actor: str, action: str, target: str, district: str | None, detail: dict | None = None,
          now: datetime | None = None) -> None:
    session.add(AuditEntry(actor=actor, action=action, target=target, district=district, detail=detail or {},
                           recorded_at=now or now_utc()))


def audit_entries(session: Session, who: Principal, limit: int = 200, actor: str | None = None) -> list[AuditEntry]:
    if not who.can_supervise:
        raise Forbidden("the audit log is for supervisors")
    query = select(AuditEntry).order_by(AuditEntry.recorded_at.desc(), AuditEntry.id.desc()).limit(limit)
    if who.role == "supervisor":
        query = query.where(AuditEntry.district == who.district)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    return list(session.scalars(query))


# -- who sees what -----------------------------------------------------------------------------
def _assigned_to(username: str):
    return select(AlertTriage.alert_id).where(AlertTriage.assignee == username)


def _enterprise_scope(who: Principal):
    """A condition on Enterprise: the enterprises whose files this person may read."""
    if who.role in ("analyst", "admin"):
        return true()
    if who.role == "supervisor":
        return Enterprise.district == who.district
    if who.role == "inspector":
        mine = Enterprise.street == who.street
        if who.district:
            mine = and_(mine, Enterprise.district == who.district)
        assigned = exists().where(Alert.enterprise_id == Enterprise.enterprise_id,
                                  Alert.alert_id.in_(_assigned_to(who.username)))
        return or_(mine, assigned)
    return false()


def _alert_scope(who: Principal):
    """A condition on Alert joined to Enterprise: the alerts this person may see."""
    if who.role == "inspector":
        mine = Enterprise.street == who.street
        if who.district:
            mine = and_(mine, Enterprise.district == who.district)
        return or_(mine, Alert.alert_id.in_(_assigned_to(who.username)))
    return _enterprise_scope(who)


def command_queue(configs: Configs, district: str) -> str:
    receiver = configs.routing.receivers.get(COMMAND_RECEIVER)
    template = receiver.queue if receiver else "district:{district}-command"
    try:
        return template.format(district=district)
    except KeyError:
        return f"district:{district}-command"


# -- alerts as the workbench shows them ----------------------------------------------------------
@dataclass
class AlertView:
    alert: Alert
    enterprise: Enterprise
    stored_at: datetime
    sla: SlaState
    silenced: Silence | None
    triage: AlertTriage | None
    queues: list[str]

    @property
    def overdue(self) -> str | None:
        return self.sla.overdue if self.alert.status in OPEN_STATUSES else None

    @property
    def deadline(self) -> datetime:
        return self.sla.acknowledge_due if self.alert.status == "new" else self.sla.on_site_due


def _stored_at(session: Session, alert_ids: Sequence[str]) -> dict[str, datetime]:
    if not alert_ids:
        return {}
    out: dict[str, datetime] = {}
    ids = list(alert_ids)
    for start in range(0, len(ids), 400):
        rows = session.execute(select(AlertChange.alert_id, func.min(AlertChange.recorded_at))
                               .where(AlertChange.alert_id.in_(ids[start:start + 400]))
                               .group_by(AlertChange.alert_id))
        for alert_id, at in rows:
            out[alert_id] = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
    return out


def active_silences(session: Session, enterprise_ids: Iterable[str], now: datetime) -> dict[str, Silence]:
    ids = list(set(enterprise_ids))
    if not ids:
        return {}
    rows = session.scalars(select(Silence).where(Silence.enterprise_id.in_(ids), Silence.expires_at > now)
                           .order_by(Silence.expires_at))
    return {s.enterprise_id: s for s in rows}


def _views(session: Session, pairs: list[tuple[Alert, Enterprise]], configs: Configs, now: datetime) -> list[AlertView]:
    ids = [a.alert_id for a, _ in pairs]
    stored = _stored_at(session, ids)
    silences = active_silences(session, (e.enterprise_id for _, e in pairs), now)
    triage = {t.alert_id: t for t in session.scalars(select(AlertTriage).where(AlertTriage.alert_id.in_(ids)))} if ids else {}
    queues: dict[str, list[str]] = {}
    if ids:
        for alert_id, queue in session.execute(select(AlertQueue.alert_id, AlertQueue.queue)
                                               .where(AlertQueue.alert_id.in_(ids)).order_by(AlertQueue.queue)):
            queues.setdefault(alert_id, []).append(queue)
    out = []
    for alert, enterprise in pairs:
        at = stored.get(alert.alert_id, alert.opened_at)
        out.append(AlertView(alert, enterprise, at, sla_state(configs.sla, alert.level, alert.status, at, now),
                             silences.get(enterprise.enterprise_id), triage.get(alert.alert_id),
                             queues.get(alert.alert_id, [alert.queue])))
    return out


def queue_order(view: AlertView) -> tuple:
    """Level (red first), then the nearest SLA deadline, then the highest score."""
    return (LEVEL_RANK.get(view.alert.level, 9), view.deadline, -view.alert.score, view.alert.alert_id)


@dataclass(frozen=True)
class QueueFilter:
    kind: str = "street"  # street: the person's own queue; command: the district's command queue; all
    level: str | None = None
    status: str | None = None  # None: the open ones; "all": every status
    category: str | None = None
    grid: str | None = None
    overdue: bool = False


def list_alerts(session: Session, who: Principal, configs: Configs, filters: QueueFilter = QueueFilter(),
                now: datetime | None = None) -> list[AlertView]:
    now = now or now_utc()
    query = select(Alert, Enterprise).join(Enterprise, Enterprise.enterprise_id == Alert.enterprise_id)
    query = query.where(_alert_scope(who))
    if filters.kind == "command":
        if who.role == "inspector":
            raise Forbidden("the command queue is for supervisors")
        in_command = select(AlertQueue.alert_id).where(AlertQueue.queue.like("district:%"))
        if who.role == "supervisor":
            in_command = select(AlertQueue.alert_id).where(AlertQueue.queue == command_queue(configs, who.district))
        query = query.where(Alert.alert_id.in_(in_command))
    if filters.level:
        query = query.where(Alert.level == filters.level)
    if filters.status in (None, "", "open"):
        query = query.where(Alert.status.in_(OPEN_STATUSES))
    elif filters.status != "all":
        query = query.where(Alert.status == filters.status)
    if filters.category:
        query = query.where(Alert.category == filters.category)
    if filters.grid:
        query = query.where(Enterprise.grid == filters.grid)
    views = _views(session, list(session.execute(query)), configs, now)
    if filters.kind == "street":
        # A silenced enterprise stays out of the street queue until the silence expires.
        views = [v for v in views if v.silenced is None]
    if filters.overdue:
        views = [v for v in views if v.overdue]
    return sorted(views, key=queue_order)


def get_alert(session: Session, who: Principal, configs: Configs, alert_id: str, now: datetime | None = None,
              lock: bool = False) -> AlertView:
    query = (select(Alert, Enterprise).join(Enterprise, Enterprise.enterprise_id == Alert.enterprise_id)
             .where(Alert.alert_id == alert_id, _alert_scope(who)))
    if lock:
        query = query.with_for_update(of=Alert)
    row = session.execute(query).first()
    if row is None:
        raise NotFound(alert_id)
    return _views(session, [row], configs, now or now_utc())[0]


def history(session: Session, alert_id: str) -> list[dict]:
    """The pipeline's revisions and people's steps, oldest first."""
    items = [
        {"at": c.recorded_at, "kind": "pipeline", "actor": c.actor, "change": c.change, "level": c.level,
         "score": c.score, "revision": c.revision, "status": c.status, "note": c.note}
        for c in session.scalars(select(AlertChange).where(AlertChange.alert_id == alert_id))
    ]
    items += [
        {"at": t.recorded_at, "kind": "person", "actor": t.actor, "from_status": t.from_status,
         "to_status": t.to_status, "action": t.action, "outcome": t.outcome, "note": t.note, "id": t.id}
        for t in session.scalars(select(AlertTransition).where(AlertTransition.alert_id == alert_id))
    ]
    return sorted(items, key=lambda i: (i["at"], 0 if i["kind"] == "pipeline" else 1, i.get("id") or 0))


def transition(session: Session, who: Principal, configs: Configs, alert_id: str, to: str, *, note: str | None = None,
               action: str | None = None, outcome: str | None = None, now: datetime | None = None) -> AlertTransition:
    """One step of the workflow by a person; raises NotFound, Forbidden or TransitionError."""
    now = now or now_utc()
    view = get_alert(session, who, configs, alert_id, now, lock=True)
    if not who.can_change:
        raise Forbidden(f"{who.role}s do not change alerts")
    alert = view.alert
    check_transition(alert.status, to, action=action, outcome=outcome)
    step = AlertTransition(alert_id=alert_id, from_status=alert.status, to_status=to, action=action, outcome=outcome,
                           note=note or None, actor=who.username, recorded_at=now)
    session.add(step)
    alert.status = to
    session.flush()
    if to == "resolved":
        actions = [a for a in session.scalars(select(AlertTransition.action).where(
            AlertTransition.alert_id == alert_id, AlertTransition.action.is_not(None)).order_by(AlertTransition.id))]
        session.add(Outcome(transition_id=step.id, alert_id=alert_id, enterprise_id=alert.enterprise_id,
                            outcome=outcome, actions=actions, note=note or None, resolved_by=who.username,
                            resolved_at=now, published_at=None))
    audit(session, who.username, "transition", f"alert:{alert_id}", view.enterprise.district,
          {"from": step.from_status, "to": to, "action": action, "outcome": outcome, "note": note}, now)
    return step


# -- supervisors: escalate, reassign, silence -----------------------------------------------------
def _triage(session: Session, alert_id: str) -> AlertTriage:
    row = session.get(AlertTriage, alert_id)
    if row is None:
        row = AlertTriage(alert_id=alert_id)
        session.add(row)
    return row


def _escalate(session: Session, configs: Configs, view: AlertView, by: str, reason: str, now: datetime) -> bool:
    """Escalate once, whoever else tries at the same time: every `run` process has an SLA loop, and
    the view may have been read before another one escalated. The triage row is made if missing
    without conflict, and only the UPDATE that finds it unescalated wins (PostgreSQL re-reads the
    row after a concurrent writer commits; SQLite writes one at a time)."""
    alert_id = view.alert.alert_id
    if view.triage is not None and view.triage.escalated_at is not None:
        return False
    session.flush()  # this session's own pending triage changes (an assignee) go first
    _insert_ignore(session, AlertTriage, [{"alert_id": alert_id}])
    won = session.execute(
        update(AlertTriage)
        .where(AlertTriage.alert_id == alert_id, AlertTriage.escalated_at.is_(None))
        .values(escalated_at=now, escalated_by=by, escalation_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if view.triage is not None:
        session.expire(view.triage)  # read again from the row, as the UPDATE left it
    if won:
        _insert_ignore(session, AlertQueue, [{"alert_id": alert_id, "receiver": COMMAND_RECEIVER,
                                              "queue": command_queue(configs, view.enterprise.district)}])
    return won


def escalate(session: Session, who: Principal, configs: Configs, alert_id: str, note: str | None = None,
             now: datetime | None = None) -> bool:
    now = now or now_utc()
    view = get_alert(session, who, configs, alert_id, now, lock=True)
    if not who.can_supervise:
        raise Forbidden("escalation is for supervisors")
    done = _escalate(session, configs, view, who.username, "supervisor", now)
    audit(session, who.username, "escalate", f"alert:{alert_id}", view.enterprise.district, {"note": note}, now)
    return done


def reassign(session: Session, who: Principal, configs: Configs, alert_id: str, assignee: str | None,
             now: datetime | None = None) -> None:
    now = now or now_utc()
    view = get_alert(session, who, configs, alert_id, now, lock=True)
    if not who.can_supervise:
        raise Forbidden("reassignment is for supervisors")
    if assignee:
        target = get_user(session, assignee)
        if target is None or target.role not in ("inspector", "supervisor"):
            raise ValueError(f"{assignee!r} is not an inspector or supervisor")
        if target.district and target.district != view.enterprise.district:
            raise ValueError(f"{assignee!r} works in another district")
    triage = view.triage or _triage(session, alert_id)
    before, triage.assignee = triage.assignee, assignee or None
    audit(session, who.username, "reassign", f"alert:{alert_id}", view.enterprise.district,
          {"from": before, "to": assignee or None}, now)


def escalate_overdue(db: Database, configs: Configs, now: datetime | None = None) -> int:
    """Send every open, unsilenced alert past its SLA to its district's command queue, once."""
    with db.session() as session:
        return escalate_overdue_in(session, configs, now or now_utc())


def escalate_overdue_in(session: Session, configs: Configs, now: datetime) -> int:
    query = (select(Alert, Enterprise).join(Enterprise, Enterprise.enterprise_id == Alert.enterprise_id)
             .where(Alert.status.in_(("new", "acknowledged")))
             .where(~Alert.alert_id.in_(select(AlertTriage.alert_id).where(AlertTriage.escalated_at.is_not(None)))))
    views = _views(session, list(session.execute(query)), configs, now)
    escalated = 0
    for view in views:
        if view.overdue and view.silenced is None:
            if _escalate(session, configs, view, "sla", f"sla_{view.overdue}", now):
                audit(session, "sla", "escalate", f"alert:{view.alert.alert_id}", view.enterprise.district,
                      {"reason": f"sla_{view.overdue}"}, now)
                escalated += 1
    return escalated


def add_silence(session: Session, who: Principal, enterprise_id: str, reason: str, expires_at: datetime,
                now: datetime | None = None) -> Silence:
    now = now or now_utc()
    enterprise = get_enterprise(session, who, enterprise_id)
    if not who.can_supervise:
        raise Forbidden("silences are set by supervisors")
    if not reason.strip():
        raise ValueError("a silence needs a reason")
    if expires_at <= now:
        raise ValueError("a silence must expire in the future")
    silence = Silence(enterprise_id=enterprise_id, reason=reason.strip(), expires_at=expires_at,
                      created_by=who.username, created_at=now)
    session.add(silence)
    audit(session, who.username, "silence", f"enterprise:{enterprise_id}", enterprise.district,
          {"reason": reason.strip(), "expires_at": expires_at.isoformat()}, now)
    return silence


def silences_for(session: Session, enterprise_id: str) -> list[Silence]:
    return list(session.scalars(select(Silence).where(Silence.enterprise_id == enterprise_id)
                                .order_by(Silence.created_at.desc())))


# -- the enterprise file -----------------------------------------------------------------------
def get_enterprise(session: Session, who: Principal, enterprise_id: str) -> Enterprise:
    found = session.scalar(select(Enterprise).where(Enterprise.enterprise_id == enterprise_id,
                                                    _enterprise_scope(who)))
    if found is None:
        raise NotFound(enterprise_id)
    return found


def enterprise_alerts(session: Session, configs: Configs, enterprise: Enterprise, now: datetime | None = None) -> list[AlertView]:
    alerts = session.scalars(select(Alert).where(Alert.enterprise_id == enterprise.enterprise_id)
                             .order_by(Alert.opened_at.desc()))
    return _views(session, [(a, enterprise) for a in alerts], configs, now or now_utc())


def enterprise_signals(session: Session, enterprise_id: str, since: datetime | None = None) -> list[SignalRecord]:
    query = select(SignalRecord).where(SignalRecord.enterprise_id == enterprise_id)
    if since is not None:
        query = query.where(SignalRecord.observed_at >= since)
    return list(session.scalars(query.order_by(SignalRecord.observed_at, SignalRecord.id)))


# -- outcomes: labels and the feedback topic --------------------------------------------------------
def outcome_message(o: Outcome, alert: Alert | None = None) -> dict:
    from alerts.workflow import POSITIVE_OUTCOMES
    from models.calendar import CHINA_TZ

    return {
        "feedback_id": o.id, "alert_id": o.alert_id, "enterprise_id": o.enterprise_id, "outcome": o.outcome,
        "label": 1 if o.outcome in POSITIVE_OUTCOMES else 0, "actions": list(o.actions or []), "note": o.note,
        "resolved_by": o.resolved_by, "resolved_at": o.resolved_at.astimezone(CHINA_TZ).isoformat(),
        "category": alert.category if alert else None, "level": alert.level if alert else None,
        "score": alert.score if alert else None, "model_version": alert.model_version if alert else None,
    }


def unpublished_outcomes(db: Database, limit: int = 100) -> list[dict]:
    with db.session() as session:
        rows = session.execute(select(Outcome, Alert).join(Alert, Alert.alert_id == Outcome.alert_id)
                               .where(Outcome.published_at.is_(None)).order_by(Outcome.id).limit(limit))
        return [outcome_message(o, a) for o, a in rows]


def mark_published(db: Database, ids: Sequence[int], now: datetime | None = None) -> None:
    if not ids:
        return
    with db.session() as session:
        for o in session.scalars(select(Outcome).where(Outcome.id.in_(list(ids)))):
            o.published_at = now or now_utc()


def export_outcomes(db: Database) -> list[dict]:
    with db.session() as session:
        rows = session.execute(select(Outcome, Alert).join(Alert, Alert.alert_id == Outcome.alert_id)
                               .order_by(Outcome.resolved_at, Outcome.id))
        return [outcome_message(o, a) for o, a in rows]
