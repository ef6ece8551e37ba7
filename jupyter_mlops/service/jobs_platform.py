"""The control plane's job machinery: settings, and the runner task it starts.

``build_jobs(app, context)`` puts a :class:`JobsPlatform` on the service context; ``_serve``
starts its runner on the service's event loop. Jobs are processes of their own (or Kubernetes
Jobs), so they keep running when the user's server stops, and a restarted control plane
re-attaches to them.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from jupyterhub.traitlets import ByteSpecification
from traitlets import Bool, CaselessStrEnum, Float, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from ..backends.accounts import AccountSettings
from ..backends.hub_tokens import HubTokenIssuer
from ..backends.jobs_local import LocalJobBackend
from ..backends.mlflow_rest import MlflowRest
from ..core.jobs import JobRunner, Jobs, JobStore
from ..core.jobs.pipelines import Pipelines
from ..core.jobs.snapshot import FolderSnapshot
from ..core.jobs.sweeps import Sweeps
from ..core.jobs.tracking import FixedTokenIssuer


class JobSettings(LoggingConfigurable):
    """How the control plane runs training jobs, sweeps and pipelines."""

    backend = CaselessStrEnum(
        ["local", "kubernetes", "slurm"], "local",
        help="""Where jobs run: ``local`` processes on this machine, ``kubernetes`` batch/v1
        Jobs (configure with ``c.KubeJobBackend.*``: namespace, image, the PVCs of workspaces
        and job directories, mounted at the same paths as in the control plane), or ``slurm``
        batch jobs (``c.SlurmJobBackend.*``: partition, GPU type, CPUs, memory; workspaces,
        job directories and the dataset on a filesystem every node mounts at the same paths).
        With ``slurm``, Slurm places jobs on its nodes and GPUs; the platform keeps quotas,
        projects and accounting (see docs/slurm.md).""",
    ).tag(config=True)

    tracking_uri = Unicode(
        "",
        help="""MLflow tracking URI as jobs reach it: the hub-authenticated gateway, e.g.
        ``http://127.0.0.1:PORT/services/mlflow`` (``jupyter_mlops.hub.config`` sets it). Each job gets
        a hub token of its user (MLflow, the control plane and the lab's ``use`` scope only).
        Empty: jobs run without MLflow tracking.""",
    ).tag(config=True)

    control_plane_url = Unicode(
        "",
        help="""The control plane as jobs reach it, with its service prefix, e.g.
        ``http://127.0.0.1:PORT/services/mlops/`` (``jupyter_mlops.hub.config`` sets it): passed to jobs
        as ``$JUPYTER_MLOPS_CONTROL_PLANE_URL`` with the job's token, so ``datasets.get`` works
        in a job as in the user's server. Empty: jobs read datasets from the shared root only.""",
    ).tag(config=True)

    workspace_root = Unicode(
        help="""Users' workspaces, ``<workspace_root>/<user>``: job paths are relative to them
        and jobs run there. Defaults to ``<data_dir>/users`` (where the local spawner puts
        them).""",
    ).tag(config=True)

    jobs_dir = Unicode(
        help="""Where each job keeps its directory (launch file, code snapshot, log, outcome).
        Defaults to ``<data_dir>/jobs``: outside the control plane's private ``control``
        directory, because jobs running as their users' accounts must reach their own.""",
    ).tag(config=True)

    shared_dataset_dir = Unicode(
        help="""The shared dataset as jobs see it (``$JUPYTER_MLOPS_DATASETS``, read-only as in
        user servers). Defaults to ``<data_dir>/datasets`` (where the local spawner has it).""",
    ).tag(config=True)

    max_timeout = Integer(
        0,
        help="""The longest any job may run, in seconds (0: no limit). A job asking for a longer
        ``timeout`` is refused; a job asking for none gets this one. A job reaching its limit
        is stopped (SIGTERM, then SIGKILL after ``grace_seconds``) and fails with "time limit
        of N s reached". Example: ``c.JobSettings.max_timeout = 48 * 3600``.""",
    ).tag(config=True)

    cpu_limit = Float(
        0.0,
        help="""CPUs each local job may use (a CFS quota; 0: no limit), e.g. ``4`` so a data
        loader cannot take every core of a machine others train on too. Enforced with a cgroup
        per job when the control plane is root (see docs/security.md); on Kubernetes use
        ``c.KubeJobBackend`` resources.""",
    ).tag(config=True)

    memory_limit = ByteSpecification(
        0,
        help="""Memory each local job may use, e.g. ``"16G"`` (0: no limit). A job going over
        it is killed by the kernel and fails with "out of memory". Enforced like
        ``cpu_limit``.""",
    ).tag(config=True)

    cgroup_root = Unicode(
        "/sys/fs/cgroup", help="Where cgroups are mounted (for ``cpu_limit``/``memory_limit``).",
    ).tag(config=True)

    python = Unicode(
        sys.executable,
        help="""Interpreter jobs run with (the users' environment: papermill, mlflow and
        jupyter_mlops must be importable by it).""",
    ).tag(config=True)

    max_cpu_jobs = Integer(
        4, help="Jobs without GPUs that may run at once (GPU jobs are limited by the GPUs).",
    ).tag(config=True)

    grace_seconds = Float(
        10.0, help="Seconds a cancelled job has to stop after SIGTERM before SIGKILL.",
    ).tag(config=True)

    tick_seconds = Float(
        1.0, help="""Seconds between two passes of the runner when nothing wakes it (a submit
        or cancel wakes it at once).""",
    ).tag(config=True)

    system_metrics_seconds = Float(
        10.0, help="""Every this many seconds, each job's and trial's MLflow run gets a sample of
        the resources (MLflow's system metrics: CPU and memory use, GPU utilisation and memory
        through NVML where there is a GPU), charted with the run. 0 turns it off.""",
    ).tag(config=True)

    token_lifetime = Integer(
        7 * 24 * 3600, help="""Seconds a job's MLflow token stays valid: the longest a job may
        log to MLflow. The token is revoked as soon as the job ends.""",
    ).tag(config=True)

    optuna_storage = Unicode(
        help="""SQLAlchemy URL of the Optuna storage of sweeps. Defaults to SQLite at
        ``<data_dir>/control/optuna.sqlite``; on Kubernetes use the control plane's
        Postgres.""",
    ).tag(config=True)

    snapshot_max_bytes = Integer(
        50_000_000, help="""Bytes a job's code snapshot may hold. A job copies the folder it
        runs from (without hidden files and what .gitignore ignores), so a script importing a
        sibling module reruns exactly; a folder holding more is refused with its biggest files
        named (data belongs in the dataset catalog, not in the code folder).""",
    ).tag(config=True)

    snapshot_max_files = Integer(
        2000, help="Files a job's code snapshot may hold (see ``snapshot_max_bytes``).",
    ).tag(config=True)

    environments_dir = Unicode(
        help="""Where "rerun exactly" rebuilds the environment a job ran with when the jobs'
        environment has changed since: one virtual environment per user and lock,
        ``<environments_dir>/<user>/<hash>``, built as the user's account and reused by later
        reruns of the same lock. Defaults to ``<data_dir>/environments``.""",
    ).tag(config=True)

    environment_wheels = Unicode(
        "", help="""A local folder of wheels that rebuilt environments install from before any
        index (distributions the running environment has in the locked version are linked,
        not installed).""",
    ).tag(config=True)

    environment_offline = Bool(
        False, help="""Rebuild environments without any index: only from this environment,
        ``environment_wheels`` and uv's cache. A lock needing anything else is refused with
        what is missing.""",
    ).tag(config=True)

    @default("python")
    def _default_python(self):
        return sys.executable


