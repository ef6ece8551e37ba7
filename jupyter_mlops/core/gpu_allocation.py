"""GPU allocation and GPU quotas: the one place that decides who holds which GPU.

The control plane owns it: jobs and deployments allocate in process, user servers through the
control plane's API (the hub's spawner asks ``POST /api/gpus/allocations/servers``; the hub keeps
no GPU state of its own), so a GPU is never handed out twice and a hub or control-plane restart
keeps every assignment (they are rows, not memory).

Usage::

    alloc = GpuAllocator(Database(url), inventory_from_config(devices))  # backends.gpu_inventory
    gpus = alloc.allocate("server", "alice", user="alice", groups=("lab",), count=1)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g.index) for g in gpus)
    ...
    alloc.release("server", "alice")

``allocate`` raises :class:`QuotaExceeded` (HTTP 403) when a user, group or project quota would
be exceeded and :class:`NoGpuFree` (HTTP 409) when the inventory has too few free devices; both
messages name the limit and who uses what, so a spawn page or a job can show them as they are.

Quotas cap the GPUs held at one time: a user quota what that user holds, a group quota what all
allocations made by members of the group hold together, a project quota what all allocations
charged to the project hold. User and group quotas are set here (``set_quota(kind, name,
gpus)``); a project's quota is the ``gpu_quota`` of the project (``core.projects``, which owns
it and its ceiling), read through ``Projects.gpu_quota_in`` inside the allocation's own
transaction. No quota means no limit (beyond ``default_user_quota``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Iterable

import sqlalchemy as sa

from . import clock
from .db import Database
from .errors import Conflict, InvalidInput, QuotaExceeded
from .gpus import Gpu, GpuInventory
from .projects import Projects

OWNER_KINDS = ("server", "job", "deployment")
QUOTA_KINDS = ("user", "group")  # project quotas live in core.projects
MAX_NAME = 255

SCHEMA = [
    # device_uuid is the primary key: the database itself refuses a second holder of a device.
    """CREATE TABLE IF NOT EXISTS gpu_allocations (
        device_uuid VARCHAR(255) PRIMARY KEY,
        device_index INTEGER NOT NULL,
        owner_kind VARCHAR(32) NOT NULL,
        owner VARCHAR(255) NOT NULL,
        username VARCHAR(255) NOT NULL,
        groups_json TEXT NOT NULL DEFAULT '[]',
        project VARCHAR(63),
        allocated_at FLOAT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS gpu_allocations_owner ON gpu_allocations (owner_kind, owner)",
    """CREATE TABLE IF NOT EXISTS gpu_quotas (
        kind VARCHAR(16) NOT NULL,
        name VARCHAR(255) NOT NULL,
        gpus INTEGER NOT NULL,
        PRIMARY KEY (kind, name)
    )""",
    # One row everyone updates first: it serialises allocations (SQLite takes its write lock,
    # Postgres a row lock), so two concurrent requests cannot both pass the same quota check.
    "CREATE TABLE IF NOT EXISTS gpu_allocation_lock (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
    "INSERT INTO gpu_allocation_lock (id, n) VALUES (1, 0)",
]
# Notebook servers waiting for GPUs, in the job queue's fair order (core.jobs.queue).
REQUEST_SCHEMA = [
    """CREATE TABLE gpu_server_requests (
        owner VARCHAR(255) PRIMARY KEY,
        username VARCHAR(255) NOT NULL,
        groups_json TEXT NOT NULL DEFAULT '[]',
        count INTEGER NOT NULL,
        gpu_type VARCHAR(255),
        requested_at FLOAT NOT NULL,
        position INTEGER,
        reason TEXT NOT NULL DEFAULT ''
    )""",
]


class NoGpuFree(Conflict):
    """Fewer free GPUs than asked for (HTTP 409). Jobs may wait and retry; spawns fail fast."""


@dataclass(frozen=True)
class GpuAllocation:
    """One device held by one owner (a user server, a job or a deployment)."""

    device_uuid: str
    device_index: int
    owner_kind: str
    owner: str
    username: str
    groups: tuple[str, ...]
    project: str | None
    allocated_at: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["groups"] = list(self.groups)
        return d


@dataclass
class ServerRequest:
    """A notebook server waiting for GPUs; the job runner's pass grants it in fair order."""

    owner: str
    user: str
    groups: tuple[str, ...]
    count: int
    gpu_type: str | None
    requested_at: float
    position: int | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["groups"] = list(self.groups)
        return d


@dataclass(frozen=True)
class GpuQuota:
    kind: str
    name: str
    gpus: int

    def to_dict(self) -> dict:
        return asdict(self)


