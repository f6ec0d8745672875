"""Helpers shared by the integration and end-to-end tests: real processes, real broker, real DB."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLES = SHARED / "contract" / "samples"


def wait_until(predicate: Callable[[], object], timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_for_verdicts(db, lines: int, timeout: float = 120.0, what: str = "every line accepted or rejected"):
    """Until the store holds a verdict for ``lines`` inputs: accepted (the ledger) or rejected
    (a dead letter)."""
    from alerts.store.repo import counts

    return wait_until(lambda: (c := counts(db)).accepted + c.rejected >= lines, timeout=timeout, what=what)


def base_env(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABORWATCH_")}
    env.update(
        LABORWATCH_HOME=str(home),
        LABORWATCH_DATABASE_URL=database_url,
        # A group of its own per test, so that no other run's offsets are ever picked up.
        LABORWATCH_APP_ID=f"lw-test-{uuid.uuid4().hex[:8]}",
        PYTHONUNBUFFERED="1",
        LABORWATCH_METRICS_PORT="0",  # any free port; run.json names it
        LABORWATCH_WEB_PORT="0",
    )
    env.update(extra)
    return env


def cli(args: list[str], env: dict[str, str], timeout: float = 120, check: bool = True,
        stdin: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "laborwatch", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, input=stdin,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"laborwatch {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


@dataclass
class RunningPipeline:
    """A `laborwatch run` child process."""

    home: Path
    env: dict[str, str]
    database_url: str
    proc: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.home / "run-output.log"

    def start(self, *args: str, simulate: bool = False) -> "RunningPipeline":
        """Start it, with no feed of its own unless ``simulate`` (the demo of `make run`)."""
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "laborwatch", "run", "--simulate" if simulate else "--no-simulate", *args],
            env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )
        run_json = self.home / "run.json"
        wait_until(lambda: self._alive() and run_json.exists(), timeout=60, what=f"run.json ({self.output()[-1500:]})")
        return self

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"laborwatch run exited {self.proc.returncode}: {self.output()[-3000:]}")
        return True

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode if self.proc else None


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def metric_sums(pipeline: RunningPipeline, sample: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The samples named ``sample`` (``laborwatch_signals_accepted_total``) that this `laborwatch
    run` process exposes on the metrics endpoint run.json names, summed by ``labels``."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    url = json.loads((pipeline.home / "run.json").read_text())["metrics_url"]
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    out: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample:
                key = tuple(s.labels[label] for label in labels)
                out[key] = out.get(key, 0.0) + s.value
    return out


def accepted_by(pipeline: RunningPipeline) -> float:
    """Signals this `laborwatch run` process accepted itself (its laborwatch_signals_accepted
    counter, summed over types)."""
    return metric_sums(pipeline, "laborwatch_signals_accepted_total").get((), 0.0)


def backtest_samples(folder: Path, env: dict[str, str]) -> list[dict]:
    """`laborwatch backtest` of the contract samples: the alert lines an uninterrupted run raises."""
    out = folder / "backtest.jsonl"
    cli(["backtest", "--enterprises", str(SAMPLES / "enterprises.csv"),
         "--signals", str(SAMPLES / "signals.jsonl"), "--out", str(out)], env)
    return jsonl(out.read_text())


def alert_changes(alerts: list[dict]) -> list[tuple[str, str, str]]:
    """(alert_id, level, triggered_by) of alert lines, sorted: what stored_alert_changes compares to."""
    return sorted((a["alert_id"], a["level"], a["triggered_by"]) for a in alerts)


def stored_alert_changes(db) -> list[tuple[str, str, str]]:
    """(alert_id, level, triggered_by) of every alert revision in the store, sorted."""
    from sqlalchemy import select

    from alerts.store.models import AlertChange

    with db.session() as session:
        return sorted(tuple(r) for r in session.execute(
            select(AlertChange.alert_id, AlertChange.level, AlertChange.triggered_by)))
