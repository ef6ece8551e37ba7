"""Experiments and models in JupyterLab, in Chromium against `jupyter-mlops up`.

A data scientist opens the Experiments section, opens an experiment, compares two runs and sees
their loss curves overlaid; opens a run and previews an artifact; a malformed search shows
MLflow's reason; registers a model and moves its alias; the dark theme is checked too.
"""
from __future__ import annotations

import re

import pytest
from conftest import hub_login, main_tab, open_lab, open_mlops_sidebar, painted, shot, use_theme
from playwright.sync_api import expect

USER, PASSWORD = "uma4", "uma4-first-login-pw"
WAIT = 30_000  # ms; the machine running the suite is shared and often busy


def points(n: int) -> re.Pattern:
    """An SVG polyline's ``points`` with exactly ``n`` points (waited for: a chart may draw
    before its whole history has arrived)."""
    return re.compile(rf"^\s*\S+(\s+\S+){{{n - 1}}}\s*$")


@pytest.fixture
def seeded_ui(platform, monkeypatch, tmp_path):
    """An experiment of the default project with 3 runs (30-step histories, artifacts)."""
    import mlflow
    from mlflow.entities import Metric, Param

    from tests.experiments.mlflow_server import log_model_dir

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", platform.admin_token())
    client = mlflow.MlflowClient(tracking_uri=f"{platform.url}/services/mlflow",
                                 registry_uri=f"{platform.url}/services/mlflow")
    exp = client.get_experiment_by_name("ui-cells")
    exp_id = exp.experiment_id if exp else client.create_experiment(
        "ui-cells", tags={"mlops.project": "default"})
    if not client.search_runs([exp_id]):
        for i, lr in enumerate(["0.1", "0.01", "0.001"]):
            run = client.create_run(exp_id, run_name=f"unet-lr{lr}")
            rid = run.info.run_id
            ms = [Metric("loss", 2.0 / (1 + s * float(lr) * 10) + 0.05 * i, 0, s)
                  for s in range(30)]
            ms += [Metric("accuracy", 1 - 1.0 / (2 + s * (i + 1) / 10), 0, s) for s in range(30)]
            if i == 0:  # resources sampled every 10 s, as MLflow's system metrics logging does
                t0 = run.info.start_time
                ms += [Metric(f"system/{k}", v + s, t0 + s * 10_000, s) for s in range(6)
                       for k, v in (("cpu_utilization_percentage", 40.0),
                                    ("gpu_0_utilization_percentage", 70.0))]
            client.log_batch(rid, metrics=ms, params=[Param("lr", lr), Param("epochs", "30")])
            if i == 0:
                log_model_dir(client, rid, tmp_path)
            client.set_terminated(rid)
    return exp_id