def _describe(allocs: Iterable[GpuAllocation]) -> str:
    """"server alice (1), job 17 (2)": who holds what, for error messages."""
    counts: dict[tuple[str, str], int] = {}
    for a in allocs:
        counts[(a.owner_kind, a.owner)] = counts.get((a.owner_kind, a.owner), 0) + 1
    return ", ".join(f"{k} {o} ({n})" for (k, o), n in sorted(counts.items()))


def _matching(gpus: list[Gpu], device_filter: str | None) -> list[Gpu]:
    """Devices whose name contains ``device_filter`` (case-insensitive), e.g. "A100"."""
    if not device_filter:
        return list(gpus)
    return [g for g in gpus if device_filter.lower() in g.name.lower()]


def server_allocation_request(body: dict) -> dict:
    """The keyword arguments of :meth:`GpuAllocator.allocate` for a user server, from the hub
    spawner's request ``{"owner", "user", "groups", "count", "gpu_type"}`` (checked here: the
    document checks types, the domain words the ranges)."""
    owner, user = body.get("owner"), body.get("user")
    if not isinstance(owner, str) or not isinstance(user, str) or not user:
        raise InvalidInput("a server allocation needs an owner and a user")
    if owner != user and not owner.startswith(user + "/"):
        raise InvalidInput(f"server {owner!r} is not one of {user}'s servers")
    groups = body.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise InvalidInput("groups is a list of group names")
    gpu_type = body.get("gpu_type")
    if gpu_type is not None and not isinstance(gpu_type, str):
        raise InvalidInput("gpu_type is a device name part such as 'A100', or null")
    return {"owner": owner, "user": user, "groups": groups, "count": body.get("count"),
            "device_filter": gpu_type or None}


