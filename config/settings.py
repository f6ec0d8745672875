"""Process-wide settings: environment variables with the ``LABORWATCH_`` prefix.

Created once at the edge (the CLI) and passed down; nothing below reads the environment.
"""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CONFIG_DIR = Path(__file__).resolve().parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABORWATCH_", extra="ignore")

    home: Path = Field(Path("var"), description="State directory owned by `laborwatch run`.")
    broker: str | None = Field(
        None, description="kafka://host:port of an external Kafka; unset starts the embedded broker."
    )
    broker_flavor: Literal["kafka", "tansu"] = Field(
        "kafka",
        description="What LABORWATCH_BROKER is: Apache Kafka, or a Tansu broker like the embedded "
        "one (whose end-offset quirk needs workarounds). The embedded broker is always tansu.",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; unset means an SQLite file under LABORWATCH_HOME."
    )
    model_dir: Path | None = Field(
        None, description="The model registry; unset means LABORWATCH_HOME/models."
    )
    config_dir: Path = Field(CONFIG_DIR, description="Folder holding the YAML files.")
    app_id: str = Field("laborwatch", description="Faust application id (consumer group).")
    topic_prefix: str = Field("laborwatch", description="Prefix of every topic name.")
    partitions: int = Field(4, ge=1, le=256, description="Partitions of every topic.")
    web_port: int = Field(8000, ge=0, le=65535, description="Web app and API port (0: any free port; run.json names it).")
    web_host: str = Field("127.0.0.1", description="Address the web app listens on (0.0.0.0 in a container).")
    # The workbench's sessions and tokens are signed with this; unset, `run` generates one and
    # keeps it in LABORWATCH_HOME/web-secret (so sessions survive a restart, and no secret is in the repo).
    session_secret: str | None = Field(None, min_length=16, description="Secret that signs sessions and API tokens.")
    session_hours: float = Field(12.0, gt=0, description="How long a page session and an API token last.")
    login_max_failures: int = Field(5, ge=1, description="Failed logins of one username within login_window_seconds that lock it.")
    login_window_seconds: int = Field(900, ge=1, description="The throttling window (and how long a lock lasts).")
    sla_check_seconds: float = Field(60.0, gt=0, description="How often the web app escalates alerts past their SLA.")
    metrics_port: int = Field(9100, ge=0, le=65535)
    batch_size: int = Field(500, ge=1, description="Signals scored together (stream.take).")
    batch_within: float = Field(0.2, gt=0, description="Seconds to wait for a batch to fill.")
    checkpoint_seconds: float = Field(
        1.0, gt=0, description="How often changed enterprise records are written to the table and the signals "
        "that changed them acked (a crash replays at most this much; fewer, bigger table writes).")
    console_every_seconds: float = Field(
        2.0, ge=0, description="How often `run` prints the store's counts (signals accepted and rejected, alerts "
        "by level) when they changed; each print counts whole tables, so a worker on a large store wants it "
        "rarer; 0: never.")
    stop_timeout_seconds: float = Field(
        30.0, gt=0, description="How long `run` may take to stop after Ctrl-C or SIGTERM before it exits without a "
        "clean stop (a broker that is gone never answers the last sends and commits).")
    ingest_timeout_seconds: float = Field(
        30.0, gt=0, description="How long `ingest` waits for the broker to acknowledge its lines before it gives "
        "up, saying how many were acknowledged.")
    log_level: str = Field("info")
    # The simulated feed of `run --simulate` (the demo): a district replayed from demo_start,
    # its first demo_history_days at full speed, then live, one simulated day every
    # demo_day_seconds of wall time.
    demo_firms: int = Field(40, ge=1, le=5000)
    demo_seed: int = Field(2024)
    demo_start: date = Field(date(2024, 9, 1))
    demo_history_days: int = Field(150, ge=0)
    demo_day_seconds: float = Field(2.0, gt=0)

    @field_validator("broker")
    @classmethod
    def _kafka_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        host, _, port = value.removeprefix("kafka://").rpartition(":")
        if not value.startswith("kafka://") or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must look like kafka://host:port")
        return value

    @field_validator("session_secret")
    @classmethod
    def _not_the_placeholder(cls, value: str | None) -> str | None:
        # .env.example's placeholder is public: a deployment that never edited .env would sign
        # every session and API token with a key anyone can read.
        if value is not None and value.lower().startswith("change-me"):
            raise ValueError("is .env.example's placeholder: set a long random secret (e.g. `openssl rand -hex 32`)")
        return value

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'laborwatch.db'}"

    @property
    def resolved_model_dir(self) -> Path:
        return (self.model_dir or self.home / "models").expanduser().resolve()

    def resolved_session_secret(self) -> str:
        """The configured secret, or the one generated once and kept under the home."""
        if self.session_secret:
            return self.session_secret
        import secrets

        path = self.resolved_home / "web-secret"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it just now
                return path.read_text().strip()
            secret = secrets.token_urlsafe(32)
            with os.fdopen(fd, "w") as fh:
                fh.write(secret + "\n")
            return secret

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"
