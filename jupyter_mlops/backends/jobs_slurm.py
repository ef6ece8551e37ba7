"""Jobs as Slurm batch jobs: the scale-out backend for clusters without Kubernetes.

Each job (a training run, a sweep trial, a pipeline step, a batch prediction) becomes one
``sbatch`` job running the same wrapper as a local job (``python -m
jupyter_mlops.backends.job_wrapper JOB_DIR``), so logs, progress and the outcome are files in the
job directory, read exactly as for local jobs. That needs the job directories, the users'
workspaces and the shared dataset on a filesystem every node mounts at the same paths (see
docs/slurm.md).

- Who runs it: ``sbatch`` is run as the user's own account (``jm-alice``, :mod:`.accounts`),
  so Slurm runs, accounts and limits the job as that user (the accounts must exist with the
  same uid on every node). Without root, as the control plane's user.
- GPUs: ``--gres=gpu:N`` (``gpu:TYPE:N`` with a GPU type); Slurm picks the node and the devices
  and sets ``CUDA_VISIBLE_DEVICES``. The platform keeps quotas and projects: the runner counts
  the job's GPUs against them before submitting (:class:`SlurmGpuSlots`), then Slurm places it.
- Secrets: the job's environment (its MLflow token among it) is written to ``JOB_DIR/env.sh``,
  readable by the job's account only, and sourced by the batch script, never put on a command
  line or in Slurm's job record (``--export=NONE``).
- While it waits: :meth:`SlurmJobBackend.waiting_reason` is squeue's reason and place.
- Cancel: ``scancel`` (SIGTERM, then SIGKILL after Slurm's ``KillWait``); the wrapper ends the
  job's MLflow run as KILLED on SIGTERM.
- How it ended, and when: ``exit.json`` written by the wrapper, else Slurm's record; start and
  end times and the GPUs held come from Slurm's record (sacct, else the ``jobcomp/filetxt``
  file, else ``scontrol show job``: :mod:`.slurm_records`), so GPU-hours in usage count the time
  the job ran, not the time it waited.

The handle kept in the database is ``{"backend": "slurm", "slurm_job_id": "17"}``: a restarted
control plane finds the job again by its id.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

from traitlets import Dict, Float, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..core import clock
from ..core.gpu_allocation import GpuAllocator
from ..core.gpus import Gpu, InventoryReading
from .accounts import UserAccounts
from .jobs_local import Exit, open_job_log, read_exit, read_progress, read_run_info, run_as
from .slurm_records import (ACTIVE_STATES, ENDINGS, SACCT_FIELDS, SQUEUE_FORMAT, SlurmRecord, parse_jobcomp,
                            parse_sacct, parse_scontrol_job, parse_squeue, waiting_reason)


class SlurmError(RuntimeError):
    """A Slurm command failed (the message has its words)."""


def sbatch_args(*, job_id: int, job_dir: str, cwd: str, gpus: int = 0, gpu_type: str = "",
                cpus: int = 1, memory: str = "", time_limit: int = 0, partition: str = "",
                account: str = "", qos: str = "", extra: tuple = ()) -> list[str]:
    """The ``sbatch`` options of one job (pure: tests compare them with a literal list).

    ``time_limit`` is in seconds (0: the partition's); Slurm counts whole minutes, and gets one
    more than the platform's limit, so the platform stops the job first (ending its MLflow run
    with the reason) and Slurm's limit is the backstop.
    """
    args = ["--parsable", f"--job-name=mlops-job-{int(job_id)}",
            f"--output={job_dir}/output.log", f"--chdir={cwd}", "--export=NONE",
            "--no-requeue", "--open-mode=append", f"--cpus-per-task={int(cpus)}"]
    if gpus:
        args.append(f"--gres=gpu:{gpu_type}:{gpus}" if gpu_type else f"--gres=gpu:{gpus}")
    if memory:
        args.append(f"--mem={memory}")
    if time_limit:
        args.append(f"--time={math.ceil(time_limit / 60) + 1}")
    for flag, value in (("--partition", partition), ("--account", account), ("--qos", qos)):
        if value:
            args.append(f"{flag}={value}")
    return args + list(extra)


def batch_script(*, python: str, job_dir: str) -> str:
    """The batch script: the job's environment from its private file, then the wrapper."""
    d = shlex.quote(job_dir)
    return ("#!/bin/sh\n"
            "# jupyter-mlops job: environment (with the job's token) from a file only the job's\n"
            "# account reads, so it is in no command line and no Slurm record.\n"
            f"set -a\n. {d}/env.sh\nset +a\n"
            f"exec {shlex.quote(python)} -m jupyter_mlops.backends.job_wrapper {d}\n")