class GpuAllocator:
    """Exclusive GPU assignment with per-user, per-group and per-project quotas.

    Parameters
    ----------
    db
        The control plane database.
    inventory
        The GPU inventory seam; read at each call so a changed configuration takes effect.
    default_user_quota
        GPUs any user may hold at once when no user quota row exists (``None``: no limit).
    """

    def __init__(self, db: Database, inventory: GpuInventory,
                 default_user_quota: int | None = None):
        self.db = db
        self.inventory = inventory
        self.default_user_quota = default_user_quota
        db.migrate("gpu_allocation", SCHEMA)
        db.migrate("gpu_server_requests", REQUEST_SCHEMA)

    # --- reading ------------------------------------------------------------------------------

    def _rows(self, conn, where: str = "", **params) -> list[GpuAllocation]:
        rows = conn.execute(sa.text(
            "SELECT * FROM gpu_allocations " + where + " ORDER BY device_index"), params)
        return [
            GpuAllocation(
                device_uuid=r.device_uuid, device_index=r.device_index,
                owner_kind=r.owner_kind, owner=r.owner, username=r.username,
                groups=tuple(json.loads(r.groups_json or "[]")), project=r.project,
                allocated_at=r.allocated_at,
            )
            for r in rows
        ]

    def holders(self) -> list[GpuAllocation]:
        """Every current allocation, by device index."""
        with self.db.engine.connect() as conn:
            return self._rows(conn)

    def held_by(self, owner_kind: str, owner: str) -> list[Gpu]:
        """The devices ``owner`` holds now (empty if none), as inventory entries."""
        with self.db.engine.connect() as conn:
            allocs = self._rows(conn, "WHERE owner_kind = :k AND owner = :o", k=owner_kind,
                                o=owner)
        by_uuid = {g.uuid: g for g in self.inventory.read().gpus}
        return [by_uuid.get(a.device_uuid) or Gpu(index=a.device_index, uuid=a.device_uuid,
                                                   name="(no longer in the inventory)",
                                                   memory_total_mb=0) for a in allocs]

    def availability(self, device_filter: str | None = None) -> dict:
        """``{"total", "free", "reason"}`` over the current inventory (or its matching part)."""
        reading = self.inventory.read()
        held = {a.device_uuid for a in self.holders()}
        gpus = _matching(reading.gpus, device_filter)
        free = [g for g in gpus if g.uuid not in held]
        return {"total": len(gpus), "free": len(free), "reason": reading.reason}

    # --- quotas -------------------------------------------------------------------------------

    def set_quota(self, kind: str, name: str, gpus: int | None) -> GpuQuota | None:
        """Set (``gpus`` >= 0) or remove (``None``) the quota of a user or group."""
        if kind == "project":
            raise InvalidInput("a project's GPU quota is set on the project (its gpu_quota)")
        if kind not in QUOTA_KINDS:
            raise InvalidInput(f"quota kind must be one of {', '.join(QUOTA_KINDS)}, not {kind!r}")
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            raise InvalidInput(f"a {kind} quota needs a name of 1-{MAX_NAME} characters")
        with self.db.tx() as conn:
            conn.execute(sa.text("DELETE FROM gpu_quotas WHERE kind = :k AND name = :n"),
                         {"k": kind, "n": name})
            if gpus is None:
                return None
            if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
                raise InvalidInput(f"a GPU quota is a whole number >= 0 or null, not {gpus!r}")
            conn.execute(sa.text("INSERT INTO gpu_quotas (kind, name, gpus) VALUES (:k, :n, :g)"),
                         {"k": kind, "n": name, "g": gpus})
        return GpuQuota(kind, name, gpus)

    def get_quota(self, kind: str, name: str) -> int | None:
        if kind == "project":
            with self.db.engine.connect() as conn:
                return Projects.gpu_quota_in(conn, name)
        rows = self.db.query("SELECT gpus FROM gpu_quotas WHERE kind = :k AND name = :n",
                             k=kind, n=name)
        return rows[0]["gpus"] if rows else None

    def quotas(self) -> list[GpuQuota]:
        return [GpuQuota(**r) for r in
                self.db.query("SELECT kind, name, gpus FROM gpu_quotas ORDER BY kind, name")]

    def limits_for(self, user: str, groups: Iterable[str] = (),
                   project: str | None = None) -> list[tuple[str, str, int, int]]:
        """Each quota that applies: ``(kind, name, limit, in use now)``, for display."""
        with self.db.engine.connect() as conn:
            return self._limits(conn, user, tuple(groups), project)

    def _limits(self, conn, user, groups, project):
        quota = {(r.kind, r.name): r.gpus for r in
                 conn.execute(sa.text("SELECT kind, name, gpus FROM gpu_quotas"))}
        allocs = self._rows(conn)
        out = []
        user_limit = quota.get(("user", user), self.default_user_quota)
        if user_limit is not None:
            out.append(("user", user, user_limit, sum(a.username == user for a in allocs)))
        for g in groups:
            if ("group", g) in quota:
                out.append(("group", g, quota[("group", g)],
                            sum(g in a.groups for a in allocs)))
        project_limit = Projects.gpu_quota_in(conn, project) if project else None
        if project_limit is not None:
            out.append(("project", project, project_limit,
                        sum(a.project == project for a in allocs)))
        return out

    # --- allocating ---------------------------------------------------------------------------

    def allocate(self, owner_kind: str, owner: str, *, user: str, count: int,
                 groups: Iterable[str] = (), project: str | None = None,
                 device_filter: str | None = None) -> list[Gpu]:
        """Give ``owner`` ``count`` free GPUs exclusively, lowest indices first.

        ``device_filter`` restricts the choice to devices whose name contains it ("A100").

        An owner that already holds devices keeps them and gets them back when ``count``
        matches (a restarted hub re-attaching), else :class:`Conflict`. ``count == 0`` checks
        nothing and returns ``[]``.

        Raises
        ------
        InvalidInput
            unknown ``owner_kind``, empty owner, negative count.
        QuotaExceeded
            a user, group or project quota would be exceeded (message names it and its use).
        NoGpuFree
            fewer than ``count`` devices free (message names the holders).
        """
        if owner_kind not in OWNER_KINDS:
            raise InvalidInput(f"owner kind must be one of {', '.join(OWNER_KINDS)}")
        if not owner or not user or len(owner) > MAX_NAME:
            raise InvalidInput("an allocation needs an owner and a user")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidInput(f"GPU count must be a whole number >= 0, not {count!r}")
        if count == 0:
            return []
        groups = tuple(sorted(set(groups)))
        reading = self.inventory.read()
        with self.db.tx() as conn:
            conn.execute(sa.text("UPDATE gpu_allocation_lock SET n = n + 1 WHERE id = 1"))
            mine = self._rows(conn, "WHERE owner_kind = :k AND owner = :o", k=owner_kind,
                              o=owner)
            if mine:
                if len(mine) == count:
                    by_uuid = {g.uuid: g for g in reading.gpus}
                    return [by_uuid[a.device_uuid] for a in mine if a.device_uuid in by_uuid]
                raise Conflict(f"{owner_kind} {owner} already holds {len(mine)} GPU(s)")
            for kind, name, limit, used in self._limits(conn, user, groups, project):
                if used + count > limit:
                    raise QuotaExceeded(
                        f"GPU quota of {kind} {name} is {limit}; {used} in use now, "
                        f"{count} more asked for",
                        quota={"kind": kind, "name": name, "limit": limit, "in_use": used},
                    )
            held = self._rows(conn)
            taken = {a.device_uuid for a in held}
            candidates = _matching(reading.gpus, device_filter)
            free = [g for g in candidates if g.uuid not in taken]
            if len(free) < count:
                total = len(candidates)
                if total == 0 and device_filter and reading.gpus:
                    msg = f"no {device_filter} GPU on this platform"
                elif total == 0:
                    msg = f"no GPU on this platform ({reading.reason or 'empty inventory'})"
                else:
                    msg = (f"no GPU free: {count} asked for, {len(free)} of {total} free; "
                           f"in use by {_describe(held)}")
                raise NoGpuFree(msg, total=total, free=len(free))
            chosen = free[:count]
            now = clock.now()
            for g in chosen:
                conn.execute(sa.text(
                    "INSERT INTO gpu_allocations (device_uuid, device_index, owner_kind, owner,"
                    " username, groups_json, project, allocated_at)"
                    " VALUES (:u, :i, :k, :o, :user, :g, :p, :t)"),
                    {"u": g.uuid, "i": g.index, "k": owner_kind, "o": owner, "user": user,
                     "g": json.dumps(list(groups)), "p": project, "t": now})
            return chosen

    # --- notebook servers waiting in the queue ---------------------------------------------------

    def request_server(self, owner: str, *, user: str, count: int, groups: Iterable[str] = (),
                       device_filter: str | None = None) -> "list[Gpu] | ServerRequest":
        """Devices for a server now, or its place in the queue when none is free.

        The server's devices when it holds ``count`` already (granted by a queue pass, or a
        re-attach); its waiting request when it has one; else an allocation attempt, and a new
        request on :class:`NoGpuFree`. Quotas still refuse (:class:`QuotaExceeded`).
        """
        held = self.held_by("server", owner)
        if held and len(held) == count:
            self.drop_request(owner)
            return held
        waiting = self.server_requests(owner)
        if waiting and (waiting[0].count, waiting[0].gpu_type) == (count, device_filter):
            return waiting[0]
        try:
            gpus = self.allocate("server", owner, user=user, count=count, groups=groups,
                                 device_filter=device_filter)
        except NoGpuFree as e:
            if not e.details.get("total"):
                raise  # no such GPU on this platform at all: waiting would be forever
            groups = sorted(set(groups))
            with self.db.tx() as conn:
                conn.execute(sa.text("DELETE FROM gpu_server_requests WHERE owner = :o"),
                             {"o": owner})
                conn.execute(sa.text(
                    "INSERT INTO gpu_server_requests (owner, username, groups_json, count,"
                    " gpu_type, requested_at, reason) VALUES (:o, :u, :g, :c, :t, :at, :r)"),
                    {"o": owner, "u": user, "g": json.dumps(groups), "c": count,
                     "t": device_filter, "at": clock.now(),
                     "r": "waiting for a place in the GPU queue"})
            return self.server_requests(owner)[0]
        self.drop_request(owner)
        return gpus

    def server_requests(self, owner: str | None = None) -> list[ServerRequest]:
        """Waiting servers (one owner's, or all), oldest first."""
        rows = self.db.query(
            "SELECT * FROM gpu_server_requests" + (" WHERE owner = :o" if owner else "")
            + " ORDER BY requested_at", **({"o": owner} if owner else {}))
        return [ServerRequest(owner=r["owner"], user=r["username"],
                              groups=tuple(json.loads(r["groups_json"] or "[]")),
                              count=r["count"], gpu_type=r["gpu_type"],
                              requested_at=r["requested_at"], position=r["position"],
                              reason=r["reason"]) for r in rows]

    def update_request(self, owner: str, position: int | None, reason: str) -> None:
        with self.db.tx() as conn:
            conn.execute(sa.text("UPDATE gpu_server_requests SET position = :p, reason = :r"
                                 " WHERE owner = :o"), {"p": position, "r": reason, "o": owner})

    def drop_request(self, owner: str) -> None:
        with self.db.tx() as conn:
            conn.execute(sa.text("DELETE FROM gpu_server_requests WHERE owner = :o"),
                         {"o": owner})

    def release(self, owner_kind: str, owner: str) -> int:
        """Free every device ``owner`` holds. Returns how many; releasing twice is harmless."""
        if owner_kind == "server":
            self.drop_request(owner)  # a spawn given up leaves the queue too
        with self.db.tx() as conn:
            res = conn.execute(sa.text(
                "DELETE FROM gpu_allocations WHERE owner_kind = :k AND owner = :o"),
                {"k": owner_kind, "o": owner})
            return res.rowcount or 0
