"""Deploy a registered model from the MLOps sidebar and try it with an image, in Chromium.

The administrator opens JupyterLab, deploys the tiny cell detector from the Deployments
section, waits until it is ready, uploads a microscopy-like image in "Try it" and sees the
detected cells boxed over the image; then creates a client token and undeploys.
"""
from __future__ import annotations

import re

import numpy as np
from conftest import (hub_login, main_tab, only_sections, open_lab, open_mlops_sidebar,
                      open_section, shot, sidebar_width)
from playwright.sync_api import expect

from tests.deployments.conftest import register_models


def cells_png(path) -> None:
    """A 240x160 grey image with five bright round "cells"."""
    from PIL import Image

    yy, xx = np.mgrid[0:160, 0:240]
    img = np.full((160, 240), 40, np.uint8)
    for cx, cy, r in [(40, 40, 14), (120, 50, 18), (200, 40, 10), (70, 120, 16), (180, 115, 20)]:
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = 220
    Image.fromarray(np.stack([img, img // 2 + 60, img], -1)).save(path)


def roomy_deployments_section(page, sidebar) -> None:
    """Only the Deployments section open, in a wide sidebar, for a readable screenshot."""
    only_sections(sidebar, "Deployments")
    sidebar_width(page, sidebar, 650)


def test_deploy_and_try_an_image(page, platform, tmp_path):
    register_models(f"{platform.url}/services/mlflow", platform.admin_token())
    image = tmp_path / "cells.png"
    cells_png(image)

    hub_login(page, platform, "admin", platform.admin_password)
    open_lab(page, platform, "admin")
    sidebar = open_mlops_sidebar(page)
    roomy_deployments_section(page, sidebar)
    form = sidebar.get_by_role("form", name="Deploy a model version")
    # exactly "cells": other modules of the session register models such as "tova-cells"
    options = form.get_by_label("registered model").locator("option")
    expect(options.filter(has_text=re.compile(r"^\s*cells\s*$"))).to_have_count(1, timeout=30_000)
    form.get_by_label("registered model").select_option("cells")
    expect(form.get_by_label("model version").locator("option")).to_have_count(1)
    form.get_by_label("deployment name").fill("cells-ui")
    form.get_by_label("who may call it").select_option("lab")
    form.get_by_role("button", name="Deploy").click()

    item = sidebar.get_by_test_id("deployment-cells-ui")
    expect(item).to_have_attribute("data-status", "ready", timeout=90_000)
    expect(item).to_contain_text("cells v1 · ready")
    # the list navigates: the deployment opens in a main-area tab, once however often clicked
    item.locator("button.jp-mlops-deployment-head").click()
    item.locator("button.jp-mlops-deployment-head").click()
    detail = page.locator(".jp-mlops-deployment-tab[data-deployment='cells-ui']")
    expect(detail).to_contain_text("cells v1 · ready", timeout=30_000)
    expect(main_tab(page, "Deployment: cells-ui")).to_have_count(1)
    expect(page.locator(".jp-mlops-deployment-tab")).to_have_count(1)
    detail.get_by_label("Try cells-ui with a file").set_input_files(str(image))
    expect(detail.get_by_test_id("tryit-boxes")).to_have_text("5 box(es) detected",
                                                              timeout=30_000)
    expect(detail.locator("rect.jp-mlops-box")).to_have_count(5)
    expect(detail.get_by_test_id("tryit-result")).to_contain_text('"boxes"')
    shot(page, "deployments-01-try-it-image")

    # A malformed upload answers with the server's reason, not a silent failure.
    bad = tmp_path / "broken.json"
    bad.write_text('{"inputs": [1, 2')
    detail.get_by_label("Try cells-ui with a file").set_input_files(str(bad))
    expect(detail.get_by_role("alert")).to_contain_text("malformed JSON")

    detail.get_by_label("token note").fill("cell counter")
    detail.get_by_role("button", name="Create client token").click()
    expect(detail.get_by_test_id("client-token")).to_contain_text("mlops_dep_")

    detail.get_by_role("button", name="Undeploy").click()
    page.get_by_role("dialog").get_by_role("button", name="Undeploy").click()
    expect(sidebar.get_by_test_id("deployment-cells-ui")).to_have_count(0, timeout=30_000)

    # The Models section has "Deploy" on every version: one click deploys it.
    open_section(sidebar, "Models")
    sidebar.get_by_test_id("model-cells").get_by_role("link", name="cells").click()
    version = sidebar.get_by_test_id("version-cells-1")
    version.get_by_role("button", name="Deploy").click()
    expect(version.get_by_role("status")).to_contain_text("Deploying as cells")
    expect(sidebar.get_by_test_id("deployment-cells")).to_have_attribute(
        "data-status", "ready", timeout=90_000)
    shot(page, "deployments-02-deployed-from-models")
    assert platform.api("DELETE", "services/mlops/api/deployments/cells",
                        platform.admin_token()).status_code == 204


def test_a_stopped_model_server_shows_its_state_and_heals(page, platform):
    """A model server that hangs, then is killed: the section says so in the supervisor's words
    while it happens, and after the restart still tells what happened."""
    import os
    import signal

    from tests.deployments.test_endpoints import API, model_server_pid, wait_status

    admin = platform.admin_token()
    register_models(f"{platform.url}/services/mlflow", admin)
    r = platform.api("POST", API, admin, json={"name": "heal-ui", "model_name": "lr",
                                               "version": "1"})
    assert r.status_code == 201, r.text
    try:
        assert wait_status(platform, admin, "heal-ui", {"ready", "failed"})["status"] == "ready"
        hub_login(page, platform, "admin", platform.admin_password)
        open_lab(page, platform, "admin")
        sidebar = open_mlops_sidebar(page)
        roomy_deployments_section(page, sidebar)
        item = sidebar.get_by_test_id("deployment-heal-ui")
        expect(item).to_have_attribute("data-status", "ready", timeout=30_000)

        pid = model_server_pid(platform, "heal-ui")
        os.kill(pid, signal.SIGSTOP)  # it hangs: still running, no longer answering
        expect(item).to_have_attribute("data-status", "unresponsive", timeout=40_000)
        expect(item).to_contain_text("lr v1 · unresponsive")
        os.kill(pid, signal.SIGKILL)
        expect(item).to_contain_text(
            "lr v1 · restarting, attempt 1, last exit: killed by signal 9 (SIGKILL)",
            timeout=20_000)
        expect(item).to_contain_text("0 replicas")
        shot(page, "deployments-03-model-server-restarting")

        expect(item).to_have_attribute("data-status", "ready", timeout=60_000)
        item.locator("button.jp-mlops-deployment-head").click()
        health = page.locator(".jp-mlops-deployment-tab[data-deployment='heal-ui']") \
            .get_by_test_id("server-health")
        expect(health).to_have_attribute("data-state", "running")
        expect(health).to_contain_text(
            "running, last exit: killed by signal 9 (SIGKILL) · restarted 1 time")
        shot(page, "deployments-04-model-server-restarted")
    finally:
        assert platform.api("DELETE", f"{API}/heal-ui", admin).status_code == 204