def env_file(env: dict) -> str:
    return "".join(f"{k}={shlex.quote(str(v))}\n" for k, v in sorted(env.items())
                   if k.isidentifier())


class SlurmGpuSlots:
    """The GPU inventory the job queue allocates from when Slurm places the jobs.

    Not devices: ``slots`` tokens standing for GPUs asked of Slurm (running or waiting in its
    queue), so the platform's quotas (user, group, project) count them as they count devices,
    and GPU-hours are kept, while Slurm decides where and when each job runs. Their ids
    (``slurm-gpu-slot-N``) never collide with a device's of the hub machine.
    """

    def __init__(self, slots: int):
        self.slots = slots

    def read(self) -> InventoryReading:
        return InventoryReading(
            [Gpu(index=i, uuid=f"slurm-gpu-slot-{i}", name="GPU asked of Slurm",
                 memory_total_mb=0) for i in range(self.slots)],
            source="slurm", reason="" if self.slots else "SlurmJobBackend.gpu_slots is 0")


class SlurmSlotAllocator(GpuAllocator):
    """The job runner's allocator when Slurm places jobs: jobs get :class:`SlurmGpuSlots`
    (quota-checked, any GPU type: the type goes to Slurm as GRES), while everything else the
    runner hands out (user servers waiting in the shared GPU queue) still gets the hub
    machine's devices from ``devices``. One database: quotas count both."""

    def __init__(self, db, slots: int, devices: GpuAllocator):
        super().__init__(db, SlurmGpuSlots(slots))
        self.devices = devices

    def allocate(self, owner_kind: str, owner: str, **kw):
        if owner_kind != "job":
            return self.devices.allocate(owner_kind, owner, **kw)
        kw["device_filter"] = None  # a GPU type is Slurm's to match (GRES type)
        return super().allocate(owner_kind, owner, **kw)

    def availability(self, device_filter: str | None = None) -> dict:
        return super().availability(None)


