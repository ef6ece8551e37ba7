"""Jobs, sweeps and pipelines as rows of the control plane database.

The columns the queue filters on are real columns; the rest of each record is one JSON
document, written in the same statement, so a row is never half-written.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from ..db import Database
from ..errors import NotFound
from .model import ACTIVE, Job, JobSpec

SCHEMA = [
    """CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username VARCHAR(255) NOT NULL,
        state VARCHAR(16) NOT NULL,
        project VARCHAR(63) NOT NULL,
        sweep_id INTEGER,
        pipeline_id INTEGER,
        submitted_at FLOAT NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX jobs_state ON jobs (state)",
    "CREATE INDEX jobs_user ON jobs (username)",
    """CREATE TABLE job_groups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind VARCHAR(16) NOT NULL,
        username VARCHAR(255) NOT NULL,
        state VARCHAR(16) NOT NULL,
        created_at FLOAT NOT NULL,
        data TEXT NOT NULL
    )""",
]


@dataclass(frozen=True)
class GpuJobSpan:
    """A job that held GPUs: from its start to its end (``None`` while it runs)."""

    id: int
    username: str
    project: str
    gpus: int
    gpu_indices: tuple[int, ...]
    started_at: float
    finished_at: float | None


def _job_from_row(r) -> Job:
    data = json.loads(r["data"])
    data["spec"] = JobSpec(**data["spec"])
    data["id"] = r["id"]
    data["state"] = r["state"]
    return Job(**data)


