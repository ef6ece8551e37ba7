"""Slurm tests: a real single-machine cluster (``cluster.py``, the ``slurm_cluster`` fixture of
``tests/fixtures.py``) started once per session, and a control plane's job machinery whose
backend submits to it.

The lab is the jobs tests' (``tests/jobs/conftest.py``: its own database and data directory, jobs
as the users' accounts ``jm-alice``...) with the Slurm backend and the GPU slots it allocates
from instead of the local inventory, as ``c.JobSettings.backend = "slurm"`` builds it.
"""
from __future__ import annotations

import subprocess

import pytest_asyncio

from jupyter_mlops.backends.jobs_slurm import SlurmJobBackend, SlurmSlotAllocator
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.gpu_allocation import GpuAllocator
from jupyter_mlops.core.gpus import StaticInventory
from jupyter_mlops.core.jobs import JobRunner, Jobs, JobStore
from jupyter_mlops.core.jobs.pipelines import Pipelines
from jupyter_mlops.core.jobs.sweeps import Sweeps
from jupyter_mlops.core.jobs.tracking import FixedTokenIssuer
from jupyter_mlops.core.projects import Projects
from tests.fixtures import until_async
from tests.jobs.conftest import Lab

from .cluster import SlurmCluster


class SlurmLab(Lab):
    """The jobs tests' lab, its jobs submitted to ``cluster``."""

    def __init__(self, root, cluster: SlurmCluster, gpu_slots: int = 8, **kw):
        self.cluster, self.gpu_slots = cluster, gpu_slots
        super().__init__(root, 0, "", {}, **kw)

    def build(self):
        db = Database(self.url)
        self.db = db
        self.backend = SlurmJobBackend(slurm_conf=str(self.cluster.conf), accounts=self.accounts,
                                       queue_cache_seconds=0.1, gpu_slots=self.gpu_slots)
        # the hub machine's own device (for servers), the cluster's slots for jobs
        self.devices = GpuAllocator(db, StaticInventory([{"name": "Simulated T4"}]))
        self.allocator = SlurmSlotAllocator(db, self.backend.gpu_slots, self.devices)
        self.projects = Projects(db)
        self.jobs = Jobs(JobStore(db), self.projects, self.allocator, self.root / "users",
                         self.root / "jobs", max_timeout=self.max_timeout)
        self.runner = JobRunner(self.jobs, self.backend, FixedTokenIssuer({}), tick_seconds=0.2,
                                max_cpu_jobs=self.max_cpu_jobs, dataset_dir=str(self.datasets))
        self.sweeps = Sweeps(self.jobs, f"sqlite:///{self.root / 'optuna.sqlite'}", "",
                             FixedTokenIssuer({}))
        self.pipelines = Pipelines(self.jobs)
        self.runner.groups += [self.sweeps, self.pipelines]

    def squeue(self) -> list[str]:
        out = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=self.cluster.env,
                             capture_output=True, text=True, check=True).stdout
        return out.split("\n")[:-1]


@pytest_asyncio.fixture
async def slurm_lab(shared_tmp, slurm_cluster):
    lab = SlurmLab(shared_tmp, slurm_cluster)
    lab.runner.start()
    yield lab
    await lab.runner.stop()
    # Nothing of this test may hold the cluster's GPUs in the next one.
    subprocess.run(["scancel", "--full", "--partition=gpu"], env=slurm_cluster.env,
                   capture_output=True)
    await until_async(lambda: not lab.squeue(), 30, "Slurm's queue empty", every=0.2)
