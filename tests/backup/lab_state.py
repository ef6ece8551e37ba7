"""A lab's state on a real platform, made and checked through the platform's own doors: the
backup tests and the upgrade fixture (``make_fixture.py``) make the same state and check it
the same way.

People (own names: the session platform is shared): ``bkpm`` manages project ``bklab``, whose
deploys wait for a manager's approval; ``bkd`` is a data scientist in it.
"""
from __future__ import annotations

from pathlib import Path

import requests

from jupyter_mlops import datasets

from jupyter_mlops.client import ControlPlane
from jupyter_mlops.demo import cells
from tests.fixtures import until

API = "services/mlops/api"
PM, USER, PASSWORD, PROJECT = "bkpm", "bkd", "backup-drill-1", "bklab"
DATASET, MODEL, DEPLOYMENT = "bk-cells", "bk-model", "bk-detector"

# Logs a model (an MLmodel file is all a deployment needs to be recorded) and registers it.
TRAIN = f"""
import pathlib, tempfile
import mlflow
from mlflow import MlflowClient

run = mlflow.start_run()
d = pathlib.Path(tempfile.mkdtemp()) / "model"
d.mkdir()
(d / "MLmodel").write_text("flavors: {{}}\\n")
mlflow.log_artifacts(str(d), "model")
mlflow.log_metric("acc", 0.9)
c = MlflowClient()
if not c.search_registered_models("name = '{MODEL}'"):
    c.create_registered_model("{MODEL}", tags={{"mlops.project": "{PROJECT}"}})
c.create_model_version("{MODEL}", source=run.info.artifact_uri + "/model",
                       run_id=run.info.run_id)
"""

# Logs one metric step about every 0.2 s, for ``steps`` steps.
LOGGING = """
import time
import mlflow
for i in range({steps}):
    mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    time.sleep(0.2)
"""


def submit(platform, token: str, name: str, code: str) -> int:
    ws = platform.data_dir / "users" / USER
    ws.mkdir(parents=True, exist_ok=True)
    (ws / name).write_text(code)
    r = platform.api("POST", f"{API}/jobs", token, json={"path": name, "project": PROJECT})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def job(platform, token: str, job_id: int) -> dict:
    r = platform.api("GET", f"{API}/jobs/{job_id}", token)
    assert r.status_code == 200, r.text
    return r.json()


def finished(platform, token: str, job_id: int, timeout: float = 180) -> dict:
    done = until(lambda: (j := job(platform, token, job_id))["state"] in (
        "succeeded", "failed", "cancelled") and j, timeout, f"job {job_id} to end")
    assert done["state"] == "succeeded", done
    return done


def metric_history(platform, token: str, run_id: str, key: str) -> list:
    r = platform.api("GET", "services/mlflow/api/2.0/mlflow/metrics/get-history", token,
                     params={"run_id": run_id, "metric_key": key, "max_results": 1000})
    assert r.status_code == 200, r.text
    return r.json().get("metrics", [])


def make(platform, folder: Path) -> dict:
    """Accounts, a project, two dataset versions, a training job, a registered model and a
    deployment waiting for approval (its audit events). Returns what was made."""
    platform.add_user(PM, PASSWORD, groups=["mlops-pms"])
    platform.add_user(USER, PASSWORD)
    pm, ds = platform.token(PM), platform.token(USER)
    r = platform.api("POST", f"{API}/projects", pm, json={"name": PROJECT, "members": [USER]})
    assert r.status_code in (201, 409), r.text
    r = platform.api("PUT", f"{API}/deployment-policies/{PROJECT}", pm,
                     json={"require_approval": True})
    assert r.status_code == 200, r.text
    client = ControlPlane(f"{platform.url}/services/mlops/", ds)
    try:
        root = folder / DATASET
        cells.generate(root, n_images=6, seed=5, width=32, height=32)
        v1 = datasets.publish(root, DATASET, message="first", project=PROJECT, client=client)
        cells.generate(root, n_images=2, seed=6, width=32, height=32, start=6)
        v2 = datasets.publish(root, DATASET, message="two more", project=PROJECT,
                              client=client)
    finally:
        client.close()
    train = finished(platform, ds, submit(platform, ds, "bk_train.py", TRAIN))
    r = platform.api("POST", f"{API}/deployments", ds, json={
        "name": DEPLOYMENT, "model_name": MODEL, "version": "1", "project": PROJECT})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending_approval", r.json()
    return {"versions": [v1["version"], v2["version"]], "train_job": train["id"],
            "train_run": train["run_id"]}


def check(platform, made: dict, logging_job: int | None = None, min_steps: int = 0) -> None:
    """Everything ``make`` made is there and usable, seen by its owners through the API."""
    ds = platform.token(USER, session=platform.login(USER, PASSWORD))  # the password survived
    pm = platform.token(PM, session=platform.login(PM, PASSWORD))
    names = {u["name"] for u in platform.hub("GET", "users?limit=1000").json()}
    assert {USER, PM} <= names
    # dataset versions, readable to the last file
    r = platform.api("GET", f"{API}/datasets/{DATASET}", ds)
    assert r.status_code == 200, r.text
    assert [v["version"] for v in r.json()["versions"]] == made["versions"][::-1]
    r = platform.api("GET", f"{API}/datasets/{DATASET}/versions/v2?limit=100", ds)
    assert r.status_code == 200 and r.json()["total"] == 9, r.text  # 8 images + annotations
    events = platform.api("GET", f"{API}/datasets/{DATASET}/events", ds).json()["events"]
    assert [(e["action"], e["version"]) for e in events] == [  # the dataset's audit log
        ("created", None), ("published", "v1"), ("published", "v2")], events
    # the training job, its run and its metric
    train = job(platform, ds, made["train_job"])
    assert train["state"] == "succeeded" and train["run_id"] == made["train_run"], train
    assert [m["value"] for m in metric_history(platform, ds, train["run_id"], "acc")] == [0.9]
    if logging_job is not None:
        logged = job(platform, ds, logging_job)
        history = metric_history(platform, ds, logged["run_id"], "loss")
        assert len(history) >= min_steps, (len(history), min_steps)
    # the deployment still waits for bkpm's approval, with its audit events
    r = platform.api("GET", f"{API}/deployments/{DEPLOYMENT}", pm)
    assert r.status_code == 200 and r.json()["status"] == "pending_approval", r.text
    r = platform.api("GET", f"{API}/deployments/{DEPLOYMENT}/events", pm)
    assert r.status_code == 200, r.text
    actions = [e["action"] for e in r.json()["events"]]
    assert actions[:2] == ["created", "requested"], actions
    # the registered model's artifacts are there: the control plane resolves it again
    r = requests.get(f"{platform.url}/services/mlflow/api/2.0/mlflow/model-versions/get",
                     params={"name": MODEL, "version": "1"},
                     headers={"Authorization": f"token {ds}"}, timeout=30)
    assert r.status_code == 200, r.text


def wait_for_steps(platform, token: str, job_id: int, steps: int, timeout: float = 120):
    """Until the job's run holds at least ``steps`` logged steps; their number."""
    def enough():
        j = job(platform, token, job_id)
        assert j["state"] in ("queued", "running"), (j, platform.api(
            "GET", f"{API}/jobs/{job_id}/logs", token).text[-2000:])
        if not j["run_id"]:
            return 0
        n = len(metric_history(platform, token, j["run_id"], "loss"))
        return n if n >= steps else 0
    return until(enough, timeout, f"job {job_id} to log {steps} steps", every=0.5)


