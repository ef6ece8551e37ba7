"""Per-GPU utilisation, and each GPU server's CPU, memory and GPU use, over the last day, for
the admin page's charts.

The control plane already reads the inventory periodically for idle detection
(``PlatformAdmin.sync``); each reading is also kept here, one row per device and minute, and rows
older than the window are dropped at every write, so the table stays bounded (24 h at 1-min
resolution: 1,440 rows per device). Within a minute the highest reading is kept: a device busy
for part of a minute must not look idle. Devices whose utilisation is unknown (simulated GPUs,
no NVML) are not recorded: an absent series says "no data", a series of zeros would lie.
A GPU server's samples (:class:`GpuServerTelemetry`) are kept the same way, per server.
"""
from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa

from . import clock
from .db import Database
from .gpus import Gpu

SCHEMA = [
    """CREATE TABLE gpu_utilisation_history (
        device_uuid VARCHAR(255) NOT NULL,
        minute INTEGER NOT NULL,
        utilization_pct INTEGER NOT NULL,
        memory_used_mb INTEGER,
        PRIMARY KEY (device_uuid, minute)
    )""",
    """CREATE TABLE gpu_server_telemetry (
        owner VARCHAR(255) NOT NULL,
        minute INTEGER NOT NULL,
        cpu_percent FLOAT NOT NULL,
        memory_mb INTEGER NOT NULL,
        gpu_pct INTEGER,
        PRIMARY KEY (owner, minute)
    )""",
]


