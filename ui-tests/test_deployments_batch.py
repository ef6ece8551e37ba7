"""Batch prediction from the Models section, and deploy approvals on the hub's pages, in Chromium.

1. A data scientist opens "Batch predict…" on the cell detector's version, picks a published
   dataset version, follows the job until it succeeds and opens predictions.csv in the lab.
   The administrator registers the models and publishes the datasets, all in project
   ``default`` (readable by everyone); the job is the data scientist's: hub administrators'
   work gets no token, so jobs are run from a data scientist's account.
2. A project manager switches "deploys need approval" on for her project on the Approvals page,
   sees a data scientist's deploy waiting and approves it; the administrator sees the same
   section on the MLOps admin page.
Screenshots in ui-tests/artifacts/deployments-batch-*.png and deployments-approvals-*.png.
"""
from __future__ import annotations

import re

import numpy as np
from conftest import (hub_login, hub_logout, only_sections, open_lab, open_mlops_sidebar, painted,
                      shot)
from playwright.sync_api import expect

from jupyter_mlops import datasets

from jupyter_mlops.client import ControlPlane
from tests.deployments.conftest import register_models
from tests.fixtures import until

API = "services/mlops/api"


def publish_blobs(platform, token, tmp_path) -> None:
    """``ui-blobs`` v1: four 8-bit images with 1-4 bright squares each; ``ui-docs`` v1: a
    README only."""
    from PIL import Image

    root = tmp_path / "ui-blobs"
    root.mkdir()
    for n in range(1, 5):
        img = np.full((48, 64), 30, np.uint8)
        for k in range(n):
            img[6 + 10 * k:12 + 10 * k, 4 + 14 * k:12 + 14 * k] = 230
        Image.fromarray(img).save(root / f"blobs_{n}.png")
    docs = tmp_path / "ui-docs"
    docs.mkdir()
    (docs / "README.txt").write_text("protocol notes, nothing to predict\n")
    client = ControlPlane(f"{platform.url}/services/mlops/", token)
    try:
        have = {d["name"] for d in client.datasets()}
        if "ui-blobs" not in have:
            datasets.publish(root, "ui-blobs", message="four images", client=client)
        if "ui-docs" not in have:
            datasets.publish(docs, "ui-docs", message="notes", client=client)
    finally:
        client.close()


def test_batch_predict_from_the_models_section(page, platform, tmp_path):
    admin = platform.admin_token()
    register_models(f"{platform.url}/services/mlflow", admin)
    publish_blobs(platform, admin, tmp_path)
    platform.add_user("uibatch", "ui-batch-password-7")

    hub_login(page, platform, "uibatch", "ui-batch-password-7")
    open_lab(page, platform, "uibatch")
    sidebar = open_mlops_sidebar(page)
    only_sections(sidebar, "Models")  # room for the Models section
    sidebar.get_by_test_id("model-cells").get_by_role("link", name="cells").click()
    version = sidebar.get_by_test_id("version-cells-1")
    version.get_by_role("button", name="Batch predict…").click()
    form = version.get_by_role("form", name="Batch predict with cells v1")
    expect(form.get_by_label("Dataset to predict").locator("option", has_text="ui-blobs")) \
        .to_have_count(1)
    form.get_by_label("Dataset to predict").select_option("ui-blobs")
    expect(form.get_by_label("Dataset version").locator("option")).to_have_count(1)
    expect(form.get_by_label("Dataset version")).to_have_value("v1")
    form.get_by_role("button", name="Predict").click()

    job = version.get_by_test_id("batch-job")
    expect(job).to_contain_text("4 files of ui-blobs@v1")
    expect(job).to_have_attribute("data-state", "succeeded", timeout=180_000)
    expect(job).to_contain_text("predictions.csv")
    shot(page, "deployments-batch-01-job-succeeded")

    job.get_by_role("link", name="predictions.csv").click()
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="predictions.csv")
    expect(tab).to_be_visible(timeout=30_000)
    # the CSV viewer shows one line per image, with the boxes the detector found
    grid = page.locator(".jp-CSVViewer, .jp-FileEditor").last
    expect(grid).to_be_visible()
    job_id = re.search(r"#(\d+)", job.inner_text()).group(1)
    csv_path = platform.data_dir / "users" / "uibatch" / "mlops-jobs" / job_id / "predictions.csv"
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "file,row,boxes,scores,labels,error"
    assert [line.split(",")[0] for line in lines[1:]] == [f"blobs_{n}.png" for n in range(1, 5)]
    assert lines[4].count("cell") == 4
    expect(tab).to_have_class(re.compile(r"\blm-mod-current\b"))
    painted(page)
    shot(page, "deployments-batch-02-predictions-csv")

    # A dataset without images or CSV files is refused before a job exists, with the reason
    form.get_by_label("Dataset to predict").select_option("ui-docs")
    expect(form.get_by_label("Dataset version")).to_have_value("v1")
    form.get_by_role("button", name="Predict").click()
    expect(version.get_by_role("alert")).to_contain_text("has no image or CSV file to predict")


