"""Lab notifications and live panels in Chromium: a job submitted outside the lab appears in
the Jobs section without a reload, and its end shows as a JupyterLab notification whose
action opens the job's view."""
from __future__ import annotations

import re

from conftest import hub_login, open_lab, open_mlops_sidebar, shot
from playwright.sync_api import expect
from test_jobs import workspace_files

API = "services/mlops/api"
# a data scientist (hub administrators' work gets no control-plane token)
USER, PASSWORD = "wren", "wren-first-login-pw"
expect.set_options(timeout=30_000)


def test_a_job_ending_is_a_lab_notification_and_the_jobs_list_is_live(page, platform):
    platform.add_user(USER, PASSWORD)
    token = platform.token(USER)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    sidebar = open_mlops_sidebar(page)
    jobs = sidebar.get_by_test_id("jobs-section")
    expect(jobs).to_be_attached()
    workspace_files(platform, USER, {"chime.py": "import time\ntime.sleep(2)\nprint('chime')\n"})
    # When a job is submitted outside the lab (a terminal, %mlops, another tab)
    r = platform.api("POST", f"{API}/jobs", token, json={"path": "chime.py"})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    # Then the Jobs section lists it without a reload or a click
    expect(sidebar.get_by_text(re.compile(rf"#{job_id}\b")).first).to_be_attached()
    # and its end comes as the lab's own notification, with an action opening the job
    toast = page.locator(".Toastify__toast", has_text=f"Job {job_id} (chime.py) succeeded")
    expect(toast).to_be_visible(timeout=90_000)
    expect(toast).not_to_have_class(re.compile(r"-enter"))  # its entrance animation is over
    shot(page, "notifications-01-job-succeeded")
    toast.get_by_role("button", name="Open").click()
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab",
                        has_text=f"Job #{job_id}")).to_be_visible()
    # shown once: read in the feed now
    feed = platform.api("GET", f"{API}/notifications", token).json()
    mine = [n for n in feed["notifications"] if n["link"] == f"mlops:jobs/{job_id}"]
    assert mine and mine[0]["read"], mine
    # Submitting from the Jobs section twice: the second submission's view replaces the
    # first's instead of adding one more tab
    def tab(job: int):
        return page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=f"Job #{job}")

    submitted = []
    for _ in range(2):
        jobs.get_by_role("button", name="New job…").click()
        form = jobs.get_by_role("form", name="Submit a job")
        form.get_by_label("Notebook or script").fill("chime.py")
        form.get_by_role("button", name="Submit job").click()
        expect(form).to_have_count(0)
        submitted.append(max(j["id"] for j in platform.api(
            "GET", f"{API}/jobs", token).json()["jobs"]))
        expect(tab(submitted[-1])).to_have_count(1)
    expect(tab(submitted[0])).to_have_count(0)
    expect(tab(job_id)).to_have_count(1)  # opened from the notification: stays
    assert not errors, errors
