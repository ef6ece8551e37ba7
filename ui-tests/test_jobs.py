"""The Jobs section in Chromium: submit a script, watch it run with its log, open its MLflow
run link; a sweep's trials and best-so-far chart; a pipeline's graph with step states."""
from __future__ import annotations

import os
import re

from conftest import (hub_login, only_sections, open_lab, open_mlops_sidebar, shot, sidebar_width,
                      use_theme)
from playwright.sync_api import expect

from tests.fixtures import until

API = "services/mlops/api"
# jobs are a data scientist's work: the control plane gets no token for a hub administrator's
USER, PASSWORD = "joan", "joan-first-login-pw"
expect.set_options(timeout=30_000)  # a loaded 2-core machine: answers take seconds

# Holds after its second epoch until the test has seen it running (the file ui_train_go):
# however slow the machine, the panel is looked at while the job runs, and no longer.
TRAIN = """
import os, time
from jupyter_mlops.job_runtime import progress, report
epochs = 3
for e in range(epochs):
    print(f"epoch {e}: loss {1 / (e + 1):.3f}", flush=True)
    report("loss", 1 / (e + 1), step=e)
    progress(e + 1, epochs, f"epoch {e + 1} of {epochs}")
    while e == 1 and not os.path.exists("ui_train_go"):
        time.sleep(0.1)
print("training finished")
"""

TRIAL = """
from jupyter_mlops.job_runtime import report
x = 0.5
for step in range(3):
    report("score", x * (step + 1) / 3, step=step)
"""


def _wait(platform, token, path, states=("succeeded", "failed"), timeout=120):
    def answer():
        d = platform.api("GET", f"{API}/{path}", token).json()
        return d if d["state"] in states else None
    return until(answer, timeout, f"{path} to be {'/'.join(states)}", every=0.5)


def workspace_files(platform, user: str, files: dict[str, str]) -> None:
    """Write ``files`` into ``user``'s workspace, owned by its owner (the user's system
    account once their server has started), as if the user had saved them."""
    ws = platform.data_dir / "users" / user
    st = ws.stat()
    for name, text in files.items():
        (ws / name).write_text(text)
        os.chown(ws / name, st.st_uid, st.st_gid)


def roomy_jobs_section(page, sidebar) -> None:
    """Only the Jobs section open, in a sidebar wide enough for a readable screenshot."""
    only_sections(sidebar, "Jobs")
    sidebar_width(page, sidebar, 430)


