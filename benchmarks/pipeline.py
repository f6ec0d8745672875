"""`make bench`: the live path's throughput against its ceiling, alert latency, scoring cost.

    python -m benchmarks.pipeline [--signals N] [--paced P] [--rate R] [--profile OUT]

One run, one embedded broker (started here, handed to the children as an external Tansu broker),
one simulated world:

1. a bare Faust agent (``benchmarks.bare_agent``, a subprocess) consuming N pre-loaded signal
   lines and doing nothing with them: the ceiling Faust's per-event cost sets; measured again
   after the pipeline, as it moves from run to run;
2. the full pipeline (``laborwatch run --no-simulate``, a subprocess) consuming the same N lines
   pre-loaded into a topic of its own, measured from the ledger (``received_at`` of accepted
   signals and dead letters, stamped once per micro-batch);
3. their ratios (target >= 0.8);
4. signal-to-alert latency: ``AlertChange.recorded_at`` minus ``received_at`` of the triggering
   signal, for the backlog run and for a paced feed into the caught-up pipeline;
5. scoring cost per row, one batched call vs one call per row, for the rules and two real
   calibrated models.

Figures are printed as a table and written to ``benchmarks/last-run.json``.
"""
from __future__ import annotations

import argparse
import bisect
import ctypes
import ctypes.util
import io
import json
import math
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
LAST_RUN = Path(__file__).resolve().parent / "last-run.json"
PY = sys.executable


class BenchError(RuntimeError):
    pass


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- child processes


