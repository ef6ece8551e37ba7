"""Idle GPU servers: nudge the holder, then give the GPU back to the lab.

A user server holding GPUs is *idle* from a moment the rule in force decides:

* ``gpu-utilisation`` when the inventory reads a utilisation for every device the server holds
  (NVML): since its devices last read more than 0 % (``UsageLedger.observe`` keeps that clock),
  never before the allocation itself;
* ``activity`` when some device's utilisation is unknown (simulated GPUs, Kubernetes without
  metrics): since the hub last saw activity on the server (``last_activity``).

"Keep it" (the holder's answer to the nudge) restarts the idle clock at that moment. With a
policy of ``minutes`` (0: never) and ``warning`` minutes, the holder is notified once when
``minutes - warning`` have passed, and the server is released when ``minutes`` have. Releasing
stops the server: the workspace is a directory that outlives the server, only running kernels
end (restarting on the CPU profile would need the hub's spawn right, which the control plane
deliberately does not hold). Each release is recorded (``culls``) for the usage report.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import sqlalchemy as sa

from . import clock
from .db import Database
from .errors import NotFound
from .gpus import InventoryReading
from .roles import Caller

SCHEMA = [
    """CREATE TABLE gpu_cull_state (
        owner VARCHAR(255) PRIMARY KEY,
        warned_at FLOAT,
        kept_at FLOAT
    )""",
    """CREATE TABLE gpu_culls (
        id INTEGER PRIMARY KEY,
        owner VARCHAR(255) NOT NULL,
        username VARCHAR(255) NOT NULL,
        gpus INTEGER NOT NULL,
        rule VARCHAR(32) NOT NULL,
        idle_minutes FLOAT NOT NULL,
        at FLOAT NOT NULL
    )""",
]

GPU_RULE, ACTIVITY_RULE = "gpu-utilisation", "activity"


@dataclass(frozen=True)
class CullPolicy:
    """``minutes`` idle before the release (0: never), ``warning`` minutes of notice."""

    minutes: float
    warning: float
    why: str = ""  # "default", "group students", "profile gpu-1", "exempt user ann"


@dataclass
class IdleServer:
    """One GPU server as the culler sees it (the admin page lists these)."""

    owner: str
    username: str
    gpus: int
    rule: str
    idle_minutes: float | None  # None: no idle clock (busy, or no activity known)
    release_after: float  # minutes; 0: never
    policy: str
    warned: bool
    step: str = ""  # "warn", "release" or ""

    def to_dict(self) -> dict:
        return asdict(self)


class GpuCuller:
    """Decides which GPU servers to nudge and to release, and remembers what it did."""

    def __init__(self, db: Database):
        self.db = db
        db.migrate("gpu_culling", SCHEMA)

    def _state(self) -> dict[str, dict]:
        return {r["owner"]: r for r in
                self.db.query("SELECT owner, warned_at, kept_at FROM gpu_cull_state")}

    def plan(self, holders: Iterable, reading: InventoryReading, zero_since: dict[str, float],
             activity: dict[str, float | None],
             policy_for: Callable[[str, tuple[str, ...]], CullPolicy]) -> list[IdleServer]:
        """Every server holding GPUs, with its rule, idle time and what is due now.

        ``zero_since``: device uuid -> since when it reads 0 %; ``activity``: server owner ->
        the hub's last activity (epoch seconds); ``policy_for(owner, groups)``.
        """
        now = clock.now()
        util = {g.uuid: g.utilization_pct for g in reading.gpus}
        state = self._state()
        servers: dict[str, list] = {}
        for a in holders:
            if a.owner_kind == "server":
                servers.setdefault(a.owner, []).append(a)
        out = []
        for owner, allocs in sorted(servers.items()):
            policy = policy_for(owner, tuple(allocs[0].groups))
            known = all(util.get(a.device_uuid) is not None for a in allocs)
            since = None
            if known:
                rule = GPU_RULE
                if all(a.device_uuid in zero_since for a in allocs):
                    since = max(max(zero_since[a.device_uuid], a.allocated_at) for a in allocs)
            else:
                rule = ACTIVITY_RULE
                last = activity.get(owner)
                if last is not None:
                    since = max(last, min(a.allocated_at for a in allocs))
            st = state.get(owner) or {}
            if since is not None and st.get("kept_at"):
                since = max(since, st["kept_at"])
            idle = None if since is None else max(now - since, 0.0) / 60.0
            warned = bool(st.get("warned_at")) and (since is None or st["warned_at"] >= since)
            step = ""
            if policy.minutes > 0 and idle is not None:
                if idle >= policy.minutes:
                    step = "release"
                elif idle >= policy.minutes - policy.warning and not warned:
                    step = "warn"
            out.append(IdleServer(owner=owner, username=allocs[0].username, gpus=len(allocs),
                                  rule=rule, idle_minutes=None if idle is None else round(idle, 1),
                                  release_after=policy.minutes, policy=policy.why,
                                  warned=warned, step=step))
        return out

    def _upsert(self, conn, owner: str, **values) -> None:
        if not conn.execute(sa.text("SELECT 1 FROM gpu_cull_state WHERE owner = :o"),
                            {"o": owner}).first():
            conn.execute(sa.text("INSERT INTO gpu_cull_state (owner) VALUES (:o)"), {"o": owner})
        for key, value in values.items():
            conn.execute(sa.text(f"UPDATE gpu_cull_state SET {key} = :v WHERE owner = :o"),
                         {"v": value, "o": owner})

    def warned(self, owner: str) -> None:
        with self.db.tx() as conn:
            self._upsert(conn, owner, warned_at=clock.now())

    def keep(self, caller: Caller, owner: str, holders: Iterable) -> None:
        """The holder keeps their server's GPUs: the idle clock starts again now.

        Only one's own server (``alice`` or ``alice/named``) holding GPUs; anything else is
        absent (:class:`NotFound`), like other people's things everywhere."""
        mine = owner == caller.name or owner.startswith(caller.name + "/")
        if not mine or not any(a.owner_kind == "server" and a.owner == owner for a in holders):
            raise NotFound(f"no server {owner!r} of yours holds a GPU")
        with self.db.tx() as conn:
            self._upsert(conn, owner, kept_at=clock.now(), warned_at=None)

    def released(self, server: IdleServer) -> None:
        with self.db.tx() as conn:
            conn.execute(sa.text("DELETE FROM gpu_cull_state WHERE owner = :o"),
                         {"o": server.owner})
            cid = conn.execute(sa.text("SELECT COALESCE(MAX(id), 0) + 1 FROM gpu_culls")
                               ).scalar_one()
            conn.execute(sa.text(
                "INSERT INTO gpu_culls (id, owner, username, gpus, rule, idle_minutes, at)"
                " VALUES (:i, :o, :u, :g, :r, :m, :t)"),
                {"i": cid, "o": server.owner, "u": server.username, "g": server.gpus,
                 "r": server.rule, "m": server.idle_minutes or 0.0, "t": clock.now()})

    def culls(self, since: float | None = None, user: str | None = None) -> list[dict]:
        """Releases of idle servers, newest first (one user's, or everyone's)."""
        where, params = [], {}
        if since is not None:
            where.append("at >= :s")
            params["s"] = since
        if user is not None:
            where.append("username = :u")
            params["u"] = user
        sql = "SELECT * FROM gpu_culls" + (" WHERE " + " AND ".join(where) if where else "")
        return self.db.query(sql + " ORDER BY id DESC", **params)


def idle_message(minutes: float, release_in: float) -> str:
    return (f"your GPU has been idle {minutes:.0f} min; it will be released in "
            f"{max(release_in, 0):.0f} min unless you keep it")
