"""The job runner: an asyncio task inside the control plane process.

Each pass (on a timer, or at once when woken by a submit or cancel) it: finishes jobs whose
process ended (outcome, metrics, GPUs released, token revoked), updates progress, starts what the
queue allows, records why the others wait, and lets sweeps and pipelines add jobs. Everything it
knows lives in the database and in job directories, so a new runner (a restarted control plane)
picks up where the old one stopped: running jobs are re-attached, not restarted.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
from pathlib import Path

from .. import clock
from ..errors import MlopsError
from ..gpu_allocation import ServerRequest
from ..roles import Caller
from . import queue
from .jobfiles import touch_untrusted
from .model import FAILED, QUEUED, RUNNING, SUCCEEDED, Job
from .service import Jobs
from .tracking import MlflowRunsFactory

log = logging.getLogger("jupyter_mlops.jobs")


async def _maybe(result):
    """Backends may be synchronous (local processes) or asynchronous (Kubernetes)."""
    return await result if inspect.isawaitable(result) else result

# Variables of the control plane's environment a job may inherit; nothing else (above all not
# the control plane's JUPYTERHUB_API_TOKEN: a job gets its own user's token, see job_env).
# (and the CA bundle the platform's HTTPS address is verified with: jobs track MLflow there)
ENV_ALLOWED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "JUPYTER_MLOPS_DATASETS",
               "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")

# ``cancel_requested`` of a job stopped at its time limit (it then ends as failed).
TIME_LIMIT = "time_limit"


def time_limit_reason(seconds: int) -> str:
    return f"time limit of {seconds} s reached"


class JobRunner:
    """Runs queued jobs on a backend.

    Parameters
    ----------
    jobs
        The :class:`Jobs` domain object (store, allocator, paths).
    backend
        Where processes run (``backends.jobs_local.LocalJobBackend`` or the Kubernetes one).
    tokens
        A ``tracking.TokenIssuer``: tokens of the job's user (``tracking.JOB_SCOPES``).
    tracking_uri
        MLflow as jobs reach it (the hub-authenticated gateway); empty: no tracking.
    mlflow
        ``(tracking_uri, token) -> tracking.MlflowRuns`` (``backends.mlflow_rest.MlflowRest``):
        ends the run of a job killed with its wrapper. Required with a ``tracking_uri``.
    max_cpu_jobs
        Jobs without GPUs running at once.
    token_lifetime
        Seconds a job's MLflow token is valid (the longest a job may log to MLflow).
    dataset_dir
        The shared dataset as jobs see it (``$JUPYTER_MLOPS_DATASETS``, as in user servers).
    environments
        ``{"dir", "wheels", "offline"}``: where rebuilt environments of "rerun exactly" are
        cached (``<dir>/<user>/<hash>``), a local folder of wheels, and whether to install
        only from there (see :mod:`...backends.job_environment`).
    """

    def __init__(self, jobs: Jobs, backend, tokens, *, tracking_uri: str = "",
                 mlflow: MlflowRunsFactory | None = None,
                 max_cpu_jobs: int = 4, tick_seconds: float = 1.0,
                 token_lifetime: int = 7 * 24 * 3600, dataset_dir: str = "",
                 control_plane_url: str = "", environments: dict | None = None,
                 system_metrics_seconds: float = 10.0):
        self.jobs = jobs
        self.store = jobs.store
        self.allocator = jobs.allocator
        self.backend = backend
        self.tokens = tokens
        if tracking_uri and mlflow is None:
            raise ValueError("a tracking_uri needs an MLflow client (mlflow=...)")
        self.tracking_uri = tracking_uri
        self.mlflow = mlflow
        self.max_cpu_jobs = max_cpu_jobs
        self.tick_seconds = tick_seconds
        self.token_lifetime = token_lifetime
        self.dataset_dir = dataset_dir
        self.control_plane_url = control_plane_url
        self.system_metrics_seconds = system_metrics_seconds
        self.environments = {"dir": str(jobs.jobs_dir.parent / "environments"), "wheels": "",
                             "offline": False, **(environments or {})}
        self.groups: list = []  # sweeps, pipelines: objects with ``async tick()``
        self._event = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.on_finished = []  # callbacks(job) after a job reached its final state
        jobs.wake = self.wake

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        loop = asyncio.get_running_loop()
        if hasattr(self.backend, "on_exit"):
            def on_exit():
                try:
                    loop.call_soon_threadsafe(self.wake)
                except RuntimeError:  # the loop is gone (shutting down): the next runner polls
                    pass
            self.backend.on_exit = on_exit
        self._task = loop.create_task(self._loop())
        return self._task

    async def stop(self) -> None:
        """Stop watching (the jobs themselves keep running)."""
        if self._task:
            # The flag as well as the cancel: on Python 3.11, wait_for swallows a cancel that
            # arrives as its event is set (a job exiting at that moment), and the loop went on.
            self._stopping = True
            self._event.set()
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
            self._stopping = False

    def wake(self) -> None:
        self._event.set()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad pass must not stop the runner
                log.exception("job runner pass failed")
            try:
                await asyncio.wait_for(self._event.wait(), self.tick_seconds)
            except asyncio.TimeoutError:
                pass
            self._event.clear()

    # --- one pass -----------------------------------------------------------------------------

    async def tick(self) -> None:
        for job in self.store.active():
            if job.state == RUNNING:
                await self._watch(job)
        for group in self.groups:
            await group.tick()
        await self._schedule()

    async def _watch(self, job: Job) -> None:
        job = self.store.get(job.id)  # fresh: a cancel may have come in since the pass began
        d = self.jobs.job_dir(job.id)
        limit = self.jobs.time_limit(job)
        if (limit and job.started_at is not None and not job.cancel_requested
                and clock.now() - job.started_at >= limit):
            log.info("job %s: %s", job.id, time_limit_reason(limit))
            job.cancel_requested = TIME_LIMIT
            self.store.save(job)
        if job.cancel_requested:
            if job.cancel_requested == "pruned":
                touch_untrusted(d / "prune")
            elif job.cancel_requested == TIME_LIMIT:
                touch_untrusted(d / "timeout")  # the job's MLflow run then ends as FAILED
            else:  # so the job tells a cancel from a SIGTERM of the platform shutting down
                touch_untrusted(d / "cancel")
            await _maybe(self.backend.stop(job.handle))
        ended = await _maybe(self.backend.poll(d, job.handle))
        changed = False
        if not job.run_id:
            info = self.backend.run_info(d)
            if info:
                job.run_id, job.experiment_id = info["run_id"], info["experiment_id"]
                changed = True
        progress = self.backend.progress(d)
        if progress and progress != job.progress:
            job.progress, changed = progress, True
        if ended is None:
            # A backend that knows why the job's work has not started (a Kubernetes pod the
            # cluster cannot schedule) says so; the job still holds its GPUs meanwhile.
            waiting = self.backend.waiting_reason(job.handle) if hasattr(
                self.backend, "waiting_reason") else ""
            if waiting != job.reason:
                job.reason, changed = waiting, True
            if waiting and getattr(self.backend, "queues_jobs", False):
                # Waiting in the cluster scheduler's own queue (Slurm): the job's work has not
                # started, so neither its time limit nor its GPU-hours run yet.
                job.started_at, changed = clock.now(), True
            if changed:
                self.store.save(job)
            return
        job.state = ended.status
        job.reason = ended.error
        if job.cancel_requested == TIME_LIMIT and ended.status != SUCCEEDED:
            job.state, job.reason = FAILED, time_limit_reason(limit)
        elif job.cancel_requested and ended.status != SUCCEEDED:
            job.state = job.cancel_requested
        job.exit_code = ended.returncode
        job.metrics = ended.metrics or {}
        job.environment = {**job.environment, **(ended.environment or {})}
        job.finished_at = ended.finished_at or clock.now()
        if ended.started_at:  # the backend's scheduler started it later than it was submitted
            job.started_at = ended.started_at
        await self._end_run(job)
        await self._release(job)
        self.store.save(job)
        log.info("job %s %s %s", job.id, job.state, job.reason)
        for cb in self.on_finished:
            cb(job)

    async def _end_run(self, job: Job) -> None:
        """End the job's MLflow run if the job could not: a job killed with its wrapper
        (SIGKILL, the OOM killer) would otherwise leave it RUNNING forever."""
        if not (job.run_id and self.tracking_uri):
            return
        status = {SUCCEEDED: "FINISHED", FAILED: "FAILED"}.get(job.state, "KILLED")
        token_id = ""
        try:
            token, token_id = await self.tokens.mint(job.user, 300, f"mlops job {job.id} end")
            if await self.mlflow(self.tracking_uri, token).end_if_running(job.run_id, status):
                log.info("job %s: ended its MLflow run %s as %s", job.id, job.run_id, status)
        except MlopsError as e:
            log.warning("could not end the MLflow run of job %s: %s", job.id, e)
        finally:
            if token_id:
                try:
                    await self.tokens.revoke(job.user, token_id)
                except MlopsError as e:
                    log.warning("could not revoke a token of job %s: %s", job.id, e)

    async def _release(self, job: Job) -> None:
        self.allocator.release("job", str(job.id))
        token_id = job.handle.pop("token_id", "")
        if token_id:
            try:
                await self.tokens.revoke(job.user, token_id)
            except MlopsError as e:
                log.warning("could not revoke the token of job %s: %s", job.id, e)

    async def _schedule(self) -> None:
        active = self.store.active()
        queued = [j for j in active if j.state == QUEUED]
        servers = self.allocator.server_requests()  # notebooks waiting for GPUs, same queue
        if not queued and not servers:
            return
        running = [j for j in active if j.state == RUNNING]

        def allocate(job):
            if isinstance(job, ServerRequest):  # granted: the spawner's next ask finds it held
                gpus = self.allocator.allocate("server", job.owner, user=job.user,
                                               count=job.count, groups=job.groups,
                                               device_filter=job.gpu_type)
                self.allocator.drop_request(job.owner)
                return [g.index for g in gpus]
            gpus = self.allocator.allocate("job", str(job.id), user=job.user,
                                           count=job.spec.gpus, groups=job.groups,
                                           project=job.spec.project,
                                           device_filter=job.spec.gpu_type or None)
            return [g.index for g in gpus]

        def may_see(user: str, project: str) -> bool:
            p = self.jobs.projects.get(project)
            return bool(p and self.jobs.projects.is_member(Caller(user), p))

        for d in queue.plan(queued, running, allocate=allocate,
                            availability=self.allocator.availability,
                            max_cpu_jobs=self.max_cpu_jobs, servers=servers,
                            holders=self.allocator.holders, may_see=may_see):
            job = d.job
            if isinstance(job, ServerRequest):
                if not d.start and (job.position, job.reason) != (d.position, d.reason):
                    self.allocator.update_request(job.owner, d.position, d.reason)
                continue
            if d.start:
                await self._launch(job, d.gpu_indices)
            elif (job.position, job.reason) != (d.position, d.reason):
                job.position, job.reason = d.position, d.reason
                self.store.save(job)

    # --- starting -----------------------------------------------------------------------------

    def launch_spec(self, job: Job) -> dict:
        spec = job.spec
        ws = self.jobs.workspace(job.user)
        d = self.jobs.job_dir(job.id)
        name = Path(spec.path).name
        rel_dir = str(Path(spec.path).parent)
        tags = {"mlflow.user": job.user, "mlops.job_id": job.id, "mlops.project": spec.project,
                "mlflow.source.name": spec.path, "mlops.kind": spec.kind}
        if spec.dataset_version:
            tags["mlops.dataset_version"] = job.dataset_resolved or spec.dataset_version
        source = d / "snapshot" / "source.json"
        if source.exists():
            info = json.loads(source.read_text())
            if info.get("git_commit"):
                tags["mlflow.source.git.commit"] = info["git_commit"]
        if job.sweep_id is not None:
            tags["mlops.sweep_id"] = job.sweep_id
            tags["mlops.trial"] = job.trial_number
        if job.pipeline_id is not None:
            tags["mlops.pipeline_id"] = job.pipeline_id
            tags["mlops.step"] = job.step
        run_name = spec.name or (f"{Path(name).stem}-trial-{job.trial_number}"
                                 if job.trial_number is not None else f"{Path(name).stem}-job-{job.id}")
        return {
            "job_id": job.id, "user": job.user, "time_limit": self.jobs.time_limit(job),
            "kind": spec.kind, "display_path": spec.path,
            "file": str(d / "snapshot" / name), "cwd": str(ws / rel_dir),
            "params": spec.params, "tracking_uri": self.tracking_uri,
            "experiment": spec.experiment or Path(name).stem, "run_name": run_name,
            "tags": {k: str(v) for k, v in tags.items()},
            "parent_run_id": getattr(job, "parent_run_id", "") or self._parent_run(job),
            "output_notebook": str(ws / "mlops-jobs" / str(job.id) / name),
            "snapshot_dir": str(d / "snapshot"),
            "gpu_type": spec.gpu_type,  # the Kubernetes backend's node selector
            "seed": job.seed,
            "dataset_version": job.dataset_resolved or spec.dataset_version,
            "environment": self._environment(job),
        }

    def _environment(self, job: Job) -> dict:
        """What the job's process needs to rebuild the environment it must reproduce."""
        lock = self.jobs.job_dir(job.id) / "environment.wanted"
        if not job.environment.get("wanted") or not lock.is_file():
            return {}
        return {"lock": str(lock), "of": job.environment.get("of"),
                "dir": str(Path(self.environments["dir"]) / job.user),
                "wheels": self.environments["wheels"],
                "offline": bool(self.environments["offline"])}

    def _parent_run(self, job: Job) -> str:
        if job.sweep_id is None:
            return ""
        try:
            return self.store.get_group("sweep", job.sweep_id).get("parent_run_id", "")
        except MlopsError:
            return ""

    def job_env(self, job: Job, token: str) -> dict:
        env = {k: os.environ[k] for k in ENV_ALLOWED if k in os.environ}
        env.update(HOME=str(self.jobs.workspace(job.user)), USER=job.user,
                   MLFLOW_DISABLE_TELEMETRY="true", MLOPS_JOB_ID=str(job.id))
        if self.dataset_dir:
            env["JUPYTER_MLOPS_DATASETS"] = self.dataset_dir
        if self.tracking_uri:
            env["MLFLOW_TRACKING_URI"] = self.tracking_uri
            if token:
                env["MLFLOW_TRACKING_TOKEN"] = token
            if self.system_metrics_seconds > 0:
                # MLflow's system metrics in the job's run: CPU, memory, and GPU utilisation and
                # memory where NVML reads them (system/... metrics, charted by MLflow's UI)
                env.update(MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING="true",
                           MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL=str(
                               self.system_metrics_seconds),
                           MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING="1")
        if self.control_plane_url and token:  # the catalog as the job's user (datasets.get)
            env.update(JUPYTER_MLOPS_CONTROL_PLANE_URL=self.control_plane_url,
                       JUPYTERHUB_API_TOKEN=token)
        return env

    async def _launch(self, job: Job, gpu_indices: list[int]) -> None:
        d = self.jobs.job_dir(job.id)
        try:
            token, token_id = "", ""
            if self.tracking_uri or self.control_plane_url:
                token, token_id = await self.tokens.mint(
                    job.user, self.token_lifetime, f"mlops job {job.id}")
            launch = self.launch_spec(job)
            (d / "launch.json").write_text(json.dumps(launch, indent=1))
            cwd = launch["cwd"] if Path(launch["cwd"]).is_dir() else str(d)
            handle = await _maybe(self.backend.start(d, cwd, self.job_env(job, token),
                                                     gpu_indices))
        except Exception as e:
            log.exception("could not start job %s", job.id)
            job.state, job.reason, job.finished_at = FAILED, f"could not start: {e}", clock.now()
            self.allocator.release("job", str(job.id))
            self.store.save(job)
            for cb in self.on_finished:
                cb(job)
            return
        handle["token_id"] = token_id
        job.handle = handle
        job.state, job.started_at = RUNNING, clock.now()
        # A backend whose scheduler picks the devices (Slurm) says so: the indices it was given
        # count quota, they name no device.
        devices = handle.pop("gpu_indices", gpu_indices)
        job.gpu_indices, job.position, job.reason = devices, None, ""
        self.store.save(job)
        log.info("job %s started (pid %s, GPUs %s)", job.id, handle.get("pid"), gpu_indices)
