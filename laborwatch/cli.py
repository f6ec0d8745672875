"""The `laborwatch` command (see the contract's CLI.md for the fixed part of it)."""
from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Optional

import click
import typer
from pydantic import ValidationError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="LaborWatch: early warning of labour disputes.")
enterprises_app = typer.Typer(no_args_is_help=True, help="The enterprise registry (一企一档).")
alerts_app = typer.Typer(no_args_is_help=True, help="Alerts in the store.")
dlq_app = typer.Typer(no_args_is_help=True, help="Rejected inputs (dead letters).")
app.add_typer(enterprises_app, name="enterprises")
app.add_typer(alerts_app, name="alerts")
app.add_typer(dlq_app, name="dlq")
models_app = typer.Typer(no_args_is_help=True, help="Models: train, evaluate, compare, thresholds, list, promote.")
app.add_typer(models_app, name="models")
users_app = typer.Typer(no_args_is_help=True, help="Accounts of the inspectors' workbench.")
app.add_typer(users_app, name="users")
feedback_app = typer.Typer(no_args_is_help=True, help="Outcomes of resolved alerts (training labels).")
app.add_typer(feedback_app, name="feedback")


class CliError(Exception):
    """An expected failure: printed as one line on stderr, exit status 1."""


def _settings():
    from config.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "LABORWATCH_" + str(err["loc"][0]).upper() if err["loc"] else "LABORWATCH_*"
        raise CliError(f"{name}: {err['msg'].removeprefix('Value error, ')}") from None


def _configs(settings):
    from config.files import load_configs

    return load_configs(settings.config_dir)


def _database(settings):
    from alerts.store.db import Database

    return Database(settings.resolved_database_url)


def _existing_store(settings):
    """The store of a pipeline that has run: a SQLite file that is not there is a mistyped
    LABORWATCH_HOME (or nothing has run yet), not an empty store to create and read."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database)
        if not path.exists():
            raise CliError(f"no store at {path}: nothing has run with this LABORWATCH_HOME "
                           "(check it, or start `laborwatch run` / `laborwatch enterprises import` first)")
    return _database(settings)


def _readable(path: Path) -> Path:
    if not path.exists():
        raise CliError(f"{path}: no such file")
    if not path.is_file():
        raise CliError(f"{path}: not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc.strerror})") from None
    return path


def _folder(path: Path) -> Path:
    """An output folder, made before minutes of work rather than found unwritable after them."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"{path}: cannot create ({exc.strerror})") from None
    return path


def _bootstrap(settings) -> str:
    from streams.broker import discover_broker

    if settings.broker:
        return settings.broker.removeprefix("kafka://")
    found = discover_broker(settings.resolved_home)
    if found is None:
        raise CliError(
            f"no running `laborwatch run` found in {settings.resolved_home} "
            "(start one, point LABORWATCH_HOME at its state directory, or set LABORWATCH_BROKER)"
        )
    return found


@app.command()
def run(
    simulate: bool = typer.Option(True, "--simulate/--no-simulate", help="Feed the shipped demo world (default) or wait for real signals."),
) -> None:
    """Run the pipeline: embedded broker (unless LABORWATCH_BROKER), store, stream worker."""
    from laborwatch.runner import run as run_pipeline

    run_pipeline(_settings(), simulate=simulate, echo=lambda line: typer.echo(line))


@app.command()
def ingest(
    path: Path = typer.Argument(..., help="JSONL file of signals (signal.schema.json), or the same gzipped."),
) -> None:
    """Publish a JSONL file of signals to the signal topic, line by line, in file order."""
    from streams.broker import ensure_topics
    from streams.ingest import publish_file

    settings = _settings()
    _readable(path)
    bootstrap = _bootstrap(settings)
    topic = settings.topic("signals")
    ensure_topics(bootstrap, {topic: settings.partitions})
    try:
        count = publish_file(bootstrap, topic, path, timeout=settings.ingest_timeout_seconds)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    typer.echo(f"published {count} signals to {topic}")


