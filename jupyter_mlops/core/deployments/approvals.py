"""Approval policies: whether a project wants its manager to approve deploys and switches.

The policy is per project and off by default. When on, a data scientist's deploy or switch waits
(``pending_approval``) until a project manager approves it; managers and administrators are never
held up by it. The waiting itself (approve, reject) is part of the deployments' state machine
(:class:`~jupyter_mlops.core.deployments.Deployments`); this module keeps the policies.
"""
from __future__ import annotations

import sqlalchemy as sa

from .. import clock
from ..db import Database
from ..errors import InvalidInput
from ..projects import Projects
from ..roles import Caller


class ApprovalPolicies:
    """The ``deployment_policies`` table (created by the deployments' schema)."""

    def __init__(self, db: Database, projects: Projects):
        self.db = db
        self.projects = projects

    def get(self, caller: Caller, project: str) -> dict:
        self.projects.require_member(caller, project)
        rows = self.db.query("SELECT * FROM deployment_policies WHERE project = :p", p=project)
        return {"project": project,
                "require_approval": bool(rows and rows[0]["require_approval"])}

    def set(self, caller: Caller, project: str, require_approval) -> dict:
        self.projects.require_manager(caller, project)
        if not isinstance(require_approval, bool):
            raise InvalidInput("require_approval must be true or false")
        with self.db.tx() as conn:
            conn.execute(sa.text("DELETE FROM deployment_policies WHERE project = :p"),
                         {"p": project})
            conn.execute(sa.text(
                "INSERT INTO deployment_policies (project, require_approval, updated_by,"
                " updated_at) VALUES (:p, :r, :u, :t)"),
                {"p": project, "r": require_approval, "u": caller.name, "t": clock.now()})
        return self.get(caller, project)

    def needs_approval(self, caller: Caller, project: str) -> bool:
        """Whether what ``caller`` deploys in ``project`` waits for a manager."""
        rows = self.db.query("SELECT require_approval FROM deployment_policies"
                             " WHERE project = :p", p=project)
        if not (rows and rows[0]["require_approval"]):
            return False
        return not self.projects.is_manager(caller, self.projects.require_member(caller,
                                                                                 project))

    def all(self) -> dict[str, dict]:
        """Every project's stored policy row, by project name."""
        return {r["project"]: r for r in self.db.query("SELECT * FROM deployment_policies")}
