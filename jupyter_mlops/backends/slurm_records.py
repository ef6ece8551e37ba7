"""What Slurm says about a job, read from its commands' output: pure parsers, no I/O.

Three places know how a finished job ended, tried in this order by the backend:

* ``sacct`` (the accounting database, slurmdbd): the record every real cluster has;
* the ``jobcomp/filetxt`` file (``JobCompLoc``): one line per finished job, no database;
* ``scontrol show job`` (the job's own record in slurmctld): kept only ``MinJobAge`` seconds
  (300 by default) after the job ended.

Each gives a :class:`SlurmRecord`; the GPUs a job held come from its TRES (``gres/gpu=N``,
present when the cluster accounts GPUs: ``AccountingStorageTRES=gres/gpu``), else from what it
asked for (``TresPerNode=gres:gpu:a100:1``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

# Job states of ``squeue``/``sacct`` in which the job has not ended (ref:
# https://slurm.schedmd.com/squeue.html#SECTION_JOB-STATE-CODES).
ACTIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
                 "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT",
                 "STOPPED", "RESV_DEL_HOLD"}

# squeue's reason codes a waiting job most often has, in the lab's words (ref:
# https://slurm.schedmd.com/resource_limits.html#reasons and squeue(1) "JOB REASON CODES").
REASONS = {
    "Priority": "other jobs with a higher priority are ahead of it",
    "Resources": "the GPUs, CPUs or memory it asks for are in use",
    "QOSMaxGRESPerUser": "you use as many GPUs as your QOS allows",
    "QOSMaxJobsPerUserLimit": "you run as many jobs as your QOS allows",
    "AssocGrpGRES": "your account's GPU limit is reached",
    "ReqNodeNotAvail": "the node it needs is not available",
    "PartitionTimeLimit": "its time limit is beyond the partition's",
    "Dependency": "it waits for another job",
    "BeginTime": "its start time has not come yet",
    "JobHeldAdmin": "an administrator holds it",
    "JobHeldUser": "it is held",
    "None": "it has not been considered yet",
}

# Terminal states and how the platform words them (ref: sacct(1) "JOB STATE CODES").
ENDINGS = {
    "CANCELLED": ("cancelled", "cancelled in Slurm"),
    "TIMEOUT": ("failed", "Slurm stopped it at its time limit"),
    "OUT_OF_MEMORY": ("failed", "out of memory (Slurm stopped it)"),
    "NODE_FAIL": ("failed", "its Slurm node failed"),
    "PREEMPTED": ("failed", "preempted by Slurm"),
    "BOOT_FAIL": ("failed", "its Slurm node failed to boot"),
    "DEADLINE": ("failed", "Slurm's deadline for it passed"),
    "FAILED": ("failed", "failed in Slurm"),
}


@dataclass
class SlurmRecord:
    """A job as Slurm recorded it; ``source`` names where (sacct | jobcomp | scontrol)."""

    job_id: str
    state: str
    exit_code: int | None = None
    signal: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    gpus: int = 0
    source: str = ""

    @property
    def ended(self) -> bool:
        return self.state not in ACTIVE_STATES

    def gpu_hours(self) -> float:
        if self.started_at is None or self.ended_at is None:
            return 0.0
        return self.gpus * max(self.ended_at - self.started_at, 0.0) / 3600.0


def _time(value: str) -> float | None:
    """Slurm's local ISO time (``2026-12-02T03:51:34``), or None for Unknown/None/N/A."""
    try:
        return datetime.fromisoformat(value).timestamp()
    except (TypeError, ValueError):
        return None


def _exit(value: str) -> tuple[int | None, int | None]:
    """``"1:0"`` -> (1, 0): exit code and the signal that ended it."""
    m = re.match(r"^(\d+):(\d+)$", value or "")
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


def gpus_of_tres(tres: str) -> int:
    """GPUs in a TRES string: ``cpu=1,gres/gpu=2`` or ``gres/gpu:a100=2`` or
    ``gres:gpu:a100:2`` (what a job asked per node)."""
    total = 0
    for part in (tres or "").split(","):
        m = re.match(r"^gres/gpu(?::[^=]+)?=(\d+)$", part.strip())
        if m and ":" not in part.split("=")[0]:
            return int(m.group(1))  # the untyped total, when present, counts each GPU once
        if m:
            total += int(m.group(1))
            continue
        m = re.match(r"^gres[:/]gpu(?::[^:]+)?:(\d+)$", part.strip())
        if m:
            total += int(m.group(1))
    return total