class JobStore:
    """CRUD of :class:`Job` rows and of sweep/pipeline records (``job_groups``)."""

    def __init__(self, db: Database):
        self.db = db
        db.migrate("jobs", SCHEMA)

    @classmethod
    def existing(cls, db: Database) -> "JobStore | None":
        """The job store of ``db`` if jobs have run on this database, else ``None`` (and no
        table is created): readers that count jobs (GPU-hours, the queue's health) answer
        "no jobs" on a platform started without them."""
        if not sa.inspect(db.engine).has_table("jobs"):
            return None
        return cls(db)

    # --- jobs ---------------------------------------------------------------------------------

    def add(self, job: Job) -> Job:
        data = asdict(job)
        with self.db.tx() as conn:
            res = conn.execute(sa.text(
                "INSERT INTO jobs (username, state, project, sweep_id, pipeline_id, submitted_at,"
                " data) VALUES (:u, :s, :p, :sw, :pl, :t, :d)"),
                {"u": job.user, "s": job.state, "p": job.spec.project, "sw": job.sweep_id,
                 "pl": job.pipeline_id, "t": job.submitted_at, "d": json.dumps(data)})
            job.id = res.lastrowid
        return job

    def save(self, job: Job) -> None:
        with self.db.tx() as conn:
            conn.execute(sa.text("UPDATE jobs SET state = :s, data = :d WHERE id = :i"),
                         {"s": job.state, "d": json.dumps(asdict(job)), "i": job.id})

    def get(self, job_id: int) -> Job:
        rows = self.db.query("SELECT * FROM jobs WHERE id = :i", i=job_id)
        if not rows:
            raise NotFound(f"no job {job_id}")
        return _job_from_row(rows[0])

    def active(self) -> list[Job]:
        """Queued and running jobs, oldest first."""
        rows = self.db.query(
            "SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY id")
        return [_job_from_row(r) for r in rows]

    def list(self, user: str | None = None, limit: int = 200, sweep_id: int | None = None,
             pipeline_id: int | None = None) -> list[Job]:
        where, params = [], {"n": limit}
        if user is not None:
            where.append("username = :u")
            params["u"] = user
        if sweep_id is not None:
            where.append("sweep_id = :sw")
            params["sw"] = sweep_id
        if pipeline_id is not None:
            where.append("pipeline_id = :pl")
            params["pl"] = pipeline_id
        sql = "SELECT * FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        # Active jobs first, then the most recent.
        sql += (" ORDER BY CASE WHEN state IN ('queued', 'running') THEN 0 ELSE 1 END,"
                " id DESC LIMIT :n")
        return [_job_from_row(r) for r in self.db.query(sql, **params)]

    def count_active(self, user: str | None = None) -> int:
        states = ", ".join(f"'{s}'" for s in ACTIVE)
        sql = f"SELECT COUNT(*) AS n FROM jobs WHERE state IN ({states})"
        if user is None:
            return self.db.query(sql)[0]["n"]
        return self.db.query(sql + " AND username = :u", u=user)[0]["n"]

    # --- what other views read (project progress, the admin page) -------------------------

    def counts_by_state(self, project: str) -> dict[str, int]:
        """How many of the project's jobs are in each state."""
        rows = self.db.query("SELECT state, COUNT(*) AS n FROM jobs WHERE project = :p"
                             " GROUP BY state", p=project)
        return {r["state"]: r["n"] for r in rows}

    def recent(self, project: str | None = None, limit: int = 20) -> list[dict]:
        """The newest jobs (of one project, or all): id, username, project, state,
        submitted_at."""
        sql = "SELECT id, username, project, state, submitted_at FROM jobs"
        if project is not None:
            sql += " WHERE project = :p"
        return self.db.query(sql + " ORDER BY id DESC LIMIT :n", p=project, n=limit)

    def finished_metrics(self, project: str) -> list[dict]:
        """The project's succeeded jobs as ``{"id", "finished_at", "metrics"}``."""
        out = []
        for r in self.db.query("SELECT id, data FROM jobs WHERE project = :p"
                               " AND state = 'succeeded'", p=project):
            try:
                d = json.loads(r["data"])
            except ValueError:
                continue
            out.append({"id": r["id"], "finished_at": d.get("finished_at"),
                        "metrics": d.get("metrics")})
        return out

    def gpu_spans(self, since: float | None = None) -> list[GpuJobSpan]:
        """Jobs that started with at least one GPU and had not finished by ``since`` (every
        such job for ``None``), in id order: what GPU-hours accounting counts.

        Start, end and devices live in each record's document, so this reads every job's
        document once (one query), not one query per job."""
        out = []
        for r in self.db.query("SELECT id, username, project, data FROM jobs ORDER BY id"):
            try:
                d = json.loads(r["data"])
            except ValueError:
                continue
            started, finished = d.get("started_at"), d.get("finished_at")
            indices = d.get("gpu_indices") or []
            gpus = len(indices) or int((d.get("spec") or {}).get("gpus") or 0)
            if not started or not gpus or (since is not None and finished is not None
                                           and finished <= since):
                continue
            out.append(GpuJobSpan(
                id=int(r["id"]), username=r["username"], project=r["project"], gpus=gpus,
                gpu_indices=tuple(int(i) for i in indices), started_at=float(started),
                finished_at=None if finished is None else float(finished)))
        return out

    def queue_window(self, since: float, limit: int = 2000) -> list[dict]:
        """Jobs waiting or running now and jobs submitted since ``since``, newest first (at
        most ``limit``): ``{"state", "submitted_at", "started_at"}`` (``started_at`` ``None``
        until the job starts), what the queue's health is measured on."""
        rows = self.db.query("SELECT state, submitted_at, data FROM jobs WHERE state IN"
                             " ('queued', 'running') OR submitted_at >= :t"
                             " ORDER BY id DESC LIMIT :n", t=since, n=limit)
        out = []
        for r in rows:
            try:
                started = json.loads(r["data"]).get("started_at")
            except ValueError:
                started = None
            out.append({"state": r["state"], "submitted_at": r["submitted_at"],
                        "started_at": started})
        return out

    # --- sweeps and pipelines -----------------------------------------------------------------

    def add_group(self, kind: str, user: str, state: str, created_at: float, data: dict) -> int:
        with self.db.tx() as conn:
            res = conn.execute(sa.text(
                "INSERT INTO job_groups (kind, username, state, created_at, data)"
                " VALUES (:k, :u, :s, :t, :d)"),
                {"k": kind, "u": user, "s": state, "t": created_at, "d": json.dumps(data)})
            return res.lastrowid

    def save_group(self, group_id: int, state: str, data: dict) -> None:
        with self.db.tx() as conn:
            conn.execute(sa.text("UPDATE job_groups SET state = :s, data = :d WHERE id = :i"),
                         {"s": state, "d": json.dumps(data), "i": group_id})

    def get_group(self, kind: str, group_id: int) -> dict:
        rows = self.db.query("SELECT * FROM job_groups WHERE id = :i AND kind = :k",
                             i=group_id, k=kind)
        if not rows:
            raise NotFound(f"no {kind} {group_id}")
        return self._group(rows[0])

    def groups(self, kind: str, user: str | None = None, active_only: bool = False,
               limit: int = 100) -> list[dict]:
        sql, params = "SELECT * FROM job_groups WHERE kind = :k", {"k": kind, "n": limit}
        if user is not None:
            sql += " AND username = :u"
            params["u"] = user
        if active_only:
            sql += " AND state IN ('queued', 'running')"
        sql += " ORDER BY id DESC LIMIT :n"
        return [self._group(r) for r in self.db.query(sql, **params)]

    @staticmethod
    def _group(r) -> dict:
        data = json.loads(r["data"])
        data.update(id=r["id"], user=r["username"], state=r["state"],
                    created_at=r["created_at"])
        return data
