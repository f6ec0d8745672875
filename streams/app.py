"""The Faust application: topics, the enterprise table, and the agents.

Agents are thin: decode, look up state, call ``streams.pipeline`` (pure code), forward. Side
effects happen only at the edges: topic sends and the store.

Flow:  signals ─► process ─► dead letters (topic + store)
                     │
                     └─► alerts ─► route ─► queue.<receiver> topics ─► store_alerts ─► store
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator

import faust
from faust import streams as faust_streams
from faust.types import EventT, StreamT
from sqlalchemy.exc import InterfaceError, OperationalError

from alerts.routing import Router
from alerts.store import repo
from alerts.store.db import Database
from config.files import Configs, Thresholds
from config.settings import Settings
from models.registry import ModelLoadError, scorer_for
from models.scoring import RulesScorer, Scorer
from streams.metrics import NO_SHADOW, STREAM_STAGES, Metrics
from streams.pipeline import EnterpriseRecord, Envelope, Outcome, Pipeline
from streams.validation import parse_timestamp

log = logging.getLogger("laborwatch.stream")


def topic_names(settings: Settings, router: Router) -> dict[str, int]:
    """Every topic the application uses, with its partition count (all keyed by enterprise id,
    but for model updates: one partition, read whole by every worker)."""
    names = ["signals", "deadletter", "alerts", "feedback"] + [f"queue.{r}" for r in router.receivers]
    topics = {settings.topic(name): settings.partitions for name in names}
    topics[settings.topic("model-updates")] = 1
    return topics


def _startup_scorer(settings: Settings, configs: Configs) -> Scorer:
    try:
        return scorer_for(settings.resolved_model_dir, configs)
    except ModelLoadError as exc:
        log.error("the promoted model cannot serve, scoring with the rules instead: %s", exc)
        return RulesScorer(configs.rules)


@dataclass
class Runtime:
    """What the agents need besides Faust: the store and the pure pipeline."""

    settings: Settings
    configs: Configs
    db: Database
    pipeline: Pipeline
    router: Router
    registry: repo.DbRegistry
    seen: repo.DbSeenSignals
    metrics: Metrics

    @classmethod
    def create(cls, settings: Settings, configs: Configs, db: Database, scorer: Scorer | None = None) -> "Runtime":
        metrics = Metrics()
        # Its scoring calls reach the metrics through the signal agent, once their batch is stored.
        pipeline = Pipeline(configs, scorer or _startup_scorer(settings, configs))
        metrics.model.info(model_info(pipeline))
        return cls(
            settings=settings,
            configs=configs,
            db=db,
            metrics=metrics,
            pipeline=pipeline,
            router=Router(configs.routing),
            registry=repo.DbRegistry(db),
            seen=repo.DbSeenSignals(db),
        )


def build_app(runtime: Runtime, broker_url: str, *, embedded_broker: bool,
              echo_model: Callable[[str], None] = lambda version: None,
              say: Callable[[str], None] = lambda line: None) -> faust.App:
    settings = runtime.settings
    tuning: dict = {}
    if embedded_broker:
        # NOTES.md: the default rebalance timeout makes the first join on Tansu take ~30 s;
        # and one record per producer batch keeps its wrong end offsets from cutting table
        # recovery short.
        tuning = dict(
            broker_rebalance_timeout=4,
            broker_session_timeout=6,
            broker_heartbeat_interval=1,
            producer_max_batch_size=64,
            producer_linger=0,
        )
    app = faust.App(
        settings.app_id,
        broker=broker_url,
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=str(settings.resolved_home / "faust"),  # not the working directory
        **tuning,
    )
    _no_streaming_before_seek(app)

    raw = dict(key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    signals = app.topic(settings.topic("signals"), key_type=bytes, value_type=bytes, **raw)
    deadletter = app.topic(settings.topic("deadletter"), key_serializer="raw", value_serializer="json",
                           partitions=settings.partitions)
    alerts = app.topic(settings.topic("alerts"), key_serializer="raw", value_serializer="json",
                       partitions=settings.partitions)
    queues = {
        name: app.topic(settings.topic(f"queue.{name}"), key_serializer="raw", value_serializer="json",
                        partitions=settings.partitions)
        for name in runtime.router.receivers
    }
    # Keys and values in Faust's default JSON: its changelog recovery decodes with the defaults
    # whatever schema the table declares.
    enterprises = app.Table("enterprise-state", default=None, partitions=settings.partitions)

    processed_offsets: dict = {}  # TopicPartition -> last offset taken into a batch

    # Decoded records, each beside the table value it was decoded from or last written as (None:
    # not in the table yet). The table is the commit point: an entry is used only while the table
    # still holds that very value (memory:// stores values as given, and recovery or a hand-over
    # puts new ones), so decoding, the incremental window sums the state keeps, and the changes
    # made since the last checkpoint survive from batch to batch.
    decoded: dict[str, tuple[dict | None, EnterpriseRecord]] = {}

    def load_record(enterprise_id: str) -> EnterpriseRecord | None:
        data = enterprises.get(enterprise_id)
        cached = decoded.get(enterprise_id)
        if cached is not None and cached[0] is data:
            return cached[1]
        if data is None:
            return None
        record = EnterpriseRecord.from_dict(data)
        decoded[enterprise_id] = (data, record)
        return record

    def write_record(enterprise_id: str, record: EnterpriseRecord, event: EventT) -> None:
        """Into the table (its changelog partition: ``event``'s), and kept decoded beside the value
        written."""
        with _as_current_event(event):
            data = enterprises[enterprise_id] = record.to_dict()
        decoded[enterprise_id] = (data, record)

    # Checkpoints. A batch's effects that leave the process (alerts, dead letters, the ledger)
    # are out before the batch ends; the records it changed are written to the table (one
    # changelog message per enterprise, however many of its signals came since) and the signals
    # acked (so that Faust may commit their offsets) together, every ``checkpoint_seconds``, when
    # a rebalance or a stop waits for the acks, and never in between: an offset is committed only
    # once the state it produced is in the table. A crash before a checkpoint replays the signals
    # since the last one, which the table does not know, and the alert store and ledger take
    # their effects once (revisions and signal ids).
    dirty: dict[str, EventT] = {}  # enterprise id -> the newest event that changed its record
    unacked: list[EventT] = []  # every signal event taken since the last checkpoint
    checkpointed = [time.monotonic()]
    replay_unacked = [False]  # a batch failed half-way: the next attempt redoes all since the checkpoint

    # Batches, checkpoints and the feedback agent change the same records, each awaiting sends and
    # the store in between: one at a time.
    records_lock = asyncio.Lock()

    @app.agent(signals, name="process-signals")
    async def process_signals(stream: StreamT) -> None:
        follow_checkpoints(stream)
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_within):
            async with records_lock:
                unacked.extend(events)
                try:
                    await _guarded(_process_batch_clean, events)
                except BaseException:
                    # The worker is stopping on a defect: nothing since the checkpoint may be
                    # acked. Let go of the events (Faust's wait for their acks ends when they
                    # are collected) so that the stop is not held up; a restart replays them.
                    unacked.clear()
                    dirty.clear()
                    decoded.clear()
                    raise
                if time.monotonic() - checkpointed[0] >= settings.checkpoint_seconds:
                    await _checkpoint(stream)

    checkpoints: list[asyncio.Task] = []

    def follow_checkpoints(stream: StreamT) -> None:
        """Checkpoint when the stream is idle, and at once when a rebalance or a stop waits for
        the acks (``stream_wait_empty``). A task of the loop, not a Faust timer: a stopping worker
        ends its timers before its consumer waits for the last acks."""

        async def follow() -> None:
            while True:
                await asyncio.sleep(0.05)
                waiting = app.rebalancing or app.should_stop
                if (unacked or dirty) and (waiting or time.monotonic() - checkpointed[0] >= settings.checkpoint_seconds):
                    async with records_lock:
                        await _checkpoint(stream)

        for task in checkpoints:
            task.cancel()  # the agent restarted: its old stream is gone
        checkpoints[:] = [asyncio.get_running_loop().create_task(follow(), name="laborwatch-checkpoints")]

    @app.on_before_shutdown.connect
    async def stop_following_checkpoints(sender: faust.App, **kwargs) -> None:
        """After the consumer's last wait for acks: nothing is left to checkpoint."""
        for task in checkpoints:
            task.cancel()

    async def _checkpoint(stream: StreamT) -> None:
        if replay_unacked[0]:
            return  # a failed batch waits for its retry: nothing since the checkpoint is settled
        started = time.perf_counter()
        for enterprise_id, event in dirty.items():
            write_record(enterprise_id, decoded[enterprise_id][1], event)
        dirty.clear()
        for event in unacked:
            await stream.ack(event)
        unacked.clear()
        checkpointed[0] = time.monotonic()
        stage_seconds["checkpoint"].inc(time.perf_counter() - started)

    async def _process_batch_clean(events: list[EventT]) -> None:
        todo = list(unacked) if replay_unacked[0] else events
        try:
            await _process_batch(todo, events)
        except BaseException:
            # The pipeline changed decoded records in place before the step that failed: the
            # retry starts again from the table, with every signal since the checkpoint, and
            # decides the shadow's alerts again as it does the promoted model's (those of the
            # failed attempt, never counted, go with its outcome).
            decoded.clear()
            dirty.clear()
            for shadow in runtime.pipeline.shadows:
                shadow.alerts.clear()
            replay_unacked[0] = True
            raise
        replay_unacked[0] = False

    feedback = app.topic(settings.topic("feedback"), key_serializer="raw", value_serializer="raw",
                         partitions=settings.partitions)

    @app.agent(feedback, name="close-alerts")
    async def close_alerts(stream: StreamT) -> None:
        """An inspector resolved an alert (the workbench publishes each outcome, keyed like the
        signals, so this agent owns the same enterprises): the enterprise's open alert of that
        category is closed in its record, and the next risk raises a new alert rather than
        escalating the resolved one. Redelivered or stale outcomes change nothing."""
        async for event in stream.events():
            try:
                message = json.loads(event.value)
                enterprise_id, alert_id = message["enterprise_id"], message["alert_id"]
            except (ValueError, KeyError, TypeError):
                log.error("feedback ignored: not an outcome message: %r", bytes(event.value or b"")[:200])
                continue
            async with records_lock:
                record = load_record(enterprise_id)
                category = record.close_alert(alert_id) if record is not None else None
                if category is None:
                    continue
                # Written now, with everything the record holds: its signals' effects are out
                # already, and this event is acked when the loop moves on.
                write_record(enterprise_id, record, event)
                dirty.pop(enterprise_id, None)
            runtime.metrics.closed_by_feedback.labels(category).inc()
            log.info("alert %s closed by feedback (%s)", alert_id, message.get("outcome"))

    async def _guarded(step, *args) -> None:
        """Run one batch to completion. Bad input never raises here (it becomes dead letters);
        what can is the infrastructure. A database that went away is waited for, batch intact;
        anything else is a defect, and the worker stops (non-zero) rather than skip a batch or
        go on with a dead agent: its offsets are uncommitted, so a restart replays the batch."""
        delay = 0.5
        while True:
            try:
                return await step(*args)
            except (OperationalError, InterfaceError) as exc:
                log.warning("store unavailable (%s); retrying the batch in %.1fs", str(exc).splitlines()[0], delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except Exception as exc:  # noqa: BLE001 - see the docstring
                log.critical("stream worker stopping on an unexpected error", exc_info=exc)
                app.laborwatch_failure = exc  # type: ignore[attr-defined]
                os.kill(os.getpid(), signal.SIGTERM)
                raise

    stage_seconds = {stage: runtime.metrics.stage_seconds.labels(stage) for stage in STREAM_STAGES}
    # The batch's scoring calls (rows, scores, seconds, days), observed by the metrics only once
    # the batch has gone through: an attempt that fails on the store is redone, and scores again.
    scored_calls: list[tuple] = []
    runtime.pipeline.on_scored = lambda *call: scored_calls.append(call)

    async def _process_batch(events: list[EventT], fresh: list[EventT]) -> None:
        """Process ``events``; ``fresh`` are those of them never processed before (all but
        after a failed attempt, when ``events`` are every signal since the checkpoint), the
        only ones the counters count."""
        started = time.perf_counter()
        received_at = datetime.now(timezone.utc)
        envelopes = [
            Envelope(
                raw=e.value if isinstance(e.value, bytes) else bytes(e.value or b""),
                topic=e.message.topic,
                partition=e.message.partition,
                offset=e.message.offset,
                received_at=received_at,
            )
            for e in events
        ]
        for event in events:
            processed_offsets[event.message.tp] = event.message.offset
        fresh_coords = None if fresh is events else {
            (e.message.topic, e.message.partition, e.message.offset) for e in fresh}
        scored_calls.clear()  # a failed attempt's
        outcome: Outcome = runtime.pipeline.process(
            envelopes, registry=runtime.registry, load_record=load_record, seen=runtime.seen,
            observe=None if fresh_coords is None else (lambda env: env.coords in fresh_coords),
        )
        shadows = list(runtime.pipeline.shadows)  # the ones that scored this batch, whatever comes meanwhile
        started = _lap(stage_seconds["pipeline"], started)
        # Effects in an order that survives a crash anywhere (see streams.pipeline): first what
        # leaves the process, delivered; then the store; the changed records wait for the next
        # checkpoint, the commit point.
        pending = []
        for alert in outcome.alerts:
            pending.append(await alerts.send(key=alert["enterprise_id"].encode(), value=alert))
        keys = {env.coords: event.key for event, env in zip(events, envelopes)}
        for letter in outcome.dead_letters:
            # Keyed like the input (its enterprise id, when the line had a readable one).
            key = keys[(letter["topic"], letter["partition"], letter["offset"])]
            pending.append(await deadletter.send(key=key, value=letter))
        if pending:
            await asyncio.gather(*pending)
        started = _lap(stage_seconds["publish"], started)
        raw = {env.coords: env.raw for env in envelopes}
        # On the loop, like the duplicate lookup in the pipeline: a batch's ledger rows are one
        # executemany of about 10 us a row. Handed to a thread, the same write took 5 times as
        # long (it fights the loop and Faust's consumer thread for the GIL) and cost the agent
        # about 40 us a signal in `make bench`, on SQLite and on PostgreSQL alike. An outage
        # raises at once (refused, or the connect timeout of alerts.store.db) and _guarded waits
        # it out asleep, so the loop never sits in a dead store; while a write waits, the group's
        # heartbeats go on from Faust's consumer thread (the drivers release the GIL meanwhile).
        repo.record_batch(runtime.db, outcome.accepted, outcome.dead_letters, raw)
        started = _lap(stage_seconds["store"], started)
        counted = _Counted(outcome, fresh_coords)
        runtime.metrics.count_outcome(counted.outcome)
        for call in scored_calls:
            runtime.metrics.observe_scoring(*call)
        scored_calls.clear()
        runtime.metrics.count_decisions("promoted", counted.alerts(outcome.alerts))
        for shadow in shadows:  # what a candidate would have sent: counted, never sent
            runtime.metrics.count_decisions("shadow", counted.alerts(shadow.alerts))
            shadow.alerts.clear()
        last_event = {}
        for event, env in zip(events, envelopes):
            last_event[env.coords] = event
        for accepted in outcome.accepted:
            dirty[accepted.signal["enterprise_id"]] = last_event[accepted.envelope.coords]
        for enterprise_id, record in outcome.records.items():
            if decoded.get(enterprise_id, (None, None))[1] is not record:
                decoded[enterprise_id] = (enterprises.get(enterprise_id), record)  # new, or reloaded
        for alert in outcome.alerts:
            log.info("alert %s %s %s (%s)", alert["alert_id"], alert["category"], alert["level"], alert["enterprise_id"])

    @app.agent(alerts, name="route-alerts")
    async def route_alerts(stream: StreamT) -> None:
        async for event in stream.events():
            alert = event.value
            routed = runtime.router.routed(alert)
            key = alert["enterprise_id"].encode()
            await _guarded(_deliver, key, routed)

    async def _deliver(key: bytes, routed: dict) -> None:
        sent = [await queues[d["receiver"]].send(key=key, value=routed) for d in routed["queues"]]
        await asyncio.gather(*sent)

    @app.agent(app.topic(*[t.get_topic_name() for t in queues.values()], key_serializer="raw",
                         value_serializer="json"), name="store-alerts")
    async def store_alerts(stream: StreamT) -> None:
        async for alert in stream:
            if await _guarded(asyncio.to_thread, repo.apply_alert, runtime.db, alert):
                _observe_stored(alert)

    def _observe_stored(alert: dict) -> None:
        m = runtime.metrics
        m.alerts_raised.labels(alert["level"], alert["category"], alert["queue"]).inc()
        now = datetime.now(timezone.utc).timestamp()
        m.event_lag.observe(max(0.0, now - parse_timestamp(alert["raised_at"]).timestamp()))
        if "received_at" in alert:
            m.arrival_lag.observe(max(0.0, now - parse_timestamp(alert["received_at"]).timestamp()))

    @app.timer(10.0)
    async def refresh_gauges() -> None:
        """Gauges read from the store and the consumer, not counted on the way."""
        m = runtime.metrics
        open_rows = await read_store("the open-alert gauges", repo.open_alerts_by_level_and_queue, runtime.db)
        late = await read_store("the past-SLA gauges", repo.alerts_past_sla, runtime.db, runtime.configs.sla) or {}
        for gauge, rows in ((m.open_alerts, open_rows), (m.past_sla, late.get("acknowledge")),
                            (m.past_on_site_sla, late.get("on_site"))):
            if rows is None:
                continue  # the store is away: keep the last figures
            gauge.clear()
            for (level, queue), n in rows.items():
                gauge.labels(level, queue).set(n)
        m.refresh_drift(getattr(getattr(runtime.pipeline.scorer, "card", None), "drift", {}))
        lag = 0
        for tp in app.consumer.assignment():
            if tp.topic == signals.get_topic_name() and tp in processed_offsets:
                high = app.consumer.highwater(tp)  # from fetch responses: right on Tansu too
                if high is not None:
                    lag += max(0, high - processed_offsets[tp] - 1)
        m.consumer_lag.labels(signals.get_topic_name()).set(lag)

    @app.task
    async def follow_model_updates() -> None:
        """Every worker reads every promotion (no consumer group: a broadcast), from the start of
        the topic, and scores with the newest version it can load; a version that fails to load
        is refused with one log line and the current one keeps serving."""
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            settings.topic("model-updates"), bootstrap_servers=broker_url.removeprefix("kafka://"),
            group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
        )
        await consumer.start()
        try:
            async for message in consumer:
                await _apply_model_update(message.value)
        finally:
            await consumer.stop()

    async def _apply_model_update(raw: bytes) -> None:
        try:
            message = json.loads(raw)
            if isinstance(message, dict) and "shadow" in message:
                return await _apply_shadow(message["shadow"])
            version = message["version"]
        except (ValueError, KeyError, TypeError):
            log.error("model update refused: not a {\"version\": ...} or {\"shadow\": ...} message: %r", raw[:200])
            return
        if version == runtime.pipeline.scorer.version:
            return
        try:
            scorer = await asyncio.to_thread(scorer_for, settings.resolved_model_dir, runtime.configs, version)
        except ModelLoadError as exc:
            log.error("model update refused, still scoring with %s: %s", runtime.pipeline.scorer.version, exc)
            return
        runtime.pipeline.scorer = scorer  # between batches: the agent awaits nothing while it scores
        runtime.metrics.model.info(model_info(runtime.pipeline))
        log.info("now scoring with model %s", version)  # the console line is echo_model's
        echo_model(version)

    async def _apply_shadow(version: str | None) -> None:
        """A model to score beside the promoted one (``laborwatch models shadow``): every signal
        is scored by both, and what the shadow would have raised is counted
        (laborwatch_alert_decisions, role "shadow"), never sent. None stops it. Its open alerts
        are kept in the enterprise records (``EnterpriseRecord.shadow_alerts``), so they outlive
        a restart or a hand-over; another version begins afresh, and after a stop each record
        forgets them with its next signal."""
        pipeline = runtime.pipeline
        if version is None:
            if pipeline.shadows:
                pipeline.shadows.clear()
                runtime.metrics.shadow_model.info(NO_SHADOW)
                log.info("shadow scoring stopped")
                say("laborwatch: shadow scoring stopped")
            return
        if not isinstance(version, str):
            log.error("shadow update refused: the version is not a string: %r", version)
            return
        if any(shadow.scorer.version == version for shadow in pipeline.shadows):
            return
        try:
            scorer = await asyncio.to_thread(scorer_for, settings.resolved_model_dir, runtime.configs, version)
        except ModelLoadError as exc:
            log.error("shadow update refused: %s", exc)
            return
        pipeline.shadows.clear()  # between batches, as a promotion
        shadow = pipeline.shadow(scorer)
        runtime.metrics.shadow_model.info(levels_info(version, shadow.thresholds))
        log.info("now scoring with model %s in shadow", version)
        say(f"laborwatch: shadow scoring with model {version} (yellow {shadow.thresholds.yellow:g}): "
            "its alerts are counted, not sent")

    app.laborwatch = dict(signals=signals, deadletter=deadletter, alerts=alerts, queues=queues,
                          enterprises=enterprises)  # type: ignore[attr-defined]
    return app


def model_info(pipeline: Pipeline) -> dict[str, str]:
    """laborwatch_model_info's labels: the scorer's version and the blue and yellow its alerts are
    levelled by (its card's, or config/levels.yaml's)."""
    return levels_info(pipeline.scorer.version, pipeline.thresholds)


def levels_info(version: str, t: Thresholds) -> dict[str, str]:
    """A scorer's version and its blue and yellow, as the labels of laborwatch_model_info and
    laborwatch_shadow_model_info."""
    return {"version": version, "blue": f"{t.blue:g}", "yellow": f"{t.yellow:g}"}


class _Counted:
    """What of a batch's outcome the counters count: all of it, or after a failed attempt only
    what the fresh events (their ``coords``) brought. A redone batch decides again on every
    signal since the checkpoint, and the earlier ones were counted when their own batch went
    through."""

    def __init__(self, outcome: Outcome, coords: set[tuple[str, int, int]] | None) -> None:
        if coords is None:
            self.outcome, self._signals = outcome, None
            return
        accepted = [a for a in outcome.accepted if a.envelope.coords in coords]
        letters = [d for d in outcome.dead_letters if (d["topic"], d["partition"], d["offset"]) in coords]
        self.outcome = Outcome(dead_letters=letters, accepted=accepted)
        self._signals = {(a.signal["enterprise_id"], a.signal["signal_id"]) for a in accepted}

    def alerts(self, alerts: list[dict]) -> list[dict]:
        """Those of ``alerts`` triggered by a counted signal."""
        if self._signals is None:
            return alerts
        return [a for a in alerts if (a["enterprise_id"], a["triggered_by"]) in self._signals]


def _no_streaming_before_seek(app: faust.App) -> None:
    """Stop the flow of stream events while Faust seeks the new assignment to its committed offsets.

    Faust 0.15.3 (tables/recovery.py) resumes the flow to read changelogs (``need_recovery``) or
    standbys and leaves it running; ``on_recovery_completed`` then resumes the stream partitions
    and awaits ``perform_seek()`` (an OffsetFetch round trip in the consumer thread) before its
    ``flow_control.resume()``. In that window the fetcher already delivers the new partitions from
    the committed offsets: the first events reach the agents, and then (1) ``perform_seek`` puts
    the consumer's read offsets back to the committed ones, so the next fetched record looks like
    a jump and ``_drain_messages`` records the skipped range as a gap that counts as acked, and
    (2) ``flow_control.resume()`` clears the agents' queues, dropping the events not yet taken.
    Dropped events are then committed over through the gap: lost, silently. Measured in the
    scale-out test: after a hand-over, the first ~34 records of every partition were delivered
    before the seek, 100 of them were processed and the 36 left in the queue never were, though
    committed. Upstream faust-streaming #216/#217 fixed the same order in ``_resume_streams``.

    ``on_rebalance_complete`` is the signal ``on_recovery_completed`` (and ``_resume_streams``)
    sends first: stopping the flow there, as Faust's own revocation does (stop, suspend, clear),
    keeps the fetcher idle until after the seek; those methods then resume it themselves. Events
    already taken into a batch are not affected and are processed and acked as usual.
    """

    @app.on_rebalance_complete.connect
    async def stop_flow_until_seek(sender: faust.App, **kwargs) -> None:
        sender.consumer.stop_flow()
        sender.flow_control.suspend()
        sender.flow_control.clear()


def _lap(counter, started: float) -> float:
    """Add the time since ``started`` to ``counter``; the time now."""
    now = time.perf_counter()
    counter.inc(now - started)
    return now


async def read_store(what: str, read: Callable, *args):
    """A read for a timer, or None while the store is away. An exception in a Faust timer crashes
    the whole app (mode's Service.crash), so a database outage that the batches wait out must
    not stop the worker through a gauge or the console summary."""
    try:
        return await asyncio.to_thread(read, *args)
    except (OperationalError, InterfaceError) as exc:
        log.warning("store unavailable (%s); %s skipped this time", str(exc).splitlines()[0], what)
        return None


@contextmanager
def _as_current_event(event: EventT) -> Iterator[None]:
    """Make ``event`` the current one for a table write in this task only.

    A batch from take_events() has no current event, and a table write needs one to pick its
    changelog partition (faust-streaming issue #497): the enterprise's own event gives the
    partition it came from. Only this task's context variable is set: the stream's own
    ``current_event`` belongs to the consumer feeding the take buffer and must not be touched.
    """
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def add_console_summary(app: faust.App, runtime: Runtime, every: float, echo: Callable[[str], None]) -> None:
    """Print what the pipeline has done, whenever it changes (for `laborwatch run`)."""
    last: list = [None]

    @app.timer(every)
    async def summary() -> None:
        c = await read_store("the console summary", repo.counts, runtime.db)
        if c is None:
            return
        shown = (c.accepted, c.rejected, c.alerts, tuple(sorted(c.alerts_by_level.items())))
        if shown != last[0]:
            last[0] = shown
            levels = ", ".join(f"{lvl} {c.alerts_by_level.get(lvl, 0)}" for lvl in ("red", "orange", "yellow", "blue"))
            echo(f"signals accepted {c.accepted}, rejected {c.rejected} | alerts {c.alerts} ({levels})")
