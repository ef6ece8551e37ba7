"""Jobs tests: a real runner with real subprocess jobs logging to the real platform's MLflow.

The runner runs in the test's own event loop over its own SQLite database and data directory
(fast, and it can be "restarted"); MLflow is the session platform's, reached through the
hub-authenticated gateway with MLflow-only tokens of real hub users, as the service does.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import pytest_asyncio

from jupyter_mlops.backends.accounts import UserAccounts
from jupyter_mlops.backends.jobs_local import LocalJobBackend
from jupyter_mlops.backends.mlflow_rest import MlflowRest
from jupyter_mlops.core import roles
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.gpu_allocation import GpuAllocator
from jupyter_mlops.core.gpus import StaticInventory
from jupyter_mlops.core.jobs import JobRunner, Jobs, JobStore
from jupyter_mlops.core.jobs.pipelines import Pipelines
from jupyter_mlops.core.jobs.sweeps import Sweeps
from jupyter_mlops.core.jobs.tracking import MLFLOW_SCOPE, FixedTokenIssuer
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.core.roles import Caller
from tests.fixtures import until, until_async

USERS = ("alice", "bob", "carol")
API = "services/mlops/api"
ENDED = ("succeeded", "failed", "cancelled")


def caller(name: str, *extra_scopes: str) -> Caller:
    return Caller(name=name, scopes=frozenset({roles.USE, *extra_scopes}))


def wait_job(platform, token, job_id, states=ENDED, timeout=60) -> dict:
    """The job as the platform's API shows it once its state is one of ``states``."""
    def job():
        j = platform.api("GET", f"{API}/jobs/{job_id}", token).json()
        return j if j["state"] in states else None
    return until(job, timeout, f"job {job_id} to be {'/'.join(states)}")


@pytest.fixture(scope="session")
def mlflow_access(platform):
    """``(tracking_uri, {user: token})`` of the session platform's MLflow gateway."""
    tokens = {}
    for u in USERS:
        platform.add_user(u, f"{u}-password-1")
        tokens[u] = platform.token(u, scopes=[MLFLOW_SCOPE])
    return f"{platform.url}/services/mlflow", tokens


class Lab:
    """A control plane's job machinery over a data directory (``restart`` = a new process).

    As in the embedded default, jobs run as their users' accounts (``jm-alice``) when the tests
    run as root (CI does); ``datasets/`` is the shared dataset, root-owned and read-only.
    """

    def __init__(self, root: Path, gpus: int, tracking_uri: str, tokens: dict,
                 max_cpu_jobs: int = 4, max_timeout: int = 0):
        self.root = root
        self.url = f"sqlite:///{root / 'mlops.sqlite'}"
        self.gpus, self.tracking_uri, self.tokens = gpus, tracking_uri, tokens
        self.max_cpu_jobs = max_cpu_jobs
        self.max_timeout = max_timeout
        self.accounts = UserAccounts(root / "users")
        for u in USERS:
            (root / "users" / u).mkdir(parents=True, exist_ok=True)
        self.datasets = root / "datasets"
        self.datasets.mkdir(mode=0o755, exist_ok=True)
        self.runner = None
        self.build()

    def build(self):
        db = Database(self.url)
        inventory = StaticInventory([{"name": "Simulated A100"}] * self.gpus)
        self.allocator = GpuAllocator(db, inventory)
        self.projects = Projects(db)
        self.jobs = Jobs(JobStore(db), self.projects, self.allocator, self.root / "users",
                         self.root / "jobs", max_timeout=self.max_timeout)
        self.backend = LocalJobBackend(grace_seconds=2.0, accounts=self.accounts)
        self.runner = JobRunner(self.jobs, self.backend, FixedTokenIssuer(self.tokens),
                                tracking_uri=self.tracking_uri, mlflow=MlflowRest,
                                tick_seconds=0.2,
                                max_cpu_jobs=self.max_cpu_jobs,
                                dataset_dir=str(self.datasets))
        self.sweeps = Sweeps(self.jobs, f"sqlite:///{self.root / 'optuna.sqlite'}",
                             self.tracking_uri, FixedTokenIssuer(self.tokens), mlflow=MlflowRest)
        self.pipelines = Pipelines(self.jobs)
        self.runner.groups += [self.sweeps, self.pipelines]

    def write(self, user: str, path: str, text: str) -> Path:
        p = self.root / "users" / user / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def write_notebook(self, user: str, path: str, cells: list[tuple[str, str]]) -> Path:
        """cells: (source, "parameters" | "") pairs."""
        nb = {"nbformat": 4, "nbformat_minor": 5,
              "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                          "language": "python"}},
              "cells": [{"cell_type": "code", "id": f"c{i}", "execution_count": None,
                         "metadata": {"tags": [tag]} if tag else {}, "outputs": [],
                         "source": src} for i, (src, tag) in enumerate(cells)]}
        return self.write(user, path, json.dumps(nb))

    async def wait_group(self, get, states=("succeeded", "failed", "cancelled"),
                         timeout: float = 90.0):
        try:
            return await until_async(lambda: (g := get())["state"] in states and g, timeout,
                                     "the group's end", every=0.2)
        except AssertionError:
            raise AssertionError(f"still {get()}") from None

    async def wait(self, job_id: int, states=("succeeded", "failed", "cancelled", "pruned"),
                   timeout: float = 60.0):
        try:
            return await until_async(lambda: (j := self.jobs.store.get(job_id)).state in states
                                     and j, timeout, f"job {job_id} to end")
        except AssertionError:
            pass
        job = self.jobs.store.get(job_id)
        log = (self.jobs.job_dir(job_id) / "output.log")
        raise AssertionError(f"job {job_id} still {job.state} ({job.reason}); log:\n"
                             + (log.read_text() if log.exists() else "(none)"))

    async def restart(self):
        await self.runner.stop()
        self.build()
        self.runner.start()


# Labs live in ``shared_tmp``, not pytest's tmp_path: jobs run as per-user accounts, which must
# traverse the path, and pytest resets /tmp/pytest-of-root to 0700 whenever a session starts.
@pytest_asyncio.fixture
async def lab(shared_tmp, mlflow_access):
    uri, tokens = mlflow_access
    lab = Lab(shared_tmp, 2, uri, tokens)
    lab.runner.start()
    yield lab
    await lab.runner.stop()
    # Leave nothing running behind a failed test.
    for job in lab.jobs.store.active():
        if job.handle:
            lab.backend.stop(job.handle)
            await asyncio.sleep(0.1)
            lab.backend._signal(job.handle, 9)


@pytest_asyncio.fixture
async def quick_lab(shared_tmp):
    """A lab whose jobs run without MLflow (for queue and pipeline logic: faster, no platform)."""
    lab = Lab(shared_tmp, 2, "", {})
    lab.runner.start()
    yield lab
    await lab.runner.stop()
    for job in lab.jobs.store.active():
        if job.handle:
            lab.backend._signal(job.handle, 9)


@pytest.fixture
def mlflow_client(mlflow_access):
    """An MLflow client as alice (the token in the environment, as a job gets it)."""
    import os

    from mlflow.tracking import MlflowClient

    uri, tokens = mlflow_access
    old = os.environ.get("MLFLOW_TRACKING_TOKEN")
    os.environ["MLFLOW_TRACKING_TOKEN"] = tokens["alice"]
    yield MlflowClient(tracking_uri=uri)
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    else:
        os.environ["MLFLOW_TRACKING_TOKEN"] = old
