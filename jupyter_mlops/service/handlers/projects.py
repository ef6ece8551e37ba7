"""Projects: JSON routes (``/api/projects...``) and the project pages (``/projects...``).

The logic is ``core.projects``; a project's progress report is ``core.project_progress``. A
project's ``gpu_quota`` is read by ``core.gpu_allocation`` at every allocation, so a change holds
from the next spawn or job on.
"""
from __future__ import annotations

import re

from ...core import roles
from ...core.errors import InvalidInput
from .base import ApiHandler
from .pages import PageHandler

PROJECT_FIELDS = ("description", "gpu_quota", "reference_dataset", "gpu_quota_max",
                  "members_change_others_work")


def _milestone_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"milestone ids are whole numbers, not {raw!r}") from None


# --- JSON ----------------------------------------------------------------------------------


class ProjectsHandler(ApiHandler):
    async def get(self):
        projects = self.context.projects
        self.write_json({"projects": [
            {**p.to_dict(), "can_manage": projects.is_manager(self.caller, p)}
            for p in projects.list_for(self.caller)]})

    async def post(self):
        body = self.get_json_body()
        unknown = set(body) - {"name", "description", "gpu_quota", "reference_dataset",
                               "members", "groups"}
        if unknown:
            raise InvalidInput(f"unknown project field(s): {', '.join(sorted(unknown))}")
        if body.get("groups") and not self.caller.is_admin:
            raise InvalidInput("only administrators link groups to projects")
        members = body.get("members") or []
        if not isinstance(members, list):
            raise InvalidInput("members is a list of user names")
        p = self.context.projects.create(
            self.caller, body.get("name"), description=body.get("description") or "",
            gpu_quota=body.get("gpu_quota"), reference_dataset=body.get("reference_dataset"),
            members=members, groups=body.get("groups") or [])
        self.write_json(self.context.projects.detail(self.caller, p.name), status=201)


class ProjectHandler(ApiHandler):
    async def get(self, name: str):
        self.write_json(self.context.projects.detail(self.caller, name))

    async def patch(self, name: str):
        body = self.get_json_body()
        self.context.projects.update(self.caller, name, **body)
        self.write_json(self.context.projects.detail(self.caller, name))

    async def delete(self, name: str):
        self.context.projects.delete(self.caller, name)
        self.set_status(204)
        self.finish()


class ProjectMemberHandler(ApiHandler):
    async def put(self, name: str, user: str):
        role = self.get_json_body().get("role", "member")
        self.write_json({"members": self.context.projects.add_member(self.caller, name, user,
                                                                     role)})

    async def delete(self, name: str, user: str):
        self.write_json({"members": self.context.projects.remove_member(self.caller, name,
                                                                        user)})


class ProjectGroupsHandler(ApiHandler):
    required_scopes = (roles.ADMIN,)

    async def put(self, name: str):
        groups = self.get_json_body().get("groups")
        self.write_json({"groups": self.context.projects.set_groups(self.caller, name, groups)})


class ProjectMilestonesHandler(ApiHandler):
    async def get(self, name: str):
        self.context.projects.require_member(self.caller, name)
        self.write_json({"milestones": [m.to_dict() for m in
                                        self.context.projects.milestones(name)]})

    async def post(self, name: str):
        body = self.get_json_body()
        m = self.context.projects.add_milestone(self.caller, name, body.get("title"),
                                                body.get("due"))
        self.write_json(m.to_dict(), status=201)


class ProjectMilestoneHandler(ApiHandler):
    async def patch(self, name: str, mid: str):
        body = self.get_json_body()
        if "done" not in body:
            raise InvalidInput('send {"done": true | false}')
        m = self.context.projects.set_milestone(self.caller, name, _milestone_id(mid),
                                                body["done"])
        self.write_json(m.to_dict())

    async def delete(self, name: str, mid: str):
        self.context.projects.delete_milestone(self.caller, name, _milestone_id(mid))
        self.set_status(204)
        self.finish()


class ProjectProgressHandler(ApiHandler):
    async def get(self, name: str):
        metric = self.get_query_argument("metric", None)
        if metric is not None and not re.fullmatch(r"[\w./ -]{1,250}", metric):
            raise InvalidInput("metric is an MLflow metric name")
        self.write_json(self.context.progress.report(self.caller, name, metric))


# --- pages ---------------------------------------------------------------------------------


class ProjectsPage(PageHandler):
    async def get(self):
        projects = self.context.projects
        self.render_page("projects.html", projects=[
            {**p.to_dict(), "can_manage": projects.is_manager(self.caller, p)}
            for p in projects.list_for(self.caller)])

    async def post(self):
        name = self.form("name")
        members = [m.strip() for m in self.form("members", False).split(",") if m.strip()]

        def act():
            self.context.projects.create(
                self.caller, name, description=self.form("description", False),
                gpu_quota=self.form_int_or_none("gpu_quota"),
                reference_dataset=self.form("reference_dataset", False) or None,
                members=members)

        await self.run_form("projects", act, f"project {name} created")


class ProjectPage(PageHandler):
    async def get(self, name: str):
        detail = self.context.projects.detail(self.caller, name)
        self.render_page("project.html", p=detail,
                         progress=self.context.progress.report(self.caller, name))

    async def post(self, name: str):
        projects, caller = self.context.projects, self.caller
        action = self.form("action")
        page = f"projects/{name}"
        if action == "settings":
            def act():
                projects.update(caller, name, description=self.form("description", False),
                                gpu_quota=self.form_int_or_none("gpu_quota"),
                                reference_dataset=self.form("reference_dataset", False) or None,
                                members_change_others_work=self.get_body_argument(
                                    "members_change_others_work", "") == "on")
            await self.run_form(page, act, "settings saved")
        elif action == "add-member":
            user, role = self.form("user"), self.form("role", False) or "member"
            await self.run_form(page, lambda: projects.add_member(caller, name, user, role),
                                f"{user} added")
        elif action == "remove-member":
            user = self.form("user")
            await self.run_form(page, lambda: projects.remove_member(caller, name, user),
                                f"{user} removed")
        elif action == "add-milestone":
            title, due = self.form("title"), self.form("due")
            await self.run_form(page, lambda: projects.add_milestone(caller, name, title, due),
                                f"milestone {title!r} added")
        elif action == "toggle-milestone":
            mid = _milestone_id(self.form("milestone"))
            done = self.form("done") == "true"
            await self.run_form(page, lambda: projects.set_milestone(caller, name, mid, done),
                                "milestone updated")
        else:
            raise InvalidInput(f"no form action {action!r}")


# URL tables (see service/routes.py): JSON under /api, pages under the service prefix.
ROUTES = [
    (r"/projects", ProjectsHandler),
    (r"/projects/([^/]+)", ProjectHandler),
    (r"/projects/([^/]+)/members/([^/]+)", ProjectMemberHandler),
    (r"/projects/([^/]+)/groups", ProjectGroupsHandler),
    (r"/projects/([^/]+)/milestones", ProjectMilestonesHandler),
    (r"/projects/([^/]+)/milestones/([^/]+)", ProjectMilestoneHandler),
    (r"/projects/([^/]+)/progress", ProjectProgressHandler),
]
PAGES = [
    (r"/projects", ProjectsPage),
    (r"/projects/([^/]+)", ProjectPage),
]
