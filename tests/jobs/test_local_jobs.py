"""Real subprocess jobs through the runner: run, log to MLflow, cancel, kill -9, restart."""
from __future__ import annotations

import json
import os
import signal

import psutil
import pytest

from jupyter_mlops.core import roles
from jupyter_mlops.core.errors import Forbidden, InvalidInput, NotFound

from tests.fixtures import until_async

from .conftest import caller

TRAIN = """
import sys, time
from jupyter_mlops.job_runtime import params, report, progress
p = params()
lr = 0.1
epochs = 3
print("argv", sys.argv[1:], "gpus", __import__("os").environ.get("CUDA_VISIBLE_DEVICES"))
for epoch in range(int(p.get("epochs", epochs))):
    report("loss", 1.0 / (epoch + 1) * float(p.get("lr", lr)), step=epoch)
    progress(epoch + 1, int(p.get("epochs", epochs)))
    time.sleep(float(p.get("sleep", 0)))
print("done training")
"""

SLEEPER = """
import time
print("sleeping", flush=True)
time.sleep(120)
"""


@pytest.mark.asyncio
async def test_script_job_runs_and_logs_to_mlflow(lab, mlflow_client):
    # Given a training script in alice's workspace (a git repo with an uncommitted change)
    lab.write("alice", "train.py", TRAIN)
    # When alice submits it with parameters
    job = lab.jobs.submit(caller("alice"), {"path": "train.py", "params": {"lr": 0.5,
                                                                          "epochs": 3},
                                            "dataset_version": "cells@v2",
                                            "experiment": "jobs-test"})
    done = await lab.wait(job.id)
    # Then it succeeded, with its MLflow run holding params, metrics, code and pip freeze
    assert done.state == "succeeded", done.reason
    assert done.progress == {"done": 3, "total": 3, "label": "3 of 3"}
    assert done.metrics["loss"] == pytest.approx(0.5 / 3)
    run = mlflow_client.get_run(done.run_id)
    assert run.data.params["lr"] == "0.5"
    assert run.data.tags["mlops.dataset_version"] == "cells@v2"
    assert run.data.tags["mlflow.user"] == "alice"
    assert run.info.status == "FINISHED"
    arts = {a.path for a in mlflow_client.list_artifacts(done.run_id, "code")}
    assert "code/train.py" in arts and "code/source.json" in arts
    env = {a.path for a in mlflow_client.list_artifacts(done.run_id, "environment")}
    assert "environment/pip-freeze.txt" in env
    history = mlflow_client.get_metric_history(done.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]
    log = lab.jobs.logs(caller("alice"), job.id)
    assert "done training" in log["text"] and "--lr=0.5" in log["text"]
    assert log["complete"]


@pytest.mark.asyncio
async def test_notebook_job_reports_cells_and_keeps_executed_notebook(lab, mlflow_client):
    lab.write_notebook("alice", "nb/train.ipynb", [
        ("lr = 0.1\nepochs = 2", "parameters"),
        ("import mlflow\nfor e in range(epochs):\n    mlflow.log_metric('acc', lr * e, step=e)", ""),
        ("print('trained with', lr)", ""),
    ])
    job = lab.jobs.submit(caller("alice"), {"path": "nb/train.ipynb", "params": {"lr": 0.25}})
    done = await lab.wait(job.id, timeout=90)
    assert done.state == "succeeded", done.reason
    # 3 cells + the one papermill injects with the parameters
    assert done.progress["done"] == done.progress["total"] == 4
    executed = lab.root / "users" / "alice" / "mlops-jobs" / str(job.id) / "train.ipynb"
    nb = json.loads(executed.read_text())
    assert any("trained with 0.25" in "".join(o.get("text", "")) for c in nb["cells"]
               for o in c.get("outputs", []))
    assert done.metrics["acc"] == pytest.approx(0.25)
    arts = {a.path for a in mlflow_client.list_artifacts(done.run_id, "notebook")}
    assert "notebook/train.ipynb" in arts