def _pairs(text: str) -> dict:
    """``Key=Value`` pairs of an ``scontrol``/jobcomp line (values have no spaces there)."""
    return dict(m.groups() for m in re.finditer(r"(\S+?)=(\S*)", text))


def _record(fields: dict, source: str) -> SlurmRecord:
    code, sig = _exit(fields.get("ExitCode", ""))
    state = (fields.get("JobState") or fields.get("State") or "").split()[0] \
        if (fields.get("JobState") or fields.get("State")) else "UNKNOWN"
    gpus = gpus_of_tres(fields.get("AllocTRES") or fields.get("Tres") or
                        fields.get("TRES") or "") or gpus_of_tres(fields.get("TresPerNode", ""))
    return SlurmRecord(job_id=fields.get("JobId") or fields.get("JobID") or "",
                       state=state, exit_code=code, signal=sig,
                       started_at=_time(fields.get("StartTime") or fields.get("Start") or ""),
                       ended_at=_time(fields.get("EndTime") or fields.get("End") or ""),
                       gpus=gpus, source=source)


SACCT_FIELDS = ("JobID", "State", "ExitCode", "Start", "End", "AllocTRES")


def parse_sacct(text: str, job_id: str) -> SlurmRecord | None:
    """``sacct -n -P -X -j ID -o JobID,State,ExitCode,Start,End,AllocTRES`` output."""
    for line in text.splitlines():
        values = line.split("|")
        if len(values) == len(SACCT_FIELDS) and values[0] == job_id:
            fields = dict(zip(SACCT_FIELDS, values))
            # "CANCELLED by 1001": the state is the first word
            fields["State"] = fields["State"].split()[0] if fields["State"] else "UNKNOWN"
            return _record(fields, "sacct")
    return None


def parse_jobcomp(text: str, job_id: str) -> SlurmRecord | None:
    """The last line of ``job_id`` in a ``jobcomp/filetxt`` file (a requeued job has more)."""
    found = None
    for line in text.splitlines():
        if line.startswith(f"JobId={job_id} "):
            found = line
    return _record(_pairs(found), "jobcomp") if found else None


def parse_scontrol_job(text: str) -> SlurmRecord | None:
    """``scontrol show job ID`` output (``None`` when it names no job)."""
    fields = _pairs(text)
    return _record(fields, "scontrol") if fields.get("JobId") else None


@dataclass
class QueueEntry:
    """One line of ``squeue -h -a -t all -o "%i|%T|%r|%Q|%P"``."""

    job_id: str
    state: str
    reason: str
    priority: int
    partition: str


SQUEUE_FORMAT = "%i|%T|%r|%Q|%P"


def parse_squeue(text: str) -> dict[str, QueueEntry]:
    out = {}
    for line in text.splitlines():
        values = line.strip().split("|")
        if len(values) != 5:
            continue
        try:
            priority = int(values[3])
        except ValueError:
            priority = 0
        out[values[0]] = QueueEntry(values[0], values[1], values[2], priority, values[4])
    return out


def waiting_reason(entry: QueueEntry, queue: dict[str, QueueEntry]) -> str:
    """Why a pending job waits, with its place among the pending jobs of its partition:
    ``"waiting in Slurm's queue (Resources: the GPUs ... in use), 2nd of 3"``."""
    from ..core.jobs.queue import ordinal

    pending = sorted((e for e in queue.values()
                      if e.state == "PENDING" and e.partition == entry.partition),
                     key=lambda e: (-e.priority, int(e.job_id) if e.job_id.isdigit() else 0))
    place = next((i for i, e in enumerate(pending, 1) if e.job_id == entry.job_id), 0)
    words = REASONS.get(entry.reason, "")
    why = f"{entry.reason}: {words}" if words else entry.reason
    where = f", {ordinal(place)} of {len(pending)} waiting in partition {entry.partition}" \
        if place else ""
    return f"waiting in Slurm's queue ({why}){where}"
