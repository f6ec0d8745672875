"""The monitoring configuration, checked against promtool, docker-compose.yml and the code.

- config/prometheus.yml, config/alert-rules.yml and the rules' unit tests
  (config/alert-rules.test.yml) pass `promtool check config`, `promtool check rules` and
  `promtool test rules`. promtool comes from Debian's `prometheus` package, which `make test`
  installs; without it these tests fail (they never skip: an unchecked rule file is a broken
  alert found in production).
- Every metric an alert rule or a Grafana dashboard refers to is one that streams.metrics.Metrics
  exports, under the exact name Prometheus sees (counters with `_total`, histograms as
  `_bucket`/`_sum`/`_count`, an Info as `_info`), so renaming a metric breaks this test rather
  than silently emptying a panel or disarming an alert.
- The dashboards (config/grafana/dashboards/*.json) are valid, their panel ids unique, their
  data sources the provisioned one, their expressions valid PromQL; and the paths of the
  Prometheus and Grafana files agree with the volumes docker-compose.yml mounts them at.
"""
from __future__ import annotations

import json
import posixpath
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
PROMETHEUS_CONFIG = CONFIG / "prometheus.yml"
ALERT_RULES = CONFIG / "alert-rules.yml"
ALERT_RULES_TEST = CONFIG / "alert-rules.test.yml"
GRAFANA = CONFIG / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
COMPOSE_FILE = ROOT / "docker-compose.yml"

PROMTOOL_MISSING = "promtool not found: apt-get install prometheus (make test installs it)"

EXPECTED_ALERTS = {
    "LaborWatchNoSignals",
    "LaborWatchRejectionRateHigh",
    "LaborWatchConsumerLagGrowing",
    "LaborWatchAlertsPastSLA",
    "LaborWatchFeatureDrift",
    "LaborWatchWorkerDown",
    "LaborWatchWebDown",
}
EXPECTED_DASHBOARDS = {"pipeline-health.json", "inspection-workload.json", "model-health.json"}

_METRIC = re.compile(r"\blaborwatch_[a-z_]+")
_VARIABLE = re.compile(r"\$(?:\{)?([A-Za-z_][A-Za-z0-9_]*)")


# --- helpers -----------------------------------------------------------------------------------
def _promtool(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(PROMTOOL_MISSING, pytrace=False)
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def prometheus_config() -> dict:
    return _yaml(PROMETHEUS_CONFIG)


@pytest.fixture(scope="module")
def alert_rules() -> list[dict]:
    return [rule for group in _yaml(ALERT_RULES)["groups"] for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in DASHBOARDS}


@pytest.fixture(scope="module")
def compose_services() -> dict[str, dict]:
    return _yaml(COMPOSE_FILE)["services"]


def _panels(panels: list[dict]) -> Iterator[dict]:
    """Every panel, those inside (collapsed) rows included."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def _targets(dashboard: dict) -> Iterator[tuple[dict, dict]]:
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets") or []:
            yield panel, target


def _variable_query(variable: dict) -> str:
    query = variable.get("query")
    return query.get("query", "") if isinstance(query, dict) else str(query or "")


def _dashboard_expressions(dashboard: dict) -> list[str]:
    exprs = [target["expr"] for _, target in _targets(dashboard) if target.get("expr")]
    exprs += [_variable_query(v) for v in dashboard.get("templating", {}).get("list", []) if v.get("type") == "query"]
    return exprs


def _bind_mounts(service: dict) -> dict[str, str]:
    """{container path: host path (relative to the project)} of a service's bind mounts."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
            if source.startswith((".", "/")):
                mounts[target] = source
        elif volume.get("type") == "bind":
            mounts[volume["target"]] = volume["source"]
    return mounts


def _host_path(mounts: dict[str, str], container_path: str) -> Path | None:
    """Where a container path comes from on the host, through the longest matching bind mount."""
    container_path = posixpath.normpath(container_path)
    for target in sorted(mounts, key=len, reverse=True):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            rest = posixpath.relpath(container_path, target)
            return (ROOT / mounts[target] / ("" if rest == "." else rest)).resolve()
    return None


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {name: str(value) for name, value in env.items()}


def _exposed_names() -> dict[str, str]:
    """{name as Prometheus scrapes it: metric family} for every metric of Metrics() and
    WebMetrics() (both served on one registry by `laborwatch run`)."""
    from streams.metrics import Metrics, WebMetrics

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
        "stateset": ("",),
        "unknown": ("",),
    }
    names: dict[str, str] = {}
    registry = Metrics().registry
    WebMetrics(registry)
    for family in registry.collect():
        for suffix in suffixes[family.type]:
            names[family.name + suffix] = family.name
    return names


