"""The dashboard in a real browser: Debian's Chromium driven by Selenium against ``pgdurable ui``
(a subprocess) on the test's database, while a worker runs the demo's workflows.

The test opens the list, filters it, opens a workflow and checks its timeline, then sends a signal
through the page (with its confirmation) to a workflow waiting for it and sees the workflow
complete. Screenshots go to the test's tmp_path; with ``PGDURABLE_UPDATE_SCREENSHOTS=1`` the
workflow page's is also written to ``docs/dashboard-workflow.png`` (the README shows it).

Skipped, saying why, only when Chromium, its driver or Selenium is missing
(``apt-get install chromium chromium-driver``; ``pip install -e '.[dev]'``) — and never under
``scripts/test`` (``.ci/run``), which installs them and sets ``PGDURABLE_REQUIRE_BROWSER=1``: there a
missing browser fails the run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from tests.support.db import free_port
from tests.support.polling import wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

REQUIRED = os.environ.get("PGDURABLE_REQUIRE_BROWSER") == "1"
if REQUIRED and (CHROMIUM is None or CHROMEDRIVER is None):
    raise RuntimeError("PGDURABLE_REQUIRE_BROWSER=1 but Chromium or chromedriver is missing: "
                       "apt-get install chromium chromium-driver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="no Chromium or chromedriver on this machine: apt-get install chromium "
                              "chromium-driver"),
]
if REQUIRED:
    from selenium import webdriver
else:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (dev extra)")
    pytest.importorskip("starlette", reason="the dashboard's extra (pip install 'pgdurable[ui]') is missing")

from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from pgdurable import Durable, demo  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1000", "--hide-scrollbars"]


class Backend:
    """A worker of the demo's workflows and a client, on an event loop in a thread of their own."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="demo-worker", daemon=True)
        self.thread.start()
        self.connection = Durable.Connection(dsn)
        self.client = Durable.Client(connection=self.connection)
        self.run(Durable.Worker.create(connection=self.connection, task_queue=demo.TASK_QUEUE,
                                       workflows=[demo.order_workflow, demo.approval_order_workflow]))

    def run(self, coroutine: Any, timeout: float = 60) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def start(self, workflow_name: str, order: dict[str, Any]) -> str:
        handle = self.run(self.client.workflow.start(
            args=[order], task_queue=demo.TASK_QUEUE, workflow_name=workflow_name,
            workflow_id=f"demo-order-{order['order_id']}"))
        return str(handle.workflow_id)

    def status(self, workflow_id: str) -> str:
        return str(self.run(self.client.workflow.get_handle(workflow_id).status()))

    def result(self, workflow_id: str) -> Any:
        return self.run(self.client.workflow.get_handle(workflow_id).result(timeout=30))

    def close(self) -> None:
        async def stop() -> None:
            await Durable.shutdown()
            await self.connection.close()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def backend(dsn: str) -> Iterator[Backend]:
    backend = Backend(dsn)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def dashboard(dsn: str, tmp_path: Path) -> Iterator[str]:
    """``pgdurable ui`` serving the test's database; its base URL."""
    port = free_port()
    log = (tmp_path / "ui.log").open("w")
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "pgdurable.cli", "ui", "--dsn", dsn, "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        assert proc.poll() is None, (tmp_path / "ui.log").read_text()
        try:
            with urllib.request.urlopen(url + "streams", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_until(up, "the dashboard to serve")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def rows(driver: Any) -> list[str] | None:
    """The workflow ids the list shows (None while the page is being replaced)."""
    try:
        return list(driver.execute_script(
            "return Array.from(document.querySelectorAll('tr.wf'), r => r.dataset.workflowId)"))
    except WebDriverException:
        return None


def status_of_page(driver: Any) -> str | None:
    try:
        return str(driver.find_element(By.ID, "status").text)
    except WebDriverException:
        return None


def settled(driver: Any, status: str) -> bool:
    """Reloads the workflow page until it shows ``status``."""
    driver.refresh()
    return status_of_page(driver) == status


def screenshot(driver: Any, path: Path, *, full: bool = False) -> None:
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, max(1000, int(height)))
    driver.save_screenshot(str(path))
    if full:
        driver.set_window_size(1280, 1000)
    assert path.stat().st_size > 10_000


