"""docker-compose.yml, Dockerfile, .env.example and .dockerignore, checked against the project.

No Docker needed: the files are parsed and compared with config.settings and pyproject.toml, so
a renamed setting, port or service breaks this test rather than the users' `docker compose up`.
"""
from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from sqlalchemy.engine import make_url

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"

PREFIX = "LABORWATCH_"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; `$$` is a literal $.
_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
_BARE_REFERENCE = re.compile(r"\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


# --- helpers -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example:{number}: not NAME=value: {line!r}"
        values[name.strip()] = value.strip()
    return values


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {name: value for name, _, value in pairs}
    return {name: "" if value is None else str(value) for name, value in env.items()}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _referenced_names(text: str) -> set[str]:
    text = text.replace("$$", "")
    names = {m["name"] for m in _REFERENCE.finditer(text)}
    names |= {m["name"] for m in _BARE_REFERENCE.finditer(_REFERENCE.sub("", text))}
    return names


def _interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation, with the values of .env.example."""

    def one(m: re.Match) -> str:
        value = values.get(m["name"])
        op = m["op"] or ""
        if op == ":-" and not value or op == "-" and value is None:
            return m["arg"]
        if op.endswith("?") and (value is None or (op == ":?" and not value)):
            raise AssertionError(f"required variable {m['name']} is missing: {m['arg']}")
        return value or ""

    parts = text.split("$$")
    return "$".join(_REFERENCE.sub(one, part) for part in parts)


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "Dockerfile ends in a continuation line"
    return instructions


def _setting_default(name: str) -> Any:
    return Settings.model_fields[name].default


def _kafka_listeners(kafka: dict[str, Any], variable: str) -> dict[str, tuple[str, int]]:
    """KAFKA_LISTENERS-style value as {listener name: (host, port)}."""
    out: dict[str, tuple[str, int]] = {}
    for item in _environment(kafka)[variable].split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


# --- the services ------------------------------------------------------------------------------
def test_no_obsolete_version_key(compose):
    assert "version" not in compose


def test_core_services_exist(services):
    assert {"kafka", "postgres", "worker"} <= set(services)


def test_kafka_runs_in_kraft_mode_without_zookeeper(services):
    env = _environment(services["kafka"])
    roles = {role.strip() for role in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in _kafka_listeners(services["kafka"], "KAFKA_LISTENERS")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert str(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == "1"
    assert str(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == "1"
    assert not [name for name in services if "zookeeper" in name.lower()]
    assert not [name for name in env if "ZOOKEEPER" in name]
    image = services["kafka"]["image"]
    assert image.startswith("apache/kafka:") and not image.endswith(":latest")


def test_every_laborwatch_variable_is_a_setting(services):
    fields = {PREFIX + name.upper() for name in Settings.model_fields}
    used = {name for service in services.values() for name in _environment(service) if name.startswith(PREFIX)}
    assert used, "no service sets any LABORWATCH_* variable"
    assert used <= fields, f"not settings of config.settings.Settings: {sorted(used - fields)}"


def test_worker_environment_is_valid_settings(services, env_example, monkeypatch):
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)
    for name, value in _environment(services["worker"]).items():
        monkeypatch.setenv(name, _interpolate(value, env_example))
    settings = Settings()
    assert settings.broker is not None and settings.database_url is not None
    assert settings.partitions == int(env_example["LABORWATCH_PARTITIONS"])


def test_worker_broker_is_the_kafka_service(services):
    broker = _environment(services["worker"])["LABORWATCH_BROKER"]
    assert broker.startswith("kafka://")
    host, _, port = broker.removeprefix("kafka://").rpartition(":")
    assert host == "kafka" and "kafka" in services
    # The port is one Kafka listens on, and Kafka advertises that listener under the same
    # address (clients reconnect to the advertised one).
    listeners = _kafka_listeners(services["kafka"], "KAFKA_LISTENERS")
    advertised = _kafka_listeners(services["kafka"], "KAFKA_ADVERTISED_LISTENERS")
    names = [name for name, (_, p) in listeners.items() if p == int(port)]
    assert names, f"kafka listens on no port {port}: {listeners}"
    assert advertised.get(names[0]) == ("kafka", int(port))
    assert _environment(services["worker"]).get("LABORWATCH_BROKER_FLAVOR", "kafka") == "kafka"


def test_worker_database_is_the_postgres_service(services, env_example):
    raw = _environment(services["worker"])["LABORWATCH_DATABASE_URL"]
    url = make_url(_interpolate(raw, env_example))
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "postgres" and "postgres" in services
    assert url.port in (None, 5432)
    pg = {k: _interpolate(v, env_example) for k, v in _environment(services["postgres"]).items()}
    assert (url.username, url.password, url.database) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]
    )


def test_worker_runs_the_pipeline_without_the_demo(services):
    assert services["worker"]["command"] == ["run", "--no-simulate"]
    assert services["worker"].get("build") is not None


def test_healthy_dependencies_have_healthchecks(services):
    checked = 0
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            continue
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            if (spec or {}).get("condition") == "service_healthy":
                check = services[target].get("healthcheck")
                assert check and check.get("test") and not check.get("disable"), (
                    f"{name} waits for {target} to be healthy but {target} has no healthcheck"
                )
                checked += 1
    for target in ("kafka", "postgres"):
        assert services["worker"]["depends_on"][target]["condition"] == "service_healthy"
    assert checked >= 2


def test_worker_can_scale(services):
    worker = services["worker"]
    assert not worker.get("ports"), "a published host port stops `--scale worker=N`"
    assert "container_name" not in worker, "a fixed container name stops `--scale worker=N`"
    # Each replica locks its own LABORWATCH_HOME: it must not be a named volume or a bind mount
    # (those would be shared); the image's anonymous volume is one per container.
    home = _environment(worker).get(PREFIX + "HOME", "/var/lib/laborwatch")
    for volume in worker.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = volume.get("source"), volume.get("target")
        else:
            parts = volume.split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
        assert not (source and target == home), f"LABORWATCH_HOME shared between replicas: {volume}"


def test_every_laborwatch_container_shares_one_model_registry(compose, services):
    """A promotion names a version on the model-updates topic; each worker loads it from its
    LABORWATCH_MODEL_DIR. Left at the default (under each container's own home) a model trained or
    promoted in a one-off `docker compose run` container would be nowhere a worker could load it."""
    laborwatch = {name: s for name, s in services.items() if s.get("image", "").startswith("laborwatch")}
    assert set(laborwatch) >= {"worker", "web"}
    for name, service in laborwatch.items():
        model_dir = _environment(service).get(PREFIX + "MODEL_DIR")
        assert model_dir, f"{name}: LABORWATCH_MODEL_DIR unset (it would default to the unshared home)"
        mounts = [v.split(":") for v in service.get("volumes") or [] if isinstance(v, str)]
        named = [source for source, target, *_ in mounts if target == model_dir]
        assert named and named[0] in (compose.get("volumes") or {}), f"{name}: {model_dir} is not a named volume"
    dirs = [a for k, a in _dockerfile_instructions() if k == "RUN" and "laborwatch-models" in a]
    assert dirs and "chown laborwatch:laborwatch" in dirs[0], "the image must own the registry's mount point"


def test_the_workbench_is_the_web_profile(services):
    """As the compose file's header and config/prometheus.yml say: `--profile web` adds it."""
    assert services["web"].get("profiles") == ["web"]
    assert not services["worker"].get("profiles")


def test_web_port_is_published_where_the_setting_says(services):
    web = services.get("web")
    if web is None:
        pytest.skip("no web service")
    port = _environment(web).get("LABORWATCH_WEB_PORT", str(_setting_default("web_port")))
    published = [str(p).rsplit(":", 1)[-1] for p in web.get("ports") or []]
    assert port in published


# --- secrets and variables ---------------------------------------------------------------------
def test_no_literal_password(services):
    required = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}")
    for name, service in services.items():
        for variable, value in _environment(service).items():
            if "PASSWORD" in variable.upper():
                assert required.fullmatch(value), (
                    f"{name}.{variable} must be a ${{...}} reference without a default, got {value!r}"
                )


def test_no_literal_password_in_urls(compose):
    userinfo = re.compile(r"://[^/@\s:]+:(?P<password>[^@\s]+)@")
    for text in _strings(compose):
        for m in userinfo.finditer(text):
            assert re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}", m["password"]), (
                f"a literal password in {text!r}"
            )


