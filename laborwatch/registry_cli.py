"""`laborwatch models list` and `laborwatch models promote VERSION`."""
from __future__ import annotations

import json

import typer


def list_models() -> None:
    """The registry: every model version, its class, data window and key metrics; * = promoted."""
    from laborwatch.cli import _settings
    from laborwatch.models_cli import _short
    from models.registry import ModelRegistry

    registry = ModelRegistry(_settings().resolved_model_dir)
    promoted = registry.promoted()
    cards = registry.cards()
    if not cards:
        typer.echo("no models registered yet (laborwatch models train ...); scoring uses the rules")
        return
    for card in cards:
        figures = ", ".join(  # "rows 15673, pr_auc 0.603"
            f"{k} {_short(float(v))}" for k, v in (card.metrics.get("selection") or {}).items()
            if isinstance(v, (int, float))
        )
        mark = "*" if card.version == promoted else " "
        yellow = f"yellow {card.levels['yellow']:g}" if card.levels.get("yellow") else "yellow from config"
        typer.echo(f"{mark} {card.version}  {card.model_class:<32} {card.data_window[0]}..{card.data_window[-1]}"
                   f"  {card.created_at}  {yellow}  {figures}")


def promote_model(version: str = typer.Argument(..., help="The version to score with.")) -> None:
    """Make VERSION the promoted model; running workers switch to it without a restart."""
    from laborwatch.cli import CliError, _settings
    from models.registry import ModelLoadError, ModelRegistry
    from streams.broker import BrokerError, discover_broker, ensure_topics

    settings = _settings()
    try:
        card = ModelRegistry(settings.resolved_model_dir).promote(version)
    except ModelLoadError as exc:
        raise CliError(f"not promoted: {exc}") from None
    bootstrap = settings.broker.removeprefix("kafka://") if settings.broker else discover_broker(settings.resolved_home)
    if bootstrap is None:
        typer.echo(f"promoted {card.version}; no running pipeline found, workers load it when they start")
        return
    topic = settings.topic("model-updates")
    try:
        from kafka import KafkaProducer

        ensure_topics(bootstrap, {topic: 1})
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        producer.send(topic, json.dumps({"version": card.version}).encode()).get(timeout=15)
        producer.close(timeout=5)
    except (BrokerError, Exception) as exc:  # noqa: BLE001 - reported, the promotion itself stands
        raise CliError(f"promoted {card.version}, but running workers were not told: {exc}") from None
    typer.echo(f"promoted {card.version}; running workers notified through {topic}")
