"""What a project manager follows on a project: milestones, GPU-hours, the best metric over
time, jobs by state and the project's deployments (``GET /api/projects/{name}/progress`` and the
project page).

Reads other capabilities only through their public queries (``JobStore.counts_by_state``,
``recent``, ``finished_metrics``; ``Deployments.recent``); a capability the control plane was
started without answers ``None`` in its part.
"""
from __future__ import annotations

import re

from .projects import Projects
from .roles import Caller

LOWER_IS_BETTER = re.compile(r"loss|error|err$|rmse|mae|mse", re.I)
RECENT_JOBS = 10
DAYS = (7, 30)  # GPU-hours windows


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def best_metric(jobs: list[dict], metric: str | None = None) -> dict | None:
    """Best-so-far of one metric over the project's finished jobs, in time order.

    ``jobs`` are job records (``finished_at``, ``metrics``, ``id``). The metric defaults to the
    one most jobs report; lower is better for names like loss/error/rmse, higher otherwise.
    """
    done = [j for j in jobs if j.get("finished_at") and isinstance(j.get("metrics"), dict)
            and j["metrics"]]
    if not done:
        return None
    if metric is None:
        counts: dict[str, int] = {}
        for j in done:
            for k, v in j["metrics"].items():
                if _number(v):
                    counts[k] = counts.get(k, 0) + 1
        if not counts:
            return None
        metric = sorted(counts, key=lambda k: (-counts[k], k))[0]
    lower = bool(LOWER_IS_BETTER.search(metric))
    points, best = [], None
    for j in sorted(done, key=lambda j: j["finished_at"]):
        v = j["metrics"].get(metric)
        if not _number(v):
            continue
        if best is None or (v < best["value"] if lower else v > best["value"]):
            best = {"at": j["finished_at"], "value": v, "job": j["id"]}
            points.append(best)
    return {"name": metric, "direction": "min" if lower else "max", "points": points,
            "best": best}


class ProjectProgress:
    """A project's progress report for its members.

    Parameters
    ----------
    projects
        Membership and milestones.
    usage
        ``core.usage.UsageLedger`` (GPU-hours per project), or ``None``: 0 hours.
    jobs
        ``core.jobs.store.JobStore``, or ``None`` when jobs do not run here.
    deployments
        ``core.deployments.Deployments``, or ``None`` when models are not served here.
    """

    def __init__(self, projects: Projects, *, usage=None, jobs=None, deployments=None):
        self.projects = projects
        self.usage = usage
        self.jobs = jobs
        self.deployments = deployments

    def report(self, caller: Caller, name: str, metric: str | None = None) -> dict:
        self.projects.require_member(caller, name)
        # one read of the usage for both windows
        hours = self.usage.report(DAYS)["projects"].get(name, {}) if self.usage else {}
        out = {
            "milestones": [m.to_dict() for m in self.projects.milestones(name)],
            "gpu_hours": {f"{d}d": hours.get(f"{d}d", 0.0) for d in DAYS},
            "jobs": None, "deployments": None, "best_metric": None,
        }
        if self.jobs is not None:
            recent = [{k: j[k] for k in ("id", "username", "state", "submitted_at")}
                      for j in self.jobs.recent(project=name, limit=RECENT_JOBS)]
            out["jobs"] = {"by_state": self.jobs.counts_by_state(name), "recent": recent}
            out["best_metric"] = best_metric(self.jobs.finished_metrics(name), metric)
        if self.deployments is not None:
            out["deployments"] = [
                {k: d[k] for k in ("name", "model_name", "model_version", "status", "updated_at")}
                for d in self.deployments.recent(project=name)]
        return out
