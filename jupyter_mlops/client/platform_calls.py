"""Who the caller is, their projects, notifications, GPU-hours, and the spawner's GPU calls."""
from __future__ import annotations

from . import parse
from .catalog_calls import seg


class ProjectCalls:
    def status(self):
        """``{version, user, role}``: the control plane's answer to a live check."""
        return self._send("GET", "api/status")

    def projects(self):
        """The caller's projects (``can_manage`` tells where they are a manager)."""
        return self._send("GET", "api/projects", parse.key("projects"))

    def project(self, name: str):
        """One project with members, groups and milestones (NotFound if not a member)."""
        return self._send("GET", f"api/projects/{seg(name)}")

    def gpu_usage(self, csv: bool = False):
        """The caller's visible GPU-hours (core.usage.visible_report), or its CSV text."""
        return self._send("GET", "api/usage", parse.text if csv else parse.body,
                          params={"format": "csv" if csv else "json"})

    def notifications(self, since: int = 0, limit: int = 100):
        """The caller's own notifications after id ``since`` (``{notifications, unread,
        last_id}``)."""
        return self._send("GET", "api/notifications", params={"since": since, "limit": limit})

    def mark_notification_read(self, notification_id: int):
        return self._send("POST", f"api/notifications/{int(notification_id)}/read", json={})


class GpuCalls:
    """The GPU allocation calls of the hub's spawner (token of the ``mlops-spawner`` service,
    scope ``custom:mlops:spawner``): the control plane owns every allocation."""

    def allocate_server(self, owner: str, *, user: str, count: int, groups=(),
                        gpu_type: str | None = None):
        body = {"owner": owner, "user": user, "count": count, "groups": sorted(groups),
                "gpu_type": gpu_type}
        return self._send("POST", "api/gpus/allocations/servers", parse.key("gpus"), json=body)

    def request_server(self, owner: str, *, user: str, count: int, groups=(),
                       gpu_type: str | None = None):
        """``{"gpus": [...]}`` when the server may start, ``{"queued": True, "position",
        "reason"}`` while it waits in the GPU queue (asking again is how to wait)."""
        body = {"owner": owner, "user": user, "count": count, "groups": sorted(groups),
                "gpu_type": gpu_type, "wait": True}
        return self._send("POST", "api/gpus/allocations/servers", json=body)

    def release_server(self, owner: str):
        return self._send("DELETE", f"api/gpus/allocations/servers/{seg(owner)}",
                          parse.key("released"))

    def availability(self, user: str, groups=(), gpu_type: str | None = None):
        params = [("user", user), *(("group", g) for g in sorted(groups))]
        if gpu_type:
            params.append(("gpu_type", gpu_type))
        return self._send("GET", "api/gpus/availability", params=params)
