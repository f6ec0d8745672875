"""The workbench's API and pages against a real database (SQLite and PostgreSQL): every role,
every forbidden path, the workflow from new to closed, SLA escalation, silences, audit, labels,
login throttling and CSRF.

One seeded database per module and database kind (tests/web_seed.py); each test works on its
own alerts or reads only, so the order of the tests does not matter.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.store import workbench
from alerts.store.db import Database
from alerts.store.models import AlertQueue
from alerts.web.app import create_app
from config.files import load_configs
from config.settings import Settings
from tests.web_seed import BANTIAN, HANGCHENG, PASSWORD, SHAJING, seed

RED = "a-red-shajing"
COLLECTIVE = "a-orange-shajing-ci"
HANGCHENG_ALERT = "a-orange-hangcheng"
BANTIAN_ALERT = "a-yellow-bantian"


@pytest.fixture(scope="module")
def world(module_database_url, tmp_path_factory, shared_dir):  # seeded from the contract samples
    db = Database(module_database_url)
    seed(db, signals_of=(SHAJING, BANTIAN))
    settings = Settings(home=tmp_path_factory.mktemp("home"), session_secret="test-secret-" + "x" * 20,
                        login_max_failures=3)
    configs = load_configs(settings.config_dir)
    app = create_app(settings, configs, db, background=False)
    with TestClient(app) as client:
        tokens = {}
        for name in ("insp", "insp2", "insp3", "sup", "sup2", "ana", "adm"):
            response = client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
            assert response.status_code == 200, response.text
            tokens[name] = {"Authorization": f"Bearer {response.json()['access_token']}"}
        yield app, client, tokens, db, configs
    db.dispose()


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [a["alert_id"] for a in response.json()]


# -- authentication ---------------------------------------------------------------------------------
def test_no_token_bad_token_and_wrong_password_are_refused(world):
    app, client, tokens, db, _ = world
    assert client.get("/api/alerts").status_code == 401
    assert client.get("/api/alerts", headers={"Authorization": "Bearer forged.token.value"}).status_code == 401
    assert client.post("/api/auth/token", data={"username": "ana", "password": "wrong password"}).status_code == 401
    assert client.post("/api/auth/token", data={"username": "nobody", "password": PASSWORD}).status_code == 401
    me = client.get("/api/me", headers=tokens["insp"]).json()
    assert me == {"username": "insp", "role": "inspector", "street": "shajing", "district": "baoan"}


def test_failed_logins_lock_the_username_even_for_the_right_password(world):
    app, client, tokens, db, _ = world
    workbench.add_user(db, "lockme", workbench_hash(), "analyst")
    for _ in range(3):
        assert client.post("/api/auth/token", data={"username": "lockme", "password": "nope nope"}).status_code == 401
    assert client.post("/api/auth/token", data={"username": "lockme", "password": PASSWORD}).status_code == 429
    # Others are not affected.
    assert client.post("/api/auth/token", data={"username": "ana", "password": PASSWORD}).status_code == 200


def workbench_hash() -> str:
    from alerts.auth import hash_password

    return hash_password(PASSWORD)


def test_openapi_describes_the_api(world):
    _, client, _, _, _ = world
    paths = client.get("/api/openapi.json").json()["paths"]
    for path in ("/api/auth/token", "/api/alerts", "/api/alerts/{alert_id}", "/api/alerts/{alert_id}/transitions",
                 "/api/alerts/{alert_id}/history", "/api/enterprises/{enterprise_id}", "/api/audit"):
        assert path in paths
    assert not any(p.startswith("/queue") for p in paths)


# -- who sees what ------------------------------------------------------------------------------------
def test_inspector_sees_only_the_queue_of_their_street(world):
    _, client, tokens, _, _ = world
    mine = ids(client.get("/api/alerts?status=all", headers=tokens["insp"]))
    assert set(mine) == {RED, COLLECTIVE}
    assert ids(client.get("/api/alerts?status=all", headers=tokens["insp3"])) == [BANTIAN_ALERT]


@pytest.mark.parametrize("method,path,body", [
    ("get", f"/api/alerts/{HANGCHENG_ALERT}", None),
    ("get", f"/api/alerts/{HANGCHENG_ALERT}/history", None),
    ("post", f"/api/alerts/{HANGCHENG_ALERT}/transitions", {"to": "acknowledged"}),
    ("post", f"/api/alerts/{BANTIAN_ALERT}/transitions", {"to": "acknowledged"}),
    ("get", f"/api/enterprises/{HANGCHENG}", None),
    ("get", f"/api/enterprises/{BANTIAN}", None),
    ("get", "/api/alerts/no-such-alert", None),
])
def test_inspector_gets_404_for_another_streets_things(world, method, path, body):
    _, client, tokens, _, _ = world
    response = getattr(client, method)(path, headers=tokens["insp"], **({"json": body} if body else {}))
    assert response.status_code == 404
    assert "Hangcheng" not in response.text and "hangcheng" not in response.text


@pytest.mark.parametrize("method,path,body", [
    ("get", "/api/alerts?kind=command", None),
    ("get", "/api/audit", None),
    ("get", "/api/feedback", None),
    ("post", f"/api/alerts/{COLLECTIVE}/escalate", {}),
    ("put", f"/api/alerts/{COLLECTIVE}/assignee", {"assignee": "insp"}),
    ("post", f"/api/enterprises/{SHAJING}/silences", {"reason": "x", "expires_at": "2099-01-01T00:00:00+08:00"}),
])
def test_inspector_is_forbidden_supervisors_and_analysts_work(world, method, path, body):
    _, client, tokens, _, _ = world
    response = getattr(client, method)(path, headers=tokens["insp"], **({"json": body} if body is not None else {}))
    assert response.status_code == 403, response.text


def test_analyst_reads_everything_changes_nothing(world):
    _, client, tokens, _, _ = world
    everything = set(ids(client.get("/api/alerts?status=all", headers=tokens["ana"])))
    assert everything == {RED, COLLECTIVE, HANGCHENG_ALERT, BANTIAN_ALERT}
    assert client.get(f"/api/enterprises/{BANTIAN}", headers=tokens["ana"]).status_code == 200
    for method, path, body in [
        ("post", f"/api/alerts/{BANTIAN_ALERT}/transitions", {"to": "acknowledged"}),
        ("post", f"/api/alerts/{BANTIAN_ALERT}/escalate", {}),
        ("put", f"/api/alerts/{BANTIAN_ALERT}/assignee", {"assignee": "insp3"}),
        ("post", f"/api/enterprises/{BANTIAN}/silences", {"reason": "x", "expires_at": "2099-01-01T00:00:00+08:00"}),
        ("get", "/api/audit", None),
    ]:
        response = getattr(client, method)(path, headers=tokens["ana"], **({"json": body} if body is not None else {}))
        assert response.status_code == 403, (path, response.text)
    assert client.get("/api/feedback", headers=tokens["ana"]).status_code == 200


def test_supervisor_sees_their_district_only(world):
    _, client, tokens, _, _ = world
    assert set(ids(client.get("/api/alerts?status=all", headers=tokens["sup"]))) == {RED, COLLECTIVE, HANGCHENG_ALERT}
    assert ids(client.get("/api/alerts?status=all", headers=tokens["sup2"])) == [BANTIAN_ALERT]
    assert client.get(f"/api/alerts/{BANTIAN_ALERT}", headers=tokens["sup"]).status_code == 404
    assert client.post(f"/api/alerts/{BANTIAN_ALERT}/escalate", headers=tokens["sup"], json={}).status_code == 404
    assert client.get(f"/api/enterprises/{BANTIAN}", headers=tokens["sup"]).status_code == 404
    # The command queue: the red alerts routed there.
    assert set(ids(client.get("/api/alerts?kind=command&status=all", headers=tokens["sup"]))) == {RED, COLLECTIVE}
    assert client.get("/api/alerts?kind=command", headers=tokens["sup2"]).json() == []


def test_queue_order_and_filters(world):
    _, client, tokens, _, _ = world
    everything = client.get("/api/alerts?status=all", headers=tokens["adm"]).json()
    levels = [a["level"] for a in everything]
    assert levels == sorted(levels, key=["red", "orange", "yellow", "blue"].index)
    assert ids(client.get("/api/alerts?status=all&level=yellow", headers=tokens["adm"])) == [BANTIAN_ALERT]
    assert ids(client.get("/api/alerts?status=all&category=collective_incident", headers=tokens["adm"])) == [COLLECTIVE]
    grid = everything[0]["grid"]
    assert all(a["grid"] == grid for a in client.get(f"/api/alerts?status=all&grid={grid}", headers=tokens["adm"]).json())


def test_reasons_in_the_language_asked_for(world):
    _, client, tokens, _, _ = world
    zh = client.get(f"/api/alerts/{BANTIAN_ALERT}", headers={**tokens["adm"], "Accept-Language": "zh-CN,zh;q=0.9"}).json()
    en = client.get(f"/api/alerts/{BANTIAN_ALERT}?lang=en", headers=tokens["adm"]).json()
    assert zh["reasons"][0]["text"] == "工资超过法定发薪日40天未发"
    assert zh["reasons"][1]["text"] == "用电量比自身8周基线低62%（近7天）"  # rule code -> its feature
    assert en["reasons"][0]["text"] == "wages unpaid 40 days after the statutory pay day"
    assert en["reasons"][0]["code"] == "wage_days_overdue_max" and en["reasons"][0]["value"] == 40.0


# -- the workflow -------------------------------------------------------------------------------------------
def test_an_alert_from_new_to_closed_with_actions_outcome_history_and_label(world):
    app, client, tokens, db, _ = world
    h = tokens["insp"]

    def step(body, expect=201):
        response = client.post(f"/api/alerts/{RED}/transitions", headers=h, json=body)
        assert response.status_code == expect, response.text
        return response.json()

    step({"to": "resolved", "outcome": "rectified"}, expect=409)  # not from new
    step({"to": "acknowledged", "note": "on my way"})
    step({"to": "acknowledged"}, expect=409)
    step({"to": "in_progress", "action": "visit", "note": "走访: workers say two months unpaid"})
    step({"to": "in_progress"}, expect=409)  # staying in progress records an action
    step({"to": "in_progress", "action": "employer_interview"})
    step({"to": "resolved"}, expect=409)  # a resolution needs an outcome
    step({"to": "in_progress", "action": "bribe"}, expect=422)
    resolved = step({"to": "resolved", "outcome": "confirmed_arrears", "note": "ordered to pay by Friday"})
    assert resolved["actor"] == "insp" and resolved["from_status"] == "in_progress"
    # The analyst cannot close it; the inspector can.
    assert client.post(f"/api/alerts/{RED}/transitions", headers=tokens["ana"], json={"to": "closed"}).status_code == 403
    step({"to": "closed", "note": "paid"})
    assert client.get(f"/api/alerts/{RED}", headers=h).json()["status"] == "closed"
    assert RED not in ids(client.get("/api/alerts", headers=h))  # the queue shows open alerts

    history = client.get(f"/api/alerts/{RED}/history", headers=h).json()
    people = [(x["from_status"], x["to_status"], x["action"], x["outcome"]) for x in history if x["kind"] == "person"]
    assert people == [
        ("new", "acknowledged", None, None),
        ("acknowledged", "in_progress", "visit", None),
        ("in_progress", "in_progress", "employer_interview", None),
        ("in_progress", "resolved", None, "confirmed_arrears"),
        ("resolved", "closed", None, None),
    ]
    assert history[0]["kind"] == "pipeline" and history[0]["change"] == "raised"

    labels = [x for x in client.get("/api/feedback", headers=tokens["ana"]).json() if x["alert_id"] == RED]
    assert len(labels) == 1
    label = labels[0]
    assert label["label"] == 1 and label["outcome"] == "confirmed_arrears" and label["enterprise_id"] == SHAJING
    assert label["actions"] == ["visit", "employer_interview"]
    assert workbench.unpublished_outcomes(db)  # waits for the publisher (no broker in this test)

    audit = client.get("/api/audit?actor=insp", headers=tokens["sup"]).json()
    assert {"transition"} <= {a["action"] for a in audit}
    assert app.state.metrics.transitions.labels("closed")._value.get() >= 1


def test_sla_escalation_to_the_command_queue_is_idempotent(world):
    app, client, tokens, db, configs = world
    later = workbench.now_utc() + timedelta(hours=3)  # red: 2 hours to acknowledge
    queue = client.get(f"/api/alerts/{COLLECTIVE}", headers=tokens["insp"]).json()
    assert queue["sla"]["overdue"] is None and queue["escalated_at"] is None
    app.state.clock = lambda: later
    try:
        overdue = client.get("/api/alerts?overdue=true", headers=tokens["insp"]).json()
        assert COLLECTIVE in [a["alert_id"] for a in overdue]
        assert overdue[0]["sla"]["overdue"] == "acknowledge"
        assert workbench.escalate_overdue(db, configs, later) >= 1
        assert workbench.escalate_overdue(db, configs, later) == 0
        after = client.get(f"/api/alerts/{COLLECTIVE}", headers=tokens["sup"]).json()
        assert after["escalated_at"] is not None
        assert "district:baoan-command" in after["queues"]
        with db.session() as session:
            rows = session.scalars(select(AlertQueue.queue).where(AlertQueue.alert_id == COLLECTIVE)).all()
        assert sorted(rows) == ["district:baoan-command", "street:shajing"]
        # The yellow alert of longgang is not late yet (24 hours).
        assert client.get(f"/api/alerts/{BANTIAN_ALERT}", headers=tokens["sup2"]).json()["escalated_at"] is None
    finally:
        app.state.clock = workbench.now_utc


def test_two_processes_escalating_the_same_alert_escalate_it_once(world):
    """Every `run` has an SLA loop: one reads the overdue alert, another escalates it meanwhile;
    the first one's escalation then finds it done (and so writes no audit line of its own)."""
    from alerts.store import repo
    from alerts.store.models import AlertTriage
    from tests.web_seed import _alert

    app, client, tokens, db, configs = world
    repo.apply_alert(db, _alert("a-race-shajing", SHAJING, "orange", 0.7, "risk", "shajing", "baoan"))
    with db.session() as session:  # assigned already: both processes read a triage row, unescalated
        session.add(AlertTriage(alert_id="a-race-shajing", assignee="insp"))
    boss = workbench.Principal("sup", "supervisor", None, "baoan")
    later = workbench.now_utc() + timedelta(days=2)
    with db.session() as slow:
        stale = workbench.get_alert(slow, boss, configs, "a-race-shajing", later)
        assert stale.overdue and stale.triage.escalated_at is None
        with db.session() as other:  # the other process: reads, escalates, commits
            fresh = workbench.get_alert(other, boss, configs, "a-race-shajing", later)
            assert workbench._escalate(other, configs, fresh, "sla", "sla_acknowledge", later) is True
        assert workbench._escalate(slow, configs, stale, "sla", "sla_acknowledge", later) is False
    with db.session() as session:
        triage = session.get(AlertTriage, "a-race-shajing")
        assert triage.escalated_at is not None and triage.escalated_by == "sla" and triage.assignee == "insp"
        queues = session.scalars(select(AlertQueue.queue).where(AlertQueue.alert_id == "a-race-shajing")).all()
        assert sorted(queues) == ["district:baoan-command", "street:shajing"]


