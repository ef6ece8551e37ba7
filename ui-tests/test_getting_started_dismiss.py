"""Getting started, dismissed and brought back, in Chromium: Dismiss takes the section out of
the sidebar and it stays out after a reload (the choice is kept in the user's settings); the
palette's "MLOps: show Getting started" brings it back, and then it stays after a reload too."""
from __future__ import annotations

import re

from conftest import hub_login, open_lab, open_mlops_sidebar, open_section, run_command, shot
from playwright.sync_api import expect

from tests.fixtures import until

USER, PASSWORD = "gale", "gale-getting-started-pw"
SETTINGS = "lab/api/settings/jupyter-mlops:plugin"


def titles(sidebar, name: str):
    return sidebar.locator(".jp-AccordionPanel-title").filter(
        has_text=re.compile(rf"^\s*{re.escape(name)}\s*$", re.I))


def dismissed(page, platform) -> bool:
    """The kept setting, as the lab's settings API answers it with the person's session."""
    r = page.request.get(f"{platform.url}/user/{USER}/{SETTINGS}")
    assert r.ok, r.text()
    return r.json()["settings"].get("gettingStartedDismissed", False)


def reopened(page, platform):
    """Reload the lab and show the sidebar once its sections are there (Platform always is)."""
    page.reload()
    open_lab(page, platform, USER)
    sidebar = open_mlops_sidebar(page)
    expect(titles(sidebar, "Platform")).to_have_count(1)
    return sidebar


def test_dismissed_getting_started_stays_gone_and_comes_back_from_the_palette(page, platform):
    platform.add_user(USER, PASSWORD)
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    sidebar = open_mlops_sidebar(page)
    # A new person: no run, no job yet, so the section is there, first of all
    open_section(sidebar, "Getting started")
    section = sidebar.get_by_test_id("getting-started")
    expect(section.get_by_test_id("getting-started-run")).to_have_attribute("data-done", "false")
    expect(sidebar.locator(".jp-AccordionPanel-title").first).to_have_text(
        re.compile("getting started", re.I))
    assert dismissed(page, platform) is False

    # When she dismisses it
    section.get_by_role("button", name="Dismiss").click()
    # Then it leaves the sidebar, the choice is kept, and a reload does not bring it back
    expect(titles(sidebar, "Getting started")).to_have_count(0)
    until(lambda: dismissed(page, platform) is True, 10, "the dismissal kept")
    sidebar = reopened(page, platform)
    expect(titles(sidebar, "Getting started")).to_have_count(0)
    expect(sidebar.get_by_test_id("getting-started")).to_have_count(0)
    shot(page, "getting-started-dismissed")

    # When she asks for it again from the command palette
    run_command(page, "MLOps: show Getting started", exact=True)
    # Then it is back, first, and the dismissal is forgotten: a reload keeps it
    expect(titles(sidebar, "Getting started")).to_have_count(1)
    open_section(sidebar, "Getting started")
    expect(sidebar.get_by_test_id("getting-started-dataset")).to_be_visible()
    until(lambda: dismissed(page, platform) is False, 10, "the dismissal forgotten")
    sidebar = reopened(page, platform)
    expect(titles(sidebar, "Getting started")).to_have_count(1)
    open_section(sidebar, "Getting started")
    expect(sidebar.get_by_test_id("getting-started-job")).to_be_visible()
    shot(page, "getting-started-back")