@dataclass
class JobsPlatform:
    jobs: Jobs
    runner: JobRunner
    sweeps: Sweeps
    pipelines: Pipelines
    settings: JobSettings = field(repr=False, default=None)


def build_jobs(parent, context) -> JobsPlatform:
    settings = JobSettings(parent=parent)
    data_dir = Path(context.data_dir)
    workspaces = Path(settings.workspace_root or data_dir / "users")
    allocator, slurm = context.gpu_allocator, None
    if settings.backend == "slurm":
        from ..backends.jobs_slurm import SlurmJobBackend, SlurmSlotAllocator

        slurm = SlurmJobBackend(parent=parent, python_default=settings.python,
                                accounts=AccountSettings(parent=parent).user_accounts(workspaces),
                                cpu_limit=settings.cpu_limit,
                                memory_limit=settings.memory_limit or 0)
        # Slurm places jobs; the same quotas (same database) count what was asked of it.
        allocator = SlurmSlotAllocator(context.db, slurm.gpu_slots, context.gpu_allocator)
    jobs = Jobs(JobStore(context.db), context.projects, allocator, workspaces,
                Path(settings.jobs_dir or data_dir / "jobs"), max_timeout=settings.max_timeout,
                snapshots=FolderSnapshot(settings.snapshot_max_bytes, settings.snapshot_max_files),
                datasets=getattr(context, "datasets", None))
    hub_api = os.environ.get("JUPYTERHUB_API_URL", "")
    service_token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    tokens = (HubTokenIssuer(hub_api, service_token) if hub_api and service_token
              else FixedTokenIssuer())
    if slurm is not None:
        backend = slurm
    elif settings.backend == "kubernetes":
        from ..backends.jobs_kube import KubeJobBackend

        backend = KubeJobBackend(parent=parent, workspace_root=str(workspaces))
    else:
        accounts = AccountSettings(parent=parent).user_accounts(workspaces)
        backend = LocalJobBackend(python=settings.python, grace_seconds=settings.grace_seconds,
                                  accounts=accounts, cpu_limit=settings.cpu_limit,
                                  memory_limit=settings.memory_limit or 0,
                                  cgroup_root=settings.cgroup_root, log=settings.log)
    runner = JobRunner(jobs, backend, tokens, tracking_uri=settings.tracking_uri,
                       mlflow=MlflowRest, max_cpu_jobs=settings.max_cpu_jobs,
                       tick_seconds=settings.tick_seconds,
                       token_lifetime=settings.token_lifetime,
                       dataset_dir=settings.shared_dataset_dir or str(data_dir / "datasets"),
                       control_plane_url=settings.control_plane_url,
                       system_metrics_seconds=settings.system_metrics_seconds,
                       environments={"dir": settings.environments_dir
                                     or str(data_dir / "environments"),
                                     "wheels": settings.environment_wheels,
                                     "offline": settings.environment_offline})
    storage = settings.optuna_storage or f"sqlite:///{data_dir / 'control' / 'optuna.sqlite'}"
    sweeps = Sweeps(jobs, storage, settings.tracking_uri, tokens, mlflow=MlflowRest)
    pipelines = Pipelines(jobs)
    runner.groups += [sweeps, pipelines]
    return JobsPlatform(jobs, runner, sweeps, pipelines, settings)
