"""Benchmark: what monitoring costs the control plane.

    .venv/bin/python benchmarks/monitoring.py

On a real SQLite database in a temporary directory, with the clock moved (no waiting):

* ``record``: the cost added to each proxied endpoint call (counting it in memory);
* ``flush``: writing one minute of traffic of 20 deployment versions (minute + hour buckets);
* ``window 1d`` / ``window 7d``: the monitoring view's read of one deployment with 3 versions
  after 8 days of calls every minute (the whole minute retention: 34,560 minute rows);
* ``prometheus``: one scrape's rendering over those series.

Writes ``benchmarks/results/monitoring.json`` and fails when a goal is missed.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import json
import statistics
import tempfile
import time

HERE = Path(__file__).resolve().parent
GOALS_MS = {"record": 0.05, "flush": 200.0, "window_1d": 500.0, "window_7d": 200.0,
            "prometheus": 500.0}


def timed(fn, repeat: int = 5) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def main() -> int:
    from jupyter_mlops.core import clock
    from jupyter_mlops.core.db import Database
    from jupyter_mlops.core.monitoring.prometheus import render
    from jupyter_mlops.core.monitoring.timeseries import TrafficSeries

    c = clock.ManualClock(1_800_000_000.0)
    clock.set_clock(c)
    with tempfile.TemporaryDirectory() as d:
        series = TrafficSeries(Database(f"sqlite:///{d}/m.sqlite"))
        n = 100_000
        t0 = time.perf_counter()
        for i in range(n):
            series.record("cells", "1", 0.004 + (i % 50) / 1000, 200 if i % 20 else 400, 1)
        record_ms = (time.perf_counter() - t0) * 1000 / n
        series.flush()

        def one_minute():
            for k in range(20):
                for _ in range(10):
                    series.record(f"dep-{k}", "1", 0.01, 200, 2)
            series.flush()
            c.advance(60)

        flush_ms = timed(one_minute)
        # 8 days of a call every minute on 3 versions of one deployment.
        for minute in range(8 * 1440):
            for v in ("1", "2", "3"):
                series.record("lr", v, 0.02, 200, 4)
            if minute % 60 == 59:
                series.flush()
            c.advance(60)
        series.flush()
        w1d = timed(lambda: series.window("lr", "1d"))
        w7d = timed(lambda: series.window("lr", "7d"))
        assert series.window("lr", "7d")["total"]["requests"] > 3 * 6 * 1440
        snapshot = {"deployments": [], "totals": series.totals(), "drift": {},
                    "health": {"services": [], "queue": {"queued": 0, "running": 0,
                                                         "longest_wait_s": None},
                               "disk": {"total_bytes": 1, "free_bytes": 1, "parts": []}}}
        prom = timed(lambda: render(lambda: snapshot))
    clock.set_clock(None)
    got = {"record": round(record_ms, 4), "flush": round(flush_ms, 1),
           "window_1d": round(w1d, 1), "window_7d": round(w7d, 1),
           "prometheus": round(prom, 1)}
    missed = {k: (v, GOALS_MS[k]) for k, v in got.items() if v > GOALS_MS[k]}
    for k, v in got.items():
        print(f"{k:>11}: {v} ms (goal <= {GOALS_MS[k]} ms)")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "monitoring.json").write_text(json.dumps(
        {"ms": got, "goals_ms": GOALS_MS, "missed": missed}, indent=2) + "\n")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
