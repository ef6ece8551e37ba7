"""SSO end to end: people of the IdP groups mlops-admins, mlops-pms and cells-team log in
through a real OIDC provider in Chromium and get the right role, projects and pages."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from conftest import shot
from oidc_platform import sso, sso_login  # noqa: F401 (a fixture)

pytestmark = pytest.mark.ui

PEOPLE = {
    # user: (lab role, sees the admin link, projects listed, may create projects, manages)
    "ada": ("system administrator", True, ["cells", "default"], True, ["cells", "default"]),
    "pat": ("project manager", False, ["cells", "default"], True, ["cells"]),
    "sam": ("data scientist", False, ["cells", "default"], False, []),
    "dora": ("data scientist", False, ["default"], False, []),
}


@pytest.mark.parametrize("user", list(PEOPLE))
def test_idp_groups_give_role_projects_and_pages(browser, sso, user):
    role, admin_link, projects, can_create, manages = PEOPLE[user]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        sso_login(page, sso, user)
        base = sso.platform.url
        nav = page.locator("nav")
        # the hub's own navigation links to the MLOps pages the person may use
        expect(nav.get_by_role("link", name="Projects")).to_be_visible()
        expect(nav.get_by_role("link", name="MLOps admin")).to_have_count(1 if admin_link else 0)
        nav.get_by_role("link", name="Projects").click()
        expect(page).to_have_url(re.compile(r"/services/mlops/projects"))
        expect(page.locator("#mlops-role")).to_have_text(role)
        rows = page.get_by_role("table", name="My projects").locator("tbody tr")
        expect(rows).to_have_count(len(projects))
        assert [r.get_attribute("data-project") for r in rows.all()] == projects
        assert [r.get_attribute("data-project") for r in rows.filter(has_text="manager").all()
                ] == manages
        expect(page.get_by_role("button", name="Create")).to_have_count(1 if can_create else 0)
        shot(page, f"sso-{user}-projects")
        r = page.goto(f"{base}/services/mlops/admin")
        assert r.status == (200 if admin_link else 403)
        if not admin_link:
            expect(page.get_by_role("alert")).to_contain_text("custom:mlops:admin")
        r = page.goto(f"{base}/services/mlops/projects/cells")
        assert r.status == (200 if "cells" in projects else 404)
    finally:
        context.close()


def test_a_wrong_password_at_the_idp_logs_nobody_in(browser, sso):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{sso.platform.url}/hub/login")
        page.get_by_role("button", name=re.compile("Sign in with Test IdP")).click()
        page.get_by_label("Username").fill("sam")
        page.get_by_label("Password").fill("not-sams-password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("Invalid username or password")
        r = page.goto(f"{sso.platform.url}/services/mlops/projects")
        assert "/interaction/" in page.url or "/hub/login" in page.url, page.url
    finally:
        context.close()


def test_project_manager_creates_a_project_adds_a_member_and_a_milestone(browser, sso):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        sso_login(page, sso, "pat")
        page.goto(f"{sso.platform.url}/services/mlops/projects")
        # the browser applies the name's rule (its pattern compiles with the v flag)
        name = page.get_by_label("Name", exact=True)
        name.fill("Nuclei seg")
        assert name.evaluate("e => e.validity.patternMismatch")
        name.fill("nuclei-seg")
        assert name.evaluate("e => e.validity.valid")
        page.get_by_label("Description").fill("nucleus segmentation baseline")
        page.get_by_label("GPU quota").fill("2")
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_role("status")).to_have_text("project nuclei-seg created")
        page.get_by_role("link", name="nuclei-seg").click()
        page.get_by_label("User", exact=True).fill("sam")
        page.get_by_role("button", name="Add member").click()
        expect(page.get_by_role("status")).to_have_text("sam added")
        page.get_by_role("textbox", name="Milestone").fill("baseline mAP >= 0.5")
        page.get_by_label("Due").fill("2026-12-15")
        page.get_by_role("button", name="Add milestone").click()
        expect(page.get_by_role("table", name="Milestones")).to_contain_text("baseline mAP")
        page.get_by_role("table", name="Milestones").get_by_role("button", name="Done").click()
        expect(page.get_by_role("table", name="Milestones").locator("s")).to_have_text(
            "baseline mAP >= 0.5")
        # bad input comes back as a message, nothing stored
        page.get_by_label("User", exact=True).fill("not a name")
        page.get_by_role("button", name="Add member").click()
        expect(page.get_by_role("alert")).to_contain_text("must be a hub name")
        members = page.get_by_role("table", name="Members")
        expect(members).to_contain_text("sam")
        expect(members).not_to_contain_text("not a name")
        shot(page, "sso-pat-project-page")
    finally:
        context.close()
