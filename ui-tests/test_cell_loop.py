"""The cell-detection loop walked in the browser, on the real platform.

A new data scientist copies the cell-detection template from the sidebar, submits its pipeline
from the Jobs panel and watches prepare -> train -> evaluate -> register run as jobs, opens the
evaluation run's detections in the Experiments panel, deploys the registered version from the
Models section and tries it on a held-out image, the boxes drawn over it. Screenshots are kept
at each stop. (tests/demo/test_cell_loop.py checks the same loop through the APIs, with its
stated accuracy bounds; this walk checks that a person can do it in the lab.)
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from conftest import hub_login, open_lab, open_mlops_sidebar, open_section, shot
from playwright.sync_api import expect

USER, PASSWORD = "walt9", "walt9-first-login-pw"
DATASET = "cells-ui-walk"
MODEL = "cell-detector-ui-walk"
API = "services/mlops/api"
WAIT = 30_000


@pytest.fixture
def walker(platform):
    from jupyter_mlops.client import ControlPlane
    from jupyter_mlops.demo import publish

    platform.add_user(USER, PASSWORD)
    token = platform.token(USER)
    client = ControlPlane(f"{platform.url}/{API.rsplit('/', 1)[0]}/", token)
    if not any(d["name"] == DATASET for d in client.datasets()):
        publish.publish_demo(DATASET, n_images=24, seed=11, size=128, client=client)
    yield token
    platform.api("DELETE", f"{API}/deployments/{MODEL}", token)


def held_out_png(path) -> int:
    """A 16-bit PNG from a seed the dataset never used; returns its number of cells."""
    from PIL import Image

    from jupyter_mlops.demo import cells

    rng = np.random.default_rng([2024, 1])
    nuclei = cells.nuclei(rng, 128, 128, 10)
    img, _ = cells.render(rng, 128, 128, nuclei)
    Image.fromarray(img).save(path)
    return len(nuclei)


def test_walk_the_cell_detection_loop(page, platform, walker, tmp_path):
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    sidebar = open_mlops_sidebar(page)

    # 1. Copy the template: its README opens.
    row = sidebar.get_by_test_id("template-cells")
    row.get_by_role("button", name="Copy the cell detection template").click()
    expect(row.get_by_role("status")).to_contain_text("into cell-detection/", timeout=WAIT)
    expect(page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="README.md")).to_be_visible()
    shot(page, "loop-01-template")

    # 2. Submit the template's pipeline from the Jobs panel (this test's dataset and model).
    spec = yaml.safe_load((platform.data_dir / "users" / USER / "cell-detection" /
                           "pipeline.yaml").read_text())
    for step in spec["steps"]:
        if "dataset" in step.get("params", {}):
            step["params"]["dataset"] = DATASET
        if step["name"] == "register":
            step["params"]["model_name"] = MODEL
    jobs = sidebar.get_by_test_id("jobs-section")
    jobs.get_by_role("button", name=re.compile("^New pipeline")).click()
    form = jobs.get_by_role("form", name="Submit a pipeline")
    form.locator("textarea").fill(yaml.safe_dump(spec, sort_keys=False))
    form.get_by_role("button", name="Submit pipeline").click()
    graph = page.get_by_test_id("pipeline-detail")
    expect(graph).to_be_visible(timeout=WAIT)
    steps = ("prepare", "train", "evaluate", "register")
    for s in steps:
        expect(graph.locator(f'g[data-step="{s}"]')).to_have_attribute(
            "data-state", "succeeded", timeout=600_000)
    pid = int(re.search(r"#(\d+)", graph.locator("h2").inner_text()).group(1))
    shot(page, "loop-02-pipeline")

    # 3. The evaluation run's detections in the Experiments panel.
    pipeline = platform.api("GET", f"{API}/pipelines/{pid}", walker).json()
    run_ids = {s["name"]: s["run_id"] for s in pipeline["steps"]}
    sidebar.get_by_test_id("experiments-list").get_by_title("Reload experiments").click()
    sidebar.get_by_test_id("experiments-list").get_by_role(
        "link", name=spec["experiment"], exact=True).click()
    page.get_by_label("Filter runs (MLflow search syntax)").fill(
        f"tags.`mlops.pipeline_id` = '{pid}'")
    page.get_by_role("button", name="Search").click()
    table = page.get_by_role("table", name="Runs")
    expect(table.get_by_role("row")).to_have_count(1 + len(steps), timeout=WAIT)
    table.locator(f'a[href*="{run_ids["evaluate"]}"]').first.wait_for()
    row_eval = table.get_by_role("row").filter(has=page.locator(f'a[href*="{run_ids["evaluate"]}"]'))
    row_eval.get_by_role("link").first.click()
    section = page.get_by_test_id("run-detections")
    expect(section.get_by_test_id("detection-totals")).to_have_count(1, timeout=WAIT)
    n_cell = section.get_by_test_id("detection-totals").locator("td").first
    expect(n_cell).to_have_text(re.compile(r"^\s*\d+\s*$"))
    n_val = int(n_cell.inner_text())
    assert n_val > 0
    section.get_by_role("tab", name=f"All images ({n_val})").click()
    first = section.get_by_test_id("detection-image").first
    expect(first.locator("img")).to_have_js_property("complete", True, timeout=WAIT)
    expect(first.locator("rect[data-kind=pred]")).not_to_have_count(0)  # the model found cells
    section.evaluate("el => el.scrollIntoView({block: 'start'})")
    shot(page, "loop-03-detections")

    # 4. The registered version in the Models section: deploy it.
    models = sidebar.get_by_test_id("models-list")
    open_section(sidebar, "Models")
    models.get_by_title("Reload models").click()
    models.get_by_test_id(f"model-{MODEL}").get_by_role("link", name=MODEL).click()
    version = sidebar.get_by_test_id(f"version-{MODEL}-1")
    version.get_by_role("button", name="Deploy").click()
    deployment = sidebar.get_by_test_id(f"deployment-{MODEL}")
    expect(deployment).to_have_attribute("data-status", "ready", timeout=120_000)
    shot(page, "loop-04-deployed")

    # 5. Try it in the deployment's tab: a held-out image, the boxes drawn over it, about as
    # many as there are cells.
    deployment.get_by_role("button", name=re.compile(MODEL)).first.click()
    deployment = page.locator(f".jp-mlops-deployment-tab[data-deployment='{MODEL}']")
    image = tmp_path / "held-out.png"
    true_count = held_out_png(image)
    deployment.get_by_label(f"Try {MODEL} with a file").set_input_files(str(image))
    boxes = deployment.get_by_test_id("tryit-boxes")
    expect(boxes).to_contain_text("box(es) detected", timeout=60_000)
    found = int(re.match(r"(\d+)", boxes.inner_text()).group(1))
    assert abs(found - true_count) <= max(2, 0.25 * true_count), (found, true_count)
    expect(deployment.locator("rect.jp-mlops-box")).to_have_count(found)
    deployment.scroll_into_view_if_needed()
    shot(page, "loop-05-try-it")
