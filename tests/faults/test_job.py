"""Training jobs killed with SIGKILL while they hold a GPU: the training code alone (as the
kernel's OOM killer would), and the whole job with its wrapper. Each is marked failed with the
reason, its GPU goes back once, its one MLflow run is not left RUNNING, and a rerun succeeds."""
from __future__ import annotations

import signal
from pathlib import Path

import psutil

from .conftest import API, platform_processes, until

TRAIN = """
import os, time
from jupyter_mlops.job_runtime import progress, report
print("training", flush=True)
for step in range(10_000):
    if os.path.exists("job_fault_go"):
        break
    report("loss", 1.0 / (step + 1), step=step)
    progress(step + 1, 0, f"step {step + 1}")
    time.sleep(0.3)
print("trained", flush=True)
"""
ENDED = ("succeeded", "failed", "cancelled")


def _wrapper(platform, job_id) -> psutil.Process:
    """The job's ``job_wrapper`` process (its children run the training code)."""
    for p in platform_processes(platform):
        try:
            argv = p.cmdline()
        except psutil.Error:
            continue
        if "jupyter_mlops.backends.job_wrapper" in argv and Path(argv[-1]).name == str(job_id):
            return p
    return None


def test_killed_jobs_fail_with_the_reason_and_give_their_gpu_back(faulty):
    p = faulty
    p.add_user("jo", "jo-password-1")
    token = p.token("jo")
    ws = p.data_dir / "users" / "jo"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "job_fault_go").unlink(missing_ok=True)
    (ws / "job_fault_train.py").write_text(TRAIN)

    def job(i):
        return p.api("GET", f"{API}/jobs/{i}", token).json()

    ids = []
    for _ in range(2):
        r = p.api("POST", f"{API}/jobs", token, json={"path": "job_fault_train.py", "gpus": 1,
                                                      "experiment": "job-fault"})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    def trains(i):
        j = job(i)
        assert j["state"] in ("queued", "running"), (j["state"], j["reason"])
        return j["progress"].get("done", 0) >= 2 and j["run_id"]

    for i in ids:
        until(lambda i=i: trains(i), 120, f"job {i} trains")
    allocations = p.api("GET", f"{API}/gpus/allocations", p.admin_token()).json()["allocations"]
    assert sorted(a["owner"] for a in allocations if a["owner_kind"] == "job") == \
        sorted(str(i) for i in ids)

    # When the training code of the first dies, and the second dies whole (wrapper included)
    code_only, whole = _wrapper(p, ids[0]), _wrapper(p, ids[1])
    assert code_only and whole
    victims = code_only.children(recursive=True)
    assert victims, "the training code's process"
    victims += [whole, *whole.children(recursive=True)]
    for v in victims:
        v.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)

    # Then each is failed, saying it was killed; its GPU is free again
    for i in ids:
        done = until(lambda i=i: (j := job(i))["state"] in ENDED and j, 60, f"job {i} ends")
        assert done["state"] == "failed", done
        assert "signal 9" in done["reason"] or "killed" in done["reason"], done["reason"]
        # its one run in MLflow, not left RUNNING (the user sees it ended)
        r = p.api("POST", "services/mlflow/api/2.0/mlflow/runs/search", token, json={
            "experiment_ids": [done["experiment_id"]],
            "filter": f"tags.`mlops.job_id` = '{i}'"})
        runs = r.json().get("runs", [])
        assert [x["info"]["run_id"] for x in runs] == [done["run_id"]], r.text
        assert runs[0]["info"]["status"] == "FAILED", (i, runs[0]["info"])
    gpus = p.api("GET", f"{API}/gpus", token).json()
    assert gpus["free"] == gpus["total"], gpus

    # And the user runs it again: it takes a GPU and succeeds
    (ws / "job_fault_go").write_text("")
    r = p.api("POST", f"{API}/jobs/{ids[1]}/rerun", token, json={"exact": True})
    assert r.status_code == 201, r.text
    again = until(lambda: (j := job(r.json()["id"]))["state"] in ENDED and j, 90, "rerun ends")
    assert again["state"] == "succeeded", again["reason"]
    assert p.api("GET", f"{API}/gpus", token).json()["free"] == gpus["total"]
