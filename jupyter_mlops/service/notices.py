"""Connects the control plane's events to the lab's notification feed (``core.notices``)."""
from __future__ import annotations

from functools import partial

from jupyterhub.utils import url_path_join

from ..core import notices


def connect_notices(context, service_prefix: str) -> None:
    """Subscribe the feed to jobs, sweeps, pipelines and deployments of ``context``."""
    notify = context.notifications.notify
    jobs = context.jobs
    jobs.runner.on_finished.append(partial(notices.job_ended, notify))
    jobs.sweeps.on_finished.append(partial(notices.group_ended, notify, "sweep"))
    jobs.pipelines.on_finished.append(partial(notices.group_ended, notify, "pipeline"))
    approvals = url_path_join(service_prefix, "approvals")

    def deployment(row, actor, action, version, reason):
        notices.deployment_event(
            notify, name=row["name"], owner=row["created_by"], actor=actor, action=action,
            version=str(version), project=row["project"], reason=reason,
            managers=context.projects.manager_names(row["project"]),
            approvals_link=approvals)

    context.deployments.on_event.append(deployment)
