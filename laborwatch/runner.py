"""`laborwatch run`: the embedded broker (unless an external one is named), the store, the
stream worker, and the demo feed, with their lifecycles tied together."""
from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from alerts.store import repo
from alerts.store.db import Database
from config.files import load_configs
from config.settings import Settings
from streams.broker import EmbeddedBroker, ensure_topics

log = logging.getLogger("laborwatch")

class RunError(RuntimeError):
    """`run` cannot start; the message is one line."""


def _lock_home(home: Path, stack: ExitStack) -> None:
    home.mkdir(parents=True, exist_ok=True)
    handle = open(home / "run.lock", "w")
    stack.callback(handle.close)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunError(f"another `laborwatch run` owns {home} (set LABORWATCH_HOME to run a second one)") from None


def run(settings: Settings, *, simulate: bool, echo: Callable[[str], None]) -> None:
    from streams.app import Runtime, add_console_summary, build_app, topic_names

    configs = load_configs(settings.config_dir)
    home = settings.resolved_home
    with ExitStack() as stack:
        _lock_home(home, stack)
        db = Database(settings.resolved_database_url)
        stack.callback(db.dispose)
        runtime = Runtime.create(settings, configs, db)
        owned = not settings.broker
        if settings.broker:
            broker_url, embedded = settings.broker, settings.broker_flavor == "tansu"
        else:
            broker = EmbeddedBroker(home).start()
            stack.callback(broker.stop)
            broker_url, embedded = broker.url, True
        bootstrap = broker_url.removeprefix("kafka://")
        ensure_topics(bootstrap, topic_names(settings, runtime.router))
        metrics_port = _serve_metrics(runtime, settings, stack)
        web_url = _serve_web(runtime, settings, configs, db, bootstrap, stack)
        state = {
            "pid": os.getpid(),
            "metrics_url": f"http://127.0.0.1:{metrics_port}/metrics",
            "web_url": web_url,
            "broker": broker_url,
            "embedded_broker": embedded,
            "database": db.engine.url.render_as_string(hide_password=True),
            "started_at": datetime.now(timezone.utc).isoformat(),
        }
        run_json = home / "run.json"
        run_json.write_text(json.dumps(state, indent=2))
        stack.callback(run_json.unlink, missing_ok=True)

        def scoring(version: str) -> str:  # the benchmark reads the version as the first word
            return f"{version} (yellow {runtime.pipeline.thresholds.yellow:g})"

        app = build_app(runtime, broker_url, embedded_broker=embedded,
                        echo_model=lambda version: echo(f"laborwatch: now scoring with model {scoring(version)}"),
                        say=echo)
        if settings.console_every_seconds > 0:
            add_console_summary(app, runtime, every=settings.console_every_seconds, echo=echo)
        if simulate:
            _add_demo_feed(app, runtime, settings, echo)
        echo(f"laborwatch: broker {bootstrap}{' (embedded)' if owned else ''}, "
             f"store {state['database']}, home {home}, scoring with {scoring(runtime.pipeline.scorer.version)}")
        echo(f"laborwatch: metrics on {state['metrics_url']}")
        echo(f"laborwatch: inspectors' workbench on {web_url} (accounts: laborwatch users add)")
        echo("laborwatch: running; Ctrl-C stops it")
        deadline = _StopDeadline(settings.stop_timeout_seconds, cleanups=[
            *([broker.stop] if owned else []), lambda: run_json.unlink(missing_ok=True)])
        if owned:
            _watch_broker(broker, deadline, stack)
        _run_worker(app, settings, deadline)
        failure = getattr(app, "laborwatch_failure", None)
        if failure is not None:
            raise RunError(f"the stream worker stopped on an unexpected error: {failure!r} (see the log above)")


def _serve_metrics(runtime, settings: Settings, stack: ExitStack) -> int:
    """Prometheus metrics on LABORWATCH_METRICS_PORT (0: any free port; run.json names it)."""
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(settings.metrics_port, addr="0.0.0.0", registry=runtime.metrics.registry)
    except OSError as exc:
        raise RunError(f"cannot serve metrics on port {settings.metrics_port}: {exc.strerror}") from None
    stack.callback(server.shutdown)
    return server.server_port


def _serve_web(runtime, settings: Settings, configs, db: Database, bootstrap: str, stack: ExitStack) -> str:
    """The workbench (alerts/web) on LABORWATCH_WEB_PORT (0: any free port; run.json names it),
    served by uvicorn in a thread of its own with its own event loop; the feedback publisher
    beside it. Both stop when `run` stops."""
    import socket
    import threading

    import uvicorn

    from alerts.feedback import FeedbackPublisher
    from alerts.web.app import create_app

    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.web_host, settings.web_port))
    except OSError as exc:
        raise RunError(f"cannot serve the web app on {settings.web_host}:{settings.web_port}: {exc.strerror}") from None
    stack.callback(sock.close)
    app = create_app(settings, configs, db, registry=runtime.metrics.registry)
    app.state.publisher = FeedbackPublisher(db, bootstrap, settings.topic("feedback"), settings.partitions,
                                            on_published=app.state.metrics.feedback_published.inc).start()
    stack.callback(app.state.publisher.stop)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="laborwatch-web", daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    stack.callback(stop)
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RunError("the web app did not start (see the log above)")
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}/"


