"""A bare Faust agent, the ceiling of the live path: it consumes a raw-bytes topic, does nothing
with each event, and counts to N.

    python -m benchmarks.bare_agent --bootstrap HOST:PORT --topic NAME --n N [--partitions P]

The topic is expected to hold at least N records already (pre-loaded), so the figure is
consumption throughput. The clock starts at the first event and stops at the N-th, both taken
inside the agent; when done it prints one line ``BENCH_RESULT {json}`` on stdout and idles until
it is stopped (SIGTERM or SIGINT). The Faust tuning is that of ``streams.app.build_app`` for the
embedded broker.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid

MARKER = "BENCH_RESULT "


def build(bootstrap: str, topic: str, n: int, partitions: int, datadir: str, app_id: str,
          mode: str = "events", batch_size: int = 500, batch_within: float = 0.2):
    import faust

    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        topic_partitions=partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=datadir,
        # streams.app.build_app's tuning for the embedded (Tansu) broker
        broker_rebalance_timeout=4,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        producer_max_batch_size=64,
        producer_linger=0,
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=partitions)
    started = time.perf_counter()

    def iterate(stream):
        """Per event, what the loop yields: one event (``events``: the figure the benchmark
        compares), one deserialized value (``values``: ``async for value in stream``, which also
        sets the current event and acks it), or micro-batches like the signal agent's
        (``take``: ``stream.take_events(batch_size, within=batch_within)``)."""
        if mode == "events":
            return stream.events()
        if mode == "values":
            return stream
        return stream.take_events(batch_size, within=batch_within)

    @app.agent(source, name="bare")
    async def bare(stream) -> None:
        count = 0
        first = None
        async for item in iterate(stream):
            if count == 0:
                first = time.perf_counter()
            before = count
            count += len(item) if mode == "take" else 1
            if before < n <= count:
                seconds = time.perf_counter() - first
                result = {
                    "mode": mode,
                    "n": n,
                    "seconds_first_to_last": seconds,
                    "per_second": (n - 1) / seconds if seconds > 0 else None,
                    "seconds_start_to_first_event": first - started,
                }
                sys.stdout.write(MARKER + json.dumps(result) + "\n")
                sys.stdout.flush()

    return app


def main(argv: list[str] | None = None) -> None:
    import faust

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--app-id", default=None)
    parser.add_argument("--mode", choices=("events", "values", "take"), default="events")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batch-within", type=float, default=0.2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as datadir:
        app = build(args.bootstrap, args.topic, args.n, args.partitions, datadir,
                    args.app_id or f"bench-bare-{uuid.uuid4().hex[:8]}", args.mode, args.batch_size,
                    args.batch_within)
        worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
        worker.spinner = None
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise


if __name__ == "__main__":
    main()
