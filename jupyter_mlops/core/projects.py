"""Projects: what experiments, datasets, jobs and deployments belong to, and who may see them.

Every capability asks this one place whether a caller may act on a project:
:meth:`Projects.require_member` (read and create inside it), :meth:`Projects.require_manager`
(change members, quota, approvals). A project the caller is not in is reported as absent
(:class:`NotFound`), never as forbidden, so names of other projects do not leak.

The default project ``default`` holds everyone until project managers create others.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from . import clock
from .db import Database
from .errors import Conflict, Forbidden, InvalidInput, NotFound
from .roles import Caller

DEFAULT_PROJECT = "default"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

SCHEMA = [
    """CREATE TABLE projects (
        name VARCHAR(63) PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        gpu_quota INTEGER,
        reference_dataset VARCHAR(255),
        created_by VARCHAR(255) NOT NULL,
        created_at FLOAT NOT NULL,
        everyone BOOLEAN NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE project_members (
        project VARCHAR(63) NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
        username VARCHAR(255) NOT NULL,
        role VARCHAR(32) NOT NULL DEFAULT 'member',
        PRIMARY KEY (project, username)
    )""",
]


@dataclass(frozen=True)
class Project:
    name: str
    description: str = ""
    gpu_quota: int | None = None
    reference_dataset: str | None = None
    created_by: str = ""
    created_at: float = 0.0
    everyone: bool = False  # every lab member belongs (the default project)

    def to_dict(self) -> dict:
        return asdict(self)


class Projects:
    def __init__(self, db: Database):
        self.db = db
        db.migrate("projects", SCHEMA)
        if not self._row(DEFAULT_PROJECT):
            with db.tx() as conn:
                conn.execute(sa.text(
                    "INSERT INTO projects (name, description, created_by, created_at, everyone)"
                    " VALUES (:n, :d, 'system', :t, 1)"),
                    {"n": DEFAULT_PROJECT, "d": "Everyone's project", "t": clock.now()})

    def _row(self, name: str) -> Project | None:
        rows = self.db.query("SELECT * FROM projects WHERE name = :n", n=name)
        if not rows:
            return None
        r = rows[0]
        r["everyone"] = bool(r["everyone"])
        return Project(**r)

    def is_member(self, caller: Caller, project: Project) -> bool:
        if caller.is_admin or project.everyone:
            return True
        return bool(self.db.query(
            "SELECT 1 FROM project_members WHERE project = :p AND username = :u",
            p=project.name, u=caller.name))

    def list_for(self, caller: Caller) -> list[Project]:
        rows = self.db.query("SELECT name FROM projects ORDER BY name")
        projects = [self._row(r["name"]) for r in rows]
        return [p for p in projects if p and self.is_member(caller, p)]

    def require_member(self, caller: Caller, name: str) -> Project:
        project = self._row(name)
        if project is None or not self.is_member(caller, project):
            raise NotFound(f"no project {name!r}")
        return project

    def require_manager(self, caller: Caller, name: str) -> Project:
        project = self.require_member(caller, name)
        if caller.is_admin:
            return project
        from .roles import MANAGE

        is_pm = MANAGE in caller.scopes and bool(self.db.query(
            "SELECT 1 FROM project_members WHERE project = :p AND username = :u"
            " AND role = 'manager'", p=name, u=caller.name))
        if not is_pm and not (MANAGE in caller.scopes and project.created_by == caller.name):
            raise Forbidden(f"only a manager of project {name!r} may do this")
        return project

    def create(self, caller: Caller, name: str, description: str = "",
               gpu_quota: int | None = None) -> Project:
        from .roles import MANAGE

        if MANAGE not in caller.scopes and not caller.is_admin:
            raise Forbidden("only project managers and administrators create projects")
        if not NAME_RE.match(name or ""):
            raise InvalidInput(
                "project names are 1-63 lowercase letters, digits and dashes, "
                "starting with a letter or digit")
        if self._row(name):
            raise Conflict(f"project {name!r} exists already")
        with self.db.tx() as conn:
            conn.execute(sa.text(
                "INSERT INTO projects (name, description, gpu_quota, created_by, created_at)"
                " VALUES (:n, :d, :q, :u, :t)"),
                {"n": name, "d": description, "q": gpu_quota, "u": caller.name,
                 "t": clock.now()})
            conn.execute(sa.text(
                "INSERT INTO project_members (project, username, role)"
                " VALUES (:p, :u, 'manager')"), {"p": name, "u": caller.name})
        return self._row(name)
