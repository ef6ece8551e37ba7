"""The admin page in Chromium, on the SSO platform with two simulated A100s at 0 % utilisation.

sam (cells-team) starts a 1-GPU server and sees the project in the lab sidebar; ada (an
administrator through the IdP) sees sam's server holding GPU 0 on the admin page, listed as
idle; she sets sam's GPU quota to 0 and stops the idle server; sam's next spawn offers no GPU
profile and sam's next GPU job is refused, both naming the quota, until ada removes it.
Screenshots in ui-tests/artifacts/admin-*.png.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from conftest import open_mlops_sidebar, shot
from oidc_platform import sso, sso_login, sso_token  # noqa: F401 (a fixture)

from tests.fixtures import until

pytestmark = pytest.mark.ui


@pytest.fixture
def two_people(browser, sso, request):
    contexts = [browser.new_context(viewport={"width": 1400, "height": 900}) for _ in range(2)]
    for c in contexts:
        c.set_default_timeout(30_000)
    pages = [c.new_page() for c in contexts]
    yield pages
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for name, p in zip(("sam", "ada"), pages):
            shot(p, f"FAILED-admin-page-{name}")
        print(sso.platform.hub_log(60))
    for c in contexts:
        c.close()


def test_admin_sees_gpu_holders_stops_idle_servers_and_quota_holds_at_next_spawn(
        sso, two_people):
    sam, ada = two_people
    base = sso.platform.url
    # sam starts a server with one A100 from the spawn page
    sso_login(sam, sso, "sam")
    sam.goto(f"{base}/hub/spawn")
    sam.locator('label[data-profile="a100-1"] input').check()
    sam.get_by_role("button", name=re.compile("^Start")).click()
    sam.wait_for_url(re.compile(re.escape(base) + r"/user/sam/lab"), timeout=240_000)
    sam.locator("#jp-main-dock-panel").wait_for(timeout=120_000)
    sidebar = open_mlops_sidebar(sam)
    projects = sidebar.get_by_role("list", name="My projects")
    expect(projects.get_by_test_id("project-cells")).to_be_visible()
    expect(projects.get_by_test_id("project-default")).to_be_visible()
    shot(sam, "admin-01-sam-sidebar-projects")

    # ada sees sam's server and the GPU it holds
    sso_login(ada, sso, "ada")
    ada.get_by_role("link", name="MLOps admin").click()
    expect(ada.get_by_role("heading", name="MLOps administration")).to_be_visible()
    row = ada.locator('tr[data-user="sam"]')
    expect(row).to_contain_text("running")
    expect(row.get_by_label("Role of sam", exact=True)).to_have_value("scientist")
    expect(row).to_contain_text("cells-team")
    gpu0 = ada.locator('tr[data-gpu="0"]')
    expect(gpu0).to_contain_text("server sam")
    expect(gpu0).to_contain_text("0 %")
    expect(gpu0).to_contain_text("2.1 / 40.0 GB")
    expect(ada.locator('tr[data-gpu="1"]')).to_contain_text("free")
    ada_role = ada.locator('tr[data-user="ada"]')
    expect(ada_role.get_by_label("Role of ada", exact=True)).to_have_value("admin")
    # idle: 0 % for longer than idle_gpu_minutes (0 here), seen from the second reading on
    ada.reload()
    idle = ada.get_by_role("table", name="Idle servers")
    expect(idle).to_contain_text("sam")
    # each GPU's utilisation over the last day, charted from the control plane's readings
    expect(gpu0.get_by_role("img", name=re.compile(
        r"^GPU 0 utilisation, last 24 h: \d+ minutes measured, peak 0 %$"))).to_be_visible()
    # and sam's GPU server's CPU, memory and GPU use, sampled by the control plane
    expect(ada.get_by_role("table", name="GPU servers and their idle rule").get_by_role(
        "img", name=re.compile(r"^Server sam, last 24 h: \d+ minutes sampled, CPU peak \d+ % "
                               r"of a core, memory now \d+ MB, GPU peak 0 %$"))).to_be_visible()
    shot(ada, "admin-02-page-top")
    ada.screenshot(path=str(shot(ada, "admin-03-page-full")), full_page=True)

    # the quota: sam may hold no GPU any more
    quotas = ada.locator("#quotas")
    quotas.get_by_label("Quota kind").select_option("user")
    quotas.get_by_label("Quota name").fill("sam")
    quotas.get_by_label("GPUs").fill("0")
    quotas.get_by_role("button", name="Set quota").click()
    expect(ada.get_by_role("status")).to_have_text("GPU quota of user sam set to 0")
    expect(ada.get_by_role("table", name="GPU quotas")).to_contain_text("sam")

    # stop the idle server from the page
    ada.get_by_role("table", name="Idle servers").get_by_role(
        "button", name="Stop idle server of sam").click()
    expect(ada.get_by_role("status")).to_have_text("server of sam is stopping")
    # the page is rendered by the server: reloaded until it shows the stop and the freed GPU

    def stopped_on_the_page():
        ada.goto(f"{base}/services/mlops/admin")
        return ("running" not in ada.locator('tr[data-user="sam"]').inner_text()
                and "free" in ada.locator('tr[data-gpu="0"]').inner_text())

    until(stopped_on_the_page, 60, "sam's server stopped and GPU 0 free on the admin page",
          every=0.5)
    # the GPU-hours table has sam's few seconds on the GPU
    expect(ada.get_by_role("table", name="GPU-hours per user")).to_contain_text("sam")
    expect(ada.get_by_role("table", name="GPU-hours per project")).to_contain_text("(none)")

    # sam's next spawn: the GPU profile cannot be chosen, and the page says why
    sam.goto(f"{base}/hub/spawn")
    gpu_choice = sam.locator('label[data-profile="a100-1"]')
    expect(gpu_choice.locator("input")).to_be_disabled()
    expect(gpu_choice).to_contain_text(re.compile(r"user sam\W.*\b0 of 0\b.*quota"))
    shot(sam, "admin-04-sam-next-spawn-quota")

    # sam's next GPU job is refused, naming the quota; once ada removes it, the job runs
    token = sso_token(sam, sso, "sam")
    ws = sso.platform.data_dir / "users" / "sam"
    (ws / "count_cells.py").write_text("print('counting cells')\n")
    job = {"path": "count_cells.py", "gpus": 1, "project": "cells"}
    r = sso.platform.api("POST", "/services/mlops/api/jobs", token, json=job)
    assert r.status_code == 403, r.text
    assert r.json()["message"] == "GPU quota of user sam is 0; the job asks for 1"
    ada.goto(f"{base}/services/mlops/admin")
    ada.get_by_role("button", name="Remove quota of user sam").click()
    expect(ada.get_by_role("status")).to_have_text("GPU quota of user sam removed")
    r = sso.platform.api("POST", "/services/mlops/api/jobs", token, json=job)
    assert r.status_code == 201, r.text
    url = f"/services/mlops/api/jobs/{r.json()['id']}"
    done = until(lambda: (j := sso.platform.api("GET", url, token).json())["state"]
                 in ("succeeded", "failed") and j, 60, "sam's GPU job to end", every=0.5)
    assert done["state"] == "succeeded", done
