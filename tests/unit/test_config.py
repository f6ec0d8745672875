"""config.files (the YAML files and their loader) and config.settings (the environment)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest
import yaml
from pydantic import ValidationError

from config.files import ConfigError, Configs, load_configs
from config.settings import CONFIG_DIR, Settings

YAML_FILES = ("levels.yaml", "rules.yaml", "routing.yaml", "pipeline.yaml", "sla.yaml")


# --- the shipped files -------------------------------------------------------------------------
def test_shipped_config_dir_loads():
    configs = load_configs(CONFIG_DIR)
    assert isinstance(configs, Configs)
    t = configs.levels.thresholds
    assert (t.blue, t.yellow, t.orange, t.red) == (0.14, 0.16, 0.60, 0.80)
    assert configs.levels.collective_incident.min_workers == 30
    assert configs.levels.collective_incident.level == "red"
    assert configs.rules.model_version == "rules-v1"
    assert "wage_overdue" in {r.code for r in configs.rules.rules}
    assert set(configs.routing.receivers) == {"street-team", "district-command"}
    assert configs.routing.route.receivers == ["street-team"]
    assert configs.pipeline.state.retention_days == 365
    assert configs.pipeline.state.wage_periods_kept == 13


# --- bad edits -----------------------------------------------------------------------------------
@pytest.fixture
def config_copy(tmp_path) -> Path:
    target = tmp_path / "config"
    target.mkdir()
    for name in YAML_FILES:
        shutil.copy(CONFIG_DIR / name, target / name)
    return target


def _set(path: tuple, value) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _rule_index(code: str) -> int:
    rules = yaml.safe_load((CONFIG_DIR / "rules.yaml").read_text())["rules"]
    return next(i for i, r in enumerate(rules) if r["code"] == code)


def _add_receiver(data: dict) -> None:
    data["receivers"]["Street-Team"] = {"queue": "street:{street}"}


BAD_EDITS = [
    # (id, file, edit, text the message must contain after the file path)
    ("thresholds-not-ascending", "levels.yaml", _set(("thresholds", "orange"), 0.9), "thresholds: must rise"),
    ("probability-1.5", "levels.yaml", _set(("thresholds", "red"), 1.5), "thresholds.red:"),
    ("unknown-key", "levels.yaml", _set(("thresholds", "purple"), 0.5), "thresholds.purple:"),
    ("unknown-top-key", "pipeline.yaml", _set(("retention",), 3), "retention:"),
    ("sla-negative-hours", "sla.yaml", _set(("levels", "red", "acknowledge_hours"), -1), "levels.red.acknowledge_hours:"),
    ("sla-unknown-level", "sla.yaml", _set(("levels", "purple"), {"acknowledge_hours": 1, "on_site_hours": 2}), "levels.purple"),
    ("config-version", "rules.yaml", _set(("config_version",), 2), "config_version:"),
    ("receiver-upper-case", "routing.yaml", _add_receiver, "receivers:"),
    ("route-unknown-receiver", "routing.yaml",
     _set(("route", "routes", 1, "receivers"), ["street-team", "nobody"]), "route.routes.1.receivers.1:"),
    ("default-unknown-receiver", "routing.yaml", _set(("route", "receivers"), ["nobody"]), "route.receivers.0:"),
    ("matcher-unknown-label", "routing.yaml",
     _set(("route", "routes", 0, "matchers"), ["colour = red"]), "route.routes.0.matchers:"),
    ("matcher-bad-regex", "routing.yaml",
     _set(("route", "routes", 0, "matchers"), ["street =~ (xi"]), "route.routes.0.matchers:"),
    ("queue-unknown-placeholder", "routing.yaml",
     _set(("receivers", "street-team", "queue"), "street:{town}"), "receivers.street-team.queue:"),
    ("rule-unknown-feature", "rules.yaml",
     _set(("rules", _rule_index("wage_partial"), "feature"), "wage_mood"),
     f"rules.{_rule_index('wage_partial')}.feature:"),
    ("rule-unknown-unless", "rules.yaml",
     _set(("rules", _rule_index("electricity_drop"), "unless"), ["calendar_shutdwn"]),
     f"rules.{_rule_index('electricity_drop')}.unless.0:"),
    ("rule-above-and-below", "rules.yaml", _set(("rules", 0, "below"), 3), "rules.0:"),
    ("rule-bad-placeholder", "rules.yaml", _set(("rules", 0, "text"), "{foo} days"), "rules.0:"),
    ("window-exceeds-retention", "pipeline.yaml",
     _set(("state", "utility_window_days"), 400), "state.utility_window_days:"),
]


@pytest.mark.parametrize(
    "file, edit, key_text", [case[1:] for case in BAD_EDITS], ids=[case[0] for case in BAD_EDITS]
)
def test_bad_edit_is_refused_with_file_and_key(config_copy, file, edit, key_text):
    path = config_copy / file
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")

    with pytest.raises(ConfigError) as info:
        load_configs(config_copy)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert f"{file}: {key_text}" in message, message


def test_round_trip_without_edit_still_loads(config_copy):
    """The yaml round trip of the bad-edit tests is not itself what breaks the files."""
    for name in YAML_FILES:
        path = config_copy / name
        path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()), sort_keys=False))
    assert load_configs(config_copy) == load_configs(CONFIG_DIR)


def test_messages_name_the_fault(config_copy):
    path = config_copy / "levels.yaml"
    data = yaml.safe_load(path.read_text())
    data["thresholds"]["red"] = 1.5
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"thresholds\.red: Input should be less than or equal to 1 \(got 1\.5\)"):
        load_configs(config_copy)


def test_invalid_yaml_syntax(config_copy):
    path = config_copy / "routing.yaml"
    path.write_text("config_version: 1\nreceivers: [street-team\n  queue: {\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_configs(config_copy)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not valid YAML at line "), message


def test_yaml_that_is_not_a_mapping(config_copy):
    path = config_copy / "pipeline.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="pipeline.yaml: must be a mapping"):
        load_configs(config_copy)


def test_non_utf8_file(config_copy):
    path = config_copy / "levels.yaml"
    path.write_bytes(b"config_version: 1\n# \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_configs(config_copy)
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


def test_missing_file(config_copy):
    path = config_copy / "rules.yaml"
    path.unlink()
    with pytest.raises(ConfigError) as info:
        load_configs(config_copy)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: cannot read"), message


# --- settings ------------------------------------------------------------------------------------
@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith("LABORWATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_broker_must_be_a_kafka_url(clean_env):
    clean_env.setenv("LABORWATCH_BROKER", "foo")
    with pytest.raises(ValidationError, match="kafka://host:port"):
        Settings(_env_file=None)


def test_broker_kafka_url_accepted(clean_env):
    clean_env.setenv("LABORWATCH_BROKER", "kafka://h:1")
    assert Settings(_env_file=None).broker == "kafka://h:1"


def test_broker_unset_or_empty_means_embedded(clean_env):
    assert Settings(_env_file=None).broker is None
    clean_env.setenv("LABORWATCH_BROKER", "")
    assert Settings(_env_file=None).broker is None


def test_database_url_defaults_to_sqlite_under_home(clean_env, tmp_path):
    home = tmp_path / "lwhome"
    clean_env.setenv("LABORWATCH_HOME", str(home))
    settings = Settings(_env_file=None)
    assert settings.database_url is None
    assert settings.resolved_home == home.resolve()
    assert settings.resolved_database_url == f"sqlite:///{home.resolve() / 'laborwatch.db'}"


def test_database_url_default_home_is_var_in_working_dir(clean_env, tmp_path):
    settings = Settings(_env_file=None)
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'var').resolve() / 'laborwatch.db'}"


def test_database_url_from_environment_wins(clean_env):
    clean_env.setenv("LABORWATCH_DATABASE_URL", "postgresql://u@h/db")
    assert Settings(_env_file=None).resolved_database_url == "postgresql://u@h/db"


def test_settings_other_values(clean_env):
    clean_env.setenv("LABORWATCH_PARTITIONS", "8")
    clean_env.setenv("LABORWATCH_TOPIC_PREFIX", "lw")
    settings = Settings(_env_file=None)
    assert settings.partitions == 8
    assert settings.topic("signals") == "lw.signals"
    assert settings.config_dir == CONFIG_DIR
    clean_env.setenv("LABORWATCH_PARTITIONS", "0")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


@pytest.mark.parametrize("url", ["kafka://h:", "kafka://:9092", "kafka://h:abc", "kafka://h:70000"])
def test_broker_needs_host_and_real_port(clean_env, url):
    clean_env.setenv("LABORWATCH_BROKER", url)
    with pytest.raises(ValidationError, match="kafka://host:port"):
        Settings(_env_file=None)


def test_matcher_typo_is_refused_not_silently_unmatched():
    from config.files import Matcher

    with pytest.raises(ValueError, match="not of the form"):
        Matcher.parse("level == red")
    assert Matcher.parse('street != ""').matches({"street": "xixiang"})
