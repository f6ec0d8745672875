"""The triage workflow of an alert, as pure rules: which step may follow which, what a step must
carry, and when an alert is past its SLA (``config/sla.yaml``).

new -> acknowledged -> in_progress -> resolved -> closed. While in progress, an inspector may
record actions (a visit, an interview ...) without moving on; a resolution needs an outcome,
which becomes a training label.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from config.files import SlaConfig

STATUSES = ("new", "acknowledged", "in_progress", "resolved", "closed")
OPEN_STATUSES = ("new", "acknowledged", "in_progress")
NEXT: dict[str, tuple[str, ...]] = {
    "new": ("acknowledged",),
    "acknowledged": ("in_progress",),
    "in_progress": ("in_progress", "resolved"),  # in_progress -> in_progress records an action
    "resolved": ("closed",),
    "closed": (),
}
# 走访 a visit, 约谈 an interview of the employer, an inspection, a referral to arbitration.
ACTIONS = ("visit", "employer_interview", "inspection", "arbitration_referral")
OUTCOMES = (
    "confirmed_arrears", "rectified", "wages_paid", "false_alarm", "referred_to_arbitration",
    "blacklisted", "absconded",
)
# Outcomes that confirm what the warning is about (a dispute or arrears the workers would have
# fought over): positive labels for training. `false_alarm` is the one negative; the rest say
# the problem existed and was settled, so they are positive too.
POSITIVE_OUTCOMES = frozenset(OUTCOMES) - {"false_alarm"}


class TransitionError(ValueError):
    """A step that the workflow does not allow; the message says why."""


def check_transition(current: str, to: str, *, action: str | None, outcome: str | None) -> None:
    if to not in STATUSES:
        raise TransitionError(f"unknown status {to!r} (one of {', '.join(STATUSES)})")
    if to not in NEXT.get(current, ()):
        allowed = ", ".join(NEXT.get(current, ())) or "nothing (closed)"
        raise TransitionError(f"cannot go from {current} to {to}; next may be: {allowed}")
    if action is not None and action not in ACTIONS:
        raise TransitionError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    if outcome is not None and outcome not in OUTCOMES:
        raise TransitionError(f"unknown outcome {outcome!r} (one of {', '.join(OUTCOMES)})")
    if to == current and action is None:
        raise TransitionError("staying in progress records an action: give one")
    if to == "resolved" and outcome is None:
        raise TransitionError("a resolution needs an outcome")
    if to != "resolved" and outcome is not None:
        raise TransitionError("only a resolution carries an outcome")


@dataclass(frozen=True)
class SlaState:
    acknowledge_due: datetime
    on_site_due: datetime
    overdue: str | None  # None, "acknowledge" or "on_site"


def sla_state(sla: SlaConfig, level: str, status: str, stored_at: datetime, now: datetime) -> SlaState:
    """Where an alert stands against its level's SLA; the clock starts when it was first stored.

    Past ``acknowledge_hours`` still new, or past ``on_site_hours`` not yet in progress (nobody
    on site), it is overdue."""
    rule = sla.levels[level]
    ack_due = stored_at + timedelta(hours=rule.acknowledge_hours)
    site_due = stored_at + timedelta(hours=rule.on_site_hours)
    overdue = None
    if status == "new" and now > ack_due:
        overdue = "acknowledge"
    elif status in ("new", "acknowledged") and now > site_due:
        overdue = "on_site"
    return SlaState(ack_due, site_due, overdue)
