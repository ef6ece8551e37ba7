"""GPU-hours accounting from a scripted sequence of spawns and jobs, with a movable clock."""
from __future__ import annotations

import pytest

from jupyter_mlops.core import clock
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.gpu_allocation import GpuAllocator
from jupyter_mlops.core.gpus import StaticInventory
from jupyter_mlops.core.usage import DAY, UsageLedger

HOUR = 3600.0


@pytest.fixture
def world(tmp_path):
    c = clock.ManualClock()
    clock.set_clock(c)
    db = Database(f"sqlite:///{tmp_path / 'u.sqlite'}")
    inv = StaticInventory([{"name": "A100", "utilization_pct": 0}] * 4)
    yield c, GpuAllocator(db, inv), UsageLedger(db), inv
    clock.set_clock(None)
    db.dispose()


def test_scripted_spawns_and_jobs(world):
    c, alloc, ledger, _ = world
    t0 = c()
    # 40 days ago alice's server held 2 GPUs for 10 h (outside both windows but 30 d: no)
    c.t = t0 - 40 * DAY
    ledger.started("server", "alice", user="alice", gpus=2, project="default")
    c.advance(10 * HOUR)
    ledger.ended("server", "alice")
    # 20 days ago a job of bob in project cells: 4 GPUs for 3 h
    c.t = t0 - 20 * DAY
    ledger.started("job", "17", user="bob", gpus=4, project="cells")
    c.advance(3 * HOUR)
    ledger.ended("job", "17")
    # 8 days ago + 2 h: alice's server with 1 GPU runs across the 7-day boundary for 4 h
    c.t = t0 - 7 * DAY - 2 * HOUR
    ledger.started("server", "alice", user="alice", gpus=1, project="cells")
    c.advance(4 * HOUR)
    ledger.ended("server", "alice")
    ledger.ended("server", "alice")  # twice: harmless
    # and bob's server is still running since 30 min, with 2 GPUs, started through an allocation
    c.t = t0 - 0.5 * HOUR
    alloc.allocate("server", "bob", user="bob", count=2, project="cells")
    c.t = t0
    ledger.sync(alloc.holders())
    report = ledger.report()
    assert report["users"] == {
        "alice": {"7d": 2.0, "30d": 4.0},
        "bob": {"7d": 1.0, "30d": 13.0},
    }
    assert report["projects"] == {"cells": {"7d": 3.0, "30d": 17.0}}
    # when bob stops at t0 + 1 h, sync closes the session at that moment
    c.advance(HOUR)
    alloc.release("server", "bob")
    ledger.sync(alloc.holders())
    c.advance(5 * HOUR)
    assert ledger.gpu_hours(t0 - DAY, by="user") == {"bob": 3.0}


def test_sync_opens_at_allocation_time_and_bad_events_are_refused(world):
    c, alloc, ledger, _ = world
    alloc.allocate("job", "9", user="carol", count=1, project="p")
    c.advance(2 * HOUR)
    ledger.sync(alloc.holders())
    ledger.sync(alloc.holders())  # idempotent
    assert len(ledger.sessions(open_only=True)) == 1
    assert ledger.gpu_hours(c() - DAY) == {"carol": 2.0}
    from jupyter_mlops.core.errors import InvalidInput
    with pytest.raises(InvalidInput):
        ledger.started("vm", "x", user="u", gpus=1)
    with pytest.raises(InvalidInput):
        ledger.started("job", "x", user="u", gpus=-1)


def test_idle_servers_after_n_minutes(world):
    c, alloc, ledger, inv = world
    alloc.allocate("server", "alice", user="alice", count=1)
    ledger.observe(inv.read().gpus)
    c.advance(10 * 60)
    ledger.observe(inv.read().gpus)
    assert ledger.idle(alloc.holders(), minutes=30) == []
    c.advance(25 * 60)
    idle = ledger.idle(alloc.holders(), minutes=30)
    assert [(i["owner"], i["idle_minutes"]) for i in idle] == [("alice", 35.0)]
    # a busy reading resets the idle clock
    busy = [type(g)(**{**g.to_dict(), "utilization_pct": 55}) for g in inv.read().gpus]
    ledger.observe(busy)
    assert ledger.idle(alloc.holders(), minutes=30) == []


def test_jobs_count_from_the_job_store_to_the_second(world):
    """A job shorter than any sync period still counts, from the job records themselves."""
    from jupyter_mlops.core.jobs.model import Job, JobSpec
    from jupyter_mlops.core.jobs.store import JobStore

    c, alloc, ledger, _ = world
    store = JobStore(ledger.db)
    t0 = c()
    job = store.add(Job(id=0, user="dora", spec=JobSpec(path="train.py", gpus=2,
                                                           project="nuclei"),
                        submitted_at=t0))
    # the runner's life cycle: allocated and started, 90 s later finished and released
    alloc.allocate("job", str(job.id), user="dora", count=2, project="nuclei")
    job.state, job.started_at, job.gpu_indices = "running", t0 + 10, [0, 1]
    store.save(job)
    ledger.sync(alloc.holders())  # a sync while it runs does not count it twice
    c.advance(100)
    job.state, job.finished_at = "succeeded", t0 + 100
    store.save(job)
    alloc.release("job", str(job.id))
    ledger.sync(alloc.holders())
    # a CPU-only job and a queued job count nothing
    store.add(Job(id=0, user="dora", spec=JobSpec(path="cpu.py"), submitted_at=t0,
                  started_at=t0, finished_at=t0 + 50, state="succeeded"))
    store.add(Job(id=0, user="dora", spec=JobSpec(path="q.py", gpus=1), submitted_at=t0))
    c.advance(3600)
    assert ledger.gpu_hours(t0 - DAY, by="user") == {"dora": 0.05}  # 2 GPUs x 90 s
    assert ledger.report()["projects"] == {"nuclei": {"7d": 0.05, "30d": 0.05}}


def test_each_person_sees_their_own_hours_managers_their_projects(world):
    c, alloc, ledger, _ = world
    t0 = c()
    for user, project, hours in (("ann", "alpha", 2), ("ann", "beta", 1), ("ben", "alpha", 3),
                                 ("cy", "gamma", 5)):
        c.t = t0 - 2 * DAY
        ledger.started("job", f"{user}-{project}", user=user, gpus=1, project=project)
        c.advance(hours * HOUR)
        ledger.ended("job", f"{user}-{project}")
    c.t = t0
    # ann, a data scientist: her own hours by project, nobody else's
    ann = ledger.visible_report("ann", managed=[])
    assert ann["mine"]["7d"] == 3.0 and ann["mine"]["by_project"] == {
        "alpha": {"7d": 2.0, "30d": 2.0}, "beta": {"7d": 1.0, "30d": 1.0}}
    assert ann["projects"] == {} and {r["user"] for r in ann["rows"]} == {"ann"}
    # ben manages alpha: alpha's hours by member, not gamma's
    ben = ledger.visible_report("ben", managed=["alpha"])
    assert ben["projects"]["alpha"]["7d"] == 5.0
    assert ben["projects"]["alpha"]["by_user"] == {"ann": {"7d": 2.0, "30d": 2.0},
                                                   "ben": {"7d": 3.0, "30d": 3.0}}
    assert "gamma" not in ben["projects"] and "cy" not in {r["user"] for r in ben["rows"]}
    # an administrator (managed=None) sees every row
    everyone = ledger.visible_report("root", managed=None)
    assert len(everyone["rows"]) == 4 and everyone["projects"]["gamma"]["30d"] == 5.0
