"""The system administrator's view: the admin page (HTML, forms) and its JSON twin.

Users with role and groups, running servers with their GPUs, jobs and deployments, GPU quotas,
the GPU inventory with live utilisation and who holds each device, GPU-hours per user and
project over 7 and 30 days, servers idling on a GPU, and the platform's health (services,
disk, queue: core.monitoring.health). Every route needs custom:mlops:admin.
"""
from __future__ import annotations

import asyncio

import sqlalchemy as sa

from ...core import clock, roles
from ...core.errors import InvalidInput
from ...core.gpu_allocation import QUOTA_KINDS
from ...core.gpu_history import last_point, sparkline
from ..platform_admin import role_of
from .base import ApiHandler, log
from .pages import PageHandler

RECENT = 20


def _table_rows(db, table: str, columns: list[str], order: str) -> list[dict] | None:
    """Recent rows of another capability's table, or None when it has no such table yet."""
    if not sa.inspect(db.engine).has_table(table):
        return None
    cols = ", ".join(columns)
    try:
        return db.query(f"SELECT {cols} FROM {table} ORDER BY {order} DESC LIMIT {RECENT}")
    except sa.exc.SQLAlchemyError:  # the other capability changed its schema: show the rest
        log.warning("admin page: cannot read %s (%s)", table, cols, exc_info=True)
        return None


def _server_telemetry(points: list[dict], now: float, window: float) -> dict:
    """A GPU server's samples over the window and its small charts' lines: CPU on a scale of
    at least one core (100 %), GPU utilisation 0-100 % (no line where it is unknown)."""
    cpu_top = max([100.0] + [p["cpu_percent"] for p in points])
    return {"points": points, "cpu_top": cpu_top,
            "cpu_line": sparkline(points, end=now, window_seconds=window, key="cpu_percent",
                                  top=cpu_top),
            "gpu_line": sparkline(points, end=now, window_seconds=window, key="gpu_pct"),
            "memory_mb": points[-1]["memory_mb"] if points else None}


