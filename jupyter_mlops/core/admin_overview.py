"""Everything the system administrator's page shows, as data (``GET /api/admin/overview`` and
the admin page): users with role and servers, the GPU inventory with who holds each device and
its utilisation over the window, quotas, GPU-hours, idle GPU servers, what idle-GPU culling did,
projects, and the newest jobs and deployments.

Reads other capabilities only through their public queries (``JobStore.recent``,
``Deployments.recent``); the hub's users come from the control plane's hub adapter.
"""
from __future__ import annotations

from typing import Callable

from . import clock
from .gpu_history import last_point, sparkline
from .gpus import GpuInventory
from .projects import Projects

RECENT = 20


def server_telemetry(points: list[dict], now: float, window: float) -> dict:
    """A GPU server's samples over the window and its small charts' lines: CPU on a scale of
    at least one core (100 %), GPU utilisation 0-100 % (no line where it is unknown)."""
    cpu_top = max([100.0] + [p["cpu_percent"] for p in points])
    return {"points": points, "cpu_top": cpu_top,
            "cpu_line": sparkline(points, end=now, window_seconds=window, key="cpu_percent",
                                  top=cpu_top),
            "gpu_line": sparkline(points, end=now, window_seconds=window, key="gpu_pct"),
            "memory_mb": points[-1]["memory_mb"] if points else None}


class AdminOverview:
    """The admin page's data.

    Parameters
    ----------
    admin
        The hub side of administration (``service.platform_admin.PlatformAdmin``): ``sync()``,
        ``async users()``, ``usage``, ``gpu_history``, ``server_telemetry``,
        ``idle_gpu_minutes``, ``gpu_history_hours``.
    role_of
        The lab role of a hub user model.
    allocator, inventory, projects
        GPU holders and quotas, the devices, the projects.
    culling
        Idle-GPU culling (``survey()``, ``culler.culls()``), or ``None``.
    jobs, deployments
        ``JobStore`` and ``Deployments``, or ``None`` for a capability not started.
    """

    def __init__(self, admin, role_of: Callable[[dict], str], *, allocator,
                 inventory: GpuInventory, projects: Projects, culling=None, jobs=None,
                 deployments=None):
        self.admin = admin
        self.role_of = role_of
        self.allocator = allocator
        self.inventory = inventory
        self.projects = projects
        self.culling = culling
        self.jobs = jobs
        self.deployments = deployments

    def _gpus(self, reading, holders, now: float) -> list[dict]:
        by_uuid = {a.device_uuid: a for a in holders}
        history, window = self.admin.gpu_history.series(), self.admin.gpu_history.window
        gpus = []
        for g in reading.gpus:
            d = g.to_dict()
            a = by_uuid.get(g.uuid)
            d["holder"] = a.to_dict() if a else None
            # utilisation over the window, and the small chart's line (empty: nothing measured)
            d["history"] = history.get(g.uuid, [])
            d["history_line"] = sparkline(d["history"], end=now, window_seconds=window)
            d["history_now"] = last_point(d["history_line"])
            gpus.append(d)
        return gpus

    async def _users(self, holders) -> list[dict]:
        held_by_user: dict[str, list[int]] = {}
        for a in holders:
            if a.owner_kind == "server":
                held_by_user.setdefault(a.username, []).append(a.device_index)
        users = []
        for u in await self.admin.users():
            servers = []
            for name, s in (u.get("servers") or {}).items():
                servers.append({
                    "name": name, "ready": bool(s.get("ready")), "pending": s.get("pending"),
                    "started": s.get("started"), "last_activity": s.get("last_activity"),
                    "profile": (s.get("user_options") or {}).get("profile", ""),
                    "gpus": sorted(held_by_user.get(u["name"], [])) if name == "" else [],
                })
            users.append({"name": u["name"], "admin": bool(u.get("admin")),
                          "role": self.role_of(u), "groups": sorted(u.get("groups") or []),
                          "servers": servers, "last_activity": u.get("last_activity")})
        return users

    async def _culling(self, now: float) -> dict:
        if self.culling is None:
            return {"servers": [], "culls": []}
        telemetry = self.admin.server_telemetry.series()
        window = self.admin.gpu_history.window
        return {"servers": [{**x.to_dict(), "telemetry": server_telemetry(
                    telemetry.get(x.owner, []), now, window)}
                            for x in await self.culling.survey()],
                "culls": self.culling.culler.culls()[:20]}

    async def read(self) -> dict:
        admin, alloc = self.admin, self.allocator
        admin.sync()
        holders = alloc.holders() if alloc else []
        reading = self.inventory.read()
        now = clock.now()
        projects = [{**p.to_dict(), "members": len(self.projects.members(p.name)),
                     "groups": self.projects.groups(p.name)} for p in self.projects.all()]
        return {
            "users": await self._users(holders),
            "gpus": {"source": reading.source, "reason": reading.reason,
                     "devices": self._gpus(reading, holders, now),
                     "history_hours": admin.gpu_history_hours},
            # user and group quotas live in the allocator, project quotas on the projects
            "quotas": ([q.to_dict() for q in alloc.quotas()] if alloc else []) + [
                {"kind": "project", "name": p["name"], "gpus": p["gpu_quota"]}
                for p in projects if p["gpu_quota"] is not None],
            "usage": admin.usage.report((7, 30)),
            "idle": {"minutes": admin.idle_gpu_minutes,
                     "servers": [i for i in admin.usage.idle(holders, admin.idle_gpu_minutes)
                                 if i["owner_kind"] == "server"]},
            # which rule decides idleness per GPU server, and what idle-GPU culling released
            "culling": await self._culling(now),
            "projects": projects,
            "jobs": self.jobs.recent(limit=RECENT) if self.jobs is not None else None,
            "deployments": (self.deployments.recent(limit=RECENT)
                            if self.deployments is not None else None),
        }