# --- promtool ----------------------------------------------------------------------------------
def test_prometheus_config_passes_promtool_check_config():
    # Also loads and checks every rule_files entry, relative to the config file.
    _assert_ok(_promtool("check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT))))


def test_alert_rules_pass_promtool_check_rules():
    _assert_ok(_promtool("check", "rules", str(ALERT_RULES.relative_to(ROOT))))


def test_alert_rules_pass_their_unit_tests():
    _assert_ok(_promtool("test", "rules", str(ALERT_RULES_TEST.relative_to(ROOT))))


def test_dashboard_expressions_are_valid_promql(dashboards, tmp_path):
    """Each panel query, with Grafana's variables filled in, as a recording rule promtool parses."""
    rules = []
    for name, dashboard in dashboards.items():
        for panel, target in _targets(dashboard):
            expr = re.sub(r"\$__\w+", "5m", target["expr"])
            expr = _VARIABLE.sub(".*", expr).replace(".*}", ".*")
            rules.append({"record": f"dashboard:{Path(name).stem.replace('-', '_')}:panel_{panel['id']}_{target['refId']}",
                          "expr": expr})
    assert rules
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    _assert_ok(_promtool("check", "rules", str(path)))


# --- the files' contents -----------------------------------------------------------------------
def test_prometheus_config_loads_the_rules_and_scrapes_the_jobs(prometheus_config, compose_services):
    assert prometheus_config["rule_files"] == [ALERT_RULES.name]
    assert prometheus_config["global"]["scrape_interval"]
    assert prometheus_config["global"]["evaluation_interval"]
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    assert {"laborwatch-worker", "laborwatch-web", "prometheus"} <= set(jobs)

    # Workers: every replica of `--scale worker=N`, discovered through the service's DNS name,
    # on the port the worker serves its metrics on.
    worker = jobs["laborwatch-worker"]
    assert "worker" in compose_services
    metrics_port = int(_environment(compose_services["worker"])["LABORWATCH_METRICS_PORT"])
    assert [(sd["names"], sd.get("type"), sd.get("port")) for sd in worker["dns_sd_configs"]] == [
        (["worker"], "A", metrics_port)
    ]

    web = jobs["laborwatch-web"]
    assert web.get("metrics_path", "/metrics") == "/metrics"
    assert "web" in compose_services
    web_env = _environment(compose_services["web"])
    # Discovered by DNS too: with the `web` profile off there is no target (a static one would
    # be down and LaborWatchWebDown would fire); on its metrics port, never the published web one.
    assert "static_configs" not in web
    assert [(sd["names"], sd.get("type"), sd.get("port")) for sd in web["dns_sd_configs"]] == [
        (["web"], "A", int(web_env["LABORWATCH_METRICS_PORT"]))
    ]
    published = {str(p).split(":")[-1] for p in compose_services["web"].get("ports", [])}
    assert web_env["LABORWATCH_METRICS_PORT"] not in published and web_env["LABORWATCH_WEB_PORT"] in published


def test_compose_mounts_the_config_and_its_rule_files(prometheus_config, compose_services):
    """Inside the container, rule_files resolve next to /etc/prometheus/prometheus.yml: each must
    be mounted there from config/ (a rule file that is not there leaves Prometheus without
    alerts)."""
    mounts = _bind_mounts(compose_services["prometheus"])
    config_in_container = "/etc/prometheus/prometheus.yml"
    assert _host_path(mounts, config_in_container) == PROMETHEUS_CONFIG.resolve()
    for rule_file in prometheus_config["rule_files"]:
        in_container = posixpath.join(posixpath.dirname(config_in_container), rule_file)
        host = _host_path(mounts, in_container)
        assert host == (PROMETHEUS_CONFIG.parent / rule_file).resolve(), (
            f"docker-compose.yml's prometheus service does not mount {rule_file} at {in_container} "
            f"(add a read-only bind of ./config/{rule_file} there)"
        )


def test_every_alert_is_complete(alert_rules):
    assert {rule["alert"] for rule in alert_rules} == EXPECTED_ALERTS
    for rule in alert_rules:
        assert rule.get("for"), f"{rule['alert']}: no `for:`"
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), rule["alert"]


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not(alert_rules):
    tests = _yaml(ALERT_RULES_TEST)
    assert tests["rule_files"] == [ALERT_RULES.name]
    fires: set[str] = set()
    silent: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test") or []:
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules}
    assert alerts - fires == set(), "no test where these fire"
    assert alerts - silent == set(), "no test where these stay silent"


