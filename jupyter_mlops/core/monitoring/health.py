"""The platform's own health, for administrators: its processes, its disk, its job queue.

* Processes: everything ``jupyter-mlops up`` started (as its process watcher lists them),
  each classified as a service (hub, proxy, control plane, MLflow), a model server (per
  deployment) or a user's server, with CPU % and resident memory. A service
  whose process changed since the last sample was restarted: starts are remembered, so the
  page shows restarts over the last 7 days.
* Disk: the size of each part of the data directory (store, MLflow, workspaces...), sampled
  every ``disk_sample_seconds``; growth per day from the samples of the last week, and a
  warning when the disk is fuller than ``disk_warn_percent`` or is expected to fill within
  ``disk_warn_days`` at that rate.
* Queue: jobs waiting now, the longest wait, and the waits of jobs started in the last day.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import psutil
import sqlalchemy as sa

from .. import clock
from ..db import Database
from ..jobs.store import JobStore

SCHEMA = [
    """CREATE TABLE platform_disk_samples (
        at FLOAT PRIMARY KEY,
        total BIGINT NOT NULL,
        free BIGINT NOT NULL,
        parts TEXT NOT NULL
    )""",
    """CREATE TABLE platform_process_starts (
        service VARCHAR(255) NOT NULL,
        pid INTEGER NOT NULL,
        started_at FLOAT NOT NULL,
        PRIMARY KEY (service, pid, started_at)
    )""",
]
WEEK = 7 * 86400
PARTS = {"store": "dataset store", "mlflow": "MLflow (runs, artifacts)", "users": "workspaces",
         "control": "control plane database", "deployments": "model servers", "jobs": "jobs",
         "logs": "logs", "hub": "hub"}


def classify(cmdline: list[str]) -> tuple[str, str]:
    """(kind, name) of a platform process from its command line."""
    line = " ".join(cmdline)
    if "jupyter_mlops.serving" in line:
        dep = next((a.split("=", 1)[1] for a in cmdline if a.startswith("--deployment=")), "?")
        return "model_server", dep
    if "jupyter_mlops.service" in line:
        return "service", "control plane"
    if "mlflow" in line and "server" in line:
        return "service", "mlflow"
    if "configurable-http-proxy" in line:
        return "service", "proxy"
    if "singleuser" in line or "jupyter-labhub" in line or "jupyter_mlops.singleuser" in line:
        return "user_server", ""
    if "process_tree" in line:  # before the hub: the watcher runs jupyter_mlops.hub.process_tree
        return "service", "process watcher"
    if "jupyterhub" in line or "jupyter_mlops.hub" in line:
        return "service", "hub"
    return "other", ""


def _size(path: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(path, onerror=lambda e: None):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


class PlatformHealth:
    def __init__(self, db: Database, data_dir: Path,
                 platform_processes: Callable[[], list] = list,
                 disk_warn_percent: float = 90.0, disk_warn_days: float = 7.0):
        self.db = db
        self.platform_processes = platform_processes  # psutil.Process objects of the platform
        self.data_dir = Path(data_dir)
        self.disk_warn_percent = disk_warn_percent
        self.disk_warn_days = disk_warn_days
        self._cpu: dict[int, psutil.Process] = {}  # cpu_percent needs the same object twice
        db.migrate("platform_health", SCHEMA)

    # --- processes ---------------------------------------------------------------------------

    def _pids(self) -> list[int]:
        pids = {p.pid for p in self.platform_processes()}
        pids.add(os.getpid())
        return sorted(pids)

    def processes(self) -> list[dict]:
        out, seen = [], {}
        for pid in self._pids():
            p = self._cpu.get(pid)
            try:
                if p is None or not p.is_running():
                    p = self._cpu[pid] = psutil.Process(pid)
                with p.oneshot():
                    cmd = p.cmdline()
                    kind, name = classify(cmd)
                    if kind == "user_server":
                        name = p.environ().get("JUPYTERHUB_USER", "") or p.username()
                    out.append({"pid": pid, "kind": kind, "name": name,
                                "cpu_percent": round(p.cpu_percent(None), 1),
                                "rss_bytes": p.memory_info().rss,
                                "started_at": p.create_time(), "status": p.status()})
                    seen[(kind, name)] = (pid, p.create_time())
            except (psutil.Error, OSError):
                self._cpu.pop(pid, None)
        self._cpu = {k: v for k, v in self._cpu.items() if k in {o["pid"] for o in out}}
        self._note_starts(seen)
        return out

    def user_server_use(self) -> dict[str, dict]:
        """Hub user -> CPU (% of a core) and memory of their server with everything it started
        (kernels, terminals), now: what the GPU servers' telemetry samples."""
        procs = self.processes()
        servers = {p["pid"]: p["name"] for p in procs if p["kind"] == "user_server"}
        use: dict[str, dict] = {}
        for p in procs:
            user = servers.get(p["pid"])
            if user is None and servers:
                try:
                    user = next((servers[a.pid] for a in psutil.Process(p["pid"]).parents()
                                 if a.pid in servers), None)
                except psutil.Error:
                    continue
            if user:
                u = use.setdefault(user, {"cpu_percent": 0.0, "rss_bytes": 0})
                u["cpu_percent"] += p["cpu_percent"]
                u["rss_bytes"] += p["rss_bytes"]
        return use

    def _note_starts(self, seen: dict) -> None:
        with self.db.tx() as conn:
            for (kind, name), (pid, started) in seen.items():
                if kind in ("service", "model_server"):
                    conn.execute(sa.text(
                        "INSERT INTO platform_process_starts (service, pid, started_at)"
                        " SELECT :s, :p, :t WHERE NOT EXISTS (SELECT 1 FROM"
                        " platform_process_starts WHERE service = :s AND pid = :p"
                        " AND started_at = :t)"),
                        {"s": f"{kind}:{name}", "p": pid, "t": round(started, 1)})
            conn.execute(sa.text("DELETE FROM platform_process_starts WHERE started_at < :t"),
                         {"t": clock.now() - 4 * WEEK})

    def restarts(self) -> dict[str, int]:
        """Starts seen in the last 7 days beyond the first, per ``kind:name``."""
        rows = self.db.query("SELECT service, COUNT(*) AS n FROM platform_process_starts"
                             " WHERE started_at >= :t GROUP BY service", t=clock.now() - WEEK)
        return {r["service"]: r["n"] - 1 for r in rows}

    def services(self) -> list[dict]:
        """Processes grouped for the page: one line per service and model server (summed),
        one per user's server."""
        procs = self.processes()
        restarts = self.restarts()
        groups: dict[tuple[str, str], dict] = {}
        for p in procs:
            g = groups.setdefault((p["kind"], p["name"]), {
                "kind": p["kind"], "name": p["name"], "processes": 0, "cpu_percent": 0.0,
                "rss_bytes": 0, "started_at": p["started_at"], "state": "running",
                "restarts_7d": restarts.get(f"{p['kind']}:{p['name']}", 0)})
            g["processes"] += 1
            g["cpu_percent"] = round(g["cpu_percent"] + p["cpu_percent"], 1)
            g["rss_bytes"] += p["rss_bytes"]
            g["started_at"] = min(g["started_at"], p["started_at"])
            if p["status"] == psutil.STATUS_ZOMBIE:
                g["state"] = "stopped"
        for service in ("hub", "proxy", "control plane", "mlflow"):
            if ("service", service) not in groups:
                groups[("service", service)] = {
                    "kind": "service", "name": service, "processes": 0, "cpu_percent": 0.0,
                    "rss_bytes": 0, "started_at": None, "state": "not running",
                    "restarts_7d": restarts.get(f"service:{service}", 0)}
        order = {"service": 0, "model_server": 1, "user_server": 2, "other": 3}
        return sorted(groups.values(), key=lambda g: (order[g["kind"]], g["name"]))

    # --- disk --------------------------------------------------------------------------------

    def sample_disk(self) -> dict:
        """Measure the data directory's parts now and keep the sample."""
        usage = shutil.disk_usage(self.data_dir)
        parts = {}
        for entry in sorted(self.data_dir.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                parts[entry.name] = _size(entry)
        now = clock.now()
        with self.db.tx() as conn:
            conn.execute(sa.text("INSERT INTO platform_disk_samples (at, total, free, parts)"
                                 " VALUES (:a, :t, :f, :p)"),
                         {"a": now, "t": usage.total, "f": usage.free, "p": json.dumps(parts)})
            conn.execute(sa.text("DELETE FROM platform_disk_samples WHERE at < :t"),
                         {"t": now - 5 * WEEK})
        return {"at": now, "total": usage.total, "free": usage.free, "parts": parts}

    def disk(self) -> dict:
        rows = self.db.query("SELECT * FROM platform_disk_samples WHERE at >= :t ORDER BY at",
                             t=clock.now() - WEEK)
        last = ({"at": rows[-1]["at"], "total": rows[-1]["total"], "free": rows[-1]["free"],
                 "parts": json.loads(rows[-1]["parts"])} if rows else self.sample_disk())
        first = rows[0] if rows else None
        days = (last["at"] - first["at"]) / 86400 if first else 0
        old_parts = json.loads(first["parts"]) if first else {}
        per_day = {k: round((v - old_parts.get(k, v)) / days) if days >= 1 / 24 else None
                   for k, v in last["parts"].items()}
        used_growth = ((first["free"] - last["free"]) / days) if first and days >= 1 / 24 \
            else None
        used = last["total"] - last["free"]
        percent = round(100 * used / last["total"], 1) if last["total"] else 0.0
        days_left = (round(last["free"] / used_growth, 1) if used_growth and used_growth > 0
                     else None)
        warning = None
        if percent >= self.disk_warn_percent:
            warning = (f"the disk of the data directory is {percent:g} % full "
                       f"({last['free'] / 2**30:.1f} GiB free)")
        elif days_left is not None and days_left <= self.disk_warn_days:
            warning = (f"at the growth of the last {days:.1f} days the disk of the data "
                       f"directory fills in about {days_left:g} days")
        return {"sampled_at": last["at"], "total_bytes": last["total"],
                "free_bytes": last["free"], "used_percent": percent,
                "growth_bytes_per_day": None if used_growth is None else round(used_growth),
                "days_until_full": days_left, "warning": warning,
                "parts": [{"name": k, "label": PARTS.get(k, k), "bytes": v,
                           "growth_bytes_per_day": per_day.get(k)}
                          for k, v in sorted(last["parts"].items(), key=lambda kv: -kv[1])]}

    # --- queue -------------------------------------------------------------------------------

    def queue(self) -> dict:
        store = JobStore.existing(self.db)
        if store is None:
            return {"queued": 0, "running": 0, "longest_wait_s": None, "started_24h": 0,
                    "wait_p50_s": None, "wait_max_s": None}
        now = clock.now()
        rows = store.queue_window(since=now - 86400)
        queued = [r for r in rows if r["state"] == "queued"]
        waits = sorted(max(0.0, r["started_at"] - r["submitted_at"]) for r in rows
                       if r["started_at"] and r["started_at"] >= now - 86400)
        return {"queued": len(queued), "running": sum(r["state"] == "running" for r in rows),
                "longest_wait_s": round(now - min(r["submitted_at"] for r in queued), 1)
                if queued else None,
                "started_24h": len(waits),
                "wait_p50_s": round(waits[len(waits) // 2], 1) if waits else None,
                "wait_max_s": round(waits[-1], 1) if waits else None}

    def report(self) -> dict:
        return {"services": self.services(), "disk": self.disk(), "queue": self.queue()}
