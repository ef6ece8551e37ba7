"""Shared browser fixtures: Debian's Chromium driven by Python Playwright.

`playwright install` cannot download browsers here, so Playwright launches /usr/bin/chromium
(installed by `make test`). Screenshots go to ui-tests/artifacts/ and are kept by CI.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.fixtures import Platform

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS,
                               headless=True)
        yield b
        b.close()


@pytest.fixture
def context(browser, request):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, request):
    p = context.new_page()
    yield p
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        shot(p, f"FAILED-{request.node.name}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def hub_login(page: Page, platform: Platform, username: str, password: str) -> None:
    page.goto(f"{platform.url}/hub/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/hub/login"))


def hub_logout(page: Page, platform: Platform) -> None:
    page.goto(f"{platform.url}/hub/logout")


def open_lab(page: Page, platform: Platform, username: str) -> None:
    """Start (if needed) and open the user's JupyterLab, as the user would from the hub."""
    page.goto(f"{platform.url}/hub/spawn/{username}")
    # A spawn options form (profiles) may be shown: take the default choice.
    start = page.get_by_role("button", name=re.compile("^Start"))
    page.wait_for_url(re.compile(rf"/user/{username}/lab|/hub/spawn"), timeout=90_000)
    if "/hub/spawn" in page.url and start.count():
        start.first.click()
    page.wait_for_url(re.compile(rf"/user/{username}/lab"), timeout=120_000)
    page.locator("#jp-main-dock-panel").wait_for(timeout=60_000)
    # The splash screen goes once the layout restorer is done: until then it may take the
    # focus and close what a test opens (the command palette, a sidebar).
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=60_000)


def run_command(page: Page, label: str) -> None:
    """Run a lab command from the command palette, as a keyboard user would.

    Right after the lab appears its shortcuts may not be bound yet, and the layout restorer can
    take focus and close the palette: open it until its search box shows, then pick the entry.
    """
    search = page.locator(".lm-CommandPalette-input")
    for attempt in range(10):
        page.keyboard.press("Control+Shift+C")
        try:
            search.wait_for(state="visible", timeout=3_000)
            search.fill(label, timeout=3_000)
            break
        except PlaywrightTimeoutError:
            if attempt == 9:
                raise
            if search.is_visible():
                page.keyboard.press("Escape")
    entry = page.locator(".lm-CommandPalette-item", has_text=re.compile(re.escape(label), re.I)).first
    entry.wait_for(timeout=10_000)
    entry.click()


def choose_dataset(view, name: str, timeout: float = 30_000) -> None:
    """Pick ``name`` in the dataset browser's picker once the catalog lists it, and check the
    choice sticks (a later refresh of the list must not switch to another dataset)."""
    picker = view.get_by_label("Dataset", exact=True)
    expect(picker.locator(f'option[value="{name}"]')).to_have_count(1, timeout=timeout)
    picker.select_option(name)
    expect(picker).to_have_value(name)


def open_mlops_sidebar(page: Page):
    """Show the MLOps sidebar. Its tab toggles, and the lab may restore it already open."""
    sidebar = page.locator("#jp-mlops-sidebar")
    tab = page.locator('.jp-SideBar [data-id="jp-mlops-sidebar"]')
    tab.wait_for()
    for _ in range(5):  # the layout restorer may still be switching panels: settle on ours
        if not sidebar.is_visible():
            tab.click()
        page.wait_for_timeout(500)
        if sidebar.is_visible():
            break
    expect(sidebar).to_be_visible()
    return sidebar


def main_tab(page: Page, label: str):
    """The main area's tab labelled exactly `label` (click it to bring its view forward)."""
    return page.locator("#jp-main-dock-panel .lm-TabBar-tabLabel",
                        has_text=re.compile(f"^{re.escape(label)}$"))


@pytest.fixture(autouse=True)
def jp_asyncio_loop():
    """Replace pytest-jupyter's autouse per-test event loop here: browser tests use Playwright's
    sync API, whose loop pytest-jupyter would otherwise find current and try to close."""
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup():
    """pytest-jupyter's autouse server cleanup needs its loop; no Jupyter server runs in-process
    in browser tests."""
    yield
