"""The queue: which waiting jobs start now, and why each of the others waits.

Fair share: among waiting jobs, the next one to consider belongs to the user who holds the
fewest GPUs (then runs the fewest jobs) right now, counting what this very pass starts; the
submission order breaks ties. So one user's 20 queued jobs never push a colleague's single job
back: the colleague's goes first as soon as GPUs free up.

No starvation of large jobs: once a GPU job cannot start for lack of free devices, GPU jobs
behind it wait too (no backfilling past it), so a 2-GPU job is not overtaken forever by 1-GPU
jobs. Quotas are per user, group and project (``core.gpu_allocation``); a job blocked by its own
quota does not hold anyone else up.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..errors import QuotaExceeded
from ..gpu_allocation import NoGpuFree
from .model import Job


def ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def fair_order(queued: Iterable[Job], running: Iterable[Job]) -> list[Job]:
    """Waiting jobs in the order fair share considers them (assuming each one starts)."""
    gpus: dict[str, int] = {}
    jobs: dict[str, int] = {}
    for j in running:
        gpus[j.user] = gpus.get(j.user, 0) + j.spec.gpus
        jobs[j.user] = jobs.get(j.user, 0) + 1
    left = sorted(queued, key=lambda j: (j.submitted_at, j.id))
    out = []
    while left:
        best = min(left, key=lambda j: (gpus.get(j.user, 0), jobs.get(j.user, 0),
                                        j.submitted_at, j.id))
        left.remove(best)
        out.append(best)
        gpus[best.user] = gpus.get(best.user, 0) + best.spec.gpus
        jobs[best.user] = jobs.get(best.user, 0) + 1
    return out


@dataclass
class Decision:
    job: Job
    start: bool
    gpu_indices: list
    position: int | None = None
    reason: str = ""


def plan(queued: list[Job], running: list[Job], *,
         allocate: Callable[[Job], list], availability: Callable[[], dict],
         max_cpu_jobs: int) -> list[Decision]:
    """Decide for every queued job: start it (with the GPUs ``allocate`` gave) or wait (why).

    ``allocate(job)`` returns GPU indices or raises :class:`QuotaExceeded` / ``NoGpuFree``.
    """
    decisions = []
    cpu_running = sum(1 for j in running if j.spec.gpus == 0)
    gpu_blocked = False
    gpu_waiting = cpu_waiting = 0
    for job in fair_order(queued, running):
        if job.spec.gpus == 0:
            if cpu_running < max_cpu_jobs:
                cpu_running += 1
                decisions.append(Decision(job, True, []))
            else:
                cpu_waiting += 1
                decisions.append(Decision(
                    job, False, [], cpu_waiting,
                    f"waiting for a job slot: {cpu_running} of {max_cpu_jobs} CPU jobs "
                    f"running, you are {ordinal(cpu_waiting)}"))
            continue
        if not gpu_blocked:
            try:
                indices = allocate(job)
            except QuotaExceeded as e:
                q = e.details.get("quota") or {}
                who = {"user": "you use" if q.get("name") == job.user
                       else f"user {q.get('name')} uses",
                       "group": f"group {q.get('name')} uses",
                       "project": f"project {q.get('name')} uses"}.get(q.get("kind"), "")
                reason = (f"{who} {q.get('in_use')} of {'your' if who == 'you use' else 'its'} "
                          f"{_plural(q.get('limit', 0), 'GPU')}" if who else e.message)
                decisions.append(Decision(job, False, [], None, reason))
                continue
            except NoGpuFree:
                gpu_blocked = True
            else:
                decisions.append(Decision(job, True, indices))
                continue
        gpu_waiting += 1
        avail = availability()
        in_use = avail["total"] - avail["free"]
        decisions.append(Decision(
            job, False, [], gpu_waiting,
            f"waiting for {_plural(job.spec.gpus, 'GPU')}: {in_use} of {avail['total']} in use, "
            f"you are {ordinal(gpu_waiting)}"))
    return decisions
