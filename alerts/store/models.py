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
