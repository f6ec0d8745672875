"""Promotion reaches a running worker through the model-updates topic: it scores with the new
version without a restart, every alert names the version that scored it, and a version that
cannot load is refused while the current one keeps serving."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import select

from alerts.store.db import Database
from alerts.store.models import AlertChange
from models.features import FEATURE_NAMES, NEUTRAL
from models.registry import ModelRegistry
from streams.ingest import split_lines
from tests.support import (SAMPLES, RunningPipeline, base_env, cli, metric_sums, wait_for_verdicts,
                           wait_until)

pytestmark = pytest.mark.broker


def _tiny_model(registry: ModelRegistry, seed: int):
    """A real, fitted and registered model: risk rises with overdue wages and complaints."""
    rng = np.random.default_rng(seed)
    X = np.tile([NEUTRAL[n] for n in FEATURE_NAMES], (600, 1))
    overdue, complaints = FEATURE_NAMES.index("wage_days_overdue_max"), FEATURE_NAMES.index("complaints_count_90d")
    X[:, overdue] = rng.integers(0, 90, 600)
    X[:, complaints] = rng.integers(0, 4, 600)
    y = ((X[:, overdue] > 20) | (X[:, complaints] >= 2)).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0)).fit(X, y)
    return registry.register(
        model, model_class="LogisticRegression", params={"C": 1.0}, feature_names=list(FEATURE_NAMES),
        horizon_days=60, data_window=["2024-01-01", "2024-12-31"], data_hash=f"synthetic-{seed}", seed=seed,
        metrics={}, calibration="none", levels={"blue": 0.2, "yellow": 0.25},
    )


def test_promotion_reaches_a_running_worker(tmp_path, shared_dir):
    registry = ModelRegistry(tmp_path / "models")
    card = _tiny_model(registry, seed=1)
    # A broken artifact under a version of its own: its card is fine, its model file is not.
    broken = tmp_path / "models" / "m-broken"
    shutil.copytree(tmp_path / "models" / card.version, broken)
    (broken / "model.skops").write_bytes(b"not a model")
    data = json.loads((broken / "card.json").read_text())
    (broken / "card.json").write_text(json.dumps({**data, "version": "m-broken"}))

    database_url = f"sqlite:///{tmp_path / 'lw.db'}"
    env = base_env(tmp_path / "home", database_url, LABORWATCH_MODEL_DIR=str(tmp_path / "models"))
    lines = split_lines((SAMPLES / "signals.jsonl").read_bytes())
    parts = [lines[:4000], lines[4000:7000], lines[7000:]]
    for i, part in enumerate(parts):
        (tmp_path / f"part{i}.jsonl").write_bytes(b"\n".join(part) + b"\n")

    default = registry.promoted() or "rules-v1"  # the shipped default model, if there is one
    run = RunningPipeline(tmp_path / "home", env, database_url).start()
    db = Database(database_url, run_migrations=False)
    try:
        cli(["enterprises", "import", str(SAMPLES / "enterprises.csv")], env)
        seen = 0
        for i, part in enumerate(parts):
            if i == 1:
                promoted = cli(["models", "promote", card.version], env)
                assert "running workers notified" in promoted.stdout
                # and to level its alerts by the promoted card's own yellow (yellow_from: model)
                wait_until(lambda: f"now scoring with model {card.version} (yellow 0.25)" in run.output(), timeout=30,
                           what="the worker to switch models")
                assert 'laborwatch_model_info{blue="0.2",version="%s",yellow="0.25"}' % card.version in _metrics(run)
            if i == 2:
                refused = cli(["models", "promote", "m-broken"], env, check=False)
                assert refused.returncode == 1 and "cannot be loaded" in refused.stderr
                # The same bad version straight onto the topic, as a faulty tool might send it.
                from kafka import KafkaProducer
                from streams.broker import discover_broker

                producer = KafkaProducer(bootstrap_servers=discover_broker(tmp_path / "home"))
                producer.send("laborwatch.model-updates", b'{"version": "m-broken"}').get(timeout=10)
                producer.close()
                wait_until(lambda: "model update refused" in run.output(), timeout=30, what="the refusal")
            cli(["ingest", str(tmp_path / f"part{i}.jsonl")], env)
            seen += len(parts[i])
            wait_for_verdicts(db, seen, timeout=90, what=f"part {i}")

        def versions_by_part():
            with db.session() as session:
                return session.execute(select(AlertChange.model_version, AlertChange.triggered_by)).all()

        wait_until(lambda: any(v == card.version for v, _ in versions_by_part()), timeout=30, what="model alerts")
        ids_in = [{sid for line in part if (sid := _signal_id(line))} for part in parts]
        by_version = {part: set() for part in range(3)}
        for version, signal_id in versions_by_part():
            for part, ids in enumerate(ids_in):
                if signal_id in ids:
                    by_version[part].add(version)
        assert by_version[0] <= {default}, "before promotion only the default scores"
        assert card.version in by_version[1] and default not in by_version[1]
        assert by_version[2] <= {card.version}, "the refused version never scored"
        assert "m-broken" not in run.output().split("now scoring with model")[-1].splitlines()[0]
    finally:
        db.dispose()
        assert run.stop() == 0, run.output()[-3000:]


def _signal_id(line: bytes) -> str | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value.get("signal_id") if isinstance(value, dict) else None


def _metrics(run: RunningPipeline) -> str:
    import urllib.request

    with urllib.request.urlopen(json.loads((run.home / "run.json").read_text())["metrics_url"], timeout=5) as r:
        return r.read().decode()


def _decisions(run: RunningPipeline) -> dict[tuple[str, str], float]:
    """laborwatch_alert_decisions_total summed by (role, model_version)."""
    return metric_sums(run, "laborwatch_alert_decisions_total", "role", "model_version")


def test_a_shadow_model_scores_beside_the_promoted_one_and_sends_nothing(tmp_path, shared_dir):
    """`models shadow VERSION`: a running worker scores every signal with VERSION too and counts
    what it would have raised, beside the promoted model's own count; every alert stored is still
    the promoted model's, one for each it decided. A version that cannot load is refused, and
    --off stops it."""
    registry = ModelRegistry(tmp_path / "models")
    card = _tiny_model(registry, seed=2)
    database_url = f"sqlite:///{tmp_path / 'lw.db'}"
    env = base_env(tmp_path / "home", database_url, LABORWATCH_MODEL_DIR=str(tmp_path / "models"))
    default = registry.promoted() or "rules-v1"
    run = RunningPipeline(tmp_path / "home", env, database_url).start()
    db = Database(database_url, run_migrations=False)
    try:
        cli(["enterprises", "import", str(SAMPLES / "enterprises.csv")], env)
        refused = cli(["models", "shadow", "m-nope"], env, check=False)
        assert refused.returncode == 1 and "not shadowed" in refused.stderr
        told = cli(["models", "shadow", card.version], env)
        assert "running workers notified" in told.stdout
        wait_until(lambda: f"shadow scoring with model {card.version} (yellow 0.25)" in run.output(), timeout=30,
                   what="the worker to start shadow scoring")
        assert 'laborwatch_shadow_model_info{blue="0.2",version="%s",yellow="0.25"}' % card.version in _metrics(run)

        cli(["ingest", str(SAMPLES / "signals.jsonl")], env)
        wait_for_verdicts(db, len(split_lines((SAMPLES / "signals.jsonl").read_bytes())), timeout=120)

        def stored_by_version():
            with db.session() as session:
                versions = session.execute(select(AlertChange.model_version)).scalars().all()
            return {v: versions.count(v) for v in set(versions)}

        wait_until(lambda: stored_by_version().get(default, 0) == _decisions(run).get(("promoted", default)),
                   timeout=60, what="every promoted alert stored")
        decided = _decisions(run)
        assert decided.get(("shadow", card.version), 0) > 0, decided
        assert set(stored_by_version()) == {default}, "the shadow's alerts are never sent"
        assert {role for role, _ in decided} == {"promoted", "shadow"}

        from kafka import KafkaProducer
        from streams.broker import discover_broker

        producer = KafkaProducer(bootstrap_servers=discover_broker(tmp_path / "home"))
        producer.send("laborwatch.model-updates", b'{"shadow": 42}').get(timeout=10)
        producer.close()
        wait_until(lambda: "shadow update refused" in run.output(), timeout=30, what="the refusal")
        cli(["models", "shadow", "--off"], env)
        wait_until(lambda: "shadow scoring stopped" in run.output(), timeout=30, what="the stop")
        assert 'laborwatch_shadow_model_info{blue="",version="",yellow=""}' in _metrics(run)
    finally:
        db.dispose()
        assert run.stop() == 0, run.output()[-3000:]