def test_every_referenced_variable_is_in_env_example(compose, env_example):
    referenced: set[str] = set()
    for text in _strings(compose):
        referenced |= _referenced_names(text)
    assert referenced, "docker-compose.yml references no variable"
    missing = referenced - set(env_example)
    assert not missing, f"referenced in docker-compose.yml but not defined in .env.example: {sorted(missing)}"


def test_env_example_holds_only_placeholders(env_example):
    for name, value in env_example.items():
        if "PASSWORD" in name:
            assert value == "change-me", f"{name} in .env.example must be a placeholder"


def test_an_unedited_env_file_does_not_start_the_workbench(env_example):
    """The placeholder secret is public; signing tokens with it must fail loudly, not work."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="placeholder"):
        Settings(session_secret=env_example["LABORWATCH_SESSION_SECRET"])
    assert Settings(session_secret="a" * 32).session_secret == "a" * 32


def test_env_file_stays_out_of_git_and_images():
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in DOCKERIGNORE.read_text(encoding="utf-8").split()


# --- the image ---------------------------------------------------------------------------------
def test_dockerfile_exposes_the_settings_ports():
    exposed = {
        int(port.split("/")[0])
        for keyword, args in _dockerfile_instructions() if keyword == "EXPOSE"
        for port in args.split()
    }
    assert exposed == {_setting_default("web_port"), _setting_default("metrics_port")}


def test_dockerfile_installs_the_runtime_lock_then_the_project():
    instructions = _dockerfile_instructions()
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    lock_at = next(i for i, r in enumerate(runs) if re.search(r"pip install\b.*-r \S*requirements-runtime\.lock", r))
    project_at = next(i for i, r in enumerate(runs) if re.search(r"pip install\b.*--no-deps", r))
    assert lock_at < project_at
    assert any(k == "COPY" and "requirements-runtime.lock" in a for k, a in instructions)
    assert not any("requirements.lock" in a for _, a in instructions)  # the test tools stay out
    assert instructions[0] == ("FROM", "python:3.11-slim")


def _package(requirement: str) -> str:
    """The normalised package name (PEP 503) a requirement or a pin starts with."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9._-]+)", requirement).group(1).lower())


