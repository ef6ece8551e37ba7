"""What other capabilities read of the job store (GPU-hours, the queue's health), through its
public queries, on a real SQLite database and a movable clock."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from jupyter_mlops.core import clock
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.jobs.model import Job, JobSpec
from jupyter_mlops.core.jobs.store import GpuJobSpan, JobStore
from jupyter_mlops.core.monitoring.health import PlatformHealth

DAY = 86400.0


@pytest.fixture
def t0():
    """Now, held still: the queue's waits are measured against it."""
    clock.set_clock(clock.ManualClock())
    yield clock.now()
    clock.set_clock(None)


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'q.sqlite'}")
    yield database
    database.dispose()


def _job(store: JobStore, at: float, *, gpus: int = 0, state: str = "queued", **times) -> Job:
    job = store.add(Job(id=0, user="ines", spec=JobSpec(path="t.py", gpus=gpus,
                                                        project="cells"), submitted_at=at))
    job.state = state
    for k, v in times.items():
        setattr(job, k, v)
    store.save(job)
    return job


def test_no_job_store_means_no_jobs_and_no_table(db, tmp_path, t0):
    # Given a database jobs never ran on
    assert JobStore.existing(db) is None
    # Then the queue's health is empty, and asking created nothing
    assert PlatformHealth(db, tmp_path).queue() == {
        "queued": 0, "running": 0, "longest_wait_s": None, "started_24h": 0,
        "wait_p50_s": None, "wait_max_s": None}
    assert not sa.inspect(db.engine).has_table("jobs")
    # Once a job store exists, it is found
    JobStore(db)
    assert JobStore.existing(db) is not None


def test_gpu_spans_are_started_gpu_jobs_not_finished_before_since(db, t0):
    store = JobStore(db)
    old = _job(store, t0 - 3 * DAY, gpus=1, state="succeeded", started_at=t0 - 3 * DAY,
               finished_at=t0 - 2 * DAY)
    running = _job(store, t0 - DAY, gpus=2, state="running", started_at=t0 - DAY + 5,
                   gpu_indices=[2, 3])
    _job(store, t0, gpus=1)  # queued: not started
    _job(store, t0, state="succeeded", started_at=t0, finished_at=t0 + 1)  # no GPU
    assert store.gpu_spans(since=t0 - DAY) == [GpuJobSpan(
        id=running.id, username="ines", project="cells", gpus=2, gpu_indices=(2, 3),
        started_at=t0 - DAY + 5, finished_at=None)]
    # without a bound, every GPU job that ran; a job's spec counts where no device is recorded
    assert [(s.id, s.gpus, s.finished_at) for s in store.gpu_spans()] == [
        (old.id, 1, t0 - 2 * DAY), (running.id, 2, None)]


def test_queue_health_from_the_job_store(db, tmp_path, t0):
    store = JobStore(db)
    _job(store, t0 - 3 * DAY, state="succeeded", started_at=t0 - 3 * DAY + 60,
         finished_at=t0 - 2 * DAY)  # outside the day: not in the waits
    _job(store, t0 - 600, state="running", started_at=t0 - 540)  # waited 60 s
    _job(store, t0 - 300, state="succeeded", started_at=t0 - 280, finished_at=t0 - 10)
    _job(store, t0 - 120)  # waiting for 120 s
    _job(store, t0 - 30)
    assert [r["state"] for r in store.queue_window(since=t0 - DAY)] == [
        "queued", "queued", "succeeded", "running"]
    assert PlatformHealth(db, tmp_path).queue() == {
        "queued": 2, "running": 1, "longest_wait_s": 120.0, "started_24h": 2,
        "wait_p50_s": 60.0, "wait_max_s": 60.0}