@pytest.mark.asyncio
async def test_bad_input_is_refused_with_the_reason(quick_lab):
    lab = quick_lab
    lab.write_notebook("alice", "t.ipynb", [("lr = 0.1\nname = 'x'", "parameters")])
    alice = caller("alice")
    with pytest.raises(InvalidInput, match="no notebook 'missing.ipynb'"):
        lab.jobs.submit(alice, {"path": "missing.ipynb"})
    with pytest.raises(InvalidInput, match="parameter lr of t.ipynb is float"):
        lab.jobs.submit(alice, {"path": "t.ipynb", "params": {"lr": "fast"}})
    with pytest.raises(InvalidInput, match="outside|without '..'"):
        lab.jobs.submit(alice, {"path": "../bob/t.ipynb"})
    with pytest.raises(InvalidInput, match="gpus must be"):
        lab.jobs.submit(alice, {"path": "t.ipynb", "gpus": "two"})
    with pytest.raises(InvalidInput, match="platform has 2"):
        lab.jobs.submit(alice, {"path": "t.ipynb", "gpus": 3})
    with pytest.raises(NotFound):
        lab.jobs.submit(alice, {"path": "t.ipynb", "project": "secret"})
    assert lab.jobs.store.list() == []  # nothing stored half-way


@pytest.mark.asyncio
async def test_a_job_is_read_by_its_project_and_cancelled_by_its_owner(quick_lab):
    lab = quick_lab
    lab.write("alice", "s.py", "print('hi')")
    job = lab.jobs.submit(caller("alice"), {"path": "s.py"})
    # bob, also in "default", reads alice's job but may not cancel it
    assert lab.jobs.get(caller("bob"), job.id).user == "alice"
    with pytest.raises(Forbidden, match="belongs to alice"):
        lab.jobs.cancel(caller("bob"), job.id)
    assert [j.id for j in lab.jobs.list(caller("bob"))] == []  # the list is one's own
    # a job of a project bob is not in does not exist for him
    lab.projects.create(caller("carol", roles.MANAGE), "private-jobs", members=["alice"])
    other = lab.jobs.submit(caller("alice"), {"path": "s.py", "project": "private-jobs"})
    with pytest.raises(NotFound):
        lab.jobs.get(caller("bob"), other.id)
    with pytest.raises(NotFound):
        lab.jobs.cancel(caller("bob"), other.id)
    await lab.wait(job.id)
    await lab.wait(other.id)


@pytest.mark.asyncio
async def test_cancel_stops_the_process_group(lab, mlflow_client):
    lab.write("alice", "sleep.py", SLEEPER)
    job = lab.jobs.submit(caller("alice"), {"path": "sleep.py"})
    running = await lab.wait(job.id, states=("running",))
    await until_async(lambda: "sleeping" in lab.jobs.logs(caller("alice"), job.id)["text"], 60,
                      "the script's first line")
    lab.jobs.cancel(caller("alice"), job.id)
    done = await lab.wait(job.id, timeout=20)
    assert done.state == "cancelled"
    assert done.reason == "stopped by a cancel request"
    with pytest.raises(ProcessLookupError):
        os.killpg(running.handle["pid"], 0)  # the whole group is gone
    run = mlflow_client.get_run(done.run_id)
    assert run.info.status == "KILLED"


@pytest.mark.asyncio
async def test_kill_9_marks_failed_and_keeps_logs(quick_lab):
    lab = quick_lab
    lab.write("alice", "sleep.py", SLEEPER)
    job = lab.jobs.submit(caller("alice"), {"path": "sleep.py"})
    running = await lab.wait(job.id, states=("running",))
    await until_async(lambda: "sleeping" in lab.jobs.logs(caller("alice"), job.id)["text"], 60,
                      "the script's first line")
    os.killpg(running.handle["pid"], signal.SIGKILL)
    done = await lab.wait(job.id, timeout=20)
    assert done.state == "failed"
    assert "signal 9" in done.reason or "without recording" in done.reason
    assert "sleeping" in lab.jobs.logs(caller("alice"), job.id)["text"]