def test_the_dashboard_lists_filters_shows_a_timeline_and_signals_a_workflow(backend, dashboard, browser,
                                                                           tmp_path):
    suffix = Durable.guid(6).replace("_", "x").replace("-", "x").lower()
    orders = [{"order_id": f"{n}-{suffix}", "customer": c, "amount": 20 * n, "flaky": n == 2}
              for n, c in enumerate(["ada", "grace", "alan"], start=1)]
    ids = [backend.start("order_workflow", order) for order in orders]
    flaky_id = ids[1]

    # The list: every run, then filtered through the form.
    browser.get(dashboard)
    wait_until(lambda: set(ids) <= set(rows(browser) or []) or browser.refresh(),
               "the list to show the orders")
    screenshot(browser, tmp_path / "list.png")
    browser.find_element(By.NAME, "id").send_keys(flaky_id)
    Select(browser.find_element(By.NAME, "status")).select_by_value("")
    browser.find_element(By.ID, "apply-filters").click()
    wait_until(lambda: "id=" in browser.current_url, "the filtered list to load")
    wait_until(lambda: rows(browser) == [flaky_id], "the list filtered by id")
    browser.get(dashboard)
    browser.find_element(By.NAME, "name").send_keys("nothing_like_this")
    browser.find_element(By.ID, "apply-filters").click()
    wait_until(lambda: "name=nothing_like_this" in browser.current_url, "the filtered list to load")
    wait_until(lambda: browser.find_elements(By.ID, "no-workflows"), "an empty filtered list")
    screenshot(browser, tmp_path / "list-filtered.png")

    # A workflow: its timeline shows the failed first charge and its retry, the timer, the notify.
    browser.get(dashboard + f"?id={flaky_id}")
    browser.find_element(By.LINK_TEXT, flaky_id).click()
    heading = wait_until(lambda: next(iter(browser.find_elements(By.ID, "workflow-id")), None),
                         "the workflow page")
    assert heading.text == flaky_id
    wait_until(lambda: settled(browser, "completed"), "the flaky order to complete", timeout=60)
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#timeline .tl-row .tl-label")]
    assert labels == ["charge", "timer 2 s", "notify"], labels
    charge = browser.find_elements(By.CSS_SELECTOR, "#timeline .tl-row")[0]
    assert [b.get_attribute("data-state") for b in charge.find_elements(By.CSS_SELECTOR, ".tl-bar")] \
        == ["failed", "ok"]
    timer = browser.find_elements(By.CSS_SELECTOR, "#timeline .tl-row.kind-timer .tl-bar")
    assert len(timer) == 1 and float(timer[0].value_of_css_property("width").rstrip("px")) > 50
    screenshot(browser, tmp_path / "workflow-flaky.png", full=True)

    # A workflow waiting for a signal: signalled through the page, it completes.
    big = {"order_id": f"4-{suffix}", "customer": "margaret", "amount": 5000, "flaky": True}
    approval_id = backend.start("approval_order_workflow", big)
    browser.get(dashboard)
    wait_until(lambda: approval_id in (rows(browser) or []) or browser.refresh(),
               "the approval order in the list")
    browser.find_element(By.LINK_TEXT, approval_id).click()
    wait_until(lambda: browser.find_elements(By.ID, "signal-form") or browser.refresh(),
               "the signal form (the workflow waits)")
    wait_until(lambda: "approve-" in browser.find_element(By.ID, "waiting").text or browser.refresh(),
               "the page to say what it waits for")
    signal_id = browser.find_element(By.NAME, "signal_id").get_attribute("value")
    assert signal_id == f"approve-{big['order_id']}"
    data = browser.find_element(By.NAME, "data")
    data.clear()
    data.send_keys('{"approved": true, "by": "the dashboard"}')
    browser.find_element(By.ID, "signal-button").click()
    # A click starts a navigation: wait for the next page rather than read the old one.
    confirm = wait_until(lambda: next(iter(browser.find_elements(By.ID, "confirm")), None),
                         "the confirmation page")
    assert signal_id in confirm.text
    screenshot(browser, tmp_path / "confirm.png")
    assert backend.status(approval_id) == "running"  # not before the confirmation
    browser.find_element(By.ID, "confirm-button").click()
    notice = wait_until(lambda: next(iter(browser.find_elements(By.ID, "notice")), None),
                        "the workflow page after the signal")
    assert notice.text == "signal sent"
    wait_until(lambda: settled(browser, "completed"), "the approved order to complete", timeout=60)
    assert backend.result(approval_id)["approved_by"] == "the dashboard"
    assert '"approved_by": "the dashboard"' in browser.find_element(By.ID, "result").text
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#timeline .tl-row .tl-label")]
    assert labels == [f"signal {signal_id}", "charge", "timer 2 s", "notify"], labels
    received = browser.find_elements(By.CSS_SELECTOR, "#timeline .tl-row.kind-signal .tl-bar")
    assert [b.get_attribute("data-state") for b in received] == ["ok"]
    browser.get(dashboard + f"workflows/{approval_id}")
    screenshot(browser, tmp_path / "workflow.png")
    if os.environ.get("PGDURABLE_UPDATE_SCREENSHOTS") == "1":
        docs = REPO_ROOT / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "workflow.png", docs / "dashboard-workflow.png")
