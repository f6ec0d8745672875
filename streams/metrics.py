"""Every Prometheus metric LaborWatch exports, the stream worker's (``Metrics``) and the
workbench's (``WebMetrics``), declared once, with bounded labels only (signal types, rejection
reasons, levels, categories, queues, features, routes, statuses: never an enterprise or a user).

Counts that must agree do: each input that gets a verdict counts once in ``received`` and once
in either ``accepted`` or ``rejected``, so received = accepted + rejected exactly.
"""
from __future__ import annotations

import json
from collections import deque
from datetime import date

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from models.drift import psi
from streams.validation import REASONS

SIGNAL_TYPES = ("wage", "utility", "inspection", "unknown")
STREAM_STAGES = ("pipeline", "publish", "store", "checkpoint")
# laborwatch_shadow_model_info's labels while no model scores in shadow.
NO_SHADOW = {"version": "", "blue": "", "yellow": ""}
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)


class Metrics:
    """One set of metrics on its own registry (tests use a private one, as prometheus_client
    recommends; ``laborwatch run`` serves the one it makes)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter("laborwatch_signals_received", "Inputs that got a verdict, by signal type.",
                                ["type"], registry=r)
        self.accepted = Counter("laborwatch_signals_accepted", "Inputs accepted, by signal type.", ["type"], registry=r)
        self.rejected = Counter("laborwatch_signals_rejected", "Inputs rejected, by contract reason.",
                                ["reason"], registry=r)
        self.event_lag = Histogram(
            "laborwatch_alert_event_lag_seconds",
            "From the triggering signal's observed_at (event time) to the alert stored.",
            buckets=LAG_BUCKETS, registry=r,
        )
        self.arrival_lag = Histogram(
            "laborwatch_alert_arrival_lag_seconds",
            "From the triggering signal's arrival at the worker to the alert stored.",
            buckets=LAG_BUCKETS, registry=r,
        )
        self.batch_size = Histogram("laborwatch_scoring_batch_rows", "Rows scored together in one call.",
                                    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500), registry=r)
        self.scoring_seconds = Histogram("laborwatch_scoring_seconds", "Time of one batched scoring call.",
                                         buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
                                         registry=r)
        self.score = Histogram("laborwatch_score", "Calibrated dispute probabilities scored.",
                               buckets=(0.05, 0.1, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), registry=r)
        self.alerts_raised = Counter("laborwatch_alerts_raised", "Alerts raised or escalated, as stored.",
                                     ["level", "category", "queue"], registry=r)
        self.open_alerts = Gauge("laborwatch_open_alerts", "Alerts not yet resolved, by level and queue.",
                                 ["level", "queue"], registry=r)
        self.model = Info("laborwatch_model", "The model version scoring signals.", registry=r)
        self.shadow_model = Info("laborwatch_shadow_model", "The model scoring beside the promoted one in shadow "
                                 "(laborwatch models shadow; version empty when none).", registry=r)
        self.alert_decisions = Counter(
            "laborwatch_alert_decisions",
            "Alerts raised or escalated, as decided, by the scorer's role: promoted (sent to the queues) or "
            "shadow (a model scoring beside it, nothing sent).",
            ["role", "model_version", "level", "category"], registry=r)
        self.last_accepted = Gauge("laborwatch_signals_last_accepted_timestamp_seconds",
                                   "Arrival time of the newest accepted signal, by type.", ["type"], registry=r)
        self.past_sla = Gauge("laborwatch_alerts_past_sla",
                              "Open alerts not acknowledged within their level's SLA (config/sla.yaml).",
                              ["level", "queue"], registry=r)
        self.past_on_site_sla = Gauge("laborwatch_alerts_past_on_site_sla",
                                      "Open alerts nobody has started on site (new or acknowledged) within "
                                      "their level's on-site SLA (config/sla.yaml).", ["level", "queue"], registry=r)
        self.feature_psi = Gauge("laborwatch_feature_psi",
                                 "Population stability index of each live feature against the training data.",
                                 ["feature"], registry=r)
        self.consumer_lag = Gauge("laborwatch_consumer_lag",
                                  "Messages behind the high watermark, over this worker's partitions.",
                                  ["topic"], registry=r)
        self.closed_by_feedback = Counter(
            "laborwatch_alerts_closed_by_feedback",
            "Open alerts the stream closed because an inspector resolved them (the next risk raises a new one).",
            ["category"], registry=r,
        )
        self.stage_seconds = Counter(
            "laborwatch_stream_stage_seconds",
            "Wall time the signal agent spent in each stage (while it awaits a send or the store, the loop runs "
            "other tasks): pipeline (validation, duplicate lookup, state, features, scoring), publish (alert and "
            "dead-letter sends), store (ledger and dead letters), checkpoint (table writes, acks).",
            ["stage"], registry=r,
        )
        # Live feature rows for drift, the most recent ones only, each with its calendar month.
        self.recent_rows: deque[tuple[int, dict]] = deque(maxlen=5000)
        for kind in SIGNAL_TYPES:  # every series exists from the start, at 0
            self.received.labels(kind)
            self.accepted.labels(kind)
        for reason in REASONS:
            self.rejected.labels(reason)
        for stage in STREAM_STAGES:
            self.stage_seconds.labels(stage)
        self.shadow_model.info(NO_SHADOW)

    def count_decisions(self, role: str, alerts) -> None:
        """The alert events one scorer decided in a batch (``role``: promoted or shadow)."""
        for alert in alerts:
            self.alert_decisions.labels(role, alert["model_version"], alert["level"], alert["category"]).inc()

    def count_outcome(self, outcome) -> None:
        for item in outcome.accepted:
            kind = item.signal["type"]
            self.received.labels(kind).inc()
            self.accepted.labels(kind).inc()
            self.last_accepted.labels(kind).set(item.envelope.received_at.timestamp())
        for letter in outcome.dead_letters:
            self.received.labels(_signal_type(letter["payload"])).inc()
            self.rejected.labels(letter["reason"]).inc()

    def observe_scoring(self, rows, scores: list[float], seconds: float, days: list[int]) -> None:
        self.recent_rows.extend((date.fromordinal(day).month, row) for day, row in zip(days, rows))
        self.batch_size.observe(len(scores))
        self.scoring_seconds.observe(seconds)
        for value in scores:
            self.score.observe(value)

    def refresh_drift(self, drift_reference: dict) -> None:
        """PSI of each feature over the recent rows against the model's training reference (the
        same calendar months of it, when the card has them)."""
        self.feature_psi.clear()
        if not drift_reference or not self.recent_rows:
            return
        months = [month for month, _ in self.recent_rows]
        for feature, reference in drift_reference.items():
            values = [row[feature] for _, row in self.recent_rows]
            self.feature_psi.labels(feature).set(psi(reference, values, months))


class WebMetrics:
    """The workbench's metrics (route templates, methods, status codes, workflow statuses:
    never a user, an alert or an enterprise), on the registry ``laborwatch run`` serves."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("laborwatch_web_requests", "HTTP requests answered, by route template and status code.",
                                ["method", "route", "status"], registry=r)
        self.request_seconds = Histogram("laborwatch_web_request_seconds", "Time to answer a request, by route template.",
                                         ["route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                                         registry=r)
        self.transitions = Counter("laborwatch_alert_transitions", "Workflow steps people took, by the status reached.",
                                   ["to"], registry=r)
        self.login_failures = Counter("laborwatch_web_login_failures", "Failed logins (wrong password or locked).",
                                      registry=r)
        self.escalations = Counter("laborwatch_alerts_escalated", "Alerts sent to the command queue past their SLA.",
                                   registry=r)
        self.feedback_published = Counter("laborwatch_feedback_published", "Outcomes published to the feedback topic.",
                                          registry=r)
        from alerts.workflow import STATUSES

        for status in STATUSES[1:]:
            self.transitions.labels(status)


def _signal_type(payload: str) -> str:
    """The type a rejected input claimed, when it can be read (rejections are rare: parse)."""
    try:
        value = json.loads(payload)
    except ValueError:
        return "unknown"
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if kind in SIGNAL_TYPES else "unknown"
