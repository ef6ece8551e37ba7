"""A deployment's audit log as its project reads it, during its life and after its undeploy.

The log rows (``deployment_events``) are keyed by the deployment's name and stay when it is
deleted; a name may later be taken again, in another project too. So an undeploy leaves a
record of who owned the deployment, in which project, and when it lived
(``deleted_deployments``), and a log is always read for one lifetime of a name: from its
creation to its deletion (or now). Members of the project it lived in read it; nobody else can
tell it existed.

Each event says whether someone other than the deployment's owner made it (``by_other``; the
platform's own events, actor ``system``, are not): what a project manager, an administrator or
a colleague (where the project lets members change each other's work) did to a deployment
stands out to its owner.
"""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from .. import clock
from ..db import Database

SCHEMA = [
    """CREATE TABLE deleted_deployments (
        id VARCHAR(32) PRIMARY KEY,
        name VARCHAR(40) NOT NULL,
        project VARCHAR(63) NOT NULL,
        model_name VARCHAR(255) NOT NULL,
        created_by VARCHAR(255) NOT NULL,
        created_at FLOAT NOT NULL,
        deleted_by VARCHAR(255) NOT NULL,
        deleted_at FLOAT NOT NULL
    )""",
    "CREATE INDEX ix_deleted_deployments ON deleted_deployments (name, deleted_at)",
]


class DeploymentHistory:
    def __init__(self, db: Database):
        self.db = db
        db.migrate("deployment_history", SCHEMA)

    @staticmethod
    def archive(conn, row: dict, actor: str) -> None:
        """Keep who owned deployment ``row`` and where it lived, in the deleting transaction
        (after its "deleted" event, so the event falls inside its lifetime)."""
        conn.execute(sa.text(
            "INSERT INTO deleted_deployments (id, name, project, model_name, created_by,"
            " created_at, deleted_by, deleted_at) VALUES (:i, :n, :p, :m, :c, :ca, :d, :t)"),
            {"i": uuid.uuid4().hex, "n": row["name"], "p": row["project"],
             "m": row["model_name"], "c": row["created_by"], "ca": row["created_at"],
             "d": actor, "t": clock.now()})

    def deleted(self, name: str) -> list[dict]:
        """Earlier lifetimes of ``name``, the most recent first."""
        return self.db.query("SELECT * FROM deleted_deployments WHERE name = :n"
                             " ORDER BY deleted_at DESC", n=name)

    def events(self, name: str, owner: str, since: float,
               until: float | None = None) -> list[dict]:
        """The log of one lifetime of ``name``, oldest first, each marked ``by_other``."""
        sql = ("SELECT at, actor, action, model_version, detail FROM deployment_events"
               " WHERE deployment = :d AND at >= :s")
        params = {"d": name, "s": since}
        if until is not None:
            sql += " AND at <= :u"
            params["u"] = until
        rows = self.db.query(sql + " ORDER BY at, id", **params)
        for r in rows:
            r["by_other"] = r["actor"] not in (owner, "system")
        return rows