def _preexec() -> Callable[[], None] | None:
    """The child gets SIGTERM when this process dies (Linux), so a killed benchmark leaves no
    worker behind; libc is resolved here, before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class Children:
    """Every subprocess this benchmark starts, stopped (gently, then not) on the way out.

    They run in sessions of their own, so a terminal Ctrl-C reaches only this process, which then
    stops them in order, before the broker they depend on."""

    def __init__(self) -> None:
        self.procs: list[tuple[subprocess.Popen, int]] = []

    def start(self, cmd: list[str], *, env: dict | None = None, stop_signal: int = signal.SIGINT,
              stdout=None, stderr=None, text: bool = False) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=stderr, text=text, start_new_session=True, preexec_fn=_preexec())
        self.procs.append((proc, stop_signal))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 20.0) -> int | None:
        sig = next((s for p, s in self.procs if p is proc), signal.SIGTERM)
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs = [(p, s) for p, s in self.procs if p is not proc]
        return proc.returncode

    def stop_all(self) -> None:
        for proc, _ in list(reversed(self.procs)):
            try:
                self.stop(proc)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                say(f"could not stop pid {proc.pid}: {exc}")


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- data


def make_world(outdir: Path, firms: int, lines_needed: int, seed: int) -> dict:
    """A simulated world with at least ``lines_needed`` signal lines (months grown to fit)."""
    from models.simulate import simulate_world

    months = max(1, math.ceil(lines_needed / (firms * 50)))
    while True:
        summary = simulate_world(outdir, firms=firms, months=months, seed=seed)
        if summary.signals >= lines_needed:
            return {"firms": summary.firms, "months": months, "signals": summary.signals, "seed": seed}
        months += 1


def preload(bootstrap: str, topic: str, lines: list[bytes], keys: list[bytes]) -> float:
    """Publish ``lines`` (keyed by enterprise id) and wait for every ack; returns seconds."""
    from kafka import KafkaProducer

    t0 = time.perf_counter()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, retries=5,
                             max_in_flight_requests_per_connection=1, request_timeout_ms=15000)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in zip(keys, lines)]
        producer.flush(timeout=120)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(timeout=5)
    return time.perf_counter() - t0


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABORWATCH_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# --------------------------------------------------------------------------- 1. bare agent


def measure_bare(children: Children, bootstrap: str, lines: list[bytes], keys: list[bytes],
                 partitions: int, workdir: Path) -> dict:
    from streams.broker import ensure_topics

    topic = f"bench-bare-{uuid.uuid4().hex[:8]}.signals"
    ensure_topics(bootstrap, {topic: partitions})
    seconds = preload(bootstrap, topic, lines, keys)
    say(f"bare agent: {len(lines)} lines pre-loaded into {topic} in {seconds:.1f}s; starting the agent")
    log_path = workdir / "bare-agent.log"
    load_before = os.getloadavg()[0]
    proc = children.start(
        [PY, "-m", "benchmarks.bare_agent", "--bootstrap", bootstrap, "--topic", topic,
         "--n", str(len(lines)), "--partitions", str(partitions)],
        env=child_env(), stop_signal=signal.SIGTERM, stdout=subprocess.PIPE,
        stderr=open(log_path, "wb"),
    )
    result = None
    deadline = time.monotonic() + 60 + len(lines) / 500
    try:
        assert proc.stdout is not None
        fd, buffer = proc.stdout.fileno(), b""
        while result is None:
            if time.monotonic() > deadline:
                raise BenchError(f"bare agent did not count to {len(lines)} in time (see {log_path})")
            ready, _, _ = select.select([fd], [], [], 0.2)
            chunk = os.read(fd, 65536) if ready else b""
            if ready and not chunk:  # EOF: the agent is gone
                proc.wait(timeout=10)
                raise BenchError(f"bare agent exited {proc.returncode}: "
                                 f"{log_path.read_text(errors='replace')[-2000:]}")
            buffer += chunk
            for line in buffer.splitlines():
                if line.startswith(b"BENCH_RESULT "):
                    result = json.loads(line.removeprefix(b"BENCH_RESULT "))
    finally:
        children.stop(proc)
    result["topic"] = topic
    result["load_before"] = load_before
    return result


# --------------------------------------------------------------------------- 2-4. full pipeline


def _ledger_stamps(db) -> list[datetime]:
    from sqlalchemy import select

    from alerts.store.models import DeadLetter, SignalRecord

    with db.session() as session:
        stamps = list(session.scalars(select(SignalRecord.received_at)))
        stamps += list(session.scalars(select(DeadLetter.received_at)))
    return stamps


def _alert_changes(db) -> int:
    from sqlalchemy import func, select

    from alerts.store.models import AlertChange

    with db.session() as session:
        return session.scalar(select(func.count()).select_from(AlertChange)) or 0


def _latencies(db) -> list[tuple[str, str, datetime, datetime]]:
    """(enterprise_id, signal_id, received_at, recorded_at) of every stored alert change."""
    from sqlalchemy import and_, select

    from alerts.store.models import Alert, AlertChange, SignalRecord

    with db.session() as session:
        rows = session.execute(
            select(Alert.enterprise_id, AlertChange.triggered_by, SignalRecord.received_at, AlertChange.recorded_at)
            .join(Alert, Alert.alert_id == AlertChange.alert_id)
            .join(SignalRecord, and_(SignalRecord.enterprise_id == Alert.enterprise_id,
                                     SignalRecord.signal_id == AlertChange.triggered_by))
        ).all()
    return [tuple(r) for r in rows]


def percentiles(values: list[float]) -> dict:
    import numpy as np

    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=float)
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


class Profiler:
    """py-spy attached to the worker for the backlog phase (--profile)."""

    def __init__(self, children: Children, out: str | None):
        self.children, self.out, self.proc = children, out, None

    def start(self, pid: int) -> None:
        if not self.out:
            return
        exe = shutil.which("py-spy", path=f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        if exe is None:
            say("--profile: py-spy not found (.venv/bin/pip install py-spy); not profiling")
            return
        fmt = "speedscope" if self.out.endswith(".json") else ("raw" if self.out.endswith(".txt") else "flamegraph")
        self.proc = self.children.start([exe, "record", "--nonblocking", "-r", "100", "-f", fmt, "-o", self.out,
                                         "--pid", str(pid)], stop_signal=signal.SIGINT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        say(f"py-spy recording the worker (pid {pid}) into {self.out}")

    def stop(self) -> None:
        if self.proc is not None:
            self.children.stop(self.proc, timeout=30)
            self.proc = None
            say(f"py-spy profile written to {self.out}")


def measure_full(children: Children, bootstrap: str, world_dir: Path, lines: list[bytes], keys: list[bytes],
                 ids: list[tuple[str, str]], n: int, rate: float, partitions: int, batch_size: int,
                 batch_within: float, plan: dict, workdir: Path, profile: str | None) -> dict:
    from alerts.store.db import Database
    from alerts.store.repo import counts
    from streams.broker import ensure_topics

    tag = uuid.uuid4().hex[:8]
    home = workdir / f"full-{tag}"
    home.mkdir(parents=True)
    database_url = f"sqlite:///{home / 'laborwatch.db'}"
    prefix = f"bench-full-{tag}"
    env = child_env(
        LABORWATCH_HOME=str(home), LABORWATCH_DATABASE_URL=database_url,
        LABORWATCH_BROKER=f"kafka://{bootstrap}", LABORWATCH_BROKER_FLAVOR="tansu",
        LABORWATCH_TOPIC_PREFIX=prefix, LABORWATCH_APP_ID=prefix, LABORWATCH_PARTITIONS=str(partitions),
        LABORWATCH_BATCH_SIZE=str(batch_size), LABORWATCH_BATCH_WITHIN=str(batch_within),
        LABORWATCH_METRICS_PORT="0",
    )
    topic = f"{prefix}.signals"
    ensure_topics(bootstrap, {topic: partitions})
    seconds = preload(bootstrap, topic, lines[:n], keys[:n])
    say(f"full pipeline: {n} lines pre-loaded into {topic} in {seconds:.1f}s")
    imported = subprocess.run([PY, "-m", "laborwatch", "enterprises", "import", str(world_dir / "enterprises.csv")],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    if imported.returncode != 0:
        raise BenchError(f"enterprises import failed: {imported.stderr.strip()[-1000:]}")
    say(f"full pipeline: enterprises import: {imported.stdout.strip()}")

    log_path = home / "run-output.log"
    load_before = os.getloadavg()[0]
    proc = children.start([PY, "-m", "laborwatch", "run", "--no-simulate"], env=env, stop_signal=signal.SIGINT,
                          stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)

    def output() -> str:
        return log_path.read_text(errors="replace") if log_path.exists() else ""

    def alive() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"laborwatch run exited {proc.returncode}: {output()[-3000:]}")
        return True

    profiler = Profiler(children, profile)
    db = None
    try:
        wait_until(lambda: alive() and (home / "run.json").exists(), 60, "laborwatch run to start")
        profiler.start(proc.pid)
        # "... scoring with VERSION (yellow 0.17)": the version is the first word.
        scorer = wait_until(lambda: alive() and next((line.rsplit("scoring with ", 1)[1].split()[0]
                                                      for line in output().splitlines() if "scoring with " in line),
                                                     None), 30, "the worker to name its scorer")
        if scorer != plan["scorer"]:
            raise BenchError(f"the worker scores with {scorer} but the backtest that predicts its alerts used "
                             f"{plan['scorer']} (was a model promoted meanwhile?); run the benchmark again")
        say(f"full pipeline: `laborwatch run --no-simulate` started (pid {proc.pid}); waiting for {n} signals")
        db = Database(database_url, run_migrations=False)

        def done(target: int) -> Callable[[], object]:
            def check():
                alive()
                c = counts(db)
                return (c.accepted + c.rejected) >= target and c
            return check

        t_start = time.monotonic()
        c = wait_until(done(n), 120 + n / 200, f"{n} signals in the ledger", interval=0.1)
        observed_done = datetime.now(timezone.utc)
        profiler.stop()
        stamps = sorted(_ledger_stamps(db))
        first, last = stamps[0], stamps[-1]
        span = (last - first).total_seconds()
        batches: dict[datetime, int] = {}
        for s in stamps:
            batches[s] = batches.get(s, 0) + 1
        last_batch = batches[last]
        to_done = (observed_done - first).total_seconds()
        full = {
            "signals": n, "accepted": c.accepted, "rejected": c.rejected,
            "batch_size": batch_size, "batch_within": batch_within, "partitions": partitions,
            "batches": len(batches), "mean_batch": n / len(batches),
            "seconds_first_to_last_batch": span,
            "per_second": n / span if span > 0 else None,
            # the last batch's own processing falls after its stamp: leaving it out is exact
            "per_second_excluding_last_batch": (n - last_batch) / span if span > 0 else None,
            "seconds_first_batch_to_all_stored": to_done,
            "per_second_to_all_stored": n / to_done if to_done > 0 else None,
            "seconds_waiting_from_run_json": time.monotonic() - t_start,
            "scorer": scorer,
            "topic_prefix": prefix,
            "load_before": load_before,
        }
        say(f"full pipeline: {n} signals in {span:.2f}s (first to last batch), {len(batches)} batches")
        full["stages_us_per_signal"] = _stage_costs(home / "run.json", n)

        backlog_alerts = plan["backlog_alerts"]
        wait_until(lambda: alive() and _alert_changes(db) >= backlog_alerts, 120,
                   f"{backlog_alerts} alert changes of the backlog", interval=0.1)
        full["latency_backlog"] = percentiles([(rec - rcv).total_seconds() for *_, rcv, rec in _latencies(db)])
        full["alerts_backlog"] = backlog_alerts

        (g0, g1), (p0, p1) = plan["gap"], plan["paced"]
        if p1 > p0:
            if g1 > g0:
                say(f"paced: first feeding lines {g0}..{g1} at full speed and waiting for the pipeline to catch up")
                preload(bootstrap, topic, lines[g0:g1], keys[g0:g1])
                wait_until(done(g1), 60 + (g1 - g0) / 200, f"{g1} signals in the ledger", interval=0.1)
                wait_until(lambda: alive() and _alert_changes(db) >= plan["gap_alerts"], 60,
                           f"{plan['gap_alerts']} alert changes", interval=0.1)
            full["paced"] = _paced(bootstrap, topic, lines[p0:p1], keys[p0:p1], ids[p0:p1],
                                   rate, db, p1, plan["total_alerts"], alive, done)
            full["paced"]["lines"] = [p0, p1]
    finally:
        profiler.stop()
        if db is not None:
            db.dispose()
        rc = children.stop(proc, timeout=30)
        if rc not in (0, None, -signal.SIGINT):
            say(f"laborwatch run exited {rc}; tail of its output:\n{output()[-1500:]}")
    return full


def _stage_costs(run_json: Path, n: int) -> dict[str, float]:
    """Microseconds per signal the agent spent in each stage (laborwatch_stream_stage_seconds,
    read from the worker's own /metrics), for the backlog just consumed."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    url = json.loads(run_json.read_text())["metrics_url"]
    with urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        sample.labels["stage"]: sample.value / n * 1e6
        for family in text_string_to_metric_families(text) if family.name == "laborwatch_stream_stage_seconds"
        for sample in family.samples if sample.name.endswith("_total")
    }


