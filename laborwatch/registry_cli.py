"""`laborwatch models list`, `models show VERSION`, `models promote VERSION` and `models shadow VERSION`."""
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


FOLD_FIGURES = ("rows", "positives", "pr_auc", "roc_auc", "brier")


def show_model(
    version: str = typer.Argument(..., help="Model version (laborwatch models list)."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole card as JSON instead."),
) -> None:
    """One model's card: what it is, what it was trained on, its figures on each temporal fold,
    the candidates it was chosen from, and its blue and yellow."""
    from dataclasses import asdict

    from laborwatch.cli import CliError, _settings
    from laborwatch.models_cli import _short, describe_levels
    from models.registry import ModelLoadError, ModelRegistry
    from models.train import selection_order

    registry = ModelRegistry(_settings().resolved_model_dir)
    try:
        card = registry.card(version)
    except ModelLoadError as exc:
        raise CliError(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(asdict(card), indent=2, ensure_ascii=False))
        return
    params = lambda p: ", ".join(f"{k} {v}" for k, v in p.items()) or "defaults"  # noqa: E731
    metrics, folds = card.metrics, card.metrics.get("folds", {})
    typer.echo(f"{card.version}{'  (promoted)' if card.version == registry.promoted() else ''}")
    estimator = {k: v for k, v in card.params.items() if k != "calibration"}
    typer.echo(f"  model        {card.model_class}, calibrated {card.calibration or '-'}; {params(estimator)}")
    typer.echo(f"  trained      {card.created_at}, seed {card.seed}, label: a dispute within {card.horizon_days} days, "
               f"{len(card.feature_names)} features")
    typer.echo(f"  data         as-of dates {card.data_window[0]} to {card.data_window[-1]}, hash {card.data_hash[:16]}")
    typer.echo(f"  levels       {describe_levels(card.levels)}")
    typer.echo(f"  {'fold':<12} {'dates':<24} " + " ".join(f"{f:>9}" for f in FOLD_FIGURES))
    for name, fold in (("train", "train"), ("selection", "calibration"), ("holdout", "holdout")):
        dates = " to ".join(folds.get(fold, [])) or "-"
        figures = metrics.get(name) or {}
        typer.echo(f"  {name:<12} {dates:<24} " + " ".join(f"{_short(figures.get(f)):>9}" for f in FOLD_FIGURES))
    candidates = metrics.get("candidates") or []
    if candidates:
        typer.echo(f"  candidates   {len(candidates)}, by PR-AUC on the selection fold (* chosen):")
        for rank, i in enumerate(selection_order(candidates)):
            c = candidates[i]
            typer.echo(f"   {'*' if rank == 0 else ' '} selection {_short(c.get('selection_pr_auc_raw')):<6} "
                       f"holdout {_short((c.get('holdout') or {}).get('pr_auc')):<6} {c.get('family', '?')} "
                       f"({c.get('calibration_method', '-')}): {params(c.get('params') or {})}")


def promote_model(version: str = typer.Argument(..., help="The version to score with.")) -> None:
    """Make VERSION the promoted model; running workers switch to it without a restart."""
    from laborwatch.cli import CliError, _settings
    from models.registry import ModelLoadError, ModelRegistry

    settings = _settings()
    try:
        card = ModelRegistry(settings.resolved_model_dir).promote(version)
    except ModelLoadError as exc:
        raise CliError(f"not promoted: {exc}") from None
    try:
        topic = _tell_workers(settings, {"version": card.version})
    except Exception as exc:  # noqa: BLE001 - reported, the promotion itself stands
        raise CliError(f"promoted {card.version}, but running workers were not told: {exc}") from None
    if topic is None:
        typer.echo(f"promoted {card.version}; no running pipeline found, workers load it when they start")
    else:
        typer.echo(f"promoted {card.version}; running workers notified through {topic}")


def shadow_model(
    version: str = typer.Argument(None, help="The version to score with beside the promoted one, or rules-v1."),
    off: bool = typer.Option(False, "--off", help="Stop shadow scoring."),
) -> None:
    """Score every signal with VERSION too, beside the promoted model, without sending its
    alerts: running workers count what it would have raised or escalated in
    laborwatch_alert_decisions (role shadow, beside the promoted model's), to compare the two on
    the live feed before a promotion. They keep it until --off or another version."""
    from laborwatch.cli import CliError, _settings
    from models.registry import ModelLoadError, scorer_for

    settings = _settings()
    if off == (version is not None):
        raise CliError("give a VERSION to shadow, or --off to stop")
    if version is not None:
        from laborwatch.cli import _configs

        try:  # never send what a worker would refuse
            scorer_for(settings.resolved_model_dir, _configs(settings), version)
        except ModelLoadError as exc:
            raise CliError(f"not shadowed: {exc}") from None
    try:
        topic = _tell_workers(settings, {"shadow": version})
    except Exception as exc:  # noqa: BLE001 - reported
        raise CliError(f"running workers were not told: {exc}") from None
    if topic is None:
        raise CliError("no running pipeline found: shadow scoring is for running workers (laborwatch run)")
    what = f"scoring with {version} in shadow" if version else "stopping shadow scoring"
    typer.echo(f"running workers notified through {topic}: {what}")


def _tell_workers(settings, message: dict) -> str | None:
    """Publish ``message`` on the model-updates topic, which every running worker reads whole;
    the topic, or None when no pipeline is running."""
    from kafka import KafkaProducer

    from streams.broker import discover_broker, ensure_topics

    bootstrap = settings.broker.removeprefix("kafka://") if settings.broker else discover_broker(settings.resolved_home)
    if bootstrap is None:
        return None
    topic = settings.topic("model-updates")
    ensure_topics(bootstrap, {topic: 1})
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(topic, json.dumps(message).encode()).get(timeout=15)
    finally:
        producer.close(timeout=5)
    return topic
