"""The page in real headless Chromium (Debian's ``chromium``, driven by Playwright).

Every view loads on the simulated plant without a console error; the live table
updates; a fault injected into the plant (its Modbus server goes offline) shows
up as an open alert and a source whose link is down; "problems only" shows
exactly the rows with a problem. Screenshots of each view go to
``test-artifacts/web/``. Playwright never downloads a browser here: it drives
``/usr/bin/chromium`` through ``executable_path``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.conftest import ARTIFACTS, TOKEN, SiteAgent, wait_for

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 20_000

pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="apt-get install chromium")


class Console:
    """Console errors and uncaught exceptions of a page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A tab that already holds the agent's token (as if typed into the prompt once)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('edge-agent-token', '{TOKEN}')")
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


VIEWS = [
    ("overview", "#/", "#sources tr[data-source='pump1']"),
    ("tags", "#/tags", "#tags tr[data-signal='pump1.motor_current']"),
    ("assets", "#/assets", "#asset-list [data-asset='pump1']"),
    ("asset-pump1", "#/assets/pump1", "#health-chart .uplot"),
    ("trend", "#/trend/pump1.flow", "#trend-chart .uplot"),
    ("config", "#/config", "#config-json"),
]


@pytest.mark.parametrize(("name", "hash_", "selector"), VIEWS, ids=[v[0] for v in VIEWS])
def test_view_loads_without_console_errors(
    site: SiteAgent, page: Any, name: str, hash_: str, selector: str
) -> None:
    console = Console(page)
    page.goto(site.url + hash_)
    page.wait_for_selector(selector, timeout=WAIT_MS)
    page.wait_for_timeout(1500)  # one more live update, which must not fail either
    shot(page, name)
    assert console.errors == []
    assert page.locator("#banner").is_hidden()


def test_trend_zooms_between_ranges_and_rollups(site: SiteAgent, page: Any) -> None:
    console = Console(page)
    page.goto(site.url + "#/trend/pump1.bearing_temp")
    page.wait_for_selector("#trend-chart .uplot", timeout=WAIT_MS)
    page.click("button[data-range='15m']")
    page.click("#rollups")
    page.wait_for_timeout(1000)
    shot(page, "trend-rollups")
    assert page.locator("#rollups.active").count() == 1
    assert console.errors == []


def test_live_table_updates(site: SiteAgent, page: Any) -> None:
    page.goto(site.url + "#/tags")
    cell = "#tags tr[data-signal='pump1.heartbeat'] td:nth-child(2)"
    page.wait_for_selector(cell, timeout=WAIT_MS)
    first = page.text_content(cell)
    page.wait_for_function(
        "([sel, old]) => document.querySelector(sel).textContent !== old",
        arg=[cell, first],
        timeout=WAIT_MS,
    )
    # The register column shows the words behind the value, as the source last read them.
    register = "#tags tr[data-signal='pump1.heartbeat'] td:nth-child(8)"
    page.wait_for_function(
        "(sel) => /= 0x[0-9A-F]{4}$/.test(document.querySelector(sel).textContent)",
        arg=register,
        timeout=WAIT_MS,
    )


def test_without_token_the_page_asks_for_it(site: SiteAgent, browser: Any) -> None:
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.goto(site.url)
        tab.wait_for_selector("#token-form:not([hidden])", timeout=WAIT_MS)
        tab.fill("#token", TOKEN)
        tab.click("#token-form button")
        tab.wait_for_selector("#sources tr[data-source='pump1']", timeout=WAIT_MS)
    finally:
        context.close()


def test_injected_fault_shows_as_open_alert_and_problem(site: SiteAgent, page: Any) -> None:
    console = Console(page)
    page.goto(site.url + "#/")
    page.wait_for_selector("#sources tr[data-source='pump1']", timeout=WAIT_MS)
    detail = page.text_content("#sources tr[data-source='pump1'] td.detail") or ""
    assert re.fullmatch(r"unit 1: [1-9]\d* requests, 0 failed, \d+\.\d ms", detail), detail
    site.fault(True)
    try:
        page.wait_for_selector("#open-alerts tr.alert", timeout=WAIT_MS)
        page.wait_for_selector("#sources tr.problem[data-source='pump1']", timeout=WAIT_MS)
        assert "pump1-silent" in (page.text_content("#open-alerts") or "")
        shot(page, "overview-fault")
        _problems_only_filters(site, page)
        page.goto(site.url + "#/assets/pump1")
        page.wait_for_selector(".alert-window .uplot", timeout=WAIT_MS)
        shot(page, "asset-pump1-fault")
    finally:
        site.fault(False)
    wait_for(lambda: site.get("/api/v1/alerts").json()["alerts"] == [], timeout=30)
    assert console.errors == []


def _problems_only_filters(site: SiteAgent, page: Any) -> None:
    page.goto(site.url + "#/tags")
    page.wait_for_selector("#tags tr.problem[data-signal='pump1.motor_current']", timeout=WAIT_MS)
    page.check("#problems")
    # One snapshot of every row, taken in the page: a live update cannot fall between reads.
    rows = page.evaluate(
        "Array.from(document.querySelectorAll('#tags tbody tr'))"
        ".map(r => [r.hidden, r.classList.contains('problem')])"
    )
    assert any(hidden for hidden, _ in rows) and not all(hidden for hidden, _ in rows)
    assert all(problem == (not hidden) for hidden, problem in rows)
    shot(page, "tags-problems-only")
