"""A job's time limit from the Jobs panel's form: the job is stopped and fails, with the reason."""
from __future__ import annotations

import re

from conftest import hub_login, open_lab, open_mlops_sidebar, shot
from playwright.sync_api import expect
from test_jobs import roomy_jobs_section, workspace_files

expect.set_options(timeout=30_000)
# jobs are a data scientist's work: the control plane gets no token for a hub administrator's
USER, PASSWORD = "tilda", "tilda-first-login-pw"

NAPPER = """
import time
print("napping for a minute", flush=True)
time.sleep(60)
"""


def test_time_limit_from_the_form(page, platform):
    platform.add_user(USER, PASSWORD)
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)  # the server's start makes the workspace the user's own
    workspace_files(platform, USER, {"ui_nap.py": NAPPER})
    sidebar = open_mlops_sidebar(page)
    roomy_jobs_section(page, sidebar)
    section = sidebar.get_by_test_id("jobs-section")
    section.get_by_role("button", name="New job…").click()
    form = section.get_by_role("form", name="Submit a job")
    form.get_by_label("Notebook or script").fill("ui_nap.py")
    form.get_by_label("Time limit (s)").fill("5")
    shot(page, "jobs-time-limit-01-form")
    form.get_by_role("button", name="Submit job").click()

    detail = page.get_by_test_id("job-detail")
    expect(detail).to_be_visible()
    expect(detail.locator("tr", has_text="Time limit")).to_contain_text("5 s")
    # (not waiting for the script's own output: on a loaded machine the limit may come first)
    expect(detail.locator("h2")).to_contain_text("failed", timeout=60_000)
    expect(detail).to_contain_text("time limit of 5 s reached")
    job_id = int(re.search(r"Job #(\d+)", detail.locator("h2").inner_text()).group(1))
    item = section.get_by_test_id(f"job-{job_id}")
    expect(item).to_contain_text("time limit of 5 s reached")
    shot(page, "jobs-time-limit-02-failed")
