"""Projects: JSON routes (``/api/projects...``) and the project pages (``/projects...``).

The logic is ``core.projects``. A project's ``gpu_quota`` is read by ``core.gpu_allocation`` at
every allocation, so a change holds from the next spawn or job on.
"""
from __future__ import annotations

import json
import re

import sqlalchemy as sa

from ...core import clock, roles
from ...core.errors import InvalidInput
from ...core.usage import DAY
from .base import ApiHandler
from .pages import PageHandler

PROJECT_FIELDS = ("description", "gpu_quota", "reference_dataset", "gpu_quota_max",
                  "members_change_others_work")


def _milestone_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"milestone ids are whole numbers, not {raw!r}") from None


LOWER_IS_BETTER = re.compile(r"loss|error|err$|rmse|mae|mse", re.I)


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
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    counts[k] = counts.get(k, 0) + 1
        if not counts:
            return None
        metric = sorted(counts, key=lambda k: (-counts[k], k))[0]
    lower = bool(LOWER_IS_BETTER.search(metric))
    points, best = [], None
    for j in sorted(done, key=lambda j: j["finished_at"]):
        v = j["metrics"].get(metric)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if best is None or (v < best["value"] if lower else v > best["value"]):
            best = {"at": j["finished_at"], "value": v, "job": j["id"]}
            points.append(best)
    return {"name": metric, "direction": "min" if lower else "max", "points": points,
            "best": best}


def progress(context, caller, name: str, metric: str | None = None) -> dict:
    """What a manager follows: milestones, GPU-hours, best metric over time, jobs by state,
    deployments."""
    projects = context.projects
    projects.require_member(caller, name)
    now = clock.now()
    usage = context.admin.usage if context.admin else None
    out = {
        "milestones": [m.to_dict() for m in projects.milestones(name)],
        "gpu_hours": {f"{d}d": (usage.gpu_hours(now - d * DAY, now, by="project").get(name, 0.0)
                                if usage else 0.0) for d in (7, 30)},
        "jobs": None, "deployments": None, "best_metric": None,
    }
    inspector = sa.inspect(context.db.engine)
    if inspector.has_table("jobs"):
        rows = context.db.query("SELECT state, COUNT(*) AS n FROM jobs WHERE project = :p"
                                " GROUP BY state", p=name)
        recent = context.db.query("SELECT id, username, state, submitted_at FROM jobs"
                                  " WHERE project = :p ORDER BY id DESC LIMIT 10", p=name)
        out["jobs"] = {"by_state": {r["state"]: r["n"] for r in rows}, "recent": recent}
        records = []
        for r in context.db.query("SELECT id, data FROM jobs WHERE project = :p"
                                  " AND state = 'succeeded'", p=name):
            try:
                d = json.loads(r["data"])
            except ValueError:
                continue
            records.append({"id": r["id"], "finished_at": d.get("finished_at"),
                            "metrics": d.get("metrics")})
        out["best_metric"] = best_metric(records, metric)
    if inspector.has_table("deployments"):
        out["deployments"] = context.db.query(
            "SELECT name, model_name, model_version, status, updated_at FROM deployments"
            " WHERE project = :p ORDER BY updated_at DESC", p=name)
    return out


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
        self.write_json(progress(self.context, self.caller, name, metric))


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
                         progress=progress(self.context, self.caller, name))

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
