"""Prometheus metrics of the web app, declared once, with bounded labels only (route templates,
methods, status codes, workflow statuses: never a user, an alert or an enterprise)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from alerts.workflow import STATUSES


class WebMetrics:
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
        for status in STATUSES[1:]:
            self.transitions.labels(status)
