"""GPU-hours accounting from spawn and job events, read through the one clock.

A *usage session* is one owner (a user server, a job, a deployment) holding ``gpus`` devices
from ``started_at`` to ``ended_at`` (open while it runs). GPU-hours over a window are the sum of
``gpus x overlap(session, window)``, so a session that straddles the window's start counts only
its part inside.

Where the sessions come from:

* jobs: the job store's own records (``JobStore.gpu_spans`` of ``core.jobs``: start, end,
  the GPUs the job was given), read at report time, so even a job shorter than any sampling
  period counts to the second;
* servers (and deployments): :meth:`UsageLedger.sync` compares open sessions with the current
  GPU allocations (``core.gpu_allocation``, the one place that hands out GPUs) and opens a
  session at the allocation's own time, or closes one whose allocation is gone at "now". The
  control plane runs it periodically, so an end is late by at most one period;
* events: :meth:`UsageLedger.started` / :meth:`UsageLedger.ended` record exact times from
  anywhere else (``POST /api/admin/usage/events``), and are what a platform without the job
  store counts for jobs.

Idle detection: :meth:`UsageLedger.observe` notes, per device, since when the inventory has read
0 % utilisation; :meth:`UsageLedger.idle` lists allocations whose devices have all been idle
longer than a threshold (the admin page offers to stop those servers).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Callable, Hashable, Iterable

import sqlalchemy as sa

from . import clock
from .db import Database
from .errors import InvalidInput
from .jobs.store import JobStore

OWNER_KINDS = ("server", "job", "deployment")
DAY = 86400.0
GROUP_BY: dict[str, Callable[["UsageSession"], Hashable]] = {
    "user": lambda s: s.username,
    "project": lambda s: s.project or "(none)",
    "user and project": lambda s: (s.username, s.project or "(none)"),
}

SCHEMA = [
    """CREATE TABLE usage_sessions (
        id INTEGER PRIMARY KEY,
        owner_kind VARCHAR(32) NOT NULL,
        owner VARCHAR(255) NOT NULL,
        username VARCHAR(255) NOT NULL,
        project VARCHAR(63),
        gpus INTEGER NOT NULL,
        gpu_indices TEXT NOT NULL DEFAULT '[]',
        started_at FLOAT NOT NULL,
        ended_at FLOAT
    )""",
    "CREATE INDEX usage_sessions_owner ON usage_sessions (owner_kind, owner, ended_at)",
    """CREATE TABLE gpu_idle (
        device_uuid VARCHAR(255) PRIMARY KEY,
        zero_since FLOAT NOT NULL
    )""",
]


@dataclass(frozen=True)
class UsageSession:
    id: int
    owner_kind: str
    owner: str
    username: str
    project: str | None
    gpus: int
    gpu_indices: tuple[int, ...]
    started_at: float
    ended_at: float | None

    def gpu_hours(self, since: float, until: float) -> float:
        end = self.ended_at if self.ended_at is not None else until
        overlap = min(end, until) - max(self.started_at, since)
        return self.gpus * max(overlap, 0.0) / 3600.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gpu_indices"] = list(self.gpu_indices)
        return d


class UsageLedger:
    """GPU-hours per user and project, and idle GPU holders."""

    def __init__(self, db: Database):
        self.db = db
        self._jobs: JobStore | None = None
        try:
            db.migrate("usage", SCHEMA)
        except sa.exc.SQLAlchemyError:
            db.migrate("usage", SCHEMA)  # another process migrated at the same moment

    # --- events -------------------------------------------------------------------------------

    def started(self, owner_kind: str, owner: str, *, user: str, gpus: int,
                project: str | None = None, gpu_indices: Iterable[int] = (),
                at: float | None = None) -> UsageSession:
        """Open a session (idempotent: an owner's open session is returned as it is)."""
        if owner_kind not in OWNER_KINDS:
            raise InvalidInput(f"owner kind must be one of {', '.join(OWNER_KINDS)}")
        if not isinstance(owner, str) or not owner or not isinstance(user, str) or not user:
            raise InvalidInput("a usage event needs an owner and a user")
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
            raise InvalidInput(f"gpus is a whole number >= 0, not {gpus!r}")
        at = clock.now() if at is None else float(at)
        with self.db.tx() as conn:
            open_ = self._open(conn, owner_kind, owner)
            if open_:
                return open_[0]
            sid = conn.execute(sa.text(
                "SELECT COALESCE(MAX(id), 0) + 1 FROM usage_sessions")).scalar_one()
            conn.execute(sa.text(
                "INSERT INTO usage_sessions (id, owner_kind, owner, username, project, gpus,"
                " gpu_indices, started_at) VALUES (:i, :k, :o, :u, :p, :g, :x, :t)"),
                {"i": sid, "k": owner_kind, "o": owner, "u": user, "p": project, "g": gpus,
                 "x": json.dumps(sorted(int(i) for i in gpu_indices)), "t": at})
        return self.session(sid)

    def ended(self, owner_kind: str, owner: str, at: float | None = None) -> int:
        """Close the owner's open session(s). Returns how many; ending twice is harmless."""
        at = clock.now() if at is None else float(at)
        with self.db.tx() as conn:
            res = conn.execute(sa.text(
                "UPDATE usage_sessions SET ended_at = CASE WHEN started_at > :t"
                " THEN started_at ELSE :t END"
                " WHERE owner_kind = :k AND owner = :o AND ended_at IS NULL"),
                {"t": at, "k": owner_kind, "o": owner})
            return res.rowcount or 0

    def _job_store(self) -> JobStore | None:
        # Looked up until found: the control plane builds its job store after this ledger.
        if self._jobs is None:
            self._jobs = JobStore.existing(self.db)
        return self._jobs

    def _has_job_store(self) -> bool:
        return self._job_store() is not None

    def job_sessions(self, since: float | None = None) -> list[UsageSession]:
        """GPU jobs as usage sessions, from the job store's records (empty without it)."""
        store = self._job_store()
        if store is None:
            return []
        return [UsageSession(
            id=-j.id, owner_kind="job", owner=str(j.id), username=j.username,
            project=j.project, gpus=j.gpus, gpu_indices=j.gpu_indices,
            started_at=j.started_at, ended_at=j.finished_at) for j in store.gpu_spans(since)]

    def sync(self, allocations: Iterable) -> None:
        """Reconcile open sessions with the current GPU allocations (see the module doc)."""
        jobs_from_store = self._has_job_store()
        held: dict[tuple[str, str], list] = {}
        for a in allocations:
            if a.owner_kind == "job" and jobs_from_store:
                continue  # counted from the job store's own records
            held.setdefault((a.owner_kind, a.owner), []).append(a)
        open_now = {(s.owner_kind, s.owner): s for s in self.sessions(open_only=True)}
        for key, allocs in held.items():
            s = open_now.get(key)
            if s is not None and s.gpus == len(allocs):
                continue
            if s is not None:  # the owner's holding changed: a new session from now
                self.ended(*key)
                at = clock.now()
            else:
                at = min(a.allocated_at for a in allocs)
            a0 = allocs[0]
            self.started(key[0], key[1], user=a0.username, gpus=len(allocs),
                         project=a0.project, gpu_indices=[a.device_index for a in allocs],
                         at=at)
        for key, s in open_now.items():
            if key not in held and s.gpus > 0:
                self.ended(*key)

    # --- reading ------------------------------------------------------------------------------

    @staticmethod
    def _from_row(r) -> UsageSession:
        r = dict(r._mapping) if hasattr(r, "_mapping") else dict(r)
        return UsageSession(
            id=r["id"], owner_kind=r["owner_kind"], owner=r["owner"], username=r["username"],
            project=r["project"], gpus=r["gpus"],
            gpu_indices=tuple(json.loads(r["gpu_indices"] or "[]")),
            started_at=r["started_at"], ended_at=r["ended_at"])

    def _open(self, conn, owner_kind: str, owner: str) -> list[UsageSession]:
        rows = conn.execute(sa.text(
            "SELECT * FROM usage_sessions WHERE owner_kind = :k AND owner = :o"
            " AND ended_at IS NULL"), {"k": owner_kind, "o": owner})
        return [self._from_row(r) for r in rows]

    def session(self, sid: int) -> UsageSession:
        return self._from_row(self.db.query("SELECT * FROM usage_sessions WHERE id = :i",
                                            i=sid)[0])

    def sessions(self, since: float | None = None, open_only: bool = False) -> list[UsageSession]:
        where, params = [], {}
        if open_only:
            where.append("ended_at IS NULL")
        if since is not None:
            where.append("(ended_at IS NULL OR ended_at > :s)")
            params["s"] = since
        sql = "SELECT * FROM usage_sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._from_row(r) for r in self.db.query(sql + " ORDER BY id", **params)]

    def _sessions_since(self, since: float) -> list[UsageSession]:
        """Sessions not ended by ``since``; jobs from the job store where there is one (not
        from events or sync)."""
        sessions = self.sessions(since=since)
        if self._has_job_store():
            sessions = [s for s in sessions if s.owner_kind != "job"]
            sessions += self.job_sessions(since)
        return sessions

    @staticmethod
    def _hours(sessions: list[UsageSession], since: float, until: float,
               key: Callable[[UsageSession], Hashable]) -> dict:
        out: dict = {}
        for s in sessions:
            hours = s.gpu_hours(since, until)
            if hours > 0:
                out[key(s)] = out.get(key(s), 0.0) + hours
        return out

    def gpu_hours(self, since: float, until: float | None = None,
                  by: str = "user") -> dict[str, float]:
        """GPU-hours inside ``[since, until]`` per user (``by="user"``) or project."""
        if by not in ("user", "project"):
            raise InvalidInput("gpu_hours groups by 'user' or 'project'")
        until = clock.now() if until is None else until
        out = self._hours(self._sessions_since(since), since, until, GROUP_BY[by])
        return {k: round(v, 4) for k, v in sorted(out.items())}

    def report(self, days: Iterable[int] = (7, 30)) -> dict:
        """``{"users": {name: {"7d": h, "30d": h}}, "projects": {...}}`` up to now."""
        now, days = clock.now(), tuple(days)
        report: dict[str, dict] = {"users": {}, "projects": {}}
        # the longest window's sessions hold every shorter one's: the job store is read once
        sessions = self._sessions_since(now - max(days) * DAY) if days else []
        for d in days:
            for by, section in (("user", "users"), ("project", "projects")):
                hours = self._hours(sessions, now - d * DAY, now, GROUP_BY[by])
                for name, h in sorted(hours.items()):
                    report[section].setdefault(name, {})[f"{d}d"] = round(h, 4)
        for section in report.values():
            for row in section.values():
                for d in days:
                    row.setdefault(f"{d}d", 0.0)
        return report

    def rows(self, days: Iterable[int] = (7, 30)) -> list[dict]:
        """``[{"user", "project", "7d", "30d"}]``: GPU-hours per user and project up to now."""
        now, days = clock.now(), tuple(days)
        table: dict[tuple, dict] = {}
        sessions = self._sessions_since(now - max(days) * DAY) if days else []
        for d in days:
            for key, hours in self._hours(sessions, now - d * DAY, now,
                                          GROUP_BY["user and project"]).items():
                table.setdefault(key, {f"{x}d": 0.0 for x in days})[f"{d}d"] = round(hours, 4)
        return [{"user": u, "project": p, **h} for (u, p), h in sorted(table.items())]

    def visible_report(self, user: str, managed: Iterable[str] | None,
                       days: Iterable[int] = (7, 30)) -> dict:
        """What one person sees of GPU-hours: their own (total and by project), the projects
        they manage (by member), and, for ``managed=None`` (administrators), every row.

        ``{"user", "mine": {"7d", "30d", "by_project": {p: {...}}}, "projects": {p: {"7d",
        "30d", "by_user": {u: {...}}}}, "rows": [...]}``; ``rows`` are the lines a CSV export
        holds (own, managed projects', or all)."""
        days = tuple(days)
        rows = self.rows(days)
        zero = {f"{d}d": 0.0 for d in days}

        def add(into: dict, row: dict) -> None:
            for k in zero:
                into[k] = round(into.get(k, 0.0) + row[k], 4)

        mine = {**zero, "by_project": {}}
        projects: dict[str, dict] = {}
        managed = None if managed is None else set(managed)
        visible = []
        for r in rows:
            seen = False
            if r["user"] == user:
                add(mine, r)
                add(mine["by_project"].setdefault(r["project"], dict(zero)), r)
                seen = True
            if managed is None or r["project"] in managed:
                proj = projects.setdefault(r["project"], {**zero, "by_user": {}})
                add(proj, r)
                add(proj["by_user"].setdefault(r["user"], dict(zero)), r)
                seen = True
            if seen:
                visible.append(r)
        for name in managed or ():
            projects.setdefault(name, {**zero, "by_user": {}})
        return {"user": user, "days": list(days), "mine": mine, "projects": projects,
                "rows": visible}

    # --- idle GPUs ----------------------------------------------------------------------------

    def observe(self, gpus) -> None:
        """Note a utilisation reading: devices at 0 % keep (or start) their idle clock."""
        now = clock.now()
        with self.db.tx() as conn:
            for g in gpus:
                if g.utilization_pct == 0:
                    if not conn.execute(sa.text("SELECT 1 FROM gpu_idle WHERE device_uuid = :u"),
                                        {"u": g.uuid}).first():
                        conn.execute(sa.text(
                            "INSERT INTO gpu_idle (device_uuid, zero_since) VALUES (:u, :t)"),
                            {"u": g.uuid, "t": now})
                else:  # busy, or unknown: not provably idle
                    conn.execute(sa.text("DELETE FROM gpu_idle WHERE device_uuid = :u"),
                                 {"u": g.uuid})

    def zero_since(self) -> dict[str, float]:
        """Device uuid -> since when it has read 0 % utilisation (devices idle now)."""
        return {r["device_uuid"]: r["zero_since"]
                for r in self.db.query("SELECT device_uuid, zero_since FROM gpu_idle")}

    def idle(self, allocations: Iterable, minutes: float) -> list[dict]:
        """Owners whose every device has read 0 % for more than ``minutes`` (and since the
        allocation: a GPU idle before someone took it does not count against them)."""
        now = clock.now()
        zero = {r["device_uuid"]: r["zero_since"]
                for r in self.db.query("SELECT device_uuid, zero_since FROM gpu_idle")}
        owners: dict[tuple[str, str], list] = {}
        for a in allocations:
            owners.setdefault((a.owner_kind, a.owner), []).append(a)
        out = []
        for (kind, owner), allocs in sorted(owners.items()):
            if any(a.device_uuid not in zero for a in allocs):
                continue
            since = max(max(zero[a.device_uuid], a.allocated_at) for a in allocs)
            idle_min = (now - since) / 60.0
            if idle_min > minutes:
                out.append({"owner_kind": kind, "owner": owner, "username": allocs[0].username,
                            "project": allocs[0].project,
                            "gpu_indices": sorted(a.device_index for a in allocs),
                            "idle_minutes": round(idle_min, 1)})
        return out


def report_for(ledger: UsageLedger, projects, caller) -> dict:
    """The GPU-hours ``caller`` may see (:meth:`UsageLedger.visible_report`): administrators
    everything, project managers also their projects', everyone their own."""
    if caller.is_admin:
        return ledger.visible_report(caller.name, managed=None)
    managed = [p.name for p in projects.all() if projects.is_manager(caller, p)]
    return ledger.visible_report(caller.name, managed=managed)


def as_csv(report: dict) -> str:
    """The report's rows as CSV: ``user,project,gpu_hours_7d,gpu_hours_30d``."""
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    days = report["days"]
    w.writerow(["user", "project", *(f"gpu_hours_{d}d" for d in days)])
    for r in report["rows"]:
        w.writerow([r["user"], r["project"], *(r[f"{d}d"] for d in days)])
    return out.getvalue()
