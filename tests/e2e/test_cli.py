"""The command line's promises: expected failures are one clear line on stderr and a non-zero
exit, never a traceback; the registry import reports what it did line by line."""
from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import yaml

from tests.support import REPO, SAMPLES, RunningPipeline, base_env, cli, wait_for_verdicts, wait_until


def _one_line_error(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("laborwatch: error: ")
    return lines[0]


@pytest.fixture
def env(tmp_path):
    return base_env(tmp_path / "home", f"sqlite:///{tmp_path / 'lw.db'}")


def test_missing_file_and_no_running_pipeline(env, tmp_path):
    assert "no such file" in _one_line_error(cli(["ingest", str(tmp_path / "nope.jsonl")], env, check=False))
    (tmp_path / "s.jsonl").write_text("{}\n")
    line = _one_line_error(cli(["ingest", str(tmp_path / "s.jsonl")], env, check=False))
    assert "no running `laborwatch run`" in line
    line = _one_line_error(cli(["backtest", "--enterprises", str(tmp_path / "e.csv"), "--signals",
                                str(tmp_path / "s.jsonl"), "--out", str(tmp_path / "o")], env, check=False))
    assert "e.csv: no such file" in line


@pytest.mark.parametrize("args, said", [
    (["simulate", "w", "--firms", "0"], "Invalid value for '--firms'"),
    (["simulate", "w", "--trouble-rate", "1.5"], "Invalid value for '--trouble-rate'"),
    (["simulate", "--nope"], "No such option: --nope"),
    (["models", "train"], "Missing option '--enterprises'"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
])
def test_usage_errors_are_one_line_too(env, args, said):
    """Typer parses with a click of its own: its usage errors once escaped as tracebacks."""
    result = cli(args, env, check=False)
    line = _one_line_error(result)
    assert result.returncode == 2 and said in line and "--help" in line


def test_bad_settings_and_unreachable_database(env):
    line = _one_line_error(cli(["alerts", "export"], {**env, "LABORWATCH_BROKER": "localhost:9092"}, check=False))
    assert line.startswith("laborwatch: error: LABORWATCH_BROKER:") and "kafka://host:port" in line
    unreachable = {**env, "LABORWATCH_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    assert "cannot reach the database" in _one_line_error(cli(["alerts", "export"], unreachable, check=False))


def test_bad_config_value_stops_start_up_naming_file_and_key(env, tmp_path):
    config_dir = tmp_path / "config"
    shutil.copytree(REPO / "config", config_dir)
    levels = yaml.safe_load((config_dir / "levels.yaml").read_text())
    levels["thresholds"]["red"] = 1.5
    (config_dir / "levels.yaml").write_text(yaml.safe_dump(levels))
    result = cli(["run", "--no-simulate"], {**env, "LABORWATCH_CONFIG_DIR": str(config_dir)}, check=False, timeout=60)
    line = _one_line_error(result)
    assert f"{config_dir / 'levels.yaml'}: thresholds.red:" in line and "1.5" in line


def test_registry_import_reports_added_updated_rejected(env, tmp_path):
    rows = (SAMPLES.parent / "samples" / "enterprises.csv").read_text().splitlines() if SAMPLES.exists() else None
    if rows is None:
        pytest.skip("../shared is not beside the project")
    bad = rows[1].replace(rows[1].split(",")[0], rows[1].split(",")[0][:-1] + "0", 1)  # wrong check character
    (tmp_path / "e.csv").write_text("\n".join([rows[0], rows[1], bad, rows[2]]) + "\n")
    first = cli(["enterprises", "import", str(tmp_path / "e.csv")], env)
    assert first.stdout.strip() == "added 2, updated 0, rejected 1"
    assert f"{tmp_path / 'e.csv'}:3: rejected: enterprise_id:" in first.stderr
    again = cli(["enterprises", "import", str(tmp_path / "e.csv")], env)
    assert again.stdout.strip() == "added 0, updated 0, rejected 1"


def test_accounts_are_scoped_to_streets_and_districts_of_the_registry(env, tmp_path):
    """A misspelt street would give its inspector an empty queue for ever: refused, before the
    password is read."""
    from models.simulate import simulate_world

    simulate_world(tmp_path / "w", firms=12, months=1, seed=3)
    cli(["enterprises", "import", str(tmp_path / "w" / "enterprises.csv")], env)
    listed = [line.split("\t") for line in cli(["streets"], env).stdout.splitlines()]
    district, street = listed[0][0], listed[0][1]
    assert all(row[2].endswith(("enterprise", "enterprises")) for row in listed) and sum(int(r[2].split()[0]) for r in listed) == 12
    refused = cli(["users", "add", "wang", "--role", "inspector", "--street", street + "x"], env, check=False,
                  stdin="long enough\n")
    assert f"street {street + 'x'!r} has no enterprise in the registry" in _one_line_error(refused)
    refused = cli(["users", "add", "li", "--role", "supervisor", "--district", "nowhere"], env, check=False,
                  stdin="long enough\n")
    assert "district 'nowhere' has no enterprise" in _one_line_error(refused)
    cli(["users", "add", "wang", "--role", "inspector", "--street", street], env, stdin="long enough\n")
    cli(["users", "add", "li", "--role", "supervisor", "--district", district], env, stdin="long enough\n")
    accounts = sorted(cli(["users", "list"], env).stdout.splitlines())
    assert accounts == [f"li\tsupervisor\t-\t{district}", f"wang\tinspector\t{street}\t-"]


def test_commands_that_read_the_store_refuse_a_home_where_nothing_ran(env, tmp_path):
    """A mistyped LABORWATCH_HOME used to create an empty store there and print nothing."""
    elsewhere = {k: v for k, v in env.items() if k != "LABORWATCH_DATABASE_URL"}  # the store under the home
    elsewhere["LABORWATCH_HOME"] = str(tmp_path / "typo")
    for args in (["alerts", "export"], ["dlq", "export"], ["feedback", "export"], ["users", "list"], ["streets"],
                 ["users", "add", "wang", "--role", "analyst"]):
        said = _one_line_error(cli(args, elsewhere, check=False, stdin="long enough\n"))
        assert "no store at" in said and "LABORWATCH_HOME" in said, (args, said)
    assert not (tmp_path / "typo" / "laborwatch.db").exists()


def test_the_command_line_label_export_is_audited(env, tmp_path):
    from alerts.store.db import Database
    from alerts.store.models import AuditEntry
    from models.simulate import simulate_world
    from sqlalchemy import select

    simulate_world(tmp_path / "w", firms=3, months=1, seed=3)
    cli(["enterprises", "import", str(tmp_path / "w" / "enterprises.csv")], env)
    assert cli(["feedback", "export"], env).stdout == ""
    db = Database(env["LABORWATCH_DATABASE_URL"])
    with db.session() as session:
        entries = [(e.actor, e.action, e.target, e.detail) for e in session.scalars(select(AuditEntry))]
    db.dispose()
    assert ("cli", "export_labels", "outcomes", {"via": "cli", "outcomes": 0}) in entries


@pytest.mark.broker
def test_one_home_one_run_and_no_orphan_broker_after_a_crash(env, tmp_path):
    first = RunningPipeline(tmp_path / "home", env, env["LABORWATCH_DATABASE_URL"]).start()
    try:
        second = cli(["run", "--no-simulate"], env, check=False, timeout=60)
        assert "another `laborwatch run` owns" in _one_line_error(second)
        broker_pid = json.loads((tmp_path / "home" / "broker.json").read_text())["pid"]
        assert _running(broker_pid)
    finally:
        first.kill()  # a crash: no clean-up code runs
    wait_until(lambda: not _running(broker_pid), timeout=10, what="the broker to die with its run")


def test_ctrl_c_while_the_demo_history_pours_in_stops_cleanly(env, tmp_path):
    """`make run`'s demo sends its history at full speed; Ctrl-C then stops everything with exit
    code 0 and no traceback. Faust stops its producer before it cancels the feed task, and the
    send under way used to crash the worker (exit 1, NotReady or ProducerClosed)."""
    env = dict(env, LABORWATCH_DEMO_FIRMS="20", LABORWATCH_DEMO_HISTORY_DAYS="1460")
    run = RunningPipeline(tmp_path / "home", env, env["LABORWATCH_DATABASE_URL"]).start(simulate=True)
    try:
        wait_until(lambda: "signals accepted" in run.output(), timeout=90, what="the demo feed to get going")
    finally:
        code = run.stop()
    assert "now live" not in run.output(), "stopped too late to test the history's full speed"
    assert code == 0 and "Traceback" not in run.output(), run.output()[-3000:]


def test_run_stops_with_a_clear_error_when_its_embedded_broker_dies(env, tmp_path):
    """The embedded broker's topics live in its memory: when it dies under `run`, the run ends
    (exit 1) with one line that says so, instead of retrying the dead address for ever and then
    hanging on Ctrl-C."""
    run = RunningPipeline(tmp_path / "home", env, env["LABORWATCH_DATABASE_URL"]).start()
    try:
        broker_pid = json.loads((tmp_path / "home" / "broker.json").read_text())["pid"]
        os.kill(broker_pid, signal.SIGKILL)
        wait_until(lambda: run.proc.poll() is not None, timeout=30, what="run to end after its broker")
    finally:
        run.kill()
    assert run.proc.returncode == 1
    assert f"laborwatch: error: the embedded broker (pid {broker_pid}) exited under the run" in run.output()
    assert not (tmp_path / "home" / "run.json").exists()


def test_ctrl_c_ends_run_within_its_stop_timeout_when_the_broker_is_gone(env, tmp_path):
    """Faust's stop waits for sends and commits that a broker gone away never answers: after
    LABORWATCH_STOP_TIMEOUT_SECONDS the run exits anyway (1), saying why."""
    from models.simulate import simulate_world
    from streams.broker import EmbeddedBroker

    simulate_world(tmp_path / "world", firms=8, months=2, seed=3)
    broker = EmbeddedBroker(tmp_path / "external").start()  # "external": not the run's own
    env = dict(env, LABORWATCH_BROKER=broker.url, LABORWATCH_BROKER_FLAVOR="tansu", LABORWATCH_STOP_TIMEOUT_SECONDS="3")
    run = RunningPipeline(tmp_path / "home", env, env["LABORWATCH_DATABASE_URL"]).start()
    try:
        cli(["enterprises", "import", str(tmp_path / "world" / "enterprises.csv")], env)
        cli(["ingest", str(tmp_path / "world" / "signals.jsonl")], env)
        wait_until(lambda: "signals accepted" in run.output(), timeout=60, what="the worker to get going")
        broker.stop()
        run.proc.send_signal(signal.SIGINT)
        wait_until(lambda: run.proc.poll() is not None, timeout=30, what="run to end after Ctrl-C")
    finally:
        run.kill()
        broker.stop()
    assert run.proc.returncode == 1, run.output()[-3000:]
    assert "stopping on SIGINT, and the worker did not stop within 3 s: exiting without a clean stop" in run.output()


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status  # a zombie is dead, only not yet reaped


def test_backtest_refuses_a_registry_file_without_one_valid_enterprise(env, tmp_path):
    from models.simulate import simulate_world

    simulate_world(tmp_path / "w", firms=3, months=1, seed=3)
    signals = tmp_path / "w" / "signals.jsonl"
    said = _one_line_error(cli(["backtest", "--enterprises", str(signals), "--signals", str(signals),
                                "--out", str(tmp_path / "a.jsonl")], env, check=False))
    assert f"{signals}: no valid enterprise in the registry file" in said and "line 1:" in said


@pytest.mark.parametrize("every", ["0.5", "0"])
def test_the_console_counts_come_as_often_as_the_setting_says(env, tmp_path, every):
    """`run` prints the store's counts every LABORWATCH_CONSOLE_EVERY_SECONDS while they change,
    and never with 0 (each print counts whole tables: compose makes it rarer)."""
    from alerts.store.db import Database
    from alerts.store.repo import counts
    from models.simulate import simulate_world

    world = simulate_world(tmp_path / "world", firms=8, months=2, seed=3)
    env = dict(env, LABORWATCH_CONSOLE_EVERY_SECONDS=every)
    run = RunningPipeline(tmp_path / "home", env, env["LABORWATCH_DATABASE_URL"]).start()
    db = Database(env["LABORWATCH_DATABASE_URL"], run_migrations=False)
    try:
        cli(["enterprises", "import", str(tmp_path / "world" / "enterprises.csv")], env)
        cli(["ingest", str(tmp_path / "world" / "signals.jsonl")], env)
        wait_for_verdicts(db, world.signals)
        if every != "0":
            final = counts(db)
            wait_until(lambda: f"signals accepted {final.accepted}, rejected {final.rejected}" in run.output(),
                       timeout=30, what="the console's line with the final counts")
    finally:
        db.dispose()
        assert run.stop() == 0, run.output()[-3000:]
    assert ("signals accepted" in run.output()) == (every != "0"), run.output()[-2000:]
