"""The platform started with ``--config`` naming the Slurm backend: a data scientist submits a
GPU training job and a sweep through the control plane's API, sees Slurm's queue reason while
waiting, and gets runs in MLflow and GPU-hours in usage."""
from __future__ import annotations

import pytest

from tests.fixtures import until

API = "services/mlops/api"
USER = "slurmi"  # unique across test modules (the session platform keeps first passwords)

TRAIN = """
import os, time
from pathlib import Path
from jupyter_mlops.core.jobs.runtime import report
lr = 0.1
hold = False
print("training on GPUs", os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
release = Path("release")
while hold and not release.exists():  # held until the test lets it finish
    time.sleep(0.2)
report("loss", lr * 2, step=0)
"""

TRIAL = """
from jupyter_mlops.core.jobs.runtime import params, report
x = 0.5
x = float(params()["x"])
report("score", x, step=0)
"""


def _job(p, token, job_id):
    return p.api("GET", f"{API}/jobs/{job_id}", token).json()


def test_gpu_job_and_sweep_through_the_api_on_slurm(slurm_platform, slurm_cluster):
    p = slurm_platform
    p.add_user(USER, "slurmi-password-1")
    token = p.token(USER)
    ws = p.data_dir / "users" / USER
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "train.py").write_text(TRAIN)
    (ws / "trial.py").write_text(TRIAL)
    # Given a 2-GPU training job holding both of the cluster's GPUs
    r = p.api("POST", f"{API}/jobs", token, json={"path": "train.py", "gpus": 2,
                                                  "params": {"hold": True}})
    assert r.status_code == 201, r.text
    big = r.json()["id"]
    until(lambda: "training on GPUs 0,1" in p.api(
        "GET", f"{API}/jobs/{big}/logs?offset=0", token).json()["text"], 60,
        "the 2-GPU job running in Slurm")
    # When a second GPU job is submitted, Slurm queues it and the job says why
    r = p.api("POST", f"{API}/jobs", token, json={"path": "train.py", "gpus": 1,
                                                  "params": {"lr": 0.3, "hold": False}})
    assert r.status_code == 201, r.text
    small = r.json()["id"]
    waiting = until(lambda: (j := _job(p, token, small))["reason"].startswith(
        "waiting in Slurm's queue (Resources") and j, 30, "Slurm's reason on the job")
    assert waiting["state"] == "running" and "1st of 1" in waiting["reason"], waiting
    # Then, once the big job ends, both finish, each a run in MLflow
    (ws / "release").write_text("")
    for job_id in (big, small):
        done = until(lambda: (j := _job(p, token, job_id))["state"] in (
            "succeeded", "failed", "cancelled") and j, 90, f"job {job_id} done")
        assert done["state"] == "succeeded", (done["reason"], p.api(
            "GET", f"{API}/jobs/{job_id}/logs?offset=0", token).json()["text"])
        run = p.api("GET", f"services/mlflow/api/2.0/mlflow/runs/get?run_id={done['run_id']}",
                    token).json()["run"]
        assert run["info"]["status"] == "FINISHED"
        assert {m["key"]: m["value"] for m in run["data"]["metrics"]}["loss"] == \
            pytest.approx(done["metrics"]["loss"])
    assert _job(p, token, small)["metrics"]["loss"] == pytest.approx(0.6)
    # A sweep: two trials side by side on the two GPUs, a parent run with the best
    r = p.api("POST", f"{API}/sweeps", token, json={
        "path": "trial.py", "space": "x: {type: float, low: 0.0, high: 1.0}",
        "metric": "score", "direction": "maximize", "trials": 2, "parallel": 2,
        "sampler": "random", "seed": 1, "gpus": 1})
    assert r.status_code == 201, r.text
    sweep = until(lambda: (s := p.api("GET", f"{API}/sweeps/{r.json()['id']}", token).json())[
        "state"] in ("succeeded", "failed", "cancelled") and s, 120, "the sweep done")
    assert sweep["state"] == "succeeded", sweep
    assert [t["state"] for t in sweep["trials"]] == ["succeeded", "succeeded"]
    parent = p.api("GET", f"services/mlflow/api/2.0/mlflow/runs/get?run_id="
                          f"{sweep['parent_run_id']}", token).json()["run"]
    assert parent["info"]["status"] == "FINISHED"
    # GPU-hours in usage: what Slurm ran (2 GPUs + 1 GPU + 2 x 1 GPU), not what waited
    usage = p.api("GET", f"{API}/admin/usage?days=1", p.admin_token())
    assert usage.status_code == 200, usage.text
    hours = usage.json()["users"][USER]["1d"]
    assert 0 < hours < 0.1, usage.json()
    # every one of them was a Slurm job of the user's account
    lines = slurm_cluster.jobcomp.read_text().splitlines()
    assert sum(f"UserId=jm-{USER}(" in line for line in lines) >= 4