def test_supervisor_silences_reassigns_and_escalates(world):
    app, client, tokens, db, configs = world
    assert HANGCHENG_ALERT in ids(client.get("/api/alerts", headers=tokens["insp2"]))
    response = client.post(f"/api/enterprises/{HANGCHENG}/silences", headers=tokens["sup"],
                           json={"reason": "owner in hospital; wages guaranteed by the park", "expires_at": "2099-01-01T00:00:00+08:00"})
    assert response.status_code == 201, response.text
    assert client.post(f"/api/enterprises/{HANGCHENG}/silences", headers=tokens["sup"],
                       json={"reason": "x", "expires_at": "2001-01-01T00:00:00+08:00"}).status_code == 400
    assert HANGCHENG_ALERT not in ids(client.get("/api/alerts", headers=tokens["insp2"]))
    assert client.get(f"/api/alerts/{HANGCHENG_ALERT}", headers=tokens["insp2"]).json()["silenced_until"]
    # Silenced: not escalated past its SLA either.
    later = workbench.now_utc() + timedelta(days=30)
    workbench.escalate_overdue(db, configs, later)
    assert client.get(f"/api/alerts/{HANGCHENG_ALERT}", headers=tokens["sup"]).json()["escalated_at"] is None

    # Reassigned to the shajing inspector, who can now see and work it.
    assert client.get(f"/api/alerts/{HANGCHENG_ALERT}", headers=tokens["insp"]).status_code == 404
    assert client.put(f"/api/alerts/{HANGCHENG_ALERT}/assignee", headers=tokens["sup"], json={"assignee": "insp3"}).status_code == 400
    assert client.put(f"/api/alerts/{HANGCHENG_ALERT}/assignee", headers=tokens["sup"], json={"assignee": "insp"}).status_code == 204
    assert client.get(f"/api/alerts/{HANGCHENG_ALERT}", headers=tokens["insp"]).json()["assignee"] == "insp"
    assert client.get(f"/api/enterprises/{HANGCHENG}", headers=tokens["insp"]).status_code == 200
    assert client.post(f"/api/alerts/{HANGCHENG_ALERT}/escalate", headers=tokens["sup"], json={"note": "big"}).status_code == 204
    assert HANGCHENG_ALERT in ids(client.get("/api/alerts?kind=command", headers=tokens["sup"]))

    actions = {(a["actor"], a["action"]) for a in client.get("/api/audit", headers=tokens["sup"]).json()}
    assert {("sup", "silence"), ("sup", "reassign"), ("sup", "escalate"), ("insp", "read_enterprise")} <= actions


