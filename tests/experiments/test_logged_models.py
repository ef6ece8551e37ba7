"""MLflow 3 logged models in the lab: ``mlflow.sklearn.log_model(clf, name="model")`` inside a
run is listed in the run's view and registered from there, with its lineage (run and logged
model) on the version; the classic model directory of a run is listed too."""
from __future__ import annotations

import json

import mlflow
import pytest

from .test_routes import assert_error, get


@pytest.fixture(scope="module")
def logged(seeded, mlflow_server):
    """A run that logged a scikit-learn classifier the MLflow 3 way, and one that did not."""
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(mlflow_server.url)
    exp = seeded["client"].create_experiment("logged", tags={"mlops.project": "default"})
    clf = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_param("C", 1.0)
        info = mlflow.sklearn.log_model(clf, name="model")
    with mlflow.start_run(experiment_id=exp) as other:
        mlflow.log_param("C", 2.0)
    return {"run_id": run.info.run_id, "model_id": info.model_id,
            "other_run_id": other.info.run_id}


async def test_a_runs_logged_model_is_listed_and_registered_with_its_lineage(jp_fetch, logged):
    run_id, model_id = logged["run_id"], logged["model_id"]
    # When the lab opens the run
    body = await get(jp_fetch, "runs", run_id)
    # Then its logged model is there, with a link to MLflow's view of it
    [model] = body["logged_models"]
    assert model["model_id"] == model_id and model["name"] == "model"
    assert model["source_run_id"] == run_id and model["registrations"] == []
    assert model["ui_url"].endswith(f"/models/{model_id}")
    # When it is registered from there
    resp = await jp_fetch("mlops", "api", "models", "register", method="POST",
                          body=json.dumps({"run_id": run_id, "model_id": model_id,
                                           "name": "logged-cells"}))
    version = json.loads(resp.body)
    # Then the version names its run and its logged model
    assert resp.code == 201 and version["version"] == "1"
    assert version["run_id"] == run_id and version["model_id"] == model_id
    assert version["source"] == f"models:/{model_id}"
    listed = await get(jp_fetch, "models", "logged-cells", "versions")
    assert [(v["run_id"], v["model_id"]) for v in listed["versions"]] == [(run_id, model_id)]
    # and the run's view shows the registration
    body = await get(jp_fetch, "runs", run_id)
    assert body["logged_models"][0]["registrations"] == [{"name": "logged-cells",
                                                          "version": "1"}]


async def test_a_logged_model_of_another_run_is_refused(jp_fetch, logged):
    await assert_error(jp_fetch("mlops", "api", "models", "register", method="POST",
                                body=json.dumps({"run_id": logged["other_run_id"],
                                                 "model_id": logged["model_id"],
                                                 "name": "stolen"})), 400, "not logged by")
    await assert_error(jp_fetch("mlops", "api", "models", "register", method="POST",
                                body=json.dumps({"run_id": logged["run_id"],
                                                 "model_id": "\u0010", "name": "odd"})),
                       400, "logged model's id")
    body = await get(jp_fetch, "runs", logged["other_run_id"])
    assert body["logged_models"] == [] and body["model_artifacts"] == []


async def test_a_classic_model_directory_is_listed(jp_fetch, seeded):
    body = await get(jp_fetch, "runs", seeded["small_runs"][0])
    assert body["model_artifacts"] == ["model"] and body["logged_models"] == []