def test_every_metric_referred_to_is_exported(alert_rules, dashboards):
    """Expressions must use the exact scraped names (a histogram's family name alone selects
    nothing); the alerts' prose may also name a metric family."""
    exposed = _exposed_names()
    families = set(exposed.values())
    where: dict[str, set[str]] = {}
    prose: dict[str, set[str]] = {}
    for rule in alert_rules:
        for name in _METRIC.findall(rule["expr"]):
            where.setdefault(name, set()).add(f"alert {rule['alert']}")
        for text in rule.get("annotations", {}).values():
            for name in _METRIC.findall(text):
                prose.setdefault(name, set()).add(f"alert {rule['alert']} (annotation)")
    for file, dashboard in dashboards.items():
        for expr in _dashboard_expressions(dashboard):
            for name in _METRIC.findall(expr):
                where.setdefault(name, set()).add(f"dashboard {file}")
    assert where, "no laborwatch_ metric found in the alert rules and dashboards"
    missing = {name: sorted(places) for name, places in sorted(where.items()) if name not in exposed}
    missing |= {name: sorted(places) for name, places in sorted(prose.items())
                if name not in exposed and name not in families}
    assert not missing, (
        "referred to but not exported by streams.metrics (as scraped: counters end in "
        f"_total, histograms in _bucket/_sum/_count, an Info in _info): {missing}; "
        f"exported: {sorted(exposed)}"
    )


# --- Grafana -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def datasource_uids() -> dict[str, str]:
    uids: dict[str, str] = {}
    for path in sorted((GRAFANA / "datasources").glob("*.y*ml")):
        for source in _yaml(path).get("datasources") or []:
            uids[source["uid"]] = source["type"]
    return uids


def test_datasource_is_prometheus_on_the_compose_network(datasource_uids, compose_services):
    assert datasource_uids == {"prometheus": "prometheus"}
    (source,) = _yaml(GRAFANA / "datasources" / "prometheus.yml")["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose_services
    assert "9090:9090" in compose_services["prometheus"].get("ports", [])


def test_grafana_paths_agree_with_the_compose_mount(compose_services):
    """Grafana reads <provisioning>/datasources and <provisioning>/dashboards; the provider's
    path, inside the container, must be where the dashboards' JSON lands."""
    mounts = _bind_mounts(compose_services["grafana"])
    provisioning = "/etc/grafana/provisioning"
    assert _host_path(mounts, provisioning) == GRAFANA.resolve()
    assert list((GRAFANA / "datasources").glob("*.yml")), "no data source provisioning file"
    providers = [p for path in sorted((GRAFANA / "dashboards").glob("*.y*ml"))
                 for p in _yaml(path).get("providers") or []]
    assert len(providers) == 1 and providers[0]["type"] == "file"
    host_dir = _host_path(mounts, providers[0]["options"]["path"])
    assert host_dir is not None, f"{providers[0]['options']['path']} is not mounted into the grafana container"
    assert {p.name for p in host_dir.glob("*.json")} == EXPECTED_DASHBOARDS


def test_dashboards_are_valid(dashboards, datasource_uids):
    assert set(dashboards) == EXPECTED_DASHBOARDS
    uids = [dashboard["uid"] for dashboard in dashboards.values()]
    assert len(set(uids)) == len(uids), f"dashboard uids repeat: {uids}"
    for name, dashboard in dashboards.items():
        assert dashboard["title"] and dashboard["schemaVersion"] >= 36, name
        ids = [panel["id"] for panel in _panels(dashboard["panels"])]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat: {ids}"
        variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
        n_targets = 0
        for panel, target in _targets(dashboard):
            n_targets += 1
            where = f"{name}: panel {panel['id']} ({panel.get('title')}) target {target.get('refId')}"
            assert target.get("expr"), f"{where}: no expression"
            for source in (panel.get("datasource"), target.get("datasource")):
                assert isinstance(source, dict) and source.get("uid") in datasource_uids, (
                    f"{where}: data source {source!r} is not a provisioned uid {sorted(datasource_uids)}"
                )
            used = {v for v in _VARIABLE.findall(target["expr"]) if not v.startswith("__")}
            assert used <= variables, f"{where}: undefined variables {sorted(used - variables)}"
        assert n_targets, f"{name}: no queries"
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                assert variable["datasource"]["uid"] in datasource_uids, f"{name}: variable {variable['name']}"


def test_inspection_workload_can_be_filtered_by_queue(dashboards):
    dashboard = dashboards["inspection-workload.json"]
    assert "queue" in {v["name"] for v in dashboard["templating"]["list"]}
    # Every panel on a metric that has a queue label follows the queue picker (the workbench's
    # workflow counters have none: people's steps are not counted per queue).
    from streams.metrics import Metrics, WebMetrics

    registry = Metrics().registry
    WebMetrics(registry)
    queued = {family.name for family in registry.collect()
              if "queue" in getattr(registry._names_to_collectors.get(family.name), "_labelnames", ())}
    assert queued >= {"laborwatch_alerts_raised", "laborwatch_open_alerts", "laborwatch_alerts_past_sla"}
    for _, target in _targets(dashboard):
        if any(name.removesuffix("_total") in queued for name in _METRIC.findall(target["expr"])):
            assert "$queue" in target["expr"], target["expr"]