def _pins(path: Path) -> dict[str, str]:
    return {_package(line): line.partition("==")[2].strip()
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")}


def test_the_runtime_lock_is_the_full_lock_without_the_test_tools():
    """requirements-runtime.lock (the image's) pins what requirements.lock pins (the venv make
    builds, where the suite runs), minus the test extra: the image runs what was tested."""
    full, runtime = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-runtime.lock")
    assert runtime.items() <= full.items()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert {_package(r) for r in project["dependencies"]} <= set(runtime)
    test_only = {_package(r) for r in project["optional-dependencies"]["test"]} - {_package(r) for r in project["dependencies"]}
    assert test_only & set(full) == test_only and not test_only & set(runtime)


def test_dockerfile_runs_the_worker_as_non_root_with_a_home_volume():
    instructions = _dockerfile_instructions()
    values = {k: a for k, a in instructions}  # the last of each
    assert values["USER"] not in ("root", "0")
    assert values["WORKDIR"] == "/app"
    assert values["ENTRYPOINT"] == '["laborwatch"]'
    assert values["CMD"] == '["run", "--no-simulate"]'
    home = next(a.split("=", 1)[1] for k, a in instructions if k == "ENV" and a.startswith(PREFIX + "HOME="))
    assert any(k == "VOLUME" and home in a for k, a in instructions)


def test_dockerignore_keeps_the_packages_in_the_build_context():
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith("!")
    ]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    for needed in ["pyproject.toml", *packages]:
        assert not [p for p in patterns if fnmatch.fnmatch(needed, p)], f".dockerignore excludes {needed}"
    for artefact in (".venv", ".git", "__pycache__", ".pytest_cache", "test-artifacts"):
        assert any(fnmatch.fnmatch(artefact, p.removeprefix("**/")) for p in patterns), artefact
