"""Lineage on a real platform, both directions: a dataset version -> the runs that used it (an
MLflow dataset input, a job's pinned version) -> the model version registered from one ->
the deployment of it; and from the deployment and the model version back to the dataset version.

People: linus (project manager of ``lineage-lab``, where deployments wait for approval, so no
model server starts), lino (member, does the work), lior (a lab member outside the project).
"""
from __future__ import annotations

import os
import time

import pytest

from jupyter_mlops import datasets

from jupyter_mlops.client import ControlPlane

API = "services/mlops/api"
PASSWORD = "lineage-pass-1"
PROJECT, DATASET, MODEL, DEPLOYMENT = "lineage-lab", "lineage-cells", "lineage-detector", \
    "lineage-detector"
SHARED = "lineage-shared"


@pytest.fixture(scope="module")
def chain(platform, tmp_path_factory):
    import mlflow
    from mlflow import MlflowClient

    platform.add_user("linus", PASSWORD, groups=["mlops-pms"])
    for u in ("lino", "lior"):
        platform.add_user(u, PASSWORD)
    tok = {u: platform.token(u) for u in ("linus", "lino", "lior")}
    r = platform.api("POST", f"{API}/projects", tok["linus"],
                     json={"name": PROJECT, "members": ["lino"]})
    assert r.status_code in (201, 409), r.text
    r = platform.api("PUT", f"{API}/deployment-policies/{PROJECT}", tok["linus"],
                     json={"require_approval": True})
    assert r.status_code == 200, r.text
    tmp = tmp_path_factory.mktemp("lineage")
    (tmp / "cells").mkdir()
    (tmp / "cells" / "counts.csv").write_text("image,cells\na.tif,3\n")
    catalog = ControlPlane(f"{platform.url}/services/mlops/", tok["lino"])
    v1 = datasets.publish(tmp / "cells", DATASET, message="first", project=PROJECT,
                          client=catalog)
    # a dataset of the default project, which every lab member reads
    datasets.publish(tmp / "cells", SHARED, message="for everyone", client=catalog)
    (tmp / "model").mkdir()
    (tmp / "model" / "MLmodel").write_text("flavors: {}\n")
    uri = f"{platform.url}/services/mlflow"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_URI",
                                            "XDG_CACHE_HOME")}
    os.environ.update(MLFLOW_TRACKING_TOKEN=tok["lino"], MLFLOW_TRACKING_URI=uri,
                      XDG_CACHE_HOME=str(tmp / "cache"))
    try:
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        exp = client.create_experiment(f"{PROJECT}-{time.time_ns()}",
                                       tags={"mlops.project": PROJECT})
        # a notebook's run reads the version (logged as its dataset input) and logs a model
        with mlflow.start_run(experiment_id=exp) as trained:
            datasets.get(DATASET, "latest", client=catalog, shared_root="")
            mlflow.log_artifacts(str(tmp / "model"), "model")
        # a job's run whose dataset_version was pinned to it (the runner's tag)
        job_run = client.create_run(exp, tags={"mlops.dataset_version": f"{DATASET}@v1",
                                               "mlops.job_id": "4242"}).info.run_id
        client.set_terminated(job_run)
        # a run of lineage-lab that used the lab-wide dataset
        shared_run = client.create_run(exp, tags={
            "mlops.dataset_version": f"{SHARED}@v1"}).info.run_id
        client.create_registered_model(MODEL, tags={"mlops.project": PROJECT})
        client.create_model_version(MODEL, trained.info.artifact_uri + "/model",
                                    run_id=trained.info.run_id)
    finally:
        catalog.close()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    r = platform.api("POST", f"{API}/deployments", tok["lino"], json={
        "name": DEPLOYMENT, "model_name": MODEL, "version": "1", "project": PROJECT})
    assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
    return {"tok": tok, "trained": trained.info.run_id, "job_run": job_run,
            "shared_run": shared_run, "version": v1["version"]}


def test_a_dataset_version_leads_to_its_runs_models_and_deployments(platform, chain):
    # Given lino asks for the lineage of the version his runs used (by its tag, latest)
    r = platform.api("GET", f"{API}/datasets/{DATASET}/versions/latest/lineage",
                     chain["tok"]["lino"])
    assert r.status_code == 200, r.text
    body = r.json()
    # Then both runs are there, the notebook's (dataset input) and the job's (pinned tag)
    assert (body["dataset"], body["version"], body["truncated"]) == (DATASET, "v1", False)
    runs = {run["run_id"]: run for run in body["runs"]}
    assert set(runs) == {chain["trained"], chain["job_run"]}
    assert runs[chain["job_run"]]["job_id"] == "4242"
    assert runs[chain["job_run"]]["model_versions"] == []
    assert {run["project"] for run in runs.values()} == {PROJECT}
    # and the model version registered from the notebook's run, with its deployment
    [mv] = runs[chain["trained"]]["model_versions"]
    assert (mv["name"], mv["version"], mv["project"]) == (MODEL, "1", PROJECT)
    assert mv["deployments"] == [{"name": DEPLOYMENT, "project": PROJECT,
                                  "status": "pending_approval", "model_version": "1",
                                  "serving": False}]


def test_a_deployment_and_a_model_version_lead_back_to_the_dataset_version(platform, chain):
    lino = chain["tok"]["lino"]
    r = platform.api("GET", f"{API}/deployments/{DEPLOYMENT}/lineage", lino)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["deployment"]["model_name"] == MODEL
    [mv] = body["model_versions"]
    assert (mv["name"], mv["version"], mv["serving"]) == (MODEL, "1", False)
    assert mv["run"]["run_id"] == chain["trained"]
    assert mv["run"]["datasets"] == [{"dataset": DATASET, "version": "v1"}]
    r = platform.api("GET", f"{API}/models/{MODEL}/versions/1/lineage", lino)
    assert r.status_code == 200, r.text
    mv = r.json()["model_version"]
    assert mv["run"]["datasets"] == [{"dataset": DATASET, "version": "v1"}]
    assert [d["name"] for d in mv["deployments"]] == [DEPLOYMENT]


def test_someone_outside_the_project_sees_none_of_the_chain(platform, chain):
    # Given lior, a lab member outside lineage-lab, sends the same valid requests
    lior = chain["tok"]["lior"]
    for path in (f"datasets/{DATASET}/versions/v1/lineage",
                 f"deployments/{DEPLOYMENT}/lineage",
                 f"models/{MODEL}/versions/1/lineage"):
        r = platform.api("GET", f"{API}/{path}", lior)
        # Then each answers as for something absent, naming nothing of the chain
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert chain["trained"] not in r.text and PROJECT not in r.text
    absent = platform.api("GET", f"{API}/models/no-such-model/versions/1/lineage", lior)
    assert absent.status_code == 404 and absent.json()["error"] == r.json()["error"]


def test_a_lab_wide_dataset_shows_each_reader_only_the_runs_of_their_projects(platform, chain):
    # Given a dataset every lab member reads, used by a run of lineage-lab
    path = f"{API}/datasets/{SHARED}/versions/v1/lineage"
    r = platform.api("GET", path, chain["tok"]["lino"])
    assert [run["run_id"] for run in r.json()["runs"]] == [chain["shared_run"]], r.text
    # When lior, outside lineage-lab, asks for the same version's lineage
    r = platform.api("GET", path, chain["tok"]["lior"])
    # Then he sees the version and no run of a project he is not in
    assert r.status_code == 200 and r.json()["runs"] == [], r.text
    assert chain["shared_run"] not in r.text and PROJECT not in r.text
