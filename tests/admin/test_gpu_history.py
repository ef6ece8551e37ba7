"""Per-GPU utilisation history for the admin page: one reading per device and minute, the
minute's peak kept, unknown utilisation not recorded, and nothing older than the window kept
(a movable clock, a real SQLite database)."""
from __future__ import annotations

import pytest

from jupyter_mlops.core import clock
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.gpu_history import GpuUtilisationHistory, last_point, sparkline
from jupyter_mlops.core.gpus import Gpu


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