def test_reads_of_enterprise_files_are_audited_and_supervisors_see_only_their_district(world):
    _, client, tokens, _, _ = world
    assert client.get(f"/api/enterprises/{BANTIAN}", headers=tokens["insp3"]).status_code == 200
    mine = client.get("/api/audit?actor=insp3", headers=tokens["sup2"]).json()
    assert any(a["action"] == "read_enterprise" and a["target"] == f"enterprise:{BANTIAN}" for a in mine)
    assert all(a["district"] == "longgang" for a in client.get("/api/audit", headers=tokens["sup2"]).json())
    assert client.get("/api/audit?actor=insp3", headers=tokens["sup"]).json() == []
    assert client.get("/api/audit?actor=insp3", headers=tokens["adm"]).json()


# -- pages ------------------------------------------------------------------------------------------------
def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _login(app, name: str, lang: str = "en") -> TestClient:
    client = TestClient(app, headers={"Accept-Language": lang})
    page = client.get("/login")
    response = client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": _csrf(page.text),
                                           "next": "/queue"})
    assert response.status_code == 200 and response.url.path == "/queue", response.text[:500]
    return client


def test_pages_need_a_login_and_csrf(world):
    app, _, _, _, _ = world
    anonymous = TestClient(app)
    response = anonymous.get(f"/alerts/{BANTIAN_ALERT}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    page = anonymous.get("/login")
    assert anonymous.post("/login", data={"username": "insp3", "password": PASSWORD}).status_code == 403
    wrong = anonymous.post("/login", data={"username": "insp3", "password": "wrong one", "csrf_token": _csrf(page.text)})
    assert wrong.status_code == 401

    client = _login(app, "insp3")
    page = client.get(f"/alerts/{BANTIAN_ALERT}")
    assert page.status_code == 200
    no_token = client.post(f"/alerts/{BANTIAN_ALERT}/transition", data={"to": "acknowledged"})
    assert no_token.status_code == 403
    assert client.get(f"/api/alerts/{BANTIAN_ALERT}").status_code == 401  # the API wants a bearer token


def test_inspector_pages_hide_other_streets(world):
    app, _, _, _, _ = world
    client = _login(app, "insp3", "zh-CN")
    queue = client.get("/queue")
    assert "黄" in queue.text and BANTIAN_ALERT in queue.text and RED not in queue.text
    other = client.get(f"/alerts/{RED}")
    assert other.status_code == 404 and "Shajing" not in other.text
    assert client.get(f"/enterprises/{SHAJING}").status_code == 404
    assert client.get("/audit").status_code == 403
    assert client.get("/queue?kind=command").status_code == 403


def test_work_an_alert_through_the_pages_in_both_languages(world):
    app, _, tokens, _, _ = world
    client = _login(app, "insp3", "zh-CN")
    page = client.get(f"/alerts/{BANTIAN_ALERT}")
    assert "签收" in page.text and "黄色预警" in page.text
    csrf = _csrf(page.text)
    for data in ({"to": "acknowledged"}, {"to": "in_progress", "action": "visit", "note": "走访"},
                 {"to": "resolved", "outcome": "false_alarm", "action": ""}, {"to": "closed"}):
        response = client.post(f"/alerts/{BANTIAN_ALERT}/transition", data={**data, "csrf_token": csrf})
        assert response.status_code == 200 and response.url.path == f"/alerts/{BANTIAN_ALERT}", response.text[:300]
    assert "已办结" in response.text and "误报" in response.text
    client.get("/lang/en?next=/queue")
    english = client.get(f"/alerts/{BANTIAN_ALERT}")
    assert "closed" in english.text and "false alarm" in english.text and "黄 yellow" in english.text

    enterprise = client.get(f"/enterprises/{BANTIAN}")
    assert enterprise.status_code == 200 and "Enterprise file" in enterprise.text


def test_enterprise_file_draws_the_charts_from_the_ledger(world):
    app, _, _, _, _ = world
    client = _login(app, "sup")
    page = client.get(f"/enterprises/{SHAJING}")
    assert page.status_code == 200
    assert page.text.count("<svg") == 4  # electricity, water, wages, timeline
    assert 'class="baseline"' in page.text and 'class="paid"' in page.text
    assert "wages are not monitored" not in page.text


def test_enterprise_file_says_when_wages_are_not_monitored(world):
    """A third of the contract's sample firms have no payroll feed: their file says so and what
    to do about it, rather than an empty chart."""
    app, _, _, _, _ = world
    client = _login(app, "insp3", "zh-CN")  # bantian's inspector
    page = client.get(f"/enterprises/{BANTIAN}")
    assert page.status_code == 200
    assert page.text.count("<svg") == 3  # electricity, water, timeline
    assert "该企业工资未接入监控" in page.text and 'class="paid"' not in page.text
    client.get("/lang/en?next=/queue")
    assert "wages are not monitored; check its payroll on the visit" in client.get(f"/enterprises/{BANTIAN}").text
