"""A project manager opens a deployment's monitoring view from the Deployments section and sees
its traffic, latency and errors per version across a switch and a rollback, and the drift
warning after its recorded inputs shifted (in Chromium; traffic driven through the real
endpoint by the data scientist who deployed it)."""
from __future__ import annotations

import re

from conftest import hub_login, hub_logout, open_lab, open_mlops_sidebar, shot
from playwright.sync_api import expect

from tests.deployments.test_endpoints import invoke, split_body
from tests.deployments.test_monitoring import MODEL, register_with_reference, rows
from tests.fixtures import until

PASSWORD = "uimon-pass-1"
PROJECT, NAME = "uimon", "uimon-lr"
API = "services/mlops/api/deployments"


def drive(platform, token, bodies, expect_status=200):
    for body in bodies:
        r = invoke(platform, token, NAME, body)
        assert r.status_code == expect_status, r.text


def switch_to(platform, token, version):
    r = platform.api("PATCH", f"{API}/{NAME}", token, json={"version": version})
    assert r.status_code == 200, r.text
    until(lambda: platform.api("GET", f"{API}/{NAME}", token).json()["serving_version"]
          == str(version), 120, f"version {version} serving")


def test_manager_sees_traffic_across_a_rollback_and_drift(page, platform):
    platform.add_user("uimon-pm", PASSWORD, groups=["mlops-pms"])
    platform.add_user("uimon-ds", PASSWORD)
    pm, ds = platform.token("uimon-pm"), platform.token("uimon-ds")
    r = platform.api("POST", "services/mlops/api/projects", pm,
                     json={"name": PROJECT, "members": ["uimon-ds"]})
    assert r.status_code in (201, 409), r.text
    register_with_reference(f"{platform.url}/services/mlflow", platform.admin_token())
    r = platform.api("POST", API, ds, json={"name": NAME, "model_name": MODEL, "version": 1,
                                            "project": PROJECT})
    assert r.status_code == 201, r.text
    until(lambda: platform.api("GET", f"{API}/{NAME}", ds).json()["status"] == "ready", 120,
          f"{NAME} ready")
    drive(platform, ds, [split_body(rows(i % 5 + 1, i)) for i in range(20)])
    drive(platform, ds, [{"dataframe_split": {"columns": ["f0"], "data": [[1.0]]}}] * 2, 400)
    switch_to(platform, ds, 2)
    drive(platform, ds, [split_body(rows(3, 50 + i)) for i in range(8)])
    switch_to(platform, ds, 1)  # rolled back
    r = platform.api("PUT", f"{API}/{NAME}/monitoring", ds,
                     json={"record_inputs": True, "sample_rate": 1.0})
    assert r.status_code == 200, r.text
    drive(platform, ds, [split_body(rows(50, 500 + i)) for i in range(4)])
    drive(platform, ds, [split_body(rows(50, 600 + i, shift=3.0)) for i in range(6)])
    until(lambda: platform.api("GET", f"{API}/{NAME}/drift", pm).json()["state"] == "drifted",
          30, "drift detected")

    hub_login(page, platform, "uimon-pm", PASSWORD)
    open_lab(page, platform, "uimon-pm")
    sidebar = open_mlops_sidebar(page)
    titles = sidebar.locator(".jp-AccordionPanel-title")
    for i in range(titles.count()):  # only the Deployments section open
        title = titles.nth(i)
        ours = "deployments" in title.inner_text().lower()
        if ours != (title.get_attribute("aria-expanded") == "true"):
            title.click()
    item = sidebar.get_by_test_id(f"deployment-{NAME}")
    expect(item).to_have_attribute("data-status", "ready", timeout=30_000)
    item.locator("button.jp-mlops-deployment-head").click()
    page.locator(f".jp-mlops-deployment-tab[data-deployment='{NAME}']").get_by_role(
        "button", name="Monitoring").click()

    view = page.get_by_test_id("deployment-monitor")
    expect(view).to_be_visible()
    # The last day: every call counted, per version; 2 calls the model refused (4xx).
    totals = view.get_by_test_id("monitor-totals")

    def tile(label: str):
        return totals.locator(".jp-mlops-tile", has=page.locator(
            ".jp-mlops-tile-label", has_text=re.compile(label))).locator(".jp-mlops-tile-value")

    expect(totals).to_have_attribute("data-window", "1d", timeout=30_000)
    expect(tile("^requests$")).to_have_text("40")
    expect(tile("^4xx")).to_have_text("2")
    expect(tile("^5xx")).to_have_text("0")
    table = view.get_by_test_id("monitor-versions")
    expect(table.locator("tr", has_text="(serving)")).to_contain_text("1 (serving)")
    v2 = table.locator("tbody tr").nth(1).locator("td")
    expect(v2.nth(0)).to_have_text("2")
    expect(v2.nth(1)).to_have_text("8")  # requests served by version 2
    view.get_by_role("button", name="Last hour").click()
    # The hour's numbers have replaced the day's (the marks below are in both windows): the
    # totals say which window they are of, and the charts count in minutes, not hours.
    expect(totals).to_have_attribute("data-window", "1h")
    expect(view.locator(".jp-mlops-monitor-charts")).to_contain_text("minutes")
    expect(view.get_by_test_id("chart-mark").filter(has_text="rollback → v1").first) \
        .to_be_visible()
    expect(view.get_by_test_id("drift-state")).to_contain_text("Inputs drifted")
    expect(view.get_by_test_id("psi-row")).to_have_count(20)
    expect(view.locator(".jp-mlops-psi-drifted")).to_have_count(1)
    expect(view.get_by_test_id("monitor-recording")).to_contain_text("Recording is ON: 100 %")
    expect(view.get_by_test_id("monitor-recording")).to_contain_text("never the image")
    shot(page, "deployment-monitoring-01-traffic")
    view.get_by_test_id("monitor-drift").scroll_into_view_if_needed()
    shot(page, "deployment-monitoring-02-drift")

    # The administrator sees the platform's health on the admin page.
    hub_logout(page, platform)
    hub_login(page, platform, "admin", platform.admin_password)
    page.goto(f"{platform.url}/services/mlops/admin#health")
    health = page.locator("#health")
    expect(health.locator('[data-service="service:control plane"]')).to_contain_text("running")
    expect(health.locator(f'[data-service="model_server:{NAME}"]')).to_contain_text("running")
    expect(health.locator('[data-part="mlflow"]')).to_be_visible()
    health.scroll_into_view_if_needed()
    shot(page, "deployment-monitoring-03-platform-health")
