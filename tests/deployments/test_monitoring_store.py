"""The monitoring store and drift score without a platform: a real SQLite database, a moved
clock (minute and hour buckets, retention, a restart by reopening the database)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jupyter_mlops.core import clock
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.errors import InvalidInput
from jupyter_mlops.core.monitoring import drift
from jupyter_mlops.core.monitoring.timeseries import TrafficSeries

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def moved_clock():
    c = clock.ManualClock(1_800_000_000.0)
    clock.set_clock(c)
    yield c
    clock.set_clock(None)


def test_counts_percentiles_versions_and_restart(tmp_path, moved_clock):
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    series = TrafficSeries(Database(url))
    latencies = [0.004, 0.006, 0.012, 0.030, 0.250]
    for i, s in enumerate(latencies):
        series.record("cells", "1", s, 200, rows=i + 1)
    series.record("cells", "1", 0.003, 400, rows=None)
    moved_clock.advance(120)
    series.record("cells", "2", 0.020, 503, rows=2)
    series.flush()
    # Given the control plane restarts, when the database is opened again, the counts stay.
    again = TrafficSeries(Database(url)).window("cells", "1h")
    v1, v2 = again["versions"]
    assert (v1["version"], v1["total"]["requests"], v1["total"]["errors_4xx"]) == ("1", 6, 1)
    assert (v2["version"], v2["total"]["requests"], v2["total"]["errors_5xx"]) == ("2", 1, 1)
    t = v1["total"]
    assert t["min_ms"] == 3.0 and t["max_ms"] == 250.0
    assert 3.0 <= t["p50_ms"] <= t["p95_ms"] <= t["p99_ms"] <= 250.0
    assert t["batch_max"] == 5 and t["batch_mean"] == 3.0  # rows of the calls that had them
    assert again["total"]["requests"] == 7
    # The day window reads the same minutes in 10-minute points; the week reads hours.
    assert TrafficSeries(Database(url)).window("cells", "7d")["total"]["requests"] == 7
    with pytest.raises(InvalidInput):
        TrafficSeries(Database(url)).window("cells", "2y")


def test_retention_drops_old_minutes_but_keeps_hours(tmp_path, moved_clock):
    series = TrafficSeries(Database(f"sqlite:///{tmp_path / 'm.sqlite'}"),
                           minute_retention_days=1, hour_retention_days=30)
    series.record("lr", "1", 0.01, 200, rows=1)
    series.flush()
    moved_clock.advance(2 * 86400)
    series.record("lr", "1", 0.01, 200, rows=1)
    series.flush()  # prunes: minutes older than a day go
    rows = series.db.query("SELECT step, COUNT(*) AS n FROM deployment_metrics GROUP BY step")
    assert {r["step"]: r["n"] for r in rows} == {60: 1, 3600: 2}
    assert series.window("lr", "7d")["total"]["requests"] == 2
    assert series.window("lr", "1h")["total"]["requests"] == 1


def test_psi_separates_a_shift_from_noise():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=2000)
    assert drift.psi(ref, rng.normal(size=500)) < 0.1
    assert drift.psi(ref, rng.normal(loc=1.5, size=500)) > 1.0
    rep = drift.feature_report("f0", ref, rng.normal(loc=1.5, size=500), 0.2)
    assert rep["drifted"] and len(rep["reference"]) == len(rep["edges"]) + 1
    img = np.zeros((20, 30), dtype=np.uint8)
    img[:5] = 200
    feats = drift.image_features(img, {"boxes": [[0, 0, 1, 1]] * 3})
    assert feats == {"image_height": 20.0, "image_width": 30.0,
                     "image_mean_intensity": 50.0, "predicted_count": 3.0}


def test_kubernetes_values_annotate_the_control_plane_for_scraping():
    import yaml

    from jupyter_mlops.service.handlers.monitoring import ROUTES, PrometheusHandler

    values = yaml.safe_load((REPO / "hub_config" / "z2jh-values.yaml").read_text())
    notes = values["hub"]["annotations"]
    ports = {p["name"]: p["port"] for p in values["hub"]["service"]["extraPorts"]}
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/port"] == str(ports["mlops"])
    route = next(r for r, h in ROUTES if h is PrometheusHandler)
    assert notes["prometheus.io/path"] == "/services/mlops/api" + route


def test_what_recording_keeps_of_tabular_and_image_calls():
    import io
    import json

    from PIL import Image

    from jupyter_mlops.serving.inputs import monitored_features

    body = json.dumps({"dataframe_split": {"columns": ["f0", "name"],
                                           "data": [[1.5, "a"], [2, "b"]]}}).encode()
    assert monitored_features("application/json", body, b"{}") == [{"f0": 1.5}, {"f0": 2.0}]
    img = np.zeros((16, 24, 3), dtype=np.uint8)
    img[:8] = 90
    png = io.BytesIO()
    Image.fromarray(img).save(png, format="PNG")
    answer = json.dumps({"predictions": [{"boxes": [[0, 0, 2, 2], [4, 4, 6, 6]]}]}).encode()
    # Size, intensity and the count predicted: never the pixels.
    assert monitored_features("image/png", png.getvalue(), answer) == [
        {"image_height": 16.0, "image_width": 24.0, "image_mean_intensity": 45.0,
         "predicted_count": 2.0}]


def test_a_clean_stop_writes_the_traffic_counted_since_the_last_round(tmp_path):
    # The hub stops the control plane with SIGINT, which cancels the background writer: the
    # calls counted since its last round must reach the database, not only those before it.
    import asyncio
    from types import SimpleNamespace

    from jupyter_mlops.service.monitoring import MonitoringSettings, run_monitoring

    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    rounds = asyncio.Queue()
    loop = None

    class Counted(TrafficSeries):
        def flush(self):  # in the writer's worker thread: tell the loop thread-safely
            super().flush()
            loop.call_soon_threadsafe(rounds.put_nowait, 1)

    series = Counted(Database(url))
    monitoring = SimpleNamespace(traffic=series, health=SimpleNamespace(sample_disk=lambda: None))

    async def serve_then_stop():
        nonlocal loop
        loop = asyncio.get_running_loop()
        writer = asyncio.get_running_loop().create_task(run_monitoring(
            monitoring, MonitoringSettings(flush_seconds=3600, disk_sample_seconds=0)))
        await rounds.get()  # the first round is written; the next one is an hour away
        series.record("cells", "1", 0.01, 200, rows=1)
        writer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writer

    asyncio.run(serve_then_stop())
    assert TrafficSeries(Database(url)).window("cells", "1h")["total"]["requests"] == 1
