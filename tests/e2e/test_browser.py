"""An inspector in a real browser (Debian's headless Chromium, driven by Playwright) against a
real `laborwatch run`: log in, open the queue, an alert and its enterprise file, acknowledge,
work and resolve it. Screenshots go to test-artifacts/browser/ (gitignored).

The store is seeded before `run` starts (tests/web_seed.py); the account is made with the
command a person uses, `laborwatch users add`.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from alerts.store.db import Database
from alerts.store.workbench import export_outcomes, unpublished_outcomes
from tests.support import REPO, RunningPipeline, base_env, cli, wait_until
from tests.web_seed import PASSWORD, SHAJING, seed

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "browser"
ALERT = "a-red-shajing"

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make tools installs it)"),
]


@pytest.fixture
def workbench_run(tmp_path, shared_dir):
    url = f"sqlite:///{tmp_path / 'laborwatch.db'}"
    db = Database(url)
    seed(db, users=False)
    db.dispose()
    env = base_env(tmp_path / "home", url)
    cli(["users", "add", "wang", "--role", "inspector", "--street", "shajing", "--district", "baoan"], env,
        stdin=PASSWORD + "\n")
    run = RunningPipeline(tmp_path / "home", env, url).start()
    try:
        web_url = json.loads((tmp_path / "home" / "run.json").read_text())["web_url"]
        yield web_url, url
    finally:
        assert run.stop() == 0, run.output()[-3000:]


def test_inspector_works_an_alert_in_the_browser(workbench_run, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    web_url, database_url = workbench_run
    base = web_url.rstrip("/")
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data-dir
            executable_path=str(CHROMIUM), headless=True, locale="zh-CN",
            extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"},
            viewport={"width": 1280, "height": 900},
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(15000)
            page.goto(f"{base}/queue")
            expect(page).to_have_url(f"{base}/login?next=/queue")
            page.fill("input[name=username]", "wang")
            page.fill("input[name=password]", PASSWORD)
            page.screenshot(path=str(ARTIFACTS / "01-login.png"))
            page.click("button[type=submit]")

            expect(page).to_have_url(f"{base}/queue")
            expect(page.locator("h1")).to_contain_text("我的队列")
            expect(page.locator("table.queue")).to_contain_text("红色预警")
            page.screenshot(path=str(ARTIFACTS / "02-queue.png"), full_page=True)

            page.click(f"a.alert-link[href='/alerts/{ALERT}']")
            expect(page).to_have_url(f"{base}/alerts/{ALERT}")
            expect(page.locator("ol.reasons")).to_contain_text("工资超过法定发薪日40天未发")
            page.screenshot(path=str(ARTIFACTS / "03-alert.png"), full_page=True)

            page.click("a.file-link")
            expect(page).to_have_url(f"{base}/enterprises/{SHAJING}")
            expect(page.locator("h1")).to_contain_text("一企一档")
            assert page.locator("svg.chart").count() == 4
            page.screenshot(path=str(ARTIFACTS / "04-enterprise-file.png"), full_page=True)

            page.go_back()
            page.click("#step-acknowledged button")
            expect(page.locator(".meta .status")).to_have_text("已签收")
            page.select_option("#step-in_progress select[name=action]", "visit")
            page.fill("#step-in_progress input[name=note]", "走访：工人反映两个月未发工资")
            page.click("#step-in_progress button")
            expect(page.locator(".meta .status")).to_have_text("处置中")
            page.select_option("#step-resolved select[name=outcome]", "confirmed_arrears")
            page.fill("#step-resolved input[name=note]", "责令限期支付")
            page.click("#step-resolved button")
            expect(page.locator(".meta .status")).to_have_text("已处置")
            expect(page.locator("ol.history")).to_contain_text("查实欠薪")
            page.screenshot(path=str(ARTIFACTS / "05-resolved.png"), full_page=True)

            page.click("a[href^='/lang/en']")
            expect(page.locator(".meta .status")).to_have_text("resolved")
            page.screenshot(path=str(ARTIFACTS / "06-resolved-en.png"), full_page=True)
        finally:
            browser.close()
    # The resolution reached the feedback topic: the publisher marks it once the broker took it.
    db = Database(database_url, run_migrations=False)
    try:
        wait_until(lambda: [o for o in export_outcomes(db) if o["alert_id"] == ALERT] and not unpublished_outcomes(db),
                   timeout=30, what="the outcome published to the feedback topic")
    finally:
        db.dispose()
    for name in ("01-login", "02-queue", "03-alert", "04-enterprise-file", "05-resolved", "06-resolved-en"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 5000
