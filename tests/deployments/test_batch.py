"""Batch prediction on the real platform: a registered model version over a published dataset
version, run as an ordinary job (real runner, real MLflow run, real catalog and shared root)."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from jupyter_mlops import datasets

from jupyter_mlops.client import ControlPlane
from tests.fixtures import until

API = "services/mlops/api"
USER = "bpuser"


def wait_job(platform, token, job_id, timeout=180):
    return until(lambda: (j := platform.api("GET", f"{API}/jobs/{job_id}", token).json())
                 ["state"] in ("succeeded", "failed", "cancelled") and j, timeout,
                 f"job {job_id} to finish", every=0.5)


def blob_image(path, boxes, size=(40, 32)):
    """An 8-bit grey image with bright rectangles ``[x0, y0, x1, y1]`` (what the test
    detector reports back as boxes)."""
    img = np.zeros((size[1], size[0]), dtype=np.uint8)
    for x0, y0, x1, y1 in boxes:
        img[y0:y1, x0:x1] = 220
    Image.fromarray(img).save(path)


@pytest.fixture(scope="module")
def user(platform):
    platform.add_user(USER, f"{USER}-password-1")
    return platform.token(USER)


@pytest.fixture(scope="module")
def published(platform, user, registry, tmp_path_factory):
    """``bp-images`` v1 (three PNGs and an annotation file) and ``bp-table`` v1 (the probe rows
    of the ``lr`` model as CSV, and a README that is not predicted)."""
    client = ControlPlane(f"{platform.url}/services/mlops/", user)
    images = tmp_path_factory.mktemp("bp-images")
    expected = {"a.png": [[2, 3, 10, 9], [20, 15, 31, 25]], "b.png": [[5, 5, 8, 12]],
                "sub/empty.png": []}
    for name, boxes in expected.items():
        (images / name).parent.mkdir(exist_ok=True)
        blob_image(images / name, boxes)
    (images / "annotations.json").write_text(json.dumps({"images": [], "annotations": []}))
    datasets.publish(images, "bp-images", message="three images", client=client)
    table = tmp_path_factory.mktemp("bp-table")
    registry["probe"].to_csv(table / "probe.csv", index=False)
    (table / "README.txt").write_text("probe rows of the lr test model\n")
    datasets.publish(table, "bp-table", message="probe rows", client=client)
    empty = tmp_path_factory.mktemp("bp-docs")
    (empty / "README.txt").write_text("nothing to predict here\n")
    datasets.publish(empty, "bp-docs", client=client)
    client.close()
    return expected


def read_csv(platform, job_id) -> list[dict]:
    path = platform.data_dir / "users" / USER / "mlops-jobs" / str(job_id) / "predictions.csv"
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_artifacts(platform, token, run_id) -> list[str]:
    r = platform.api("GET", "services/mlflow/api/2.0/mlflow/artifacts/list", token,
                     params={"run_id": run_id, "path": "predictions"})
    assert r.status_code == 200, r.text
    return sorted(f["path"] for f in r.json().get("files", []))


def test_tabular_batch_prediction(platform, registry, published, user):
    # Given bp-table v1 holds the probe rows, when lr v1 predicts it as a batch job
    r = platform.api("POST", f"{API}/batch-predictions", user, json={
        "model_name": "lr", "version": "1", "dataset": "bp-table", "dataset_version": "latest"})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["dataset_version"] == "v1" and out["files"] == 1
    job = out["job"]
    assert out["outputs"]["csv"] == f"mlops-jobs/{job['id']}/predictions.csv"
    # Then it is an ordinary job of the user, listed with the others
    listed = platform.api("GET", f"{API}/jobs", user).json()["jobs"]
    assert job["id"] in [j["id"] for j in listed]
    done = wait_job(platform, user, job["id"])
    logs = platform.api("GET", f"{API}/jobs/{job['id']}/logs", user).json()["text"]
    assert done["state"] == "succeeded", logs
    assert done["progress"]["done"] == done["progress"]["total"] == 1
    assert done["metrics"]["predicted_files"] == 1 and done["metrics"]["failed_files"] == 0
    # and the CSV holds one line per row, with the model's predictions, in order
    rows = read_csv(platform, job["id"])
    assert [r["file"] for r in rows] == ["probe.csv"] * 4
    assert [int(r["row"]) for r in rows] == [0, 1, 2, 3]
    assert [int(r["prediction"]) for r in rows] == registry["v1"]
    assert all(r["error"] == "" for r in rows)
    ws = platform.data_dir / "users" / USER
    doc = json.loads((ws / out["outputs"]["json"]).read_text())
    assert doc["model"] == "lr" and doc["dataset"] == "bp-table" and doc["files"] == 1
    assert [p["prediction"] for p in doc["predictions"]] == registry["v1"]
    # Both files are artifacts of the job's MLflow run, which records the dataset as its input
    assert run_artifacts(platform, user, done["run_id"]) == [
        "predictions/predictions.csv", "predictions/predictions.json"]
    run = platform.api("GET", "services/mlflow/api/2.0/mlflow/runs/get", user,
                       params={"run_id": done["run_id"]}).json()["run"]
    inputs = run["inputs"]["dataset_inputs"]
    assert [i["dataset"]["name"] for i in inputs] == ["bp-table@v1"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["mlops.batch.model"] == "lr/1" and tags["mlops.dataset_version"] == "bp-table@v1"


def test_image_batch_prediction(platform, registry, published, user):
    # Given three images with known bright blobs, when the detector predicts them
    r = platform.api("POST", f"{API}/batch-predictions", user, json={
        "model_name": "cells", "version": "1", "dataset": "bp-images", "dataset_version": "v1"})
    assert r.status_code == 201, r.text
    job = r.json()["job"]
    done = wait_job(platform, user, job["id"])
    logs = platform.api("GET", f"{API}/jobs/{job['id']}/logs", user).json()["text"]
    assert done["state"] == "succeeded", logs
    # Then each image got the boxes of its blobs (annotations.json was not predicted)
    rows = read_csv(platform, job["id"])
    assert list(rows[0]) == ["file", "row", "boxes", "scores", "labels", "error"]
    got = {r["file"]: json.loads(r["boxes"]) for r in rows}
    assert got == published
    assert {r["file"]: json.loads(r["labels"]) for r in rows}["a.png"] == ["cell", "cell"]
    assert run_artifacts(platform, user, done["run_id"]) == [
        "predictions/predictions.csv", "predictions/predictions.json"]


@pytest.mark.parametrize("body, status, reason", [
    ({"model_name": "lr", "version": "99", "dataset": "bp-table"}, 404, "lr"),
    ({"model_name": "no-such-model", "version": "1", "dataset": "bp-table"}, 404, ""),
    ({"model_name": "lr", "version": "1", "dataset": "no-such-set"}, 404, "no-such-set"),
    ({"model_name": "lr", "version": "1", "dataset": "bp-table", "dataset_version": "v7"},
     404, "v7"),
    ({"model_name": "lr", "version": "one", "dataset": "bp-table"}, 400, "version"),
    ({"model_name": "lr", "version": "1"}, 400, "dataset"),
    ({"version": "1", "dataset": "bp-table"}, 400, "model_name"),
    ({"model_name": "lr", "version": "1", "dataset": "bp-table", "gpus": 1}, 400, "unknown"),
    ({"model_name": "lr", "version": "1", "dataset": "bp-docs"}, 400, "no image or CSV"),
    ({"model_name": "lr", "version": "1", "dataset": "bp-table", "project": "bp-secret"},
     404, "bp-secret"),
])
def test_bad_requests_are_refused_before_a_job_exists(platform, registry, published, user,
                                                      body, status, reason):
    admin = platform.admin_token()
    platform.api("POST", f"{API}/projects", admin, json={"name": "bp-secret"})
    before = len(platform.api("GET", f"{API}/jobs", user).json()["jobs"])
    r = platform.api("POST", f"{API}/batch-predictions", user, json=body)
    assert r.status_code == status, r.text
    assert reason in r.json()["message"]
    assert len(platform.api("GET", f"{API}/jobs", user).json()["jobs"]) == before


def test_batch_predictions_need_a_token(platform):
    r = platform.api("POST", f"{API}/batch-predictions", "not-a-token", json={})
    assert r.status_code in (401, 403)


def test_the_csv_writer_flattens_dict_predictions(tmp_path):
    from jupyter_mlops.serving.batch import write_outputs

    rows = [{"file": "a.png", "row": None, "prediction": {"boxes": [[1, 2, 3, 4]], "n": 1},
             "error": ""},
            {"file": "b.png", "row": None, "prediction": None, "error": "OSError: broken"}]
    csv_path, json_path = write_outputs(rows, tmp_path, {"model": "m"})
    text = csv_path.read_text().splitlines()
    assert text[0] == "file,row,boxes,n,error"
    assert list(csv.reader(io.StringIO(text[1]))) == [["a.png", "", "[[1, 2, 3, 4]]", "1", ""]]
    assert text[2] == "b.png,,,,OSError: broken"
    assert json.loads(json_path.read_text())["predictions"][1]["error"] == "OSError: broken"


def test_mlops_predict_magic(platform, registry, published, user, monkeypatch, capsys):
    from IPython.core.error import UsageError

    from jupyter_mlops import magics

    class Shell:
        def register_magics(self, m):
            self.registered = m

    magics.load_ipython_extension(Shell())
    ws = platform.data_dir / "users" / USER
    monkeypatch.setenv("JUPYTER_MLOPS_CONTROL_PLANE_URL", f"{platform.url}/services/mlops/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", user)
    monkeypatch.setenv("HOME", str(ws))
    run = magics.SUBCOMMANDS["predict"].run
    # --wait returns the predictions as a DataFrame, once the job has succeeded
    frame = run(["lr@1", "--dataset", "bp-table@v1", "--wait"], None)
    assert frame["prediction"].tolist() == registry["v1"]
    assert frame["file"].tolist() == ["probe.csv"] * 4
    assert "predictions in ~/mlops-jobs/" in capsys.readouterr().out
    # bad input is a usage error with the control plane's reason, not a traceback
    with pytest.raises(UsageError, match="no image or CSV"):
        run(["lr@1", "--dataset", "bp-docs@v1"], None)
    with pytest.raises(UsageError, match="NAME@VERSION"):
        run(["lr", "--dataset", "bp-table@v1"], None)