async def overview(context) -> dict:
    """Everything the admin page shows, as data (also ``GET /api/admin/overview``)."""
    admin = context.admin
    admin.sync()
    alloc = context.gpu_allocator
    holders = alloc.holders() if alloc else []
    by_uuid = {a.device_uuid: a for a in holders}
    reading = context.gpu_inventory.read()
    history, now = admin.gpu_history.series(), clock.now()
    telemetry = admin.server_telemetry.series()
    window = admin.gpu_history.window
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
    held_by_user: dict[str, list[int]] = {}
    for a in holders:
        if a.owner_kind == "server":
            held_by_user.setdefault(a.username, []).append(a.device_index)
    users = []
    for u in await admin.users():
        servers = []
        for name, s in (u.get("servers") or {}).items():
            servers.append({
                "name": name, "ready": bool(s.get("ready")), "pending": s.get("pending"),
                "started": s.get("started"), "last_activity": s.get("last_activity"),
                "profile": (s.get("user_options") or {}).get("profile", ""),
                "gpus": sorted(held_by_user.get(u["name"], [])) if name == "" else [],
            })
        users.append({"name": u["name"], "admin": bool(u.get("admin")), "role": role_of(u),
                      "groups": sorted(u.get("groups") or []), "servers": servers,
                      "last_activity": u.get("last_activity")})
    projects = []
    for p in context.projects.all():
        projects.append({**p.to_dict(), "members": len(context.projects.members(p.name)),
                         "groups": context.projects.groups(p.name)})
    db = context.db
    return {
        "users": users,
        "gpus": {"source": reading.source, "reason": reading.reason, "devices": gpus,
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
        "culling": ({"servers": [{**x.to_dict(), "telemetry": _server_telemetry(
                         telemetry.get(x.owner, []), now, window)}
                                 for x in await context.gpu_culling.survey()],
                     "culls": context.gpu_culling.culler.culls()[:20]}
                    if context.gpu_culling else {"servers": [], "culls": []}),
        "projects": projects,
        "jobs": _table_rows(db, "jobs", ["id", "username", "project", "state", "submitted_at"],
                            "id"),
        "deployments": _table_rows(db, "deployments",
                                   ["name", "project", "model_name", "model_version", "status",
                                    "created_by", "updated_at"], "updated_at"),
    }


class AdminPage(PageHandler):
    required_scopes = (roles.ADMIN,)

    async def get(self):
        self.render_page("admin.html", o=await overview(self.context),
                         quota_kinds=QUOTA_KINDS, role_choices=ROLE_CHOICES,
                         approvals=self.context.deployments.approvals(self.caller),
                         health=await asyncio.to_thread(self.context.monitoring.health.report))


ROLE_CHOICES = [("scientist", roles.DATA_SCIENTIST), ("manager", roles.PROJECT_MANAGER),
                ("admin", roles.SYSTEM_ADMINISTRATOR)]


class AdminQuotaForm(PageHandler):
    """POST kind, name, gpus (empty removes the quota)."""

    required_scopes = (roles.ADMIN,)

    async def post(self):
        kind, name = self.form("kind"), self.form("name")
        gpus = self.form_int_or_none("gpus")

        def act():
            if kind not in QUOTA_KINDS:
                raise InvalidInput(f"quota kind is one of {', '.join(QUOTA_KINDS)}")
            self.context.gpu_allocator.set_quota(kind, name, gpus)

        msg = (f"GPU quota of {kind} {name} removed" if gpus is None
               else f"GPU quota of {kind} {name} set to {gpus}")
        await self.run_form("admin#quotas", act, msg)


class AdminStopServerForm(PageHandler):
    """POST user (and optionally server): stop that server through the hub."""

    required_scopes = (roles.ADMIN,)

    async def post(self):
        user = self.form("user")
        await self.run_form("admin#users",
                            lambda: self.context.admin.stop_server(user, self.form("server",
                                                                                   False)),
                            f"server of {user} is stopping")


class AdminRoleForm(PageHandler):
    """POST user, role (scientist | manager | admin)."""

    required_scopes = (roles.ADMIN,)

    async def post(self):
        user, role = self.form("user"), self.form("role")
        await self.run_form("admin#users", lambda: self.context.admin.set_role(user, role),
                            f"{user} is now {dict(ROLE_CHOICES).get(role, role)}")


class AdminProjectForm(PageHandler):
    """POST project, gpu_quota, gpu_quota_max, groups (comma separated),
    members_change_others_work (a checkbox): the administrator's settings of a project (its
    quota is enforced by the allocator at the next spawn or job)."""

    required_scopes = (roles.ADMIN,)

    async def post(self):
        name = self.form("project")
        quota = self.form_int_or_none("gpu_quota")
        ceiling = self.form_int_or_none("gpu_quota_max")
        groups = [g.strip() for g in self.form("groups", False).split(",") if g.strip()]
        others = self.get_body_argument("members_change_others_work", "") == "on"

        def act():
            self.context.projects.update(self.caller, name, gpu_quota=quota,
                                         gpu_quota_max=ceiling,
                                         members_change_others_work=others)
            self.context.projects.set_groups(self.caller, name, groups)

        await self.run_form("admin#projects", act, f"project {name} updated")


# --- JSON ----------------------------------------------------------------------------------


class AdminOverviewHandler(ApiHandler):
    required_scopes = (roles.ADMIN,)

    async def get(self):
        self.write_json(await overview(self.context))


class AdminUsageHandler(ApiHandler):
    """GET: GPU-hours per user and project (``?days=7&days=30``)."""

    required_scopes = (roles.ADMIN,)

    async def get(self):
        raw = self.get_query_arguments("days") or ["7", "30"]
        try:
            days = [int(d) for d in raw]
        except ValueError:
            raise InvalidInput("days are whole numbers") from None
        if any(d < 1 or d > 3660 for d in days):
            raise InvalidInput("days are between 1 and 3660")
        self.context.admin.sync()
        self.write_json(self.context.admin.usage.report(days))


class AdminUsageEventsHandler(ApiHandler):
    """POST ``{"event": "started"|"ended", "owner_kind", "owner", "user", "gpus", "project"}``:
    exact start and stop times from where servers and jobs run."""

    required_scopes = (roles.ADMIN,)

    async def post(self):
        body = self.get_json_body()
        usage = self.context.admin.usage
        event = body.get("event")
        kind, owner = body.get("owner_kind"), body.get("owner")
        if event == "started":
            s = usage.started(kind, owner, user=body.get("user"), gpus=body.get("gpus", 0),
                              project=body.get("project"),
                              gpu_indices=body.get("gpu_indices") or [])
            self.write_json(s.to_dict(), status=201)
        elif event == "ended":
            if not isinstance(kind, str) or not isinstance(owner, str):
                raise InvalidInput("an ended event needs owner_kind and owner")
            self.write_json({"ended": usage.ended(kind, owner)})
        else:
            raise InvalidInput('event is "started" or "ended"')


class AdminUserRoleHandler(ApiHandler):
    """PUT ``{"role": "scientist"|"manager"|"admin"}``: set a local account's lab role."""

    required_scopes = (roles.ADMIN,)

    async def put(self, user: str):
        role = self.get_json_body().get("role")
        if not isinstance(role, str):
            raise InvalidInput('send {"role": "scientist" | "manager" | "admin"}')
        await self.context.admin.set_role(user, role)
        self.write_json({"user": user, "role": dict(ROLE_CHOICES)[role]})


class AdminUserServerHandler(ApiHandler):
    """DELETE: stop the user's default server (e.g. one idling on a GPU)."""

    required_scopes = (roles.ADMIN,)

    async def delete(self, user: str):
        await self.context.admin.stop_server(user)
        self.set_status(202)
        self.finish()


# URL tables (see service/routes.py): JSON under /api, pages under the service prefix.
ROUTES = [
    (r"/admin/overview", AdminOverviewHandler),
    (r"/admin/usage", AdminUsageHandler),
    (r"/admin/usage/events", AdminUsageEventsHandler),
    (r"/admin/users/([^/]+)/role", AdminUserRoleHandler),
    (r"/admin/users/([^/]+)/server", AdminUserServerHandler),
]
PAGES = [
    (r"/admin", AdminPage),
    (r"/admin/quotas", AdminQuotaForm),
    (r"/admin/stop-server", AdminStopServerForm),
    (r"/admin/role", AdminRoleForm),
    (r"/admin/project", AdminProjectForm),
]
