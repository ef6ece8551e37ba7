"""A new data scientist's first model, walked in Chromium without a reload, guided by the
sidebar's Getting started section: first login, the shared dataset opened from it, its example
notebook (MLflow 3's standard calls, ``mlflow.sklearn.log_model(clf, name="model")``) opened and
run, the run appearing in the sidebar by itself and the step marked done, Register from the run's
view, Deploy from the Models section, the notebook submitted as a job from the section (which then
goes away). Every link the walk meets opens through the hub (the "View run" link MLflow prints,
the MLflow links of the run's view). Light and dark screenshots are kept at each stop; the time
from the first login to the first run in the sidebar is printed."""
from __future__ import annotations

import re
import time

from conftest import (hub_login, open_lab, open_mlops_sidebar, open_section, painted, shot,
                      use_theme)
from playwright.sync_api import expect

USER, PASSWORD = "tova", "tova-first-login-pw"
EXPERIMENT, MODEL = "tova-getting-started", "tova-cells"  # the example notebook's experiment
NOTEBOOK = "getting-started/first_run.ipynb"
API = "services/mlops/api"
expect.set_options(timeout=30_000)


SHOOTING = [0.0]  # seconds spent on screenshots, left out of the walk's time


def both_themes(page, name: str) -> None:
    t0 = time.monotonic()
    shot(page, f"{name}-light")
    use_theme(page, "Dark")
    painted(page)
    shot(page, f"{name}-dark")
    use_theme(page, "Light")
    SHOOTING[0] += time.monotonic() - t0


def opens(page, url: str) -> None:
    """The link opens in a new tab through the hub, with the person's session: 200 in the end
    (after the hub's OAuth redirects), not a 401."""
    other = page.context.new_page()
    try:
        answer = other.goto(url)
        assert answer is not None and answer.status == 200, (answer and answer.status, url)
        expect(other.locator("body")).not_to_contain_text("401")
    finally:
        other.close()


def test_first_login_to_a_deployed_model_without_a_reload(page, platform):
    platform.add_user(USER, PASSWORD)  # the admin adds the account; the person logs in
    token = platform.token(USER)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    t0 = time.monotonic()
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    sidebar = open_mlops_sidebar(page)

    # 0. Getting started: the shared dataset's mount, opened in the file browser from there.
    open_section(sidebar, "getting started")
    guide = sidebar.get_by_test_id("getting-started")
    dataset_step = guide.get_by_test_id("getting-started-dataset")
    expect(dataset_step).to_contain_text("/datasets")
    expect(guide.get_by_test_id("getting-started-run")).to_have_attribute("data-done", "false")
    both_themes(page, "daily-00-getting-started")
    dataset_step.get_by_role("button", name="Open in the file browser").click()
    expect(page.locator(".jp-FileBrowser .jp-BreadCrumbs")).to_contain_text("datasets")
    expect(dataset_step).to_have_attribute("data-done", "true")
    open_mlops_sidebar(page)

    # 1. Its example notebook (MLflow 3's standard calls), opened from the section and run.
    guide.get_by_role("button", name="Open the example notebook").click()
    notebook = page.locator(".jp-MainAreaWidget.jp-NotebookPanel .jp-Notebook")
    expect(notebook).to_contain_text("mlflow.sklearn.log_model(")
    expect(notebook).to_contain_text('name="model"')
    # An opened notebook's editor takes keys only once its kernel is up: sent earlier, they are
    # lost and nothing runs.
    expect(page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle"))).to_be_visible(
        timeout=120_000)
    page.locator(".jp-Notebook .jp-CodeCell .cm-content").first.click()
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-OutputArea-output", has_text="View run")
    expect(output).to_be_visible(timeout=120_000)
    text = output.inner_text()
    # the link MLflow prints is the public address, through the hub's login
    link = re.search(r"https?://\S+/#/experiments/\d+/runs/\w+", text).group(0)
    assert link.startswith(f"{platform.url}/services/mlflow/"), text
    both_themes(page, "daily-01-notebook")

    # 2. The run appears in the sidebar by itself, and the section marks the step done.
    open_section(sidebar, "experiments")
    experiments = sidebar.get_by_test_id("experiments-list")
    experiments.get_by_role("link", name=EXPERIMENT, exact=True).click()
    table = page.get_by_role("table", name="Runs")
    expect(table.get_by_role("row")).to_have_count(2)
    first_run_seconds = time.monotonic() - t0 - SHOOTING[0]
    print(f"\nfirst login to the first run in the sidebar: {first_run_seconds:.1f} s "
          f"(screenshots left out)")
    expect(guide.get_by_test_id("getting-started-run")).to_have_attribute("data-done", "true")
    expect(guide.get_by_test_id("getting-started-job")).to_have_attribute("data-done", "false")
    table.get_by_role("row").nth(1).get_by_role("link").first.click()
    models = page.get_by_test_id("run-models")
    logged = models.get_by_test_id("logged-model")
    expect(logged).to_contain_text("logged model")
    expect(logged).to_contain_text("m-")
    both_themes(page, "daily-02-run-with-logged-model")
    # the MLflow links of the run's and experiment's views and of the sidebar's Platform
    # section open for the person
    hrefs = page.locator(".jp-MainAreaWidget a[href*='/services/mlflow/'], "
                         "#jp-mlops-sidebar a[href*='/services/mlflow/']").evaluate_all(
        "links => links.map(a => a.href)")
    assert hrefs, "the run view links to MLflow"
    for href in set(hrefs):
        opens(page, href)

    # 3. Register it from the run's view.
    logged.get_by_label("Model name for model").fill(MODEL)
    logged.get_by_role("button", name="Register model").click()
    expect(logged.get_by_role("status")).to_contain_text(f"Registered {MODEL} version 1")

    # 4. Deploy it from the Models section, which lists it without a reload.
    open_section(sidebar, "models")
    model_list = sidebar.get_by_test_id("models-list")
    model_list.get_by_test_id(f"model-{MODEL}").get_by_role("link", name=MODEL).click()
    version = sidebar.get_by_test_id(f"version-{MODEL}-1")
    expect(version).to_contain_text("logged model: m-")
    version.get_by_role("button", name="Deploy").click()
    open_section(sidebar, "deployments")
    deployment = sidebar.get_by_test_id(f"deployment-{MODEL}")
    expect(deployment).to_have_attribute("data-status", "ready", timeout=180_000)
    both_themes(page, "daily-03-deployed")

    # 5. The "View run" link opens MLflow's run page for the person, through the hub.
    opens(page, link)

    # 6. Getting started's last step: the Jobs form prefilled with the example notebook; once
    # the job exists every step is done and the section goes away.
    open_section(sidebar, "getting started")
    guide.get_by_role("button", name="Submit it as a job").click()
    form = sidebar.get_by_role("form", name="Submit a job")
    expect(form.get_by_label("Notebook or script")).to_have_value(NOTEBOOK)
    form.get_by_role("button", name="Submit job").click()
    expect(sidebar.get_by_test_id("getting-started")).to_have_count(0)
    expect(sidebar.locator(".jp-AccordionPanel-title", has_text="Getting started")).to_have_count(0)
    jobs = platform.api("GET", f"{API}/jobs", token).json()["jobs"]
    assert [j["spec"]["path"] for j in jobs] == [NOTEBOOK], jobs
    for job in jobs:  # its run is not what this walk is about: spare the machine
        platform.api("POST", f"{API}/jobs/{job['id']}/cancel", token)
    assert not errors, errors
    platform.api("DELETE", f"{API}/deployments/{MODEL}", token)
