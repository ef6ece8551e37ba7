"""The platform started with ``--config`` naming the Slurm backend: a data scientist submits a
GPU training job and a sweep through the control plane's API, sees Slurm's queue reason while
waiting, and gets runs in MLflow and GPU-hours in usage."""
from __future__ import annotations

import pytest

from tests.fixtures import until

API = "services/mlops/api"
USER = "slurmi"  # unique across test modules (the session platform keeps first passwords)

TRAIN = """
import os
from jupyter_mlops.job_runtime import report
lr = 0.1
print("training on GPU", os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
report("loss", lr * 2, step=0)
"""

TRIAL = """
import time
from pathlib import Path
from jupyter_mlops.job_runtime import params, report
x = 0.5
x = float(params()["x"])
print("trial started", flush=True)
while not Path("release").exists():  # held until the test has seen the queue
    time.sleep(0.2)
report("score", x, step=0)
"""


def _job(p, token, job_id):
    return p.api("GET", f"{API}/jobs/{job_id}", token).json()


def _log(p, token, job_id):
    return p.api("GET", f"{API}/jobs/{job_id}/logs?offset=0", token).json()["text"]


def test_gpu_job_and_sweep_through_the_api_on_slurm(slurm_platform, slurm_cluster):
    p = slurm_platform
    p.add_user(USER, "slurmi-password-1")
    token = p.token(USER)
    ws = p.data_dir / "users" / USER
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "train.py").write_text(TRAIN)
    (ws / "trial.py").write_text(TRIAL)
    # Given a sweep of two 1-GPU trials side by side, each held once it runs: they hold both
    # of the cluster's GPUs
    r = p.api("POST", f"{API}/sweeps", token, json={
        "path": "trial.py", "space": "x: {type: float, low: 0.0, high: 1.0}",
        "metric": "score", "direction": "maximize", "trials": 2, "parallel": 2,
        "sampler": "random", "seed": 1, "gpus": 1})
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]

    def trials_running():
        trials = p.api("GET", f"{API}/sweeps/{sweep_id}", token).json()["trials"]
        return len(trials) == 2 and all(
            "trial started" in _log(p, token, t["job_id"]) for t in trials)
    until(trials_running, 90, "both trials running in Slurm")
    # When a GPU training job is submitted, Slurm queues it and the job says why
    r = p.api("POST", f"{API}/jobs", token, json={"path": "train.py", "gpus": 1,
                                                  "params": {"lr": 0.3}})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    waiting = until(lambda: (j := _job(p, token, job_id))["reason"].startswith(
        "waiting in Slurm's queue (Resources") and j, 30, "Slurm's reason on the job")
    assert waiting["state"] == "running" and "1st of 1" in waiting["reason"], waiting
    assert "training on GPU" not in _log(p, token, job_id)
    # Then, once the trials end, the job runs: a run in MLflow with its metric
    (ws / "release").write_text("")
    done = until(lambda: (j := _job(p, token, job_id))["state"] in (
        "succeeded", "failed", "cancelled") and j, 90, "the job done")
    assert done["state"] == "succeeded", (done["reason"], _log(p, token, job_id))
    assert done["reason"] == "" and done["metrics"]["loss"] == pytest.approx(0.6)
    run = p.api("GET", f"services/mlflow/api/2.0/mlflow/runs/get?run_id={done['run_id']}",
                token).json()["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]}["loss"] == pytest.approx(0.6)
    # and the sweep has succeeded with a parent run holding the best
    sweep = until(lambda: (s := p.api("GET", f"{API}/sweeps/{sweep_id}", token).json())[
        "state"] in ("succeeded", "failed", "cancelled") and s, 90, "the sweep done")
    assert sweep["state"] == "succeeded", sweep
    assert [t["state"] for t in sweep["trials"]] == ["succeeded", "succeeded"]
    parent = p.api("GET", f"services/mlflow/api/2.0/mlflow/runs/get?run_id="
                          f"{sweep['parent_run_id']}", token).json()["run"]
    assert parent["info"]["status"] == "FINISHED"
    # GPU-hours in usage are what Slurm ran, by its own start and end times: the job's
    # wait in Slurm's queue is not in them
    jobs = [_job(p, token, t["job_id"]) for t in sweep["trials"]] + [done]
    assert all(j["started_at"] <= j["finished_at"] for j in jobs)
    assert done["started_at"] >= max(j["finished_at"] for j in jobs[:2]) - 1
    expected = sum(j["spec"]["gpus"] * (j["finished_at"] - j["started_at"]) for j in jobs) / 3600
    usage = p.api("GET", f"{API}/admin/usage?days=1", p.admin_token())
    assert usage.status_code == 200, usage.text
    assert usage.json()["users"][USER]["1d"] == pytest.approx(expected, abs=2e-4), usage.json()
    # every one of them was a Slurm job of the user's account
    lines = slurm_cluster.jobcomp.read_text().splitlines()
    assert sum(f"UserId=jm-{USER}(" in line for line in lines) == 3