def test_jobs_panel(page, platform):
    platform.add_user(USER, PASSWORD)
    token = platform.token(USER)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)  # the server's start makes the workspace the user's own
    workspace_files(platform, USER, {"ui_train.py": TRAIN, "ui_trial.py": TRIAL,
                                     "ui_fail.py": "raise SystemExit('no data found')\n"})
    pipeline = platform.api("POST", f"{API}/pipelines", token, json={"spec": """
name: retrain
steps:
  - {name: prepare, run: ui_trial.py}
  - {name: train, run: ui_fail.py, needs: [prepare]}
  - {name: evaluate, run: ui_trial.py, needs: [train]}
  - {name: report, run: ui_trial.py, needs: [prepare]}
"""}).json()
    sidebar = open_mlops_sidebar(page)
    roomy_jobs_section(page, sidebar)
    section = sidebar.get_by_test_id("jobs-section")
    section.get_by_role("button", name="New job…").click()
    form = section.get_by_role("form", name="Submit a job")
    # bad input shows the server's reason
    form.get_by_label("Notebook or script").fill("missing.ipynb")
    form.get_by_role("button", name="Submit job").click()
    expect(form.get_by_role("alert")).to_contain_text("no notebook 'missing.ipynb'")
    form.get_by_label("Notebook or script").fill("ui_train.py")
    form.get_by_label("Parameters").fill("epochs=4")
    form.get_by_role("button", name="Submit job").click()

    detail = page.get_by_test_id("job-detail")
    try:
        expect(detail).to_be_visible(timeout=30_000)
    except AssertionError:
        raise AssertionError("\n".join(errors)) from None
    try:
        expect(detail.locator(".jp-mlops-progress")).to_contain_text("of 4", timeout=30_000)
    except AssertionError:
        raise AssertionError("ERRORS:" + "\n".join(errors)) from None
    try:
        expect(detail.get_by_test_id("job-log")).to_contain_text("epoch 1", timeout=30_000)
    except AssertionError as e:
        raise AssertionError("ERRORS:" + "\n".join(errors) + str(e)[:300]) from None
    job_id = int(re.search(r"Job #(\d+)", detail.locator("h2").inner_text()).group(1))
    item = section.get_by_test_id(f"job-{job_id}")
    expect(item.locator(".jp-mlops-job-state")).to_have_text("running")
    expect(detail.locator("h2 .jp-mlops-job-state")).to_have_text("running")
    shot(page, "jobs-01-running-with-progress-and-log")
    workspace_files(platform, USER, {"ui_train_go": ""})
    expect(detail.locator("h2 .jp-mlops-job-state")).to_have_text("succeeded", timeout=60_000)
    expect(detail.get_by_test_id("job-log")).to_contain_text("training finished")
    link = detail.get_by_role("link", name="MLflow run ↗")
    expect(link).to_have_attribute("href", re.compile(r"/services/mlflow/#/experiments/\d+/runs/"))
    expect(detail).to_contain_text("loss = 0.2500")
    # what a rerun exactly repeats: the seed it got and the lock of its environment
    expect(detail.get_by_test_id("job-seed")).to_have_text(re.compile(r"^\d+$"))
    expect(detail.get_by_test_id("job-environment")).to_contain_text(
        re.compile(r"lock [0-9a-f]{12} · \d+ packages"))
    shot(page, "jobs-02-succeeded")

    # a sweep started from the panel: trials table, chart and best parameters
    section.get_by_role("button", name="New sweep…").click()
    sform = section.get_by_role("form", name="Start a sweep")
    sform.get_by_label("Notebook or script").fill("ui_trial.py")
    sform.get_by_label("Metric").fill("score")
    sform.get_by_label("Search space (YAML)").fill("x: {type: float, low: 0.0, high: 1.0}")
    sform.get_by_label("Trials").fill("6")
    sform.get_by_label("At a time").fill("3")
    sform.get_by_label("Sampler").select_option("random")
    # no pruning: every trial finishes with a value, so each one is a dot on the chart
    sform.get_by_label("Pruning").select_option("none")
    sform.get_by_role("button", name="Start sweep").click()
    view = page.get_by_test_id("sweep-detail")
    expect(view.locator("h2 .jp-mlops-job-state")).to_have_text("succeeded", timeout=120_000)
    sweep = {"id": int(re.search(r"Sweep #(\d+)", view.locator("h2").inner_text()).group(1))}
    expect(view.get_by_role("table", name="Trials").locator("tbody tr")).to_have_count(6)
    expect(view.get_by_test_id("sweep-best")).to_contain_text("Best score")
    expect(view.locator("circle.jp-mlops-chart-dot")).to_have_count(6)
    shot(page, "jobs-03-sweep")

    # the pipeline: the failed step stops its dependent, the independent branch runs
    _wait(platform, token, f"pipelines/{pipeline['id']}")
    section.get_by_text(f"pipeline #{pipeline['id']}").click()
    graph = page.get_by_test_id("pipeline-detail")
    states = {s: graph.locator(f'g[data-step="{s}"]') for s in
              ("prepare", "train", "evaluate", "report")}
    expect(states["prepare"]).to_have_attribute("data-state", "succeeded")
    expect(states["train"]).to_have_attribute("data-state", "failed")
    expect(states["evaluate"]).to_have_attribute("data-state", "skipped")
    expect(states["report"]).to_have_attribute("data-state", "succeeded")
    shot(page, "jobs-04-pipeline")

    # the same views in the dark theme (JupyterLab's CSS variables only)
    use_theme(page, "Dark")
    page.get_by_role("tab", name=f"Sweep #{sweep['id']}").click()
    expect(page.get_by_test_id("sweep-detail")).to_be_visible()
    shot(page, "jobs-05-sweep-dark")
