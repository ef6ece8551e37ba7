"""The spawn page in Chromium: only the profiles a user may use, with live GPU availability,
and a refusal shown on the page with its reason."""
from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import expect

from conftest import hub_login, open_mlops_sidebar, shot
from tests.spawner.hubfixture import SpawnerHub, shared_tmpdir

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def spawn_hub():
    h = SpawnerHub(shared_tmpdir("spawn-ui")).start()
    h.add_user("dana", "dana-password-1")
    h.add_user("lee", "lee-password-1", groups=["deep-learning"])
    yield h
    h.stop()
    shutil.rmtree(h.data_dir, ignore_errors=True)


def profile_labels(page):
    return page.locator("label.mlops-profile")


def test_spawn_page_shows_only_allowed_profiles_with_availability(page, spawn_hub):
    # Given dana, in no group, on the spawn page
    hub_login(page, spawn_hub, "dana", "dana-password-1")
    page.goto(f"{spawn_hub.url}/hub/spawn")
    # Then she sees CPU and one-GPU profiles with how many GPUs are free, not the group's one
    expect(profile_labels(page)).to_have_count(2)
    expect(page.get_by_text("CPU only")).to_be_visible()
    gpu = page.locator('label.mlops-profile[data-profile="gpu-1"]')
    expect(gpu).to_contain_text("2 of 2 GPUs free")
    expect(page.get_by_text("Deep learning (2 GPUs)")).to_have_count(0)
    expect(page.get_by_role("radio", name=re.compile("CPU only"))).to_be_checked()
    shot(page, "spawn-page-dana")

    # When an administrator sets her GPU quota to 0 and she asks for a GPU
    token = spawn_hub.token("admin")
    spawn_hub.api("PUT", "/services/mlops/api/gpus/quotas/user/dana", token,
                  json={"gpus": 0}).raise_for_status()
    page.reload()
    expect(gpu).to_contain_text("user dana: 0 of 0 GPU quota in use")
    # the profile cannot be chosen now; a direct post is still answered with the reason
    expect(gpu.get_by_role("radio")).to_be_disabled()
    page.evaluate("document.querySelector('input[value=\"gpu-1\"]').disabled = false")
    gpu.get_by_role("radio").check()
    page.get_by_role("button", name=re.compile("^Start")).click()
    # Then the spawn page says why, at once
    expect(page.get_by_text(re.compile("GPU quota of user dana is 0; 0 in use now"))) \
        .to_be_visible(timeout=10_000)
    shot(page, "spawn-page-quota-refused")


def test_group_member_sees_the_group_profile(page, spawn_hub):
    hub_login(page, spawn_hub, "lee", "lee-password-1")
    page.goto(f"{spawn_hub.url}/hub/spawn")
    expect(profile_labels(page)).to_have_count(3)
    big = page.locator('label.mlops-profile[data-profile="big"]')
    expect(big).to_contain_text("Deep learning (2 GPUs)")
    expect(big).to_contain_text("2 of 2 GPUs free")
    shot(page, "spawn-page-lee")


def test_gpu_notebook_waits_in_the_queue_and_starts_when_a_gpu_frees(page, spawn_hub):
    # Given lee's server holding both GPUs, and dana without a quota any more
    admin = spawn_hub.token("admin")
    spawn_hub.api("DELETE", "/services/mlops/api/gpus/quotas/user/dana", admin)
    assert spawn_hub.spawn("lee", "big").status_code in (201, 202), spawn_hub.hub_log()
    spawn_hub.wait_ready("lee")
    hub_login(page, spawn_hub, "dana", "dana-password-1")
    page.goto(f"{spawn_hub.url}/hub/spawn")
    gpu = page.locator('label.mlops-profile[data-profile="gpu-1"]')
    # Then the GPU profile can still be chosen: she would wait in the queue
    expect(gpu).to_contain_text("0 of 2 GPUs free (you wait in the GPU queue")
    gpu.get_by_role("radio").check()
    page.get_by_role("button", name=re.compile("^Start")).click()
    # and the spawn page shows her place and who holds the GPUs
    expect(page.locator("#progress-message")).to_have_text(re.compile(
        r"Waiting in the GPU queue: .*held by someone's server\), you are 1st"), timeout=30_000)
    shot(page, "spawn-page-gpu-queue")
    # When lee stops, her server starts by itself and the lab opens
    assert spawn_hub.hub("DELETE", "users/lee/server").status_code in (202, 204)
    page.wait_for_url(re.compile(r"/user/dana/"), timeout=90_000)
    assert spawn_hub.server_state("dana").get("ready")
    # and her GPU-hours, by project, are in the lab's Platform section
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=60_000)
    sidebar = open_mlops_sidebar(page)
    # the status check shows the simulated GPU her server holds, without utilisation data
    expect(sidebar.get_by_test_id("status-gpus")).to_contain_text(
        re.compile(r"\d: .* · no utilisation data"), timeout=30_000)
    expect(sidebar.get_by_test_id("gpu-hours-mine")).to_contain_text(
        re.compile(r"h in 7 days · [0-9.]+ h in 30 days"), timeout=30_000)
    mine = sidebar.get_by_role("figure", name="My GPU-hours by project")
    expect(mine.get_by_test_id("gpu-hours-row")).to_contain_text("(none)")
    expect(sidebar.get_by_role("link", name="Export as CSV")).to_have_attribute(
        "href", re.compile(r"/user/dana/mlops/api/usage\?format=csv$"))
    shot(page, "lab-gpu-hours-dana")
    spawn_hub.hub("DELETE", "users/dana/server")
    spawn_hub.wait_stopped("dana")