class SlurmJobBackend(LoggingConfigurable):
    """Start, watch and stop jobs as Slurm batch jobs (``c.SlurmJobBackend.*``)."""

    name = "slurm"
    # A submitted job waits in Slurm's queue: the runner starts its clock once it runs.
    queues_jobs = True

    slurm_conf = Unicode(
        "",
        help="""The ``slurm.conf`` Slurm's commands read (passed as ``$SLURM_CONF``). Empty:
        Slurm's own default (``/etc/slurm/slurm.conf``), right on a cluster's submit host.""",
    ).tag(config=True)

    partition = Unicode("", help="Partition jobs are submitted to (empty: the default one).").tag(
        config=True)

    account = Unicode(
        "", help="""Slurm account jobs are charged to (``--account``; empty: each user's default
        account in slurmdbd).""").tag(config=True)

    qos = Unicode("", help="Quality of service of the jobs (``--qos``; empty: the default).").tag(
        config=True)

    gpu_type = Unicode(
        "",
        help="""GRES type of the GPUs asked for, e.g. ``"a100"`` -> ``--gres=gpu:a100:N``
        (as in the cluster's ``gres.conf``). Empty: ``--gres=gpu:N``, any type. A job asking
        for a GPU type of its own uses that one.""",
    ).tag(config=True)

    gres_types = Dict(
        {},
        help="""A job's GPU type (as users write it, e.g. ``"A100"``) -> the GRES type in the
        cluster's ``gres.conf``, e.g. ``{"A100": "a100_80g"}``. Types not listed are
        lower-cased (``A100`` -> ``a100``), as ``MlopsSlurmSpawner.gres_types``.""",
    ).tag(config=True)

    cpus = Integer(
        0,
        help="""CPUs per job (``--cpus-per-task``). 0: ``c.JobSettings.cpu_limit`` rounded up,
        or 1 when that is not set either. Data loaders want several: e.g. ``8``.""",
    ).tag(config=True)

    memory = Unicode(
        "",
        help="""Memory per job as Slurm writes it (``--mem``, e.g. ``"32G"``). Empty:
        ``c.JobSettings.memory_limit`` if set, else the partition's default.""",
    ).tag(config=True)

    extra_options = List(
        Unicode(),
        help="""More ``sbatch`` options for every job, e.g. ``["--constraint=ib"]``.""",
    ).tag(config=True)

    python = Unicode(
        help="""Interpreter of the jobs on the compute nodes (the users' environment, the same
        path on every node). Defaults to ``c.JobSettings.python``.""",
    ).tag(config=True)

    gpu_slots = Integer(
        256,
        help="""GPUs the platform's jobs may ask of Slurm at once, running or waiting in its
        queue. Beyond it, jobs wait in the platform's own queue (and are not submitted), so
        a sweep of hundreds of trials does not flood the cluster's queue. Quotas apply on top.
        """,
    ).tag(config=True)

    jobcomp_file = Unicode(
        "",
        help="""The ``jobcomp/filetxt`` file (``JobCompLoc``) read for finished jobs' records
        when ``sacct`` has no accounting database. Empty: asked of ``scontrol show config``.
        """,
    ).tag(config=True)

    command_timeout = Float(
        30.0, help="""Seconds a Slurm command may take before it counts as failed (slurmctld
        busy or unreachable: the job keeps its state and is asked again next pass).""",
    ).tag(config=True)

    queue_cache_seconds = Float(
        0.5, help="""How long one ``squeue`` reading serves every job's poll: one call per
        runner pass instead of one per job.""",
    ).tag(config=True)

    @default("python")
    def _default_python(self):
        return self._job_python

    def __init__(self, accounts: UserAccounts | None = None, cpu_limit: float = 0,
                 memory_limit: int = 0, python_default: str = sys.executable, **kw):
        self._job_python = python_default  # c.JobSettings.python; the trait's wins
        super().__init__(**kw)
        self.accounts = accounts
        self.cpu_limit = cpu_limit
        self.memory_limit = memory_limit
        self.on_exit = None
        self._queue: tuple[float, dict] = (0.0, {})
        self._waiting: dict[str, str] = {}
        self._cancelled: set[str] = set()
        self._jobcomp: str | None = None

    # --- commands -----------------------------------------------------------------------------

    def env(self) -> dict:
        env = dict(os.environ)
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        return env

    async def _run(self, *cmd: str, stdin: str | None = None, check: bool = True,
                   **kw) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE if stdin is not None else
            asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self.env(), **kw)
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None),
                self.command_timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise SlurmError(f"{cmd[0]} did not answer within {self.command_timeout:g} s")
        out_s, err_s = out.decode(errors="replace"), err.decode(errors="replace").strip()
        if check and proc.returncode != 0:
            raise SlurmError(f"{cmd[0]} failed: {err_s or out_s.strip() or proc.returncode}")
        return proc.returncode, out_s, err_s

    # --- starting -----------------------------------------------------------------------------

    def _cpus(self) -> int:
        return self.cpus or max(1, math.ceil(self.cpu_limit or 1))

    def _memory(self) -> str:
        if self.memory:
            return self.memory
        return f"{math.ceil(self.memory_limit / 2**20)}M" if self.memory_limit else ""

    def gres_type(self, gpu_type: str) -> str:
        """The GRES type of a job's GPU type ("" : ``gpu_type`` trait, maybe empty)."""
        if not gpu_type:
            return self.gpu_type
        return self.gres_types.get(gpu_type, gpu_type.lower())

    async def start(self, job_dir: Path, cwd: str, env: dict, gpu_indices: list[int]) -> dict:
        job_dir = Path(job_dir)
        launch = json.loads((job_dir / "launch.json").read_text())
        # The same account, directory rules and environment as a local job's.
        account, env, popen_kw = run_as(job_dir, self.accounts, self.python, env)
        # Slurm appends to the log as the job's user: group-writable.
        os.close(open_job_log(job_dir, account, 0o660 if account is not None else 0o600))
        # The job's environment, private to its account: O_EXCL, no link followed.
        fd = os.open(job_dir / "env.sh", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o640 if account is not None else 0o600)
        with os.fdopen(fd, "w") as f:
            if account is not None:
                os.fchown(f.fileno(), 0, account.gid)
            f.write(env_file(env))
        args = sbatch_args(job_id=launch["job_id"], job_dir=str(job_dir), cwd=cwd,
                           gpus=len(gpu_indices),
                           gpu_type=self.gres_type(launch.get("gpu_type") or ""),
                           cpus=self._cpus(), memory=self._memory(),
                           time_limit=int(launch.get("time_limit") or 0),
                           partition=self.partition, account=self.account, qos=self.qos,
                           extra=tuple(self.extra_options))
        try:
            _, out, _ = await self._run("sbatch", *args, stdin=batch_script(
                python=self.python, job_dir=str(job_dir)), cwd=cwd, **popen_kw)
            slurm_id = out.strip().split(";")[0]  # "17" or "17;cluster"
            if not slurm_id.isdigit():
                raise SlurmError(f"sbatch answered {out.strip()!r}, not a job id")
        except BaseException:
            (job_dir / "env.sh").unlink(missing_ok=True)  # no job will read it
            raise
        self._queue = (0.0, {})  # the next poll reads the queue again
        self.log.info("job %s submitted to Slurm as %s (%s)", launch["job_id"], slurm_id,
                      " ".join(args))
        # Slurm picks the node and devices: the slot indices name none (gpu_indices: none known)
        return {"backend": self.name, "slurm_job_id": slurm_id, "gpus": len(gpu_indices),
                "gpu_indices": []}

    # --- watching -----------------------------------------------------------------------------

    async def _read_queue(self) -> dict:
        at, queue = self._queue
        if time.monotonic() - at < self.queue_cache_seconds:
            return queue
        _, out, _ = await self._run("squeue", "-h", "-a", "-t", "all", "-o", SQUEUE_FORMAT)
        queue = parse_squeue(out)
        self._queue = (time.monotonic(), queue)
        return queue

    async def poll(self, job_dir: Path, handle: dict) -> Exit | None:
        """``None`` while the job waits or runs (:meth:`waiting_reason` says which); how it
        ended, with Slurm's times, once it has."""
        sid = handle["slurm_job_id"]
        queue = await self._read_queue()
        entry = queue.get(sid)
        if entry is not None and entry.state in ("PENDING", "REQUEUED", "REQUEUE_HOLD"):
            self._waiting[sid] = waiting_reason(entry, queue)
            return None
        if entry is not None and entry.state == "SUSPENDED":
            self._waiting[sid] = "suspended by Slurm"
            return None
        self._waiting.pop(sid, None)
        if entry is not None and entry.state in ACTIVE_STATES:
            return None
        record = await self.record(sid)
        if record is not None and not record.ended:
            return None
        self._cancelled.discard(sid)
        return self._outcome(Path(job_dir), handle, record)

    def _outcome(self, job_dir: Path, handle: dict, record: SlurmRecord | None) -> Exit:
        ex = read_exit(job_dir)
        if record is None:
            ex = ex or Exit("failed", f"Slurm no longer knows job {handle['slurm_job_id']}")
        elif ex is None:
            status, why = ENDINGS.get(record.state, ("failed", ""))
            if record.state == "COMPLETED":
                why = "the job ended without recording an outcome"
            elif record.state == "FAILED" and record.exit_code:
                why = f"failed in Slurm with exit code {record.exit_code}"
            ex = Exit(status, f"{why or record.state}; see its log", record.exit_code)
        elif record.state in ("TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED") \
                and ex.status != "succeeded":
            ex.error = f"{ENDINGS[record.state][1]}; {ex.error}" if ex.error \
                else ENDINGS[record.state][1]
        if record is not None:
            if record.started_at is None:  # it never ran: no GPU time at all
                record.started_at = record.ended_at = record.ended_at or clock.now()
            ex.started_at, ex.finished_at = record.started_at, record.ended_at
            # Without slurmdbd a record has no GRES count (Slurm accounts gres/gpu only with
            # it): then the GPUs the job asked for, which Slurm allocated to start it.
            record.gpus = record.gpus or int(handle.get("gpus") or 0)
            handle["accounting"] = {"source": record.source, "gpus": record.gpus,
                                    "gpu_hours": round(record.gpu_hours(), 6)}
        (job_dir / "env.sh").unlink(missing_ok=True)  # the token in it is revoked now anyway
        return ex

    async def record(self, slurm_id: str) -> SlurmRecord | None:
        """Slurm's record of a job: sacct, else the jobcomp file, else scontrol (see
        :mod:`.slurm_records`); None when none of them knows it."""
        code, out, err = await self._run("sacct", "-n", "-P", "-X", "-j", slurm_id, "-o",
                                         ",".join(SACCT_FIELDS), check=False)
        if code == 0 and (rec := parse_sacct(out, slurm_id)) is not None:
            return rec
        path = await self._jobcomp_path()
        if path:
            try:
                rec = parse_jobcomp(Path(path).read_text(errors="replace"), slurm_id)
            except OSError:
                rec = None
            if rec is not None:
                return rec
        code, out, _ = await self._run("scontrol", "show", "job", "-o", slurm_id, check=False)
        return parse_scontrol_job(out) if code == 0 else None

    async def _jobcomp_path(self) -> str:
        if self.jobcomp_file:
            return self.jobcomp_file
        if self._jobcomp is None:
            code, out, _ = await self._run("scontrol", "show", "config", check=False)
            conf = {}
            for line in out.splitlines():
                key, _, value = line.partition("=")
                conf[key.strip()] = value.strip()
            self._jobcomp = conf.get("JobCompLoc", "") \
                if conf.get("JobCompType") == "jobcomp/filetxt" else ""
        return self._jobcomp

    def waiting_reason(self, handle: dict) -> str:
        """Why the job has not started in Slurm, as of the last poll ("" once it runs)."""
        return self._waiting.get(handle.get("slurm_job_id", ""), "")

    # --- stopping -----------------------------------------------------------------------------

    async def stop(self, handle: dict) -> None:
        """``scancel`` once: Slurm sends SIGTERM, then SIGKILL after its ``KillWait``."""
        sid = handle.get("slurm_job_id")
        if not sid or sid in self._cancelled:
            return
        code, _, err = await self._run("scancel", sid, check=False)
        if code != 0:  # e.g. it has just ended: the next poll reads how
            self.log.warning("scancel %s: %s", sid, err)
        self._cancelled.add(sid)
        self._queue = (0.0, {})

    # --- files the wrapper writes -------------------------------------------------------------

    def progress(self, job_dir: Path) -> dict:
        return read_progress(job_dir)

    def run_info(self, job_dir: Path) -> dict:
        return read_run_info(job_dir)
