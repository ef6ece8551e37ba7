"""The queue on an injected 2-GPU inventory: fair share, positions, reasons, quotas."""
from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from jupyter_mlops.core.errors import QuotaExceeded
from jupyter_mlops.core.gpu_allocation import NoGpuFree
from jupyter_mlops.core.jobs.model import Job, JobSpec
from jupyter_mlops.core.jobs.queue import fair_order, ordinal
from tests.fixtures import until_async

from .conftest import caller

GPU_SCRIPT = """
import os, time
print("visible", os.environ["CUDA_VISIBLE_DEVICES"], os.environ["NVIDIA_VISIBLE_DEVICES"],
      flush=True)
time.sleep(60)
"""


def job(i, user, gpus=1, t=None):
    return Job(id=i, user=user, spec=JobSpec(path="t.py", gpus=gpus), submitted_at=t or i)


def test_fair_order_interleaves_users():
    queued = [job(1, "alice"), job(2, "alice"), job(3, "alice"), job(4, "bob")]
    assert [j.id for j in fair_order(queued, running=[])] == [1, 4, 2, 3]
    # bob already holds 2 GPUs: alice's go first until she holds as many (then fewer jobs wins)
    running = [job(9, "bob", gpus=2)]
    assert [j.id for j in fair_order(queued, running)] == [1, 2, 4, 3]
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 22)] == ["1st", "2nd", "3rd", "4th", "11th",
                                                         "22nd"]


def test_one_queue_for_servers_and_jobs_counts_every_holder():
    from jupyter_mlops.core.gpu_allocation import GpuAllocation, ServerRequest
    from jupyter_mlops.core.jobs.queue import held_by, plan

    def held(kind, owner, user, project=None):
        return GpuAllocation(f"GPU-{kind}-{owner}", 0, kind, owner, user, (), project, 0.0)

    # carol's notebook holds a GPU, so fair share puts dan's later notebook request before
    # carol's earlier job (counting running jobs alone, carol would have gone first)
    holders = [held("server", "carol", "carol"), held("job", "12", "erin", "alpha"),
               held("deployment", "cells", "fay", "beta")]
    queued = [job(1, "carol", t=1)]
    notebook = ServerRequest("dan", "dan", (), 1, None, requested_at=2)
    assert fair_order([*queued, notebook], [], held=holders)[0] is notebook
    assert fair_order([*queued, notebook], [])[0] is queued[0]
    # the reason names the holders as each waiting person may see them: projects only to
    # their members, other people never by name
    alpha = {("dan", "alpha")}
    assert held_by(holders, "dan", lambda u, p: (u, p) in alpha) == (
        "held by someone's server, by job 12 of project alpha, by a deployment")
    assert held_by(holders, "carol") == (
        "held by your server, by a job of another project, by a deployment")
    decisions = plan(queued, [], allocate=lambda w: (_ for _ in ()).throw(
        NoGpuFree("none", total=3, free=0)), availability=lambda: {"total": 3, "free": 0},
        max_cpu_jobs=1, servers=[notebook], holders=lambda: holders,
        may_see=lambda u, p: (u, p) in alpha)
    assert [(d.job is notebook, d.position) for d in decisions] == [(True, 1), (False, 2)]
    assert decisions[0].reason == ("waiting for 1 GPU: 3 of 3 in use (held by someone's "
                                   "server, by job 12 of project alpha, by a deployment), "
                                   "you are 1st")


async def _log_line(lab, user, job_id, needle):
    return await until_async(lambda: needle in (t := lab.jobs.logs(caller(user), job_id)["text"])
                             and t, 15, f"{needle!r} in the log of job {job_id}")


