"""The control plane killed while a GPU job runs and a dataset publish is under way.

One kill, two kinds of work in flight: the job is re-attached when the control plane is back
and finishes (its GPU held once, released once, one MLflow run); the publish fails with a clear
message, leaves no version, and a retry sends only the objects that were not stored yet.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from jupyter_mlops import datasets

from jupyter_mlops.client import ControlPlane
from jupyter_mlops.core.datasets import folder
from jupyter_mlops.demo import cells

from .conftest import API, HEAL_SECONDS, is_json_error, kill, restarted, until

# Runs until the test lets it finish: the job must still be running when the control plane
# returns, however long that takes on a loaded machine.
WAITING_JOB = """
import os, time
from jupyter_mlops.job_runtime import progress, report
print("started", os.getpid(), "gpus", os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
step = 0
while not os.path.exists("cp_fault_go"):
    report("loss", 1.0 / (step + 1), step=step)
    progress(step + 1, 0, f"step {step + 1}")
    step += 1
    time.sleep(0.5)
report("final", float(step), step=0)
print("finished after", step, "steps", flush=True)
"""

# A publish whose HTTP batches are slowed down, so the kill lands in the middle of one.
SLOW_PUBLISH = textwrap.dedent("""
    import sys, time
    from jupyter_mlops import datasets
    from jupyter_mlops.client import ControlPlane
    from jupyter_mlops.core import errors
    from jupyter_mlops.core.datasets import folder
    folder.BATCH_FILES = 4
    c = ControlPlane(sys.argv[2], sys.argv[3], publish_socket="")
    real = c.put_batch
    def slow(items, sent):
        def each(size):
            sent(size)
            print("sent", flush=True)
            time.sleep(0.4)
        return real(items, each)
    c.put_batch = slow
    try:
        datasets.publish(sys.argv[1], "faulted", client=c)
    except errors.MlopsError as e:
        print("ERROR", type(e).__name__, e, flush=True)
        sys.exit(3)
    print("PUBLISHED", flush=True)
""")
# Objects above the control plane's 1 MiB receive step, so whole ones reach the store while
# later ones are still in flight.
N_IMAGES, SIDE = 30, 768


def _job(platform, token, job_id):
    r = platform.api("GET", f"{API}/jobs/{job_id}", token)
    return r.json() if r.status_code == 200 else None


def _allocations(platform, job_id):
    r = platform.api("GET", f"{API}/gpus/allocations", platform.admin_token())
    if r.status_code != 200:
        return None
    return [a for a in r.json()["allocations"]
            if a["owner_kind"] == "job" and a["owner"] == str(job_id)]


@pytest.fixture(scope="module")
def outage(faulty, tmp_path_factory):
    """Start the job and the publish, kill the control plane when both are mid-work, note what
    the user saw while it was down, and wait until it answers again."""
    p = faulty
    p.add_user("cora", "cora-password-1")
    token = p.token("cora")
    ws = p.data_dir / "users" / "cora"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "cp_fault_go").unlink(missing_ok=True)
    (ws / "cp_fault_train.py").write_text(WAITING_JOB)
    r = p.api("POST", f"{API}/jobs", token, json={"path": "cp_fault_train.py", "gpus": 1,
                                                  "experiment": "cp-fault"})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    until(lambda: (_job(p, token, job_id) or {}).get("progress", {}).get("done", 0) >= 2, 90,
          "the job reports progress")
    held_before = _allocations(p, job_id)

    root = tmp_path_factory.mktemp("publish") / "cells"
    cells.generate(root, n_images=N_IMAGES, seed=21, width=SIDE, height=SIDE)
    env = {**os.environ, "XDG_CACHE_HOME": str(root.parent / "cache")}
    pub = subprocess.Popen([sys.executable, "-c", SLOW_PUBLISH, str(root),
                            f"{p.url}/services/mlops/", token], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env)
    out = []
    # two batches sent whole, the next ones in flight ("sent" is printed by parallel uploads,
    # so two can share a line)
    while "".join(out).count("sent") < 8:
        line = pub.stdout.readline()
        assert line, "the publish ended early:\n" + "".join(out)
        out.append(line)

    old = kill(p, "control plane")
    during = p.api("GET", f"{API}/jobs/{job_id}", token)
    out.append(pub.communicate(timeout=120)[0])
    until(lambda: restarted(p, "control plane", old), HEAL_SECONDS, "the control plane restarts")
    until(lambda: _job(p, token, job_id), HEAL_SECONDS, "the control plane answers")
    return {"p": p, "token": token, "ws": ws, "job_id": job_id, "held_before": held_before,
            "during": during, "publish_code": pub.returncode, "publish_out": "".join(out),
            "root": root}


def test_user_sees_a_json_error_while_it_is_down(outage):
    assert is_json_error(outage["during"]), (outage["during"].status_code,
                                            outage["during"].text[:300])
    assert "control plane" in outage["during"].json()["message"]


def test_running_job_is_reattached_and_holds_its_gpu_once(outage):
    p, token, job_id = outage["p"], outage["token"], outage["job_id"]
    assert len(outage["held_before"]) == 1, outage["held_before"]
    # Back: still running (re-attached, not restarted nor failed), the same one device held
    job = _job(p, token, job_id)
    assert job["state"] == "running", job
    assert _allocations(p, job_id) == outage["held_before"]
    # The job keeps reporting to the new control plane, and finishes when told to
    seen = job["progress"]["done"]
    until(lambda: _job(p, token, job_id)["progress"]["done"] > seen, 60,
          "progress after the restart")
    (outage["ws"] / "cp_fault_go").write_text("")
    done = until(lambda: (j := _job(p, token, job_id)) and j["state"] not in
                 ("queued", "running") and j, 90, "the job ends")
    assert done["state"] == "succeeded", done["reason"]
    assert _allocations(p, job_id) == []  # released, and only once (nothing else holds it)
    gpus = p.api("GET", f"{API}/gpus", p.admin_token()).json()
    assert gpus["free"] == gpus["total"], gpus
    log = p.api("GET", f"{API}/jobs/{job_id}/logs?offset=0", token).json()["text"]
    assert log.count("started ") == 1 and "finished after" in log, log[-2000:]
    # one MLflow run for the job, complete
    r = p.api("POST", "services/mlflow/api/2.0/mlflow/runs/search", token, json={
        "experiment_ids": [done["experiment_id"]],
        "filter": f"tags.`mlops.job_id` = '{job_id}'"})
    runs = r.json().get("runs", [])
    assert [x["info"]["run_id"] for x in runs] == [done["run_id"]], r.text
    assert runs[0]["info"]["status"] == "FINISHED"


def test_interrupted_publish_is_absent_and_a_retry_sends_only_the_rest(outage):
    p, token, root = outage["p"], outage["token"], outage["root"]
    # The publisher was told, in words, and exited; no version (not even the name) exists
    assert outage["publish_code"] == 3, outage["publish_out"]
    assert "ERROR Unavailable" in outage["publish_out"] and "control plane" in \
        outage["publish_out"], outage["publish_out"]
    assert p.api("GET", f"{API}/datasets/faulted", token).status_code == 404
    # The object in flight when it died is not left half-written: the new control plane swept it
    tmp = p.data_dir / "store" / "tmp"
    until(lambda: not any(tmp.iterdir()), 30, "partial uploads swept")
    # What is still missing is less than everything: the batches stored before the kill stay
    client = ControlPlane(f"{p.url}/services/mlops/", token, publish_socket="")
    hashed = folder.hash_folder(folder.scan(root), None)
    objects = {h for h, _ in hashed.values()}
    missing = client.missing(sorted(objects))
    assert 0 < len(missing) < len(objects)
    # A retry succeeds, sends only those, and records the complete version once
    v = datasets.publish(root, "faulted", client=client)
    assert v["version"] == "v1" and v["transfer"]["uploaded"] == len(missing)
    assert client.missing(sorted(objects)) == set()
    ds = client.dataset("faulted")
    assert [x["version"] for x in ds["versions"]] == ["v1"]
    page = p.api("GET", f"{API}/datasets/faulted/versions/v1?limit=1", token).json()
    assert page["total"] == len(hashed)
    client.close()