@enterprises_app.command("import")
def enterprises_import(path: Path = typer.Argument(..., help="CSV or JSONL file (enterprise.schema.json).")) -> None:
    """Load the registry; print how many were added, updated and rejected."""
    from alerts.registry import read_enterprises
    from alerts.store.repo import upsert_enterprises

    settings = _settings()
    try:
        rows, rejected = read_enterprises(_readable(path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: {exc}") from None
    added, updated = upsert_enterprises(_database(settings), rows)
    for row in rejected:
        typer.echo(f"{path}:{row.line}: rejected: {row.reason}", err=True)
    typer.echo(f"added {added}, updated {updated}, rejected {len(rejected)}")


@alerts_app.command("export")
def alerts_export() -> None:
    """Print the current alerts, one JSON object per line (alert.schema.json)."""
    from alerts.store.repo import export_alerts

    for alert in export_alerts(_existing_store(_settings())):
        sys.stdout.write(json.dumps(alert, ensure_ascii=False) + "\n")


@dlq_app.command("export")
def dlq_export() -> None:
    """Print the rejected inputs, one JSON object per line (dead_letter.schema.json)."""
    from alerts.store.repo import export_dead_letters

    for letter in export_dead_letters(_existing_store(_settings())):
        sys.stdout.write(json.dumps(letter, ensure_ascii=False) + "\n")


@users_app.command("add")
def users_add(
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option(..., "--role", help="inspector, supervisor, analyst or admin."),
    street: Optional[str] = typer.Option(None, "--street", help="An inspector's street (its queue), e.g. shajing."),
    district: Optional[str] = typer.Option(None, "--district", help="A supervisor's district, e.g. baoan."),
) -> None:
    """Create an account; the password is read from standard input (its first line)."""
    from alerts.auth import hash_password
    from alerts.store.workbench import add_user, check_scope, validate_account

    if not username.strip() or len(username) > 64 or any(c.isspace() for c in username):
        raise CliError(f"username {username!r}: 1 to 64 characters, no spaces")
    db = _existing_store(_settings())
    try:
        validate_account(role, street, district)
        check_scope(db, street, district)  # before the password is asked for
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        hashed = hash_password(password)
        add_user(db, username, hashed, role, street, district)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    scope = f", street {street}" if street else ""
    scope += f", district {district}" if district else ""
    typer.echo(f"added {role} {username}{scope}")


@users_app.command("list")
def users_list() -> None:
    """The accounts: username, role, street, district."""
    from alerts.store.workbench import list_users

    for u in list_users(_existing_store(_settings())):
        typer.echo(f"{u['username']}\t{u['role']}\t{u['street'] or '-'}\t{u['district'] or '-'}")


@app.command()
def streets() -> None:
    """The districts and streets of the registry (what --street and --district of `users add` take)."""
    from alerts.store.workbench import streets as registry_streets

    rows = registry_streets(_existing_store(_settings()))
    if not rows:
        raise CliError("the registry is empty (start `laborwatch run`, or `laborwatch enterprises import PATH`)")
    for district, street, n in rows:
        typer.echo(f"{district}\t{street}\t{n} enterprise{'' if n == 1 else 's'}")


@feedback_app.command("export")
def feedback_export() -> None:
    """Print every resolution's outcome, one JSON object per line (the feedback topic's messages)."""
    from alerts.store.workbench import audit, export_outcomes

    db = _existing_store(_settings())
    outcomes = export_outcomes(db)
    with db.session() as session:  # audited, as the API's GET /api/feedback is
        audit(session, "cli", "export_labels", "outcomes", None, {"via": "cli", "outcomes": len(outcomes)})
    for item in outcomes:
        sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")


@app.command()
def backtest(
    enterprises: Path = typer.Option(..., "--enterprises", help="Registry file (CSV or JSONL)."),
    signals: Path = typer.Option(..., "--signals", help="Signal file (JSONL in arrival order, or the same gzipped)."),
    out: Path = typer.Option(..., "--out", help="Where to write the alert lines (JSONL)."),
    model: Optional[str] = typer.Option(
        None, "--model", help="Model version to score with, or rules-v1 (default: the promoted model, as the stream)."
    ),
) -> None:
    """Run the live pipeline's code over files, with no broker; one line per alert raised or escalated."""
    from models.registry import scorer_for
    from streams.backtest import run_backtest

    settings = _settings()
    configs = _configs(settings)
    _readable(enterprises)
    _readable(signals)
    scorer = scorer_for(settings.resolved_model_dir, configs, model)  # default: what the stream uses
    try:
        handle = out.open("w", encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{out}: cannot write ({exc.strerror})") from None
    with handle:
        try:
            result = run_backtest(configs, enterprises, signals, handle, scorer=scorer)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CliError(str(exc).splitlines()[0]) from None
    typer.echo(f"scored with {scorer.version}; {len(result.lines)} lines; {result.account()}; "
               f"{len(result.alerts)} alert lines written to {out}")


@app.command()
def simulate(
    outdir: Path = typer.Argument(..., help="Folder to write enterprises.csv, signals.jsonl, disputes.jsonl."),
    firms: int = typer.Option(120, min=1, help="Number of enterprises."),
    months: int = typer.Option(14, min=1, help="Months of signals."),
    seed: int = typer.Option(7, help="Random seed (same seed, same files)."),
    start: str = typer.Option("2024-07-01", help="First day, YYYY-MM-DD."),
    trouble_rate: float = typer.Option(
        0.18, min=0.0, max=1.0, help="Share of firms entering trouble (decline, absconding, arrears, recovery) "
        "per year. 0.18 makes ~12% of a year's firms end in a dispute; a real district is nearer 0.033."),
    payroll_coverage: float = typer.Option(
        0.7, min=0.0, max=1.0, help="Share of firms with a payroll feed (the others send no wage records, "
        "only meter readings and inspections), as in the contract's sample world."),
    water_weekly: float = typer.Option(
        0.5, min=0.0, max=1.0, help="Share of water meters read once a week (Mondays, the week's "
        "consumption) instead of daily; the contract's sample world reads every water meter weekly."),
    background_complaints: float = typer.Option(
        0.1, min=0.0, max=12.0, help="Individual complaints a year at a 50-worker firm not in trouble (more at "
        "bigger ones). The contract's sample world has none at firms that never reach a dispute; raise it to "
        "test a model against noisier hotlines."),
    history_months: int = typer.Option(
        0, min=0, help="Months the district lives before --start without being recorded: the signals begin at "
        "--start with some firms already in trouble, as a feed switched on one day finds them; the disputes "
        "file keeps those months' disputes too."),
) -> None:
    """Write a simulated world in the contract's formats."""
    from models.simulate import simulate_world

    try:
        first_day = date.fromisoformat(start)
    except ValueError:
        raise CliError(f"--start: {start!r} is not a date of the form YYYY-MM-DD") from None
    _folder(outdir)
    summary = simulate_world(outdir, firms=firms, months=months, seed=seed, start=first_day, trouble_rate=trouble_rate,
                             payroll_coverage=payroll_coverage, water_weekly=water_weekly,
                             background_complaints=background_complaints, history_months=history_months)
    typer.echo(f"wrote {summary.firms} enterprises, {summary.signals} signals, {summary.disputes} disputes to {outdir}")


def _register_model_commands() -> None:
    from laborwatch.models_cli import compare_models, evaluate_model, sweep_thresholds, train_model
    from laborwatch.registry_cli import list_models, promote_model, shadow_model, show_model

    models_app.command("train")(train_model)
    models_app.command("evaluate")(evaluate_model)
    models_app.command("compare")(compare_models)
    models_app.command("thresholds")(sweep_thresholds)
    models_app.command("list")(list_models)
    models_app.command("show")(show_model)
    models_app.command("promote")(promote_model)
    models_app.command("shadow")(shadow_model)


_register_model_commands()


def main() -> None:
    from alerts.store.db import StoreError
    from config.files import ConfigError
    from laborwatch.runner import RunError
    from models.registry import ModelLoadError
    from streams.broker import BrokerError

    # Typer 0.29 parses with a click of its own (typer._click): its usage errors (a missing or
    # unknown option, a value out of range) are TyperExceptions, not click's.
    try:
        app(standalone_mode=False)
    except (click.exceptions.Abort, typer.Abort):
        sys.exit(130)
    except (click.exceptions.Exit, typer.Exit) as exc:
        sys.exit(exc.exit_code)
    except (click.ClickException, typer.TyperException) as exc:
        # One line, as the contract asks (click's own show() prints the usage block first).
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "laborwatch"
        typer.echo(f"laborwatch: error: {message} (see `{command} --help`)", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except (CliError, ConfigError, StoreError, BrokerError, RunError, ModelLoadError) as exc:
        typer.echo(f"laborwatch: error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
