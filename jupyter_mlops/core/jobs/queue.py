"""The queue: which waiting jobs and notebook servers start now, and why the others wait.

One queue for GPUs: jobs and notebook servers asking for a GPU profile while none is free
(``core.gpu_allocation.ServerRequest``) wait in the same order. Fair share: the next one to
consider belongs to the user who holds the fewest GPUs right now (by notebook servers, jobs and
deployments alike, counting what this very pass starts; then runs the fewest jobs); the
submission order breaks ties. So one user's 20 queued jobs never push a colleague's single job
or notebook back: the colleague's goes first as soon as GPUs free up. A waiting reason names
the holders as the waiting person may see them ("held by your server, by job 12 of project
alpha, by someone's server").

No starvation of large jobs: once a GPU job cannot start for lack of free devices, GPU jobs
behind it wait too (no backfilling past it), so a 2-GPU job is not overtaken forever by 1-GPU
jobs. Quotas are per user, group and project (``core.gpu_allocation``); a job blocked by its own
quota does not hold anyone else up.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..errors import QuotaExceeded
from ..gpu_allocation import NoGpuFree, ServerRequest
from .model import Job


def ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _gpus(w) -> int:
    return w.count if isinstance(w, ServerRequest) else w.spec.gpus


def _since(w) -> tuple:
    """Submission order across jobs and server requests (ids break ties)."""
    if isinstance(w, ServerRequest):
        return (w.requested_at, 1, 0, w.owner)
    return (w.submitted_at, 0, w.id, "")


def fair_order(queued: Iterable, running: Iterable[Job], held: Iterable | None = None) -> list:
    """Waiting jobs and server requests in the order fair share considers them (assuming each
    one starts). ``held``: the current GPU allocations (servers, jobs, deployments), counted per
    user; without it, the GPUs of running jobs."""
    gpus: dict[str, int] = {}
    jobs: dict[str, int] = {}
    for j in running:
        if held is None:
            gpus[j.user] = gpus.get(j.user, 0) + j.spec.gpus
        jobs[j.user] = jobs.get(j.user, 0) + 1
    for a in held or ():
        gpus[a.username] = gpus.get(a.username, 0) + 1
    left = sorted(queued, key=_since)
    out = []
    while left:
        best = min(left, key=lambda j: (gpus.get(j.user, 0), jobs.get(j.user, 0), _since(j)))
        left.remove(best)
        out.append(best)
        gpus[best.user] = gpus.get(best.user, 0) + _gpus(best)
        if not isinstance(best, ServerRequest):
            jobs[best.user] = jobs.get(best.user, 0) + 1
    return out


def held_by(allocations: Iterable, user: str,
            may_see: Callable[[str, str], bool] = lambda user, project: False) -> str:
    """"held by your server, by job 12 of project alpha, by someone's server": the holders as
    ``user`` may see them (a project only when ``may_see(user, project)``, never a name)."""
    parts: list[str] = []
    seen = set()
    for a in allocations:
        if (a.owner_kind, a.owner) in seen:
            continue
        seen.add((a.owner_kind, a.owner))
        mine = a.username == user
        project = (f" of project {a.project}"
                   if a.project and (mine or may_see(user, a.project)) else "")
        if a.owner_kind == "server":
            text = "your server" if mine else "someone's server"
        elif a.owner_kind == "job":
            text = (f"your job {a.owner}{project}" if mine else
                    f"job {a.owner}{project}" if project else "a job of another project")
        else:
            text = (f"your deployment {a.owner}" if mine else
                    f"deployment {a.owner}{project}" if project else "a deployment")
        parts.append(text)
    return "held by " + ", by ".join(parts) if parts else ""


@dataclass
class Decision:
    job: "Job | ServerRequest"
    start: bool
    gpu_indices: list
    position: int | None = None
    reason: str = ""


def plan(queued: list[Job], running: list[Job], *,
         allocate: Callable[[Job], list], availability: Callable[[], dict],
         max_cpu_jobs: int, servers: Iterable[ServerRequest] = (),
         holders: Callable[[], list] | None = None,
         may_see: Callable[[str, str], bool] = lambda user, project: False) -> list[Decision]:
    """Decide for every queued job and waiting server: start it (with the GPUs ``allocate``
    gave) or wait (why).

    ``allocate(job_or_server)`` returns GPU indices or raises :class:`QuotaExceeded` /
    ``NoGpuFree``; ``holders()`` the current allocations (fair share counts them, reasons name
    them as ``may_see`` allows).
    """
    decisions = []
    cpu_running = sum(1 for j in running if j.spec.gpus == 0)
    gpu_blocked = False
    gpu_waiting = cpu_waiting = 0
    held = holders() if holders else None
    for job in fair_order([*queued, *servers], running, held):
        if _gpus(job) == 0:
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
        who = held_by(holders(), job.user, may_see) if holders else ""
        decisions.append(Decision(
            job, False, [], gpu_waiting,
            f"waiting for {_plural(_gpus(job), 'GPU')}: {in_use} of {avail['total']} in use"
            f"{f' ({who})' if who else ''}, you are {ordinal(gpu_waiting)}"))
    return decisions
