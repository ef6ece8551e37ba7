"""The system administrator's view: the admin page (HTML, forms) and its JSON twin.

Users with role and groups, running servers with their GPUs, jobs and deployments, GPU quotas,
the GPU inventory with live utilisation and who holds each device, GPU-hours per user and
project over 7 and 30 days, servers idling on a GPU, and the platform's health (services,
disk, queue: core.monitoring.health). Every route needs custom:mlops:admin. The overview is
``core.admin_overview``.
"""
from __future__ import annotations

import asyncio

from ...core import roles
from ...core.errors import InvalidInput
from ...core.gpu_allocation import QUOTA_KINDS
from .base import ApiHandler
from .pages import PageHandler

class AdminPage(PageHandler):
    required_scopes = (roles.ADMIN,)

    async def get(self):
        self.render_page("admin.html", o=await self.context.overview.read(),
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
        self.write_json(await self.context.overview.read())


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