def test_a_manager_approves_a_deploy_on_the_approvals_page(page, platform):
    admin = platform.admin_token()
    register_models(f"{platform.url}/services/mlflow", admin)
    platform.add_user("uipm", "ui-pm-password-7", groups=["mlops-pms"])
    platform.add_user("uids", "ui-ds-password-7")
    pm, ds = platform.token("uipm"), platform.token("uids")
    r = platform.api("POST", f"{API}/projects", pm, json={"name": "ui-appr",
                                                           "members": ["uids"]})
    assert r.status_code in (201, 409), r.text
    platform.api("DELETE", f"{API}/deployments/ui-appr-lr", admin)

    # The manager switches the policy on, on the Approvals page
    hub_login(page, platform, "uipm", "ui-pm-password-7")
    page.goto(f"{platform.url}/services/mlops/approvals")
    expect(page.get_by_role("heading", name="Deploy approvals")).to_be_visible()
    page.get_by_label("Deploys of ui-appr need approval").check()
    page.get_by_role("button", name="Save approval policy of ui-appr").click()
    expect(page.get_by_role("status")).to_contain_text("deploys of project ui-appr now wait")
    expect(page.get_by_label("Deploys of ui-appr need approval")).to_be_checked()

    # A data scientist of the project deploys: it waits
    r = platform.api("POST", f"{API}/deployments", ds, json={
        "name": "ui-appr-lr", "model_name": "lr", "version": 1, "project": "ui-appr"})
    assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
    page.reload()
    pending = page.get_by_role("table", name="Pending deploy approvals")
    row = pending.locator('tr[data-pending="ui-appr-lr"]')
    expect(row).to_contain_text("lr v1")
    expect(row).to_contain_text("uids")
    shot(page, "deployments-approvals-01-pending")

    row.get_by_role("button", name="Approve ui-appr-lr").click()
    expect(page.get_by_role("status")).to_contain_text("deployment ui-appr-lr approved")
    expect(pending).to_contain_text("No deploy waits for approval.")
    dep = until(lambda: (d := platform.api("GET", f"{API}/deployments/ui-appr-lr", ds).json())
                ["status"] in ("ready", "failed") and d, 90, "the approved deployment", every=0.5)
    assert dep["status"] == "ready" and dep["serving_version"] == "1", dep
    shot(page, "deployments-approvals-02-approved")

    # The administrator has the same section on the MLOps admin page
    hub_logout(page, platform)
    hub_login(page, platform, "admin", platform.admin_password)
    page.goto(f"{platform.url}/services/mlops/admin#deploy-approvals")
    section = page.locator("#deploy-approvals")
    expect(section.get_by_label("Deploys of ui-appr need approval")).to_be_checked()
    section.scroll_into_view_if_needed()
    shot(page, "deployments-approvals-03-admin-page")
    assert platform.api("DELETE", f"{API}/deployments/ui-appr-lr", admin).status_code == 204
