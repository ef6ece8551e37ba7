"""A new data scientist's first model, walked in Chromium without a reload: first login, a
notebook with MLflow 3's standard calls (``mlflow.sklearn.log_model(clf, name="model")``), the
run appearing in the sidebar by itself, Register from the run's view, Deploy from the Models
section; the "View run" link MLflow prints opens through the hub login. Light and dark
screenshots are kept at each stop."""
from __future__ import annotations

import re

from conftest import hub_login, open_lab, open_mlops_sidebar, shot
from playwright.sync_api import expect

USER, PASSWORD = "tova", "tova-first-login-pw"
EXPERIMENT, MODEL = "tova-first", "tova-cells"
API = "services/mlops/api"
expect.set_options(timeout=30_000)

CELL = """import mlflow, mlflow.sklearn
from sklearn.linear_model import LogisticRegression
mlflow.set_experiment("tova-first")
clf = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
run = mlflow.start_run()
mlflow.log_metric("accuracy", clf.score([[0.0], [3.0]], [0, 1]))
info = mlflow.sklearn.log_model(clf, name="model")
mlflow.end_run()"""


def theme(page, name: str) -> None:
    page.get_by_role("menuitem", name="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Theme$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^JupyterLab {name}$")).click()
    expect(page.locator("body")).to_have_attribute(
        "data-jp-theme-light", "true" if name == "Light" else "false")
    page.wait_for_timeout(500)


def both_themes(page, name: str) -> None:
    shot(page, f"{name}-light")
    theme(page, "Dark")
    shot(page, f"{name}-dark")
    theme(page, "Light")


def section(sidebar, title: str):
    head = sidebar.locator(".jp-AccordionPanel-title").filter(
        has_text=re.compile(f"^{title}$", re.I))
    if head.get_attribute("aria-expanded") != "true":
        head.click()


def test_first_login_to_a_deployed_model_without_a_reload(page, platform):
    platform.add_user(USER, PASSWORD)  # the admin adds the account; the person logs in
    token = platform.token(USER)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    sidebar = open_mlops_sidebar(page)

    # 1. A notebook from the launcher, MLflow 3's standard calls, run.
    page.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
    # A new notebook's editor takes keys only once its kernel is up: typed earlier, they are lost
    # and Shift+Enter runs an empty cell.
    expect(page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle"))).to_be_visible(
        timeout=120_000)
    cell.click()
    page.keyboard.insert_text(CELL)
    expect(cell).to_contain_text("mlflow.end_run()")
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-OutputArea-output", has_text="View run")
    expect(output).to_be_visible(timeout=120_000)
    text = output.inner_text()
    # the link MLflow prints is the public address, through the hub's login
    link = re.search(r"https?://\S+/#/experiments/\d+/runs/\w+", text).group(0)
    assert link.startswith(f"{platform.url}/services/mlflow/"), text
    both_themes(page, "daily-01-notebook")

    # 2. The experiment and its run appear in the sidebar by themselves.
    section(sidebar, "experiments")
    experiments = sidebar.get_by_test_id("experiments-list")
    experiments.get_by_role("link", name=EXPERIMENT, exact=True).click()
    table = page.get_by_role("table", name="Runs")
    expect(table.get_by_role("row")).to_have_count(2)
    table.get_by_role("row").nth(1).get_by_role("link").first.click()
    models = page.get_by_test_id("run-models")
    logged = models.get_by_test_id("logged-model")
    expect(logged).to_contain_text("logged model")
    expect(logged).to_contain_text("m-")
    both_themes(page, "daily-02-run-with-logged-model")

    # 3. Register it from the run's view.
    logged.get_by_label("Model name for model").fill(MODEL)
    logged.get_by_role("button", name="Register model").click()
    expect(logged.get_by_role("status")).to_contain_text(f"Registered {MODEL} version 1")

    # 4. Deploy it from the Models section, which lists it without a reload.
    section(sidebar, "models")
    model_list = sidebar.get_by_test_id("models-list")
    model_list.get_by_test_id(f"model-{MODEL}").get_by_role("link", name=MODEL).click()
    version = sidebar.get_by_test_id(f"version-{MODEL}-1")
    expect(version).to_contain_text("logged model: m-")
    version.get_by_role("button", name="Deploy").click()
    section(sidebar, "deployments")
    deployment = sidebar.get_by_test_id(f"deployment-{MODEL}")
    expect(deployment).to_have_attribute("data-status", "ready", timeout=180_000)
    both_themes(page, "daily-03-deployed")

    # 5. The "View run" link opens MLflow's run page for the person, through the hub.
    other = page.context.new_page()
    answer = other.goto(link)
    assert answer is not None and answer.ok, (answer and answer.status, link)
    expect(other.locator("body")).not_to_contain_text("401")
    other.close()
    assert not errors, errors
    platform.api("DELETE", f"{API}/deployments/{MODEL}", token)