class _StopDeadline:
    """Ends the process when a stop takes longer than ``seconds``. Faust's stop waits for the last
    sends and commits, which a broker that is gone never answers: measured, `run` was still up
    three minutes after a Ctrl-C, a second one and a SIGTERM, once its embedded broker had died.
    The forced exit is a crash as far as the data goes (a restart replays what was not
    committed), after the clean-ups that cannot hang."""

    def __init__(self, seconds: float, cleanups: list[Callable[[], object]]) -> None:
        self.seconds = seconds
        self.cleanups = cleanups
        self._started = threading.Lock()

    def start(self, why: str, seconds: float | None = None) -> None:
        """From now on, at most ``seconds`` (default: the setting's) until the process ends;
        only the first call counts."""
        if self._started.acquire(blocking=False):
            threading.Thread(target=self._expire, args=(why, self.seconds if seconds is None else seconds),
                             name="stop-deadline", daemon=True).start()

    def _expire(self, why: str, seconds: float) -> None:
        time.sleep(seconds)
        sys.stderr.write(f"laborwatch: error: {why}, and the worker did not stop within {seconds:g} s: exiting "
                         "without a clean stop (a restart replays what was not committed)\n")
        sys.stderr.flush()
        for cleanup in self.cleanups:
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        os._exit(1)


def _watch_broker(broker: EmbeddedBroker, deadline: _StopDeadline, stack: ExitStack) -> None:
    """Stop `run` when its embedded broker dies under it: the topics lived in that process's
    memory, so nothing can go on, and Faust would retry the dead address for ever."""
    done = threading.Event()
    stack.callback(done.set)  # the run ends: stop watching before the broker is stopped

    def watch() -> None:
        while not done.wait(1.0):
            if not broker.is_running():
                if done.is_set():
                    return
                sys.stderr.write(f"laborwatch: error: the embedded broker (pid {broker.pid}) exited under the run; "
                                 "its topics were in its memory, so the stream cannot go on: start `laborwatch run` "
                                 "again\n")
                sys.stderr.flush()
                deadline.start("the embedded broker is gone", seconds=min(deadline.seconds, 5.0))
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="broker-watch", daemon=True).start()


def _run_worker(app, settings: Settings, deadline: _StopDeadline) -> None:
    import faust

    class Worker(faust.Worker):
        def _schedule_shutdown(self, signum) -> None:  # mode's Worker: every SIGINT and SIGTERM
            deadline.start(f"stopping on {signal.Signals(signum).name}")
            super()._schedule_shutdown(signum)

    # Faust's own INFO log is a firehose; ours goes through `echo`. Its stdout redirection would
    # wrap our console lines in log records, so it is off.
    worker = Worker(
        app,
        loglevel="WARNING" if settings.log_level == "info" else settings.log_level.upper(),
        quiet=True,
        redirect_stdouts=False,
    )
    worker.spinner = None  # its terminal codes garble the console summary and captured logs
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RunError(f"the stream worker stopped with exit code {exc.code}") from None


def _add_demo_feed(app, runtime, settings: Settings, echo: Callable[[str], None]) -> None:
    """Feed a simulated district into the running pipeline: its registry first, then its signals,
    the history at full speed and then live, paced in compressed real time."""
    from models.simulate import build_world

    world = build_world(firms=settings.demo_firms, seed=settings.demo_seed, start=settings.demo_start)
    enterprises = world.enterprise_rows()
    added, updated = repo.upsert_enterprises(runtime.db, enterprises)
    echo(f"demo: a simulated district of {len(enterprises)} enterprises ({added} added, {updated} updated)")
    signals_topic = app.laborwatch["signals"]
    live_from = datetime.combine(settings.demo_start, datetime.min.time(), tzinfo=timezone.utc) + timedelta(
        days=settings.demo_history_days
    )

    from faust.exceptions import NotReady, ProducerSendError

    @app.task
    async def feed_demo() -> None:
        sent = 0
        live_clock: tuple[float, datetime] | None = None
        for arrival, signal in world.iter_feed():
            if arrival >= live_from:
                if live_clock is None:
                    echo(f"demo: {sent} signals of history replayed; now live, a simulated day every "
                         f"{settings.demo_day_seconds:g}s")
                    live_clock = (time.monotonic(), arrival)
                due = live_clock[0] + (arrival - live_clock[1]).total_seconds() / 86400 * settings.demo_day_seconds
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
            if app.should_stop:
                return  # Ctrl-C: the app stops its producer before it cancels this task
            line = json.dumps(signal, ensure_ascii=False).encode()
            try:
                await signals_topic.send(key=signal["enterprise_id"].encode(), value=line)
            except (NotReady, ProducerSendError):
                if app.should_stop:
                    return  # a send under way when the producer stopped: the demo ends with the run
                raise
            sent += 1
            if sent % 1000 == 0:
                await asyncio.sleep(0)  # let the agents run while history pours in