@pytest.mark.asyncio
async def test_control_plane_restart_reattaches_running_job(quick_lab):
    lab = quick_lab
    lab.write("alice", "slow.py", TRAIN)
    job = lab.jobs.submit(caller("alice"), {"path": "slow.py",
                                            "params": {"epochs": 4, "sleep": 1.0}})
    running = await lab.wait(job.id, states=("running",))
    await lab.runner.stop()  # the control plane goes away...
    progress = lab.jobs.job_dir(job.id) / "progress.json"

    def epochs() -> int:
        return json.loads(progress.read_text())["done"] if progress.exists() else 0

    before = epochs()  # the job trains on meanwhile, its state untouched
    await until_async(lambda: epochs() > before, 10, "an epoch with no control plane")
    assert lab.jobs.store.get(job.id).state == "running"
    await lab.restart()  # ...and a new one starts on the same database
    done = await lab.wait(job.id, timeout=30)
    assert done.state == "succeeded", done.reason
    assert done.handle["pid"] == running.handle["pid"]  # re-attached, not restarted
    assert done.progress["done"] == 4


@pytest.mark.asyncio
async def test_rerun_exactly_reuses_the_snapshot(quick_lab):
    lab = quick_lab
    p = lab.write("alice", "v.py", "print('version one')")
    first = lab.jobs.submit(caller("alice"), {"path": "v.py"})
    await lab.wait(first.id)
    p.write_text("print('version two')")
    exact = lab.jobs.rerun(caller("alice"), first.id, exact=True)
    edited = lab.jobs.rerun(caller("alice"), first.id, params={"x": 1})
    assert (await lab.wait(exact.id)).snapshot_of == first.id
    await lab.wait(edited.id)
    assert "version one" in lab.jobs.logs(caller("alice"), exact.id)["text"]
    assert "version two" in lab.jobs.logs(caller("alice"), edited.id)["text"]
    assert lab.jobs.store.get(edited.id).spec.params == {"x": 1}


def alive_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` still running (zombies are dead)."""
    alive = []
    for p in psutil.process_iter(["status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pgid:
                alive.append(p.pid)
        except (psutil.Error, ProcessLookupError):
            continue
    return alive


STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL stops it
print("ignoring SIGTERM", flush=True)
time.sleep(120)
"""


@pytest.mark.asyncio
async def test_time_limit_stops_the_job_and_fails_it(quick_lab):
    lab = quick_lab
    lab.write("alice", "sleeper.py", SLEEPER)
    alice = caller("alice")
    job = lab.jobs.submit(alice, {"path": "sleeper.py", "timeout": 2})
    assert job.spec.timeout == 2
    done = await lab.wait(job.id, timeout=30)
    assert done.state == "failed" and done.reason == "time limit of 2 s reached"
    assert 2 <= done.finished_at - done.started_at < 10
    with pytest.raises(ProcessLookupError):
        os.killpg(done.handle["pid"], 0)
    log = lab.jobs.logs(alice, job.id)["text"]
    assert "sleeping" in log and "failed: time limit of 2 s reached" in log  # the wrapper's

    # A script ignoring SIGTERM is killed after the grace period, and still fails on its limit.
    lab.write("alice", "stubborn.py", STUBBORN)
    job = lab.jobs.submit(alice, {"path": "stubborn.py", "timeout": 1})
    done = await lab.wait(job.id, timeout=30)
    assert done.state == "failed" and done.reason == "time limit of 1 s reached"
    # and nothing of it outlives the job: its wrapper ended first, the script is killed too
    await until_async(lambda: alive_in_group(done.handle["pid"]) == [], 10,
                      "the job's processes to end", every=0.2)


@pytest.mark.asyncio
async def test_platform_maximum_time_limit(quick_lab):
    lab = quick_lab
    lab.jobs.max_timeout = 3
    lab.write("alice", "sleeper.py", SLEEPER)
    alice = caller("alice")
    with pytest.raises(InvalidInput, match="time limit of 10 s is over the platform's "
                                           "maximum of 3 s"):
        lab.jobs.submit(alice, {"path": "sleeper.py", "timeout": 10})
    for bad in ("ten", -1, True, 1.5):
        with pytest.raises(InvalidInput, match="timeout must be a whole number of seconds"):
            lab.jobs.submit(alice, {"path": "sleeper.py", "timeout": bad})
    assert lab.jobs.store.list() == []
    # Asking for no limit gets the platform's.
    job = lab.jobs.submit(alice, {"path": "sleeper.py"})
    done = await lab.wait(job.id, timeout=30)
    assert done.state == "failed" and done.reason == "time limit of 3 s reached"
