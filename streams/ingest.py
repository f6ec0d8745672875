"""Publishing signal files to the signal topic (`laborwatch ingest`), line by line, in file order.

Validation happens in the pipeline, so bad lines are published too and end as dead letters.
"""
from __future__ import annotations

import codecs
import gzip
import json
import zlib
from pathlib import Path

from streams.broker import BrokerError


def split_lines(data: bytes) -> list[bytes]:
    """The lines of a JSONL file without terminators (LF or CRLF); a final newline ends the last
    line rather than starting an empty one, but an empty line inside the file is kept: it is an
    input too, and the contract rejects it as invalid JSON. A UTF-8 byte order mark at the start
    (what Windows tools write) marks the file's encoding, not its first line, and is dropped, as
    the registry and disputes readers drop it; one inside a line stays, and is invalid JSON."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


GZIP_MAGIC = b"\x1f\x8b"


def read_lines(path: Path) -> list[bytes]:
    """The lines of a signal file (see ``split_lines``), decompressed first when it is gzip
    (known by its first two bytes, whatever its name: a JSONL line never starts with them)."""
    data = path.read_bytes()
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: a gzip file that cannot be decompressed ({exc})") from None
    return split_lines(data)


def key_of(line: bytes) -> bytes | None:
    """The partition key of a signal line: its enterprise id when one can be read."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    eid = value.get("enterprise_id") if isinstance(value, dict) else None
    return eid.encode() if isinstance(eid, str) else None


def publish_file(bootstrap: str, topic: str, path: Path, timeout: float = 30.0) -> int:
    """Publish every line of ``path``; returns how many were acknowledged by the broker. A broker
    that goes away on the way is a ``BrokerError`` saying how many lines it had acknowledged,
    about ``timeout`` seconds later."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    lines = read_lines(path)
    try:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            retries=5,
            # One request in flight keeps file order within a partition even across retries.
            max_in_flight_requests_per_connection=1,
            request_timeout_ms=15000,
            # A record not acknowledged in time fails instead of waiting for a broker that is gone
            # (kafka-python's default is two minutes, and a full buffer blocks a send for one).
            delivery_timeout_ms=max(int(timeout * 1000), 15005),  # at least linger + request timeout
            max_block_ms=int(timeout * 1000),
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach the broker at {bootstrap}: {exc}") from None
    futures: list = []
    try:
        try:
            for line in lines:
                futures.append(producer.send(topic, key=key_of(line), value=line))
            producer.flush(timeout=timeout)
        except KafkaError as exc:
            raise BrokerError(_not_all(f"the broker at {bootstrap} stopped answering ({_name(exc)})",
                                       futures, len(lines))) from None
        for number, future in enumerate(futures, 1):
            try:
                future.get(timeout=timeout)
            except KafkaError as exc:
                raise BrokerError(_not_all(f"line {number} was not published ({_name(exc)})", futures,
                                           len(lines))) from None
    finally:
        try:
            producer.close(timeout=5)
        except KafkaError:
            # The broker is gone with records still pending: let the sender go, so that nothing
            # tries again at exit; what was not acknowledged is in the error above.
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()
            producer._closed = True
    return len(lines)


def _name(exc: Exception) -> str:
    """The error's class and text, once ("KafkaTimeoutError: Timeout waiting for future")."""
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def _not_all(what: str, futures: list, total: int) -> str:
    acknowledged = sum(1 for f in futures if f.is_done and f.succeeded())
    return (f"{what}: {acknowledged:,} of {total:,} lines were acknowledged. Publish the file again once "
            "the broker is back: the lines the pipeline already has are rejected as duplicates, none is "
            "counted twice.")