class GpuUtilisationHistory:
    """Utilisation per device and time step, over a bounded window."""

    def __init__(self, db: Database, *, window_hours: float = 24.0, step_seconds: int = 60):
        self.db, self.window, self.step = db, window_hours * 3600.0, int(step_seconds)
        try:
            db.migrate("gpu_history", SCHEMA)
        except sa.exc.SQLAlchemyError:
            db.migrate("gpu_history", SCHEMA)  # another process migrated at the same moment

    def record(self, gpus: Iterable[Gpu]) -> None:
        """Keep one reading of each device whose utilisation is known; drop what is too old."""
        now = clock.now()
        minute = int(now // self.step)
        with self.db.tx() as conn:
            for g in gpus:
                if g.utilization_pct is None:
                    continue
                key = {"u": g.uuid, "m": minute}
                row = conn.execute(sa.text(
                    "SELECT utilization_pct, memory_used_mb FROM gpu_utilisation_history "
                    "WHERE device_uuid = :u AND minute = :m"), key).first()
                if row is None:
                    conn.execute(sa.text(
                        "INSERT INTO gpu_utilisation_history VALUES (:u, :m, :p, :mem)"),
                        {**key, "p": int(g.utilization_pct), "mem": g.memory_used_mb})
                else:
                    conn.execute(sa.text(
                        "UPDATE gpu_utilisation_history SET utilization_pct = :p, "
                        "memory_used_mb = :mem WHERE device_uuid = :u AND minute = :m"),
                        {**key, "p": max(row[0], int(g.utilization_pct)),
                         "mem": max(x for x in (row[1], g.memory_used_mb, 0) if x is not None)})
            conn.execute(sa.text("DELETE FROM gpu_utilisation_history WHERE minute < :oldest"),
                         {"oldest": self._oldest_minute(now)})

    def series(self) -> dict[str, list[dict]]:
        """Device uuid -> its readings in the window, oldest first:
        ``{"t": seconds since the epoch, "utilization_pct", "memory_used_mb"}``."""
        rows = self.db.query(
            "SELECT device_uuid, minute, utilization_pct, memory_used_mb "
            "FROM gpu_utilisation_history WHERE minute >= :oldest "
            "ORDER BY device_uuid, minute", oldest=self._oldest_minute(clock.now()))
        out: dict[str, list[dict]] = {}
        for r in rows:
            out.setdefault(r["device_uuid"], []).append({
                "t": r["minute"] * self.step, "utilization_pct": r["utilization_pct"],
                "memory_used_mb": r["memory_used_mb"]})
        return out

    def _oldest_minute(self, now: float) -> int:
        return int((now - self.window) // self.step) + 1


class GpuServerTelemetry:
    """CPU (% of a core), memory and GPU utilisation (mean of its devices; None when unknown)
    of each server holding a GPU, per minute (the minute's peaks), over a bounded window."""

    def __init__(self, db: Database, *, window_hours: float = 24.0, step_seconds: int = 60):
        self.db, self.window, self.step = db, window_hours * 3600.0, int(step_seconds)
        try:
            db.migrate("gpu_history", SCHEMA)
        except sa.exc.SQLAlchemyError:
            db.migrate("gpu_history", SCHEMA)

    def record(self, samples: dict[str, dict]) -> None:
        """``owner -> {"cpu_percent", "memory_mb", "gpu_pct"}``; drop what is too old."""
        now = clock.now()
        minute = int(now // self.step)
        with self.db.tx() as conn:
            for owner, x in samples.items():
                key = {"o": owner, "m": minute}
                row = conn.execute(sa.text(
                    "SELECT cpu_percent, memory_mb, gpu_pct FROM gpu_server_telemetry "
                    "WHERE owner = :o AND minute = :m"), key).first()
                new = (float(x["cpu_percent"]), int(x["memory_mb"]), x.get("gpu_pct"))
                if row is not None:
                    gpu = [v for v in (row[2], new[2]) if v is not None]
                    new = (max(row[0], new[0]), max(row[1], new[1]), max(gpu) if gpu else None)
                    conn.execute(sa.text("DELETE FROM gpu_server_telemetry "
                                         "WHERE owner = :o AND minute = :m"), key)
                conn.execute(sa.text(
                    "INSERT INTO gpu_server_telemetry VALUES (:o, :m, :c, :mem, :g)"),
                    {**key, "c": new[0], "mem": new[1], "g": new[2]})
            conn.execute(sa.text("DELETE FROM gpu_server_telemetry WHERE minute < :oldest"),
                         {"oldest": int((now - self.window) // self.step) + 1})

    def series(self) -> dict[str, list[dict]]:
        """Owner -> ``{"t", "cpu_percent", "memory_mb", "gpu_pct"}`` in the window, oldest
        first."""
        rows = self.db.query(
            "SELECT owner, minute, cpu_percent, memory_mb, gpu_pct FROM gpu_server_telemetry "
            "WHERE minute >= :oldest ORDER BY owner, minute",
            oldest=int((clock.now() - self.window) // self.step) + 1)
        out: dict[str, list[dict]] = {}
        for r in rows:
            out.setdefault(r["owner"], []).append({
                "t": r["minute"] * self.step, "cpu_percent": r["cpu_percent"],
                "memory_mb": r["memory_mb"], "gpu_pct": r["gpu_pct"]})
        return out


def sparkline(points: list[dict], *, end: float, window_seconds: float, width: int = 160,
              height: int = 32, key: str = "utilization_pct", top: float = 100.0) -> str:
    """SVG polyline points of ``key`` (0 to ``top``) against time over the window ending at
    ``end``, for the admin page's small charts; readings without that value are left out."""
    start = end - window_seconds
    coords = []
    for p in points:
        if p.get(key) is None:
            continue
        # 2 px inside the box, so the mark of the latest reading is drawn whole
        x = 2 + max(0.0, min(1.0, (p["t"] - start) / window_seconds)) * (width - 4)
        y = height - 2 - min(p[key] / top, 1.0) * (height - 4)
        coords.append(f"{x:.1f},{y:.1f}")
    return " ".join(coords)


def last_point(line: str) -> tuple[str, str] | None:
    """Where the chart marks the latest reading (a single reading is a dot, not a line)."""
    if not line:
        return None
    x, y = line.rsplit(" ", 1)[-1].split(",")
    return x, y
