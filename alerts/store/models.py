"""Tables of the store: the registry (one file per enterprise), the ledger of accepted signals,
dead letters, alerts (current state), the queues each alert was delivered to, and every change.

Every table that the stream writes has a natural key, so that a replay writes nothing twice.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy import TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no offset) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime}


class Enterprise(Base):
    __tablename__ = "enterprises"

    enterprise_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    industry: Mapped[str] = mapped_column(String(32))
    district: Mapped[str] = mapped_column(String(40), index=True)
    street: Mapped[str] = mapped_column(String(40), index=True)
    community: Mapped[str] = mapped_column(String(40))
    grid: Mapped[str] = mapped_column(String(40))
    headcount: Mapped[int] = mapped_column(Integer)
    registered_capital: Mapped[float | None] = mapped_column(Float)
    legal_representative: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class SignalRecord(Base):
    """Ledger of accepted signals: the enterprise file's history and the duplicate check."""

    __tablename__ = "signals"
    __table_args__ = (
        UniqueConstraint("enterprise_id", "signal_id", name="uq_signals_enterprise_signal"),
        Index("ix_signals_enterprise_observed", "enterprise_id", "observed_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(String(18))
    signal_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    observed_at: Mapped[datetime] = mapped_column()
    payload: Mapped[dict] = mapped_column(JSON)
    topic: Mapped[str] = mapped_column(String(255))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column()


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("topic", "partition", "offset", name="uq_dead_letters_source"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    # The input exactly as received: bytes, since it may hold NUL (PostgreSQL text cannot) or
    # invalid UTF-8; the contract's text form is made from it on export.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    signal_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column()
    topic: Mapped[str] = mapped_column(String(255))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)


class Alert(Base):
    """An alert's current state (``alert.schema.json`` plus what the workflow needs)."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_queue_status", "queue", "status"),
        Index("ix_alerts_enterprise_category", "enterprise_id", "category"),
    )

    alert_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(String(18))
    category: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(8))
    size_band: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    queue: Mapped[str] = mapped_column(String(120))
    reasons: Mapped[list] = mapped_column(JSON)
    raised_at: Mapped[datetime] = mapped_column()
    triggered_by: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class AlertQueue(Base):
    """Every queue an alert was delivered to (the street's, and the district command's)."""

    __tablename__ = "alert_queues"

    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), primary_key=True)
    queue: Mapped[str] = mapped_column(String(120), primary_key=True, index=True)
    receiver: Mapped[str] = mapped_column(String(64))


class AlertChange(Base):
    """History: one row per revision of an alert (raised, escalated; later, people's steps)."""

    __tablename__ = "alert_history"
    __table_args__ = (UniqueConstraint("alert_id", "revision", name="uq_alert_history_revision"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    change: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(8))
    size_band: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list] = mapped_column(JSON)
    raised_at: Mapped[datetime] = mapped_column()
    triggered_by: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column()


# -- the inspectors' workbench (issue 4): people, their steps, and what they read ----------------
class User(Base):
    """An account of the workbench. ``street``/``district`` scope what an inspector/supervisor sees."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    street: Mapped[str | None] = mapped_column(String(40))
    district: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column()


class AlertTransition(Base):
    """A person's step on an alert: its status move (or an action recorded while in progress),
    with who, when, the note, the action taken and, on resolution, the outcome.

    Kept apart from ``alert_history``, whose (alert_id, revision) key belongs to the pipeline."""

    __tablename__ = "alert_transitions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), index=True)
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    action: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column()


class AlertTriage(Base):
    """The workflow's own facts about an alert: who it is assigned to, and when it went to the
    district command (past its SLA, or by a supervisor). One row per alert, written idempotently."""

    __tablename__ = "alert_triage"

    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), primary_key=True)
    assignee: Mapped[str | None] = mapped_column(String(64))
    escalated_at: Mapped[datetime | None] = mapped_column()
    escalated_by: Mapped[str | None] = mapped_column(String(64))
    escalation_reason: Mapped[str | None] = mapped_column(String(32))


class Silence(Base):
    """An enterprise's alerts kept out of the street queue and from SLA escalation until expiry."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(String(18), index=True)
    reason: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()


class Outcome(Base):
    """A resolution's outcome: a label for training, published to the feedback topic.

    The row is the truth; ``published_at`` stays empty until the broker has taken it."""

    __tablename__ = "outcomes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    transition_id: Mapped[int] = mapped_column(ForeignKey("alert_transitions.id"), unique=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), index=True)
    enterprise_id: Mapped[str] = mapped_column(String(18), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    actions: Mapped[list] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[str] = mapped_column(String(64))
    resolved_at: Mapped[datetime] = mapped_column()
    published_at: Mapped[datetime | None] = mapped_column(index=True)


class AuditEntry(Base):
    """Who read or changed what, when. ``district`` lets a supervisor see their district's."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_district_at", "district", "recorded_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(120))
    district: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[dict] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column()


class LoginFailure(Base):
    """A failed login, for throttling (kept in the store so every worker process agrees)."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_username_at", "username", "failed_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column()
