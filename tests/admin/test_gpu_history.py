"""Per-GPU utilisation history and GPU servers' telemetry for the admin page: one reading per
device (or server) and minute, the minute's peak kept, unknown utilisation not recorded, nothing
older than the window kept (a movable clock, a real SQLite database, real processes)."""
from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from jupyter_mlops.core import clock
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.gpu_allocation import GpuAllocator
from jupyter_mlops.core.gpu_history import (GpuServerTelemetry, GpuUtilisationHistory,
                                            last_point, sparkline)
from jupyter_mlops.core.gpus import Gpu, StaticInventory
from jupyter_mlops.core.monitoring.health import PlatformHealth
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.service.platform_admin import PlatformAdmin
from tests.fixtures import until


@pytest.fixture
def world(tmp_path):
    c = clock.ManualClock(start=1_700_000_040.0)  # on a minute boundary
    clock.set_clock(c)
    db = Database(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield c, db
    clock.set_clock(None)
    db.dispose()


def gpu(uuid: str, pct: int | None, mem: int | None = None) -> Gpu:
    return Gpu(index=0, uuid=uuid, name="A100", memory_total_mb=40960, memory_used_mb=mem,
               utilization_pct=pct)


def test_a_minute_keeps_its_peak_and_unknown_utilisation_is_not_recorded(world):
    c, db = world
    h = GpuUtilisationHistory(db)
    h.record([gpu("GPU-a", 80, 900), gpu("GPU-sim", None)])
    c.advance(30)
    h.record([gpu("GPU-a", 0, 100)])  # same minute: the busy half must not vanish
    c.advance(30)
    h.record([gpu("GPU-a", 5, 200)])
    series = h.series()
    assert list(series) == ["GPU-a"]  # a simulated device has no series, not zeros
    assert [(p["utilization_pct"], p["memory_used_mb"]) for p in series["GPU-a"]] == \
        [(80, 900), (5, 200)]
    assert series["GPU-a"][1]["t"] - series["GPU-a"][0]["t"] == 60


def test_history_is_bounded_by_its_window(world):
    c, db = world
    h = GpuUtilisationHistory(db, window_hours=1)
    for i in range(90):  # an hour and a half of one reading a minute
        h.record([gpu("GPU-a", i % 100)])
        c.advance(60)
    points = h.series()["GPU-a"]
    assert len(points) == 59  # the last hour's readings, the oldest dropped from the table
    assert points[-1]["utilization_pct"] == 89
    assert db.query("SELECT COUNT(*) AS n FROM gpu_utilisation_history")[0]["n"] <= 60


def test_sparkline_places_readings_in_time_and_height():
    points = [{"t": 0, "utilization_pct": 0}, {"t": 1800, "utilization_pct": 100},
              {"t": 3600, "utilization_pct": 50}]
    line = sparkline(points, end=3600, window_seconds=3600, width=160, height=32)
    assert line == "2.0,30.0 80.0,2.0 158.0,16.0"
    assert last_point(line) == ("158.0", "16.0")
    assert last_point("") is None


def test_gpu_server_telemetry_keeps_peaks_per_minute_within_its_window(world):
    c, db = world
    t = GpuServerTelemetry(db, window_hours=1)
    t.record({"ann": {"cpu_percent": 150.0, "memory_mb": 900, "gpu_pct": None}})
    c.advance(20)
    t.record({"ann": {"cpu_percent": 10.0, "memory_mb": 1200, "gpu_pct": 40}})
    [p] = t.series()["ann"]
    assert (p["cpu_percent"], p["memory_mb"], p["gpu_pct"]) == (150.0, 1200, 40)
    c.advance(2 * 3600)
    t.record({"ben": {"cpu_percent": 1.0, "memory_mb": 10, "gpu_pct": None}})
    assert list(t.series()) == ["ben"]  # ann's hour-old minute is gone from the table
    assert db.query("SELECT COUNT(*) AS n FROM gpu_server_telemetry")[0]["n"] == 1


def test_the_control_plane_samples_each_running_gpu_server(world):
    # Given a real allocator over two simulated devices, one measured, one not
    c, db = world
    inventory = StaticInventory([{"name": "A100", "utilization_pct": 60},
                                 {"name": "sim"}, {"name": "A100", "utilization_pct": 0}])
    alloc = GpuAllocator(db, inventory)
    alloc.allocate("server", "ann", user="ann", count=2)  # devices 0 and 1
    alloc.allocate("job", "7", user="ben", count=1)  # jobs have their own run's telemetry
    admin = PlatformAdmin(db, Projects(db), alloc, inventory, usage_sync_seconds=0)
    admin.server_use = lambda: {"ann": {"cpu_percent": 35.5, "rss_bytes": 300 * 2**20},
                                "ben": {"cpu_percent": 99.0, "rss_bytes": 2**30}}
    # When it syncs
    admin.sync()
    # Then ann's server has CPU, memory and the mean of its measured devices; nothing else
    series = admin.server_telemetry.series()
    assert list(series) == ["ann"]
    [p] = series["ann"]
    assert (p["cpu_percent"], p["memory_mb"], p["gpu_pct"]) == (35.5, 300, 60)
    # and each measured device has its utilisation history, the simulated one none
    assert sorted(admin.gpu_history.series()) == ["GPU-simulated-0", "GPU-simulated-2"]


def test_a_servers_use_counts_what_it_started(tmp_path):
    # Given a process that looks like ann's single-user server, with a kernel-like child
    code = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(60)']); time.sleep(60)")
    server = subprocess.Popen([sys.executable, "-c", code, "jupyterhub-singleuser"],
                              env={**os.environ, "JUPYTERHUB_USER": "telemetry-ann"})
    try:
        proc = psutil.Process(server.pid)
        until(lambda: proc.children(), 10, "the server's child to start")
        db = Database(f"sqlite:///{tmp_path / 'h.sqlite'}")
        health = PlatformHealth(db, tmp_path,
                                lambda: [proc, *proc.children(recursive=True)])
        # When platform health reads the servers' use
        use = health.user_server_use()
        # Then the server and its child are counted together, under the hub user's name
        rss = proc.memory_info().rss + sum(ch.memory_info().rss for ch in proc.children())
        assert list(use) == ["telemetry-ann"]
        assert abs(use["telemetry-ann"]["rss_bytes"] - rss) < rss * 0.2
        assert use["telemetry-ann"]["rss_bytes"] > proc.memory_info().rss
        db.dispose()
    finally:
        for ch in psutil.Process(server.pid).children(recursive=True):
            ch.kill()
        server.kill()
        server.wait()
