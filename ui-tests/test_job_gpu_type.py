"""A job's GPU type from the Jobs panel's form: sent with the job, refused in the platform's
words when no GPU of that type exists (the session platform has none)."""
from __future__ import annotations

from conftest import hub_login, open_lab, open_mlops_sidebar, shot
from playwright.sync_api import expect
from test_jobs import roomy_jobs_section, workspace_files

expect.set_options(timeout=30_000)
# jobs are a data scientist's work: the control plane gets no token for a hub administrator's
USER, PASSWORD = "gaia", "gaia-first-login-pw"


def test_gpu_type_from_the_form(page, platform):
    platform.add_user(USER, PASSWORD)
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    workspace_files(platform, USER, {"ui_typed.py": "print('typed')\n"})
    sidebar = open_mlops_sidebar(page)
    roomy_jobs_section(page, sidebar)
    section = sidebar.get_by_test_id("jobs-section")
    section.get_by_role("button", name="New job…").click()
    form = section.get_by_role("form", name="Submit a job")
    form.get_by_label("Notebook or script").fill("ui_typed.py")
    expect(form.get_by_label("GPU type")).to_have_count(0)  # only with GPUs
    form.get_by_label("GPUs").fill("1")
    form.get_by_label("GPU type").fill("A100")
    shot(page, "jobs-gpu-type-01-form")
    form.get_by_role("button", name="Submit job").click()
    expect(form).to_contain_text("the job asks for 1 A100 GPUs; the platform has 0")
    shot(page, "jobs-gpu-type-02-refused")