def _paced(bootstrap, topic, lines, keys, ids, rate, db, target, total_alerts, alive, done) -> dict:
    """Produce ``lines`` at ``rate``/s into the caught-up pipeline; latency of the alerts they raise."""
    from kafka import KafkaProducer

    say(f"paced: {len(lines)} signals at {rate:g}/s into the caught-up pipeline")
    produced_at: dict[tuple[str, str], float] = {}
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0,
                             max_in_flight_requests_per_connection=1)
    t0 = time.monotonic()
    try:
        for i, (line, key, ident) in enumerate(zip(lines, keys, ids)):
            due = t0 + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            produced_at[ident] = time.time()
            producer.send(topic, key=key, value=line)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=5)
    actual_rate = len(lines) / (time.monotonic() - t0)
    wait_until(done(target), 60, f"{target} signals in the ledger (paced)", interval=0.1)
    wait_until(lambda: alive() and _alert_changes(db) >= total_alerts, 60,
               f"{total_alerts} alert changes (paced)", interval=0.1)
    arrival, end_to_end = [], []
    for eid, sid, rcv, rec in _latencies(db):
        t = produced_at.get((eid, sid))
        if t is None:
            continue
        arrival.append((rec - rcv).total_seconds())
        end_to_end.append(rec.timestamp() - t)
    return {"signals": len(lines), "rate_asked": rate, "rate_produced": actual_rate,
            "latency": percentiles(arrival), "latency_from_produce": percentiles(end_to_end)}


