"""Lineage in the lab, in Chromium against `jupyter-mlops up`: a data scientist opens the
Lineage tab of a dataset version and sees the run that used it, the model version registered
from that run and the deployment of it; the deployment opens its own lineage, back to the
dataset version, which opens in the dataset browser.

People: lupe (project manager of ``ui-lineage``, where deployments wait for her approval, so no
model server starts), lumi (member, a data scientist).
"""
from __future__ import annotations

import os
import time

from conftest import choose_dataset, hub_login, open_lab, run_command, shot
from playwright.sync_api import expect

from jupyter_mlops import datasets

from jupyter_mlops.client import ControlPlane

API = "services/mlops/api"
PM, USER, PASSWORD = "lupe", "lumi", "lumi-first-login-pw"
PROJECT, DATASET, MODEL, DEPLOYMENT = "ui-lineage", "ui-lineage-cells", "ui-lineage-detector", \
    "ui-lineage-detector"
LOADED = 30_000  # ms: answers that need the server (a shared 2-core CI machine can be slow)


def _chain(platform, tmp_path) -> str:
    """v1 of the dataset, a run that read it and logged a model, its registered version and a
    deployment of it waiting for approval. Returns the run's name."""
    import mlflow
    from mlflow import MlflowClient

    platform.add_user(PM, PASSWORD + "-pm", groups=["mlops-pms"])
    platform.add_user(USER, PASSWORD)
    pm, lumi = platform.token(PM), platform.token(USER)
    r = platform.api("POST", f"{API}/projects", pm, json={"name": PROJECT, "members": [USER]})
    assert r.status_code in (201, 409), r.text
    r = platform.api("PUT", f"{API}/deployment-policies/{PROJECT}", pm,
                     json={"require_approval": True})
    assert r.status_code == 200, r.text
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "counts.csv").write_text("image,cells\na.tif,3\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")
    catalog = ControlPlane(f"{platform.url}/services/mlops/", lumi)
    uri = f"{platform.url}/services/mlflow"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_URI",
                                            "XDG_CACHE_HOME")}
    os.environ.update(MLFLOW_TRACKING_TOKEN=lumi, MLFLOW_TRACKING_URI=uri,
                      XDG_CACHE_HOME=str(tmp_path / "cache"))
    try:
        datasets.publish(tmp_path / "cells", DATASET, message="counts", project=PROJECT,
                         client=catalog)
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        exp = client.create_experiment(f"{PROJECT}-{time.time_ns()}",
                                       tags={"mlops.project": PROJECT})
        with mlflow.start_run(experiment_id=exp, run_name="train-detector") as run:
            datasets.get(DATASET, "latest", client=catalog, shared_root="")
            mlflow.log_artifacts(str(tmp_path / "model"), "model")
        client.create_registered_model(MODEL, tags={"mlops.project": PROJECT})
        client.create_model_version(MODEL, run.info.artifact_uri + "/model",
                                    run_id=run.info.run_id)
    finally:
        catalog.close()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    r = platform.api("POST", f"{API}/deployments", lumi, json={
        "name": DEPLOYMENT, "model_name": MODEL, "version": "1", "project": PROJECT})
    assert r.status_code == 201, r.text
    return "train-detector"


def test_lineage_from_a_dataset_version_to_the_deployment_and_back(page, platform, tmp_path):
    run_name = _chain(platform, tmp_path)
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    run_command(page, "open the dataset browser")
    view = page.locator(".jp-mlops-datasets-main")
    choose_dataset(view, DATASET, timeout=LOADED)
    expect(view.get_by_label("Version")).to_have_value("v1", timeout=LOADED)
    expect(view.get_by_label("Dataset", exact=True)).to_have_value(DATASET)

    # the version's lineage: run -> model version -> deployment, nested
    view.get_by_role("tab", name="Lineage").click()
    tree = view.get_by_test_id("lineage")
    run = tree.locator('[data-kind="run"]')
    expect(run).to_have_count(1, timeout=LOADED)
    expect(run).to_contain_text(run_name)
    mv = run.locator('[data-kind="model version"]')
    expect(mv).to_contain_text(f"{MODEL} v1")
    dep = mv.locator('[data-kind="deployment"]')
    expect(dep).to_contain_text(DEPLOYMENT)
    expect(dep).to_contain_text("pending_approval")
    shot(page, "lineage-01-dataset-version")

    # the deployment opens its own lineage: back to the dataset version
    dep.get_by_role("link", name=DEPLOYMENT).click()
    back = page.locator(".jp-mlops-lineage-page").get_by_test_id("lineage")
    ds = back.locator('[data-kind="deployment"] [data-kind="model version"] [data-kind="run"] '
                      '[data-kind="dataset version"]')
    expect(ds).to_contain_text(f"{DATASET}@v1", timeout=LOADED)
    shot(page, "lineage-02-from-the-deployment")
    # the same tree in the dark theme (JupyterLab's variables only)
    page.get_by_role("menuitem", name="Settings").click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Theme", exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false",
                                                   timeout=LOADED)
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=60_000)
    expect(ds).to_be_visible(timeout=LOADED)
    shot(page, "lineage-03-from-the-deployment-dark")

    # and the dataset version opens in the dataset browser, at that version
    ds.get_by_role("link", name=f"{DATASET}@v1").click()
    opened = page.locator(".jp-mlops-datasets-main").last
    expect(opened.get_by_label("Dataset", exact=True)).to_have_value(DATASET, timeout=LOADED)
    expect(opened.get_by_label("Version")).to_have_value("v1", timeout=LOADED)