def test_compare_two_runs_and_see_the_chart(page, platform, seeded_ui):
    platform.add_user(USER, PASSWORD)
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    sidebar = open_mlops_sidebar(page)

    # The Experiments section lists the experiment under its project; opening it shows runs.
    experiments = sidebar.get_by_test_id("experiments-list")
    experiments.get_by_role("link", name="ui-cells").click()
    table = page.get_by_role("table", name="Runs")
    expect(table.get_by_role("row")).to_have_count(4, timeout=WAIT)  # header + 3 runs
    expect(page.get_by_test_id("runs-page")).to_contain_text("runs 1–3", timeout=WAIT)
    # every run links to the same run in the MLflow UI (behind the hub)
    expect(table.get_by_role("link", name="Open unet-lr0.1 in MLflow")).to_have_attribute(
        "href", re.compile(r"/services/mlflow/#/experiments/\d+/runs/[0-9a-f]{32}$"))

    # Select two runs and compare: two loss curves overlaid, differing params highlighted.
    page.get_by_role("checkbox", name="Select unet-lr0.1").check()
    page.get_by_role("checkbox", name="Select unet-lr0.001").check()
    page.get_by_role("tab", name="Compare (2)").click()
    chart = page.get_by_test_id("chart-loss")
    expect(chart).to_be_visible(timeout=WAIT)
    expect(chart.get_by_test_id("chart-series")).to_have_count(2, timeout=WAIT)
    # the whole history, one point per step
    expect(chart.locator("polyline").first).to_have_attribute("points", points(30))
    compared = page.get_by_role("table", name="Compared runs")
    expect(compared).to_contain_text("unet-lr0.001", timeout=WAIT)
    # lr differs, epochs does not
    expect(compared.locator(".jp-mlops-diff")).to_have_count(2, timeout=WAIT)
    shot(page, "experiments-01-compare-chart")

    # A run's detail in a main-area tab of its own: params, git, artifacts with previews.
    page.get_by_role("tab", name="Runs").click()
    table.get_by_role("link", name="unet-lr0.1", exact=True).click()
    detail = page.get_by_test_id("run-detail")
    expect(detail).to_contain_text("Parameters (2)", timeout=WAIT)
    # opened again from the experiment: the same tab comes forward, no second one
    main_tab(page, "Experiment: ui-cells").click()
    expect(detail).to_be_hidden()
    table.get_by_role("link", name="unet-lr0.1", exact=True).click()
    expect(detail).to_be_visible()
    expect(main_tab(page, "Run: unet-lr0.1")).to_have_count(1)
    expect(page.locator(".jp-mlops-run-tab")).to_have_count(1)
    # the resources the run used, charted as in the job view
    resources = detail.get_by_test_id("job-resources")
    expect(resources.get_by_test_id("chart-CPU (%)").get_by_test_id("chart-series")) \
        .to_have_count(1, timeout=WAIT)
    expect(resources.get_by_test_id("chart-GPU utilisation (%)")).to_be_visible()
    expect(resources.locator("polyline").first).to_have_attribute("points", points(6))
    resources.scroll_into_view_if_needed()
    shot(page, "experiments-03-run-resources")
    detail.get_by_role("link", name="notes.txt").click()
    expect(detail.locator(".jp-mlops-preview-text")).to_have_text("cells detected: 42\n",
                                                                 timeout=WAIT)
    detail.get_by_role("link", name=re.compile("images")).click()
    detail.get_by_role("link", name="sample.png").click()
    expect(detail.get_by_role("img", name="images/sample.png")).to_be_visible(timeout=WAIT)

    # Register the run's model directory, then see it with its alias in the Models section.
    detail.get_by_role("link", name=re.compile("model")).first.click()
    detail.get_by_label("Model name for model").fill("ui-cell-detector")
    detail.get_by_role("button", name="Register model").click()
    expect(detail.get_by_role("status")).to_contain_text(
        "Registered ui-cell-detector version", timeout=WAIT)
    shot(page, "experiments-02-run-detail")
    models = sidebar.get_by_test_id("models-list")
    models.get_by_role("link", name=re.compile("ui-cell-detector")).click()
    models.get_by_role("button", name="Set alias").click()
    expect(models.locator(".jp-mlops-alias").first).to_have_text("@champion", timeout=WAIT)

    # A malformed search shows MLflow's reason in the panel.
    main_tab(page, "Experiment: ui-cells").click()
    page.get_by_role("tab", name="Runs").click()
    page.get_by_label("Filter runs (MLflow search syntax)").fill("metrics.loss >>> 1")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert").filter(has_text="tracking server")).to_be_visible(timeout=WAIT)
    shot(page, "experiments-03-bad-filter")

    # The dark theme: the chart and tables follow it.
    page.get_by_label("Filter runs (MLflow search syntax)").fill("")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("tab", name=re.compile("Compare")).click()
    expect(page.get_by_test_id("chart-loss")).to_be_visible(timeout=WAIT)
    use_theme(page, "Dark")
    painted(page)
    shot(page, "experiments-04-dark")


def test_a_slow_first_answer_never_hides_the_search_that_followed(page, platform, seeded_ui):
    """Answers can arrive out of order on a busy server: the table shows the newest request's."""
    platform.add_user(USER, PASSWORD)
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    sidebar = open_mlops_sidebar(page)
    held = []  # the first (unfiltered) runs request, answered only after the search's

    def hold_first(route):
        if not held and "filter=" not in route.request.url:
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(r"/mlops/api/experiments/[^/]+/runs"), hold_first)
    sidebar.get_by_test_id("experiments-list").get_by_role("link", name="ui-cells").click()
    table = page.get_by_role("table", name="Runs")
    page.get_by_label("Filter runs (MLflow search syntax)").fill("params.lr = '0.01'")
    page.get_by_role("button", name="Search").click()
    expect(table.get_by_role("row")).to_have_count(2, timeout=WAIT)  # header + the one run
    assert len(held) == 1
    with page.expect_response(lambda r: r.request == held[0].request, timeout=WAIT):
        held[0].continue_()  # now the stale, unfiltered answer arrives
    # two frames after it came back, the table shows whatever it made of it
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table).to_contain_text("unet-lr0.01")
    page.unroute(re.compile(r"/mlops/api/experiments/[^/]+/runs"))
