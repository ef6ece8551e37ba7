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

from tests.fixtures import Platform, until

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


def painted(page: Page) -> None:
    """Wait until the browser has painted what the page shows now (two animation frames: the
    next one starts after a paint), e.g. a canvas grid before its screenshot."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


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


def run_command(page: Page, label: str, exact: bool = False) -> None:
    """Run a lab command from the command palette, as a keyboard user would (``exact``: the
    entry labelled exactly ``label``, else the first whose label contains it).

    Right after the lab appears its shortcuts may not be bound yet, and the layout restorer can
    take focus and close the palette; and while the lab settles the palette re-renders its
    entries (a click can meet a detached one again and again). So: open the palette, search,
    and press Enter when the entry is the palette's active one (the keyboard's way, which no
    re-render detaches) or else click it; the whole sequence again if any step did not take.
    """
    search = page.locator(".lm-CommandPalette-input")
    if exact:
        entry = page.locator(".lm-CommandPalette-item").filter(has=page.locator(
            ".lm-CommandPalette-itemLabel", has_text=re.compile(f"^{re.escape(label)}$")))
    else:
        entry = page.locator(".lm-CommandPalette-item",
                             has_text=re.compile(re.escape(label), re.I)).first
    attempts = 8
    for attempt in range(attempts):
        try:
            if not search.is_visible():
                page.keyboard.press("Control+Shift+C")
            search.wait_for(state="visible", timeout=3_000)
            search.fill(label, timeout=3_000)
            entry.wait_for(timeout=5_000)
            if "lm-mod-active" in (entry.get_attribute("class", timeout=2_000) or ""):
                search.press("Enter", timeout=3_000)
            else:
                entry.click(timeout=5_000)
            return
        except PlaywrightTimeoutError:
            if attempt == attempts - 1:
                raise
            if search.is_visible():
                page.keyboard.press("Escape")


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


def _sections_to(sidebar, wanted) -> None:
    """Open or close the sidebar's sections: ``wanted(title)`` says True (open), False (closed)
    or None (as it is).

    Sections are picked by their titles, never their positions: Getting started leaves the
    sidebar once its steps are done, which can happen while this runs (a title that went
    meanwhile is simply no longer there to click)."""
    titles = sidebar.locator(".jp-AccordionPanel-title")
    for _ in range(5):
        heads = titles.evaluate_all(
            "hs => hs.map(h => [h.textContent.trim(), h.getAttribute('aria-expanded')])")
        wrong = [t for t, state in heads
                 if wanted(t.lower()) is not None and (state == "true") != wanted(t.lower())]
        if not wrong:
            return
        for t in wrong:
            try:
                titles.filter(has_text=re.compile(rf"^\s*{re.escape(t)}\s*$")).click(
                    timeout=5_000)
            except PlaywrightTimeoutError:
                pass  # it left the sidebar meanwhile
    raise AssertionError(f"sidebar sections did not settle: {heads}")


def _titled(sidebar, name: str):
    titles = sidebar.locator(".jp-AccordionPanel-title")
    head = titles.filter(has_text=re.compile(rf"^\s*{re.escape(name)}\s*$", re.I))
    expect(head).to_have_count(1)
    return head


def only_sections(sidebar, *names: str) -> None:
    """Open the sidebar sections titled ``names`` (case aside) and close the others."""
    heads = [_titled(sidebar, n) for n in names]
    _sections_to(sidebar, lambda title: title in {n.lower() for n in names})
    for head in heads:
        expect(head).to_have_attribute("aria-expanded", "true")


def open_section(sidebar, name: str) -> None:
    """Open the sidebar section titled ``name`` (case aside); the others stay as they are."""
    head = _titled(sidebar, name)
    _sections_to(sidebar, lambda title: True if title == name.lower() else None)
    expect(head).to_have_attribute("aria-expanded", "true")


def every_section_open(sidebar) -> None:
    _sections_to(sidebar, lambda title: True)


def sidebar_width(page: Page, sidebar, width: int) -> None:
    """Drag the split handle beside the left area until the sidebar is ``width`` px wide.

    A drag can land short while the lab re-lays out (a section re-rendering at the poller's
    round moves the handle under the mouse), so a drag that did not take is made again from
    where the handle now is; the width is checked, never assumed."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    last = None
    for _ in range(4):
        h, s = handle.bounding_box(), sidebar.bounding_box()
        if abs(s["width"] - width) <= 2:
            return
        page.mouse.move(h["x"] + h["width"] / 2, h["y"] + 300)
        page.mouse.down()
        page.mouse.move(s["x"] + width + h["width"] / 2, h["y"] + 300, steps=8)
        page.mouse.up()
        try:
            until(lambda: abs(sidebar.bounding_box()["width"] - width) <= 2, 4,
                  f"a {width} px sidebar")
            return
        except AssertionError as e:
            last = e
    raise last


def use_theme(page: Page, name: str) -> None:
    """Switch to JupyterLab's ``name`` theme ("Light" or "Dark") from the command palette
    (no submenu to hover; not "Dark High Contrast"), and wait until the lab says the theme is
    in force."""
    run_command(page, f"Use Theme: JupyterLab {name}", exact=True)
    body = page.locator("body")
    expect(body).to_have_attribute("data-jp-theme-name", f"JupyterLab {name}")
    expect(body).to_have_attribute("data-jp-theme-light", "true" if name == "Light" else "false")


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
