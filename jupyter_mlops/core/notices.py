"""What the platform tells people, and whom: the events behind the lab's notification feed.

Each function turns one domain event into calls of ``notify(users, kind, message, link)``
(:meth:`jupyter_mlops.core.notifications.Notifications.notify`):

* a job, sweep or pipeline of yours ended (succeeded, failed; cancelled or stopped by someone
  else). Trials of a sweep and steps of a pipeline are not announced one by one: the sweep or
  pipeline is, once;
* your deployment was changed by someone else (switched, approved, rejected, deleted);
* a deploy waits for your approval (the managers of its project).

Telling people must never break what happened: a failing notify is logged, not raised.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable

log = logging.getLogger("jupyter_mlops.notices")

Notify = Callable[..., object]


def _safely(notify: Notify, users: Iterable[str], kind: str, message: str,
            link: str | None) -> None:
    try:
        notify(list(users), kind, message, link=link)
    except Exception:  # the event happened; only the telling failed
        log.exception("could not notify %s of %s", list(users), kind)


def _job_title(job) -> str:
    return job.spec.name or job.spec.path


def job_ended(notify: Notify, job) -> None:
    """``job`` reached its final state (``core.jobs.model.Job``)."""
    if job.sweep_id is not None or job.pipeline_id is not None:
        return  # the sweep or pipeline says it once, when it ends
    by_other = [c for c in job.changes if c.get("by_other")]
    if job.state in ("succeeded", "failed"):
        why = f": {job.reason}" if job.state == "failed" and job.reason else ""
        message = f"Job {job.id} ({_job_title(job)}) {job.state}{why}"
    elif job.state in ("cancelled", "pruned") and by_other:
        message = f"Job {job.id} ({_job_title(job)}) was stopped by {by_other[-1].get('actor')}"
    else:
        return  # your own cancel: you know
    _safely(notify, [job.user], f"job.{job.state}", message, f"mlops:jobs/{job.id}")


def group_ended(notify: Notify, kind: str, group: dict) -> None:
    """A sweep or pipeline (``kind``) reached ``group["state"]``."""
    state = group.get("state")
    if state not in ("succeeded", "failed"):
        return
    title = group.get("name") or group.get("experiment") or ""
    message = f"{kind.capitalize()} {group['id']}{f' ({title})' if title else ''} {state}"
    if kind == "sweep" and state == "succeeded" and group.get("best"):
        best = group["best"]
        message += f": best {group.get('metric', 'value')} {best.get('value'):.4g}" \
            f" (trial {best.get('number')})"
    _safely(notify, [group["user"]], f"{kind}.{state}", message,
            f"mlops:{kind}s/{group['id']}")


# What a deployment's event says to its owner when someone else caused it.
_DEPLOYMENT_WORDS = {
    "switched": "switched your deployment {name} to version {version}",
    "approved": "approved version {version} of your deployment {name}",
    "rejected": "rejected version {version} of your deployment {name}",
    "deleted": "deleted your deployment {name}",
}


def deployment_event(notify: Notify, *, name: str, owner: str, actor: str, action: str,
                     version: str, project: str, managers: Iterable[str] = (),
                     approvals_link: str | None = None, reason: str = "") -> None:
    """One event of deployment ``name`` (owned by ``owner``) caused by ``actor``.

    ``managers`` are the people who may approve in ``project`` (for ``requested``).
    """
    if action == "requested":
        who = [m for m in managers if m != actor]
        _safely(notify, who, "approval.requested",
                f"{actor} asks to deploy version {version} of {name} in project {project}: "
                "approve or reject it", approvals_link)
        return
    words = _DEPLOYMENT_WORDS.get(action)
    if words is None or actor == owner:
        return
    message = f"{actor} " + words.format(name=name, version=version)
    if reason:
        message += f": {reason}"
    link = None if action == "deleted" else f"mlops:deployments/{name}"
    _safely(notify, [owner], f"deployment.{action if action != 'switched' else 'changed'}",
            message, link)