@pytest.mark.asyncio
async def test_three_jobs_on_two_gpus_wait_with_position_and_reason(quick_lab):
    lab = quick_lab
    await lab.runner.stop()  # submit everything first, then let one pass decide
    for u in ("alice", "bob"):
        lab.write(u, "gpu.py", GPU_SCRIPT)
    a1, a2, a3 = (lab.jobs.submit(caller("alice"), {"path": "gpu.py", "gpus": 1})
                  for _ in range(3))
    b1 = lab.jobs.submit(caller("bob"), {"path": "gpu.py", "gpus": 1})
    await lab.runner.tick()
    get = lab.jobs.store.get
    # fair share: bob's single job starts before alice's 2nd and 3rd
    assert [get(i).state for i in (a1.id, b1.id, a2.id, a3.id)] == [
        "running", "running", "queued", "queued"]
    assert sorted(get(a1.id).gpu_indices + get(b1.id).gpu_indices) == [0, 1]
    # the reason names the holders as alice may see them (project default is everyone's)
    assert get(a2.id).reason == (
        f"waiting for 1 GPU: 2 of 2 in use (held by your job {a1.id} of project default, "
        f"by job {b1.id} of project default), you are 1st")
    assert (get(a2.id).position, get(a3.id).position) == (1, 2)
    assert get(a3.id).reason.endswith("you are 2nd")
    text = await _log_line(lab, "alice", a1.id, "visible")
    gpu = str(get(a1.id).gpu_indices[0])
    assert f"visible {gpu} {gpu}" in text
    queue = lab.jobs.queue(caller("bob"))
    assert [q["user"] for q in queue if not q["mine"]] == ["someone"] * 3  # anonymised
    # when alice's first job is cancelled, her second takes its GPU
    lab.runner.start()
    lab.jobs.cancel(caller("alice"), a1.id)
    assert (await lab.wait(a1.id)).state == "cancelled"
    running = await lab.wait(a2.id, states=("running",))
    assert running.gpu_indices == get(a1.id).gpu_indices
    await until_async(lambda: get(a3.id).reason.startswith(
        "waiting for 1 GPU: 2 of 2 in use (held by your job"), 10, "a3's reason to follow")
    assert get(a3.id).reason.endswith("you are 1st")
    for j in (a2, a3, b1):
        lab.jobs.cancel(caller(j.user), j.id)
    for j in (a2, a3, b1):
        assert (await lab.wait(j.id)).state == "cancelled"
    assert lab.allocator.holders() == []  # every GPU released


@pytest.mark.asyncio
async def test_quotas_refuse_or_make_wait_naming_the_quota(quick_lab):
    lab = quick_lab
    await lab.runner.stop()
    lab.write("alice", "gpu.py", GPU_SCRIPT)
    lab.allocator.set_quota("user", "alice", 1)
    with pytest.raises(QuotaExceeded, match="GPU quota of user alice is 1; the job asks for 2"):
        lab.jobs.submit(caller("alice"), {"path": "gpu.py", "gpus": 2})
    first = lab.jobs.submit(caller("alice"), {"path": "gpu.py", "gpus": 1})
    second = lab.jobs.submit(caller("alice"), {"path": "gpu.py", "gpus": 1})
    await lab.runner.tick()
    assert lab.jobs.store.get(first.id).state == "running"
    assert lab.jobs.store.get(second.id).reason == "you use 1 of your 1 GPU"
    # a project quota is the project's gpu_quota (core.projects)
    with lab.projects.db.tx() as conn:
        conn.execute(sa.text("INSERT INTO projects (name, created_by, created_at, everyone,"
                             " gpu_quota) VALUES ('cells', 'pm', 0, 1, 1)"))
    lab.write("bob", "gpu.py", GPU_SCRIPT)
    b1 = lab.jobs.submit(caller("bob"), {"path": "gpu.py", "gpus": 1, "project": "cells"})
    b2 = lab.jobs.submit(caller("bob"), {"path": "gpu.py", "gpus": 1, "project": "cells"})
    await lab.runner.tick()
    assert lab.jobs.store.get(b1.id).state == "running"
    assert lab.jobs.store.get(b2.id).reason == "project cells uses 1 of its 1 GPU"
    for j in (first, second, b1, b2):
        lab.jobs.cancel(caller(j.user), j.id)
    lab.runner.start()
    for j in (first, b1):
        assert (await lab.wait(j.id)).state == "cancelled"
