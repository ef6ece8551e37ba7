"""The Jobs section on a Slurm cluster, in Chromium: with the cluster's GPUs busy, a data
scientist submits a GPU job from the sidebar, sees Slurm's queue reason on it while it waits,
then sees it run and succeed."""
from __future__ import annotations

import re

from conftest import hub_login, open_lab, open_mlops_sidebar, shot
from playwright.sync_api import expect
from test_jobs import roomy_jobs_section, workspace_files

from tests.fixtures import until

API = "services/mlops/api"
# jobs are a data scientist's work: the control plane gets no token for a hub administrator's
USER, PASSWORD = "slurmu", "slurmu-first-login-pw"
expect.set_options(timeout=30_000)

HOLD = """
import os, time
from pathlib import Path
print("holding GPUs", os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
while not Path("release").exists():  # until the test lets the jobs finish
    time.sleep(0.2)
print("released", flush=True)
"""


def test_slurm_queue_reason_in_the_jobs_panel(page, slurm_platform):
    p = slurm_platform
    p.add_user(USER, PASSWORD)
    token = p.token(USER)
    hub_login(page, p, USER, PASSWORD)
    open_lab(page, p, USER)  # the server's start makes the workspace the user's own
    workspace_files(p, USER, {"hold.py": HOLD})
    # Given both GPUs of the cluster held by a 2-GPU job of the user's
    r = p.api("POST", f"{API}/jobs", token, json={"path": "hold.py", "gpus": 2})
    assert r.status_code == 201, r.text
    big = r.json()["id"]
    until(lambda: "holding GPUs 0,1" in p.api("GET", f"{API}/jobs/{big}/logs?offset=0",
                                              token).json()["text"], 60, "the 2-GPU job running")
    sidebar = open_mlops_sidebar(page)
    roomy_jobs_section(page, sidebar)
    section = sidebar.get_by_test_id("jobs-section")
    # When the user submits a 1-GPU job from the sidebar
    section.get_by_role("button", name="New job…").click()
    form = section.get_by_role("form", name="Submit a job")
    form.get_by_label("Notebook or script").fill("hold.py")
    form.get_by_label("GPUs", exact=True).fill("1")
    form.get_by_role("button", name="Submit job").click()
    # Then the job and its row in the list say why Slurm holds it
    detail = page.get_by_test_id("job-detail")
    expect(detail).to_contain_text("waiting in Slurm's queue (Resources", timeout=60_000)
    job_id = int(re.search(r"Job #(\d+)", detail.locator("h2").inner_text()).group(1))
    item = section.get_by_test_id(f"job-{job_id}")
    expect(item).to_contain_text("waiting in Slurm's queue (Resources")
    expect(item).to_contain_text("1 GPU")
    shot(page, "slurm-01-waiting-with-slurms-reason")
    # and once the GPUs are free it runs and succeeds
    workspace_files(p, USER, {"release": ""})
    expect(detail.locator("h2 .jp-mlops-job-state")).to_have_text("succeeded", timeout=90_000)
    expect(detail.get_by_test_id("job-log")).to_contain_text("holding GPUs")
    expect(item).not_to_contain_text("waiting in Slurm's queue")
    shot(page, "slurm-02-succeeded")
    until(lambda: p.api("GET", f"{API}/jobs/{big}", token).json()["state"] == "succeeded", 60,
          "the 2-GPU job done")
