"""Routing an alert to labour-inspection queues through ``config/routing.yaml``."""
from __future__ import annotations

from dataclasses import dataclass

from config.files import ROUTING_LABELS, RoutingConfig


@dataclass(frozen=True)
class Delivery:
    receiver: str  # names the queue topic
    queue: str  # e.g. street:xixiang


class Router:
    def __init__(self, config: RoutingConfig):
        self.config = config

    @property
    def receivers(self) -> list[str]:
        return list(self.config.receivers)

    def route(self, labels: dict[str, str]) -> list[Delivery]:
        """Deliveries for an alert with these labels: the primary queue first, no repeats."""
        chosen: list[str] = []
        for route in self.config.route.routes:
            if all(m.matches(labels) for m in route.parsed):
                chosen.extend(route.receivers)
                if not route.continue_:
                    break
        if not chosen:
            chosen = list(self.config.route.receivers)
        deliveries: list[Delivery] = []
        for name in dict.fromkeys(chosen):
            values = {label: labels.get(label, "") for label in ROUTING_LABELS}
            queue = self.config.receivers[name].queue.format(**values)
            if queue not in {d.queue for d in deliveries}:
                deliveries.append(Delivery(receiver=name, queue=queue))
        return deliveries

    def routed(self, alert: dict) -> dict:
        """``alert`` with its primary ``queue`` and every ``queues`` entry filled in."""
        labels = {**alert.get("labels", {}), "category": alert["category"], "level": alert["level"]}
        deliveries = self.route(labels)
        return {
            **alert,
            "queue": deliveries[0].queue,
            "queues": [{"receiver": d.receiver, "queue": d.queue} for d in deliveries],
        }