# --------------------------------------------------------------------------- 5. scoring cost


class CollectingScorer:
    """Wraps the run's scorer in the backtest and keeps every feature row it is asked to score."""

    def __init__(self, inner):
        self.inner = inner
        self.version = inner.version
        self.rows: list[dict] = []

    def score(self, rows):
        self.rows.extend(rows)
        return self.inner.score(rows)


def time_scorer(scorer, sample: list[dict], single_budget: float = 10.0, repeats: int = 5) -> dict:
    scorer.score(sample[:50])
    scorer.score([sample[0]])
    batch: list[float] = []
    while len(batch) < repeats and (not batch or sum(batch) < 3.0):
        t0 = time.perf_counter()
        scorer.score(sample)
        batch.append(time.perf_counter() - t0)
    batch_us = statistics.median(batch) / len(sample) * 1e6
    done = 0
    t0 = time.perf_counter()
    for row in sample:
        scorer.score([row])
        done += 1
        if time.perf_counter() - t0 > single_budget:
            break
    single_us = (time.perf_counter() - t0) / done * 1e6
    return {"rows": len(sample), "single_rows_timed": done, "batch_us_per_row": batch_us,
            "single_us_per_row": single_us, "single_over_batch": single_us / batch_us}


def measure_scoring(rows: list[dict], configs, promoted=None, sample_size: int = 1000, seed: int = 0) -> dict:
    """Per-row cost of ModelScorer/RulesScorer.score, one batched call vs one call per row.

    Models are timed twice: with scikit-learn's default native thread pools (what the worker runs
    with: OpenMP for HistGradientBoosting, OpenBLAS) and limited to one thread. On a 2-core
    machine whose other core is busy (the broker, another process) the default OpenMP pool can be
    far slower than one thread, so both are shown."""
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline as SkPipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_info, threadpool_limits

    from models.features import FEATURE_NAMES
    from models.registry import ModelCard
    from models.scoring import ModelScorer, RulesScorer

    rng = np.random.default_rng(seed)
    rules = RulesScorer(configs.rules)
    X = np.array([[row[name] for name in FEATURE_NAMES] for row in rows], dtype=float)
    # Synthetic, noisy labels drawn from the rules' score: what is timed does not depend on
    # label quality, and the noise keeps the trees from being trivially shallow.
    p_rules = np.array([s.score for s in rules.score(rows)])
    y = (rng.random(len(rows)) < 0.02 + 0.8 * p_rules).astype(int)
    order = rng.permutation(len(rows))
    fit, cal = order[: len(rows) // 2], order[len(rows) // 2:]
    say(f"scoring: fitting 2 models on {len(fit)} real feature rows ({int(y[fit].sum())} positive labels, "
        f"synthetic), calibrated on {len(cal)} more")
    # The production candidates' shapes (models/train.py): scaled logistic regression, and
    # gradient-boosted trees of 200 iterations without early stopping.
    estimators = {
        "LogisticRegression": SkPipeline([("scale", StandardScaler()),
                                          ("model", LogisticRegression(C=1.0, max_iter=5000, random_state=seed))]),
        "HistGradientBoosting": HistGradientBoostingClassifier(learning_rate=0.1, max_leaf_nodes=15, max_iter=200,
                                                               min_samples_leaf=20, early_stopping=False,
                                                               random_state=seed),
    }
    blue = configs.levels.thresholds.blue
    sample_idx = rng.choice(len(rows), size=min(sample_size, len(rows)), replace=False)
    sample = [rows[i] for i in sample_idx]
    pools = {f"{p['internal_api']}": p["num_threads"] for p in threadpool_info()}
    results: dict = {"fit_rows": int(len(fit)), "explain_above": blue, "default_thread_pools": pools}
    results["rules"] = {"version": rules.version, **time_scorer(rules, sample)}
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for name, est in estimators.items():
        t0 = time.perf_counter()
        with threadpool_limits(1):  # steady fit times on a shared machine; not what is measured
            est.fit(X[fit], y[fit])
            calibrated = CalibratedClassifierCV(FrozenEstimator(est), method="sigmoid").fit(X[cal], y[cal])
        fit_s = time.perf_counter() - t0
        card = ModelCard(version=f"bench-{name.lower()}", model_class=name, params={},
                         feature_names=list(FEATURE_NAMES), horizon_days=60, data_window=[], data_hash="bench",
                         seed=seed, created_at=now, calibration="sigmoid")
        scorer = ModelScorer(calibrated, card, explain_above=blue)
        flagged = float((calibrated.predict_proba(X[sample_idx])[:, 1] >= blue).mean())
        say(f"scoring: timing {name} (fitted in {fit_s:.1f}s, {flagged:.0%} of the sample explained)")
        common = {"version": card.version, "fit_seconds": fit_s, "flagged_share": flagged}
        results[name] = {**common, "threads": "default", "load_before": os.getloadavg()[0],
                         **time_scorer(scorer, sample)}
        with threadpool_limits(1):
            results[f"{name} 1 thread"] = {**common, "threads": 1, **time_scorer(scorer, sample)}
    if promoted is not None:  # the model `run` scores with (the promoted or shipped one), as loaded
        flagged = float((promoted.estimator.predict_proba(X[sample_idx])[:, 1] >= promoted.explain_above).mean())
        say(f"scoring: timing the promoted model {promoted.version} ({promoted.card.model_class})")
        common = {"version": promoted.version, "model_class": promoted.card.model_class, "flagged_share": flagged}
        results["promoted"] = {**common, "threads": "default", **time_scorer(promoted, sample)}
        with threadpool_limits(1):
            results["promoted 1 thread"] = {**common, "threads": 1, **time_scorer(promoted, sample)}
    return results


# --------------------------------------------------------------------------- report


def _f(value, fmt: str = ",.0f", missing: str = "n/a") -> str:
    return missing if value is None else format(value, fmt)


def _lat(p: dict) -> str:
    if not p or not p.get("n"):
        return "no alerts"
    return (f"p50 {p['p50'] * 1000:,.0f} ms  p90 {p['p90'] * 1000:,.0f} ms  p99 {p['p99'] * 1000:,.0f} ms  "
            f"max {p['max'] * 1000:,.0f} ms  (n={p['n']})")


def _stage_lines(full: dict, bare: dict) -> list[str]:
    """Where a signal's time goes in the full pipeline, next to a bare agent's whole cost."""
    stages = full.get("stages_us_per_signal")
    if not stages or not full.get("per_second") or not bare.get("per_second"):
        return []
    total = 1e6 / full["per_second"]
    rest = total - sum(stages.values())
    parts = ", ".join(f"{name} {stages[name]:.0f}" for name in ("pipeline", "publish", "store", "checkpoint")
                      if name in stages)
    return [f"  per signal (us): {total:.0f} in all = {parts}, Faust and the rest {rest:.0f}; "
            f"a bare agent's whole cost {1e6 / bare['per_second']:.0f}"]


def report(r: dict, json_path: Path = LAST_RUN) -> str:
    bare, full, ratio = r["bare"], r["full"], r["ratio_full_over_bare"]
    w = r["world"]
    out = [
        "",
        "=" * 100,
        f"LaborWatch pipeline benchmark  {r['started_at']}  ({os.cpu_count()} CPUs, embedded Tansu broker)",
        f"data: {r['signals']} signal lines of a simulated world ({w['firms']} firms, {w['months']} months, "
        f"seed {w['seed']}); {full['partitions']} partitions; batch size {full['batch_size']} "
        f"(within {full['batch_within']:g}s); scorer {full['scorer']}",
        f"machine: 1-min load average {r['load_at_start']:.2f} at the start, {bare['load_before']:.2f} before the bare "
        f"agent, {full['load_before']:.2f} before the pipeline (other processes on these 2 cores skew every figure)",
        "-" * 100,
        "THROUGHPUT (topic pre-loaded before the consumer starts: consumption only)",
        f"  bare Faust agent (no work per event)   {_f(bare['per_second']):>8} signals/s   "
        f"first->N-th event {bare['seconds_first_to_last']:.2f}s, timed inside the agent",
        f"    the same, after the pipeline         {_f(r['bare_after']['per_second']):>8} signals/s   "
        f"(it varies from run to run: both are shown)",
        f"  full pipeline (ledger received_at)     {_f(full['per_second']):>8} signals/s   "
        f"N / (last - first batch stamp) = {full['signals']} / {full['seconds_first_to_last_batch']:.2f}s, "
        f"{full['batches']} batches (mean {full['mean_batch']:.0f})",
        f"    excluding the last batch             {_f(full['per_second_excluding_last_batch']):>8} signals/s",
        f"    first batch -> all N stored (polled) {_f(full['per_second_to_all_stored']):>8} signals/s   "
        f"{full['seconds_first_batch_to_all_stored']:.2f}s wall",
        f"  RATIO full / bare                      {ratio:8.2f}            target >= 0.8: "
        f"{'MET' if ratio >= 0.8 else 'NOT MET'}   ({r['ratio_full_over_bare_after']:.2f} against the bare run after)",
        *_stage_lines(full, bare),
        "-" * 100,
        "SIGNAL-TO-ALERT LATENCY  AlertChange.recorded_at - received_at of the triggering signal:",
        "  from the batch's arrival at the worker (received_at, stamped when the agent takes the batch) to the",
        "  alert stored after the alerts topic, route-alerts, the queue topics and store-alerts",
        f"  backlog run ({full['signals']} pre-loaded)    {_lat(full['latency_backlog'])}",
    ]
    paced = full.get("paced")
    if paced:
        out += [
            f"  paced, caught up ({paced['signals']} at {paced['rate_produced']:.0f}/s)   {_lat(paced['latency'])}",
            f"    (lines {paced['lines'][0]}..{paced['lines'][1]} of the world: the {paced['signals']} after the first "
            f"{full['signals']} with the most alerts, the lines between fed and drained first)",
            f"    same alerts, from produce time       {_lat(paced['latency_from_produce'])}",
        ]
    s = r["scoring"]
    out += [
        "-" * 100,
        f"SCORING COST PER ROW  (score(1000 rows) once vs score([row]) x 1000; real feature rows; "
        f"reasons computed at p >= {s['explain_above']:g})",
        f"  {'scorer':<52} {'explained':>9} {'batched':>11} {'single-row':>13} {'single/batched':>15}",
    ]
    pools = ", ".join(f"{k} {v}" for k, v in s.get("default_thread_pools", {}).items())
    for key, label in (("rules", "RulesScorer"),
                       ("LogisticRegression", f"Calibrated(Frozen(Scaler+LogReg)), default threads"),
                       ("LogisticRegression 1 thread", "Calibrated(Frozen(Scaler+LogReg)), 1 thread"),
                       ("HistGradientBoosting", "Calibrated(Frozen(HistGradientBoosting)), default thr."),
                       ("HistGradientBoosting 1 thread", "Calibrated(Frozen(HistGradientBoosting)), 1 thread"),
                       ("promoted", "promoted model {v}, default threads"),
                       ("promoted 1 thread", "promoted model {v}, 1 thread")):
        t = s.get(key)
        if t is None:
            continue
        label = label.format(v=t.get("version"))
        explained = f"{t['flagged_share']:.0%}" if "flagged_share" in t else "-"
        partial = f"  [only {t['single_rows_timed']} single calls in the time budget]" \
            if t["single_rows_timed"] < t["rows"] else ""
        out.append(f"  {label:<52} {explained:>9} {t['batch_us_per_row']:>8,.1f} us {t['single_us_per_row']:>10,.1f} us"
                   f" {t['single_over_batch']:>14,.0f}x{partial}")
    out.append(f"  (default native thread pools: {pools}; 'explained': rows at or above the blue threshold, which "
               "get a second, batched predict_proba for their reasons)")
    out += ["=" * 100, f"figures as JSON: {_shown(json_path)}  (whole run {r['seconds_total']:.0f}s)", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Throughput, alert latency and scoring cost of the live path.")
    parser.add_argument("--signals", type=int, default=20000, help="signal lines per throughput measurement")
    parser.add_argument("--paced", type=int, default=2000, help="signals of the paced latency run (0: skip it)")
    parser.add_argument("--rate", type=float, default=500.0, help="signals per second of the paced run")
    parser.add_argument("--firms", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--partitions", type=int, default=int(os.environ.get("LABORWATCH_PARTITIONS", 4)))
    parser.add_argument("--batch-size", type=int, default=int(os.environ.get("LABORWATCH_BATCH_SIZE", 500)))
    parser.add_argument("--batch-within", type=float, default=float(os.environ.get("LABORWATCH_BATCH_WITHIN", 0.2)))
    parser.add_argument("--profile", metavar="OUT", default=None,
                        help="record the worker with py-spy during the backlog (.svg flamegraph, .json speedscope, "
                             ".txt collapsed stacks)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, databases)")
    parser.add_argument("--json", type=Path, default=LAST_RUN, metavar="PATH",
                        help=f"where the figures go as JSON (default {LAST_RUN.relative_to(REPO)})")
    args = parser.parse_args(argv)
    if args.signals < 100:
        parser.error("--signals must be at least 100")

    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when started in the background
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_at_start = os.getloadavg()[0]
    children = Children()
    broker = None
    workdir = Path(tempfile.mkdtemp(prefix="laborwatch-bench-"))
    try:
        from config.files import load_configs
        from config.settings import CONFIG_DIR
        from models.registry import scorer_for
        from streams.backtest import run_backtest
        from streams.broker import EmbeddedBroker
        from streams.ingest import split_lines

        n, paced = args.signals, max(0, args.paced)
        # The paced run takes the P lines with the most alerts among those that follow the first N
        # closely (a gap of at most 4P lines, fed at full speed and drained before pacing): alerts
        # are sparse (a few per thousand signals), and latency needs alerts to measure.
        gap_max = 4 * paced
        world_dir = workdir / "world"
        world = make_world(world_dir, args.firms, n + gap_max + paced, args.seed)
        lines = split_lines((world_dir / "signals.jsonl").read_bytes())[: n + gap_max + paced]
        parsed = [json.loads(line) for line in lines]
        keys = [p["enterprise_id"].encode() for p in parsed]
        ids = [(p["enterprise_id"], p["signal_id"]) for p in parsed]
        del parsed
        say(f"world: {world['firms']} firms, {world['months']} months, {world['signals']} signals "
            f"(using up to {len(lines)})")

        # What the stream must raise (backtest = stream, a tested property), and real feature rows.
        configs = load_configs(CONFIG_DIR)  # the children's: their LABORWATCH_* settings are the defaults
        subset = workdir / "signals-subset.jsonl"
        subset.write_bytes(b"\n".join(lines) + b"\n")
        run_scorer = scorer_for(workdir / "no-models", configs)
        collecting = CollectingScorer(run_scorer)
        out = io.StringIO()
        t0 = time.perf_counter()
        bt = run_backtest(configs, world_dir / "enterprises.csv", subset, out, scorer=collecting)
        position = {ident: i for i, ident in enumerate(ids)}
        triggers = sorted(position[(a["enterprise_id"], a["triggered_by"])]
                          for a in map(json.loads, out.getvalue().splitlines()))
        say(f"backtest ({run_scorer.version}): {len(bt.lines)} lines, {bt.accepted} accepted, "
            f"{sum(bt.rejected.values())} rejected, {len(triggers)} alert changes in {time.perf_counter() - t0:.1f}s")
        start = n
        if paced:
            start = max(range(n, n + gap_max + 1),
                        key=lambda s: (bisect.bisect_left(triggers, s + paced) - bisect.bisect_left(triggers, s), -s))
        plan = {
            "scorer": run_scorer.version,
            "backlog_alerts": bisect.bisect_left(triggers, n),
            "gap": (n, start), "gap_alerts": bisect.bisect_left(triggers, start),
            "paced": (start, start + paced), "total_alerts": bisect.bisect_left(triggers, start + paced),
        }
        say(f"plan: {plan['backlog_alerts']} alert changes expected in the first {n} lines; paced run on lines "
            f"{start}..{start + paced} ({plan['total_alerts'] - plan['gap_alerts']} alert changes expected)")

        broker = EmbeddedBroker(workdir / "broker").start()
        say(f"broker: embedded Tansu at {broker.bootstrap} (pid {broker.pid})")

        bare = measure_bare(children, broker.bootstrap, lines[:n], keys[:n], args.partitions, workdir)
        say(f"bare agent: {bare['per_second']:,.0f} signals/s")
        full = measure_full(children, broker.bootstrap, world_dir, lines, keys, ids, n, args.rate,
                            args.partitions, args.batch_size, args.batch_within, plan, workdir, args.profile)
        # Again after the pipeline, on the same broker: the bare figure moves from run to run
        # (near 82 or near 55 us an event here), and one ratio alone hides by how much.
        bare_after = measure_bare(children, broker.bootstrap, lines[:n], keys[:n], args.partitions, workdir)
        say(f"bare agent, again: {bare_after['per_second']:,.0f} signals/s")
        broker.stop()
        broker = None

        scoring = measure_scoring(collecting.rows, configs,
                                  promoted=run_scorer if hasattr(run_scorer, "estimator") else None)
        result = {
            "started_at": started_at,
            "signals": n, "world": world, "cpus": os.cpu_count(), "load_at_start": load_at_start,
            "bare": bare, "full": full, "bare_after": bare_after,
            "ratio_full_over_bare": full["per_second"] / bare["per_second"],
            "ratio_full_over_bare_after": full["per_second"] / bare_after["per_second"],
            "target_ratio": 0.8,
            "scoring": scoring,
            "seconds_total": time.monotonic() - started,
        }
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(report(result, args.json), flush=True)
        return 0
    except KeyboardInterrupt:
        say("interrupted: stopping the children and the broker")
        return 130
    except BenchError as exc:
        say(f"failed: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        children.stop_all()
        if broker is not None:
            broker.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
