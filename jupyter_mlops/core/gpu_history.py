"""Per-GPU utilisation over the last day, for the admin page's charts.

The control plane already reads the inventory periodically for idle detection
(``PlatformAdmin.sync``); each reading is also kept here, one row per device and minute, and rows
older than the window are dropped at every write, so the table stays bounded (24 h at 1-min
resolution: 1,440 rows per device). Within a minute the highest reading is kept: a device busy
for part of a minute must not look idle. Devices whose utilisation is unknown (simulated GPUs,
no NVML) are not recorded: an absent series says "no data", a series of zeros would lie.
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


def sparkline(points: list[dict], *, end: float, window_seconds: float, width: int = 160,
              height: int = 32) -> str:
    """SVG polyline points of utilisation (0-100 %) against time over the window ending at
    ``end``, for the admin page's small chart of each device."""
    start = end - window_seconds
    coords = []
    for p in points:
        # 2 px inside the box, so the mark of the latest reading is drawn whole
        x = 2 + max(0.0, min(1.0, (p["t"] - start) / window_seconds)) * (width - 4)
        y = height - 2 - p["utilization_pct"] / 100.0 * (height - 4)
        coords.append(f"{x:.1f},{y:.1f}")
    return " ".join(coords)


def last_point(line: str) -> tuple[str, str] | None:
    """Where the chart marks the latest reading (a single reading is a dot, not a line)."""
    if not line:
        return None
    x, y = line.rsplit(" ", 1)[-1].split(",")
    return x, y
