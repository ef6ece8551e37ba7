"""Traffic of every deployment over time: a bounded time series in the control plane's database.

The control plane proxies every endpoint call, so it counts them here: per deployment, per
served version and per minute, the requests, the 4xx and 5xx answers apart, a latency histogram
(with the exact minimum, maximum and sum) and a histogram of rows per request (the batch
size). Calls are added up in memory and written every few seconds (and before every read, so a
read sees every call answered before it); each write adds the minute into its hour too
(downsampling: histograms add up). Minute buckets are kept ``minute_retention_days``, hour
buckets ``hour_retention_days``: at most 11,520 minute rows and 2,160 hour rows per version
with the defaults, whatever the traffic.

Percentiles come from the histogram, interpolated inside a bucket and clamped to the bucket's
exact minimum and maximum, so a p99 never lies outside the latencies actually measured.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import sqlalchemy as sa

from .. import clock
from ..db import Database
from ..errors import InvalidInput

# Upper bounds (ms) of the latency buckets; one more bucket holds everything slower.
LATENCY_BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000)
# Upper bounds of the rows-per-request buckets; one more bucket holds larger requests.
BATCH_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)

MINUTE, HOUR = 60, 3600
# window -> (stored resolution read, seconds per point, span)
WINDOWS = {"1h": (MINUTE, MINUTE, HOUR), "1d": (MINUTE, 10 * MINUTE, 86400),
           "7d": (HOUR, HOUR, 7 * 86400)}

SCHEMA = [
    """CREATE TABLE deployment_metrics (
        deployment VARCHAR(40) NOT NULL,
        version VARCHAR(32) NOT NULL,
        step INTEGER NOT NULL,
        start FLOAT NOT NULL,
        requests INTEGER NOT NULL,
        errors_4xx INTEGER NOT NULL,
        errors_5xx INTEGER NOT NULL,
        latency_sum FLOAT NOT NULL,
        latency_min FLOAT,
        latency_max FLOAT,
        latency_hist TEXT NOT NULL,
        rows_sum INTEGER NOT NULL,
        rows_count INTEGER NOT NULL,
        rows_max INTEGER NOT NULL,
        batch_hist TEXT NOT NULL,
        PRIMARY KEY (deployment, version, step, start)
    )""",
    "CREATE INDEX ix_deployment_metrics_time ON deployment_metrics (step, start)",
]


def _bucket(bounds, value) -> int:
    for i, b in enumerate(bounds):
        if value <= b:
            return i
    return len(bounds)


@dataclass
class Bucket:
    """The calls of one deployment version in one time bucket (latencies in ms)."""

    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    latency_sum: float = 0.0
    latency_min: float | None = None
    latency_max: float | None = None
    latency_hist: list = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    rows_sum: int = 0
    rows_count: int = 0
    rows_max: int = 0
    batch_hist: list = field(default_factory=lambda: [0] * (len(BATCH_BOUNDS) + 1))

    def add_call(self, ms: float, status: int, rows: int | None) -> None:
        self.requests += 1
        if 400 <= status < 500:
            self.errors_4xx += 1
        elif status >= 500:
            self.errors_5xx += 1
        self.latency_sum += ms
        self.latency_min = ms if self.latency_min is None else min(self.latency_min, ms)
        self.latency_max = ms if self.latency_max is None else max(self.latency_max, ms)
        self.latency_hist[_bucket(LATENCY_BOUNDS_MS, ms)] += 1
        if rows is not None:
            self.rows_sum += rows
            self.rows_count += 1
            self.rows_max = max(self.rows_max, rows)
            self.batch_hist[_bucket(BATCH_BOUNDS, rows)] += 1

    def merge(self, other: "Bucket") -> None:
        for k in ("requests", "errors_4xx", "errors_5xx", "latency_sum", "rows_sum",
                  "rows_count"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.rows_max = max(self.rows_max, other.rows_max)
        for k, pick in (("latency_min", min), ("latency_max", max)):
            a, b = getattr(self, k), getattr(other, k)
            setattr(self, k, b if a is None else a if b is None else pick(a, b))
        self.latency_hist = [a + b for a, b in zip(self.latency_hist, other.latency_hist)]
        self.batch_hist = [a + b for a, b in zip(self.batch_hist, other.batch_hist)]

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of latency (ms), within [latency_min, latency_max]."""
        total = sum(self.latency_hist)
        if not total:
            return None
        target, seen = q * total, 0
        for i, n in enumerate(self.latency_hist):
            if n and seen + n >= target:
                lo = LATENCY_BOUNDS_MS[i - 1] if i else 0.0
                hi = LATENCY_BOUNDS_MS[i] if i < len(LATENCY_BOUNDS_MS) else self.latency_max
                value = lo + (hi - lo) * max(0.0, target - seen) / n
                return round(min(max(value, self.latency_min), self.latency_max), 3)
            seen += n
        return self.latency_max

    def to_row(self) -> dict:
        return {"requests": self.requests, "errors_4xx": self.errors_4xx,
                "errors_5xx": self.errors_5xx, "latency_sum": self.latency_sum,
                "latency_min": self.latency_min, "latency_max": self.latency_max,
                "latency_hist": json.dumps(self.latency_hist), "rows_sum": self.rows_sum,
                "rows_count": self.rows_count, "rows_max": self.rows_max,
                "batch_hist": json.dumps(self.batch_hist)}

    @classmethod
    def from_row(cls, row: dict) -> "Bucket":
        b = cls(**{k: row[k] for k in ("requests", "errors_4xx", "errors_5xx", "latency_sum",
                                       "latency_min", "latency_max", "rows_sum", "rows_count",
                                       "rows_max")})
        b.latency_hist = json.loads(row["latency_hist"])
        b.batch_hist = json.loads(row["batch_hist"])
        return b

    def summary(self, seconds: float) -> dict:
        return {"requests": self.requests,
                "requests_per_s": round(self.requests / seconds, 4) if seconds else None,
                "errors_4xx": self.errors_4xx, "errors_5xx": self.errors_5xx,
                "p50_ms": self.quantile(0.5), "p95_ms": self.quantile(0.95),
                "p99_ms": self.quantile(0.99),
                "min_ms": None if self.latency_min is None else round(self.latency_min, 3),
                "max_ms": None if self.latency_max is None else round(self.latency_max, 3),
                "mean_ms": round(self.latency_sum / self.requests, 3) if self.requests else None,
                "batch_mean": round(self.rows_sum / self.rows_count, 2) if self.rows_count
                else None, "batch_max": self.rows_max if self.rows_count else None}


class TrafficSeries:
    """The time series of every deployment's calls (see the module's docstring)."""

    def __init__(self, db: Database, minute_retention_days: float = 8.0,
                 hour_retention_days: float = 90.0):
        self.db = db
        self.retention = {MINUTE: minute_retention_days * 86400,
                          HOUR: hour_retention_days * 86400}
        self._pending: dict[tuple[str, str, float], Bucket] = {}
        self._lock = threading.Lock()  # guards _pending
        self._writing = threading.Lock()  # one flush at a time (each merges into rows)
        self._pruned_at = 0.0
        db.migrate("deployment_metrics", SCHEMA)

    def record(self, deployment: str, version: str, seconds: float, status: int,
               rows: int | None = None) -> None:
        """One answered (or failed) call of ``deployment`` served by ``version``."""
        now = clock.now()
        key = (deployment, str(version), now - now % MINUTE)
        with self._lock:
            self._pending.setdefault(key, Bucket()).add_call(seconds * 1000.0, status, rows)

    def flush(self) -> None:
        """Write what was recorded since the last flush (minute and hour buckets at once)."""
        with self._writing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            with self.db.tx() as conn:
                for (dep, version, start), bucket in pending.items():
                    for step in (MINUTE, HOUR):
                        self._add(conn, dep, version, step, start - start % step, bucket)
        now = clock.now()
        if now - self._pruned_at > 600:
            self._pruned_at = now
            with self.db.tx() as conn:
                for step, keep in self.retention.items():
                    conn.execute(sa.text("DELETE FROM deployment_metrics WHERE step = :s"
                                         " AND start < :t"), {"s": step, "t": now - keep})

    @staticmethod
    def _add(conn, dep, version, step, start, bucket: Bucket) -> None:
        key = {"d": dep, "v": version, "s": step, "t": start}
        row = conn.execute(sa.text(
            "SELECT * FROM deployment_metrics WHERE deployment = :d AND version = :v"
            " AND step = :s AND start = :t"), key).mappings().first()
        merged = Bucket.from_row(dict(row)) if row else Bucket()
        merged.merge(bucket)
        cols = merged.to_row()
        if row:
            sets = ", ".join(f"{k} = :{k}" for k in cols)
            conn.execute(sa.text(f"UPDATE deployment_metrics SET {sets} WHERE deployment = :d"
                                 " AND version = :v AND step = :s AND start = :t"),
                         {**cols, **key})
        else:
            conn.execute(sa.text(
                "INSERT INTO deployment_metrics (deployment, version, step, start, "
                + ", ".join(cols) + ") VALUES (:d, :v, :s, :t, "
                + ", ".join(f":{k}" for k in cols) + ")"), {**cols, **key})

    def forget(self, deployment: str) -> None:
        """Drop the series of a deployment (a new one of the same name starts empty)."""
        with self._lock:
            self._pending = {k: v for k, v in self._pending.items() if k[0] != deployment}
        with self.db.tx() as conn:
            conn.execute(sa.text("DELETE FROM deployment_metrics WHERE deployment = :d"),
                         {"d": deployment})

    def window(self, deployment: str, window: str) -> dict:
        """Per version: points of the window (oldest first) and the window's totals."""
        if window not in WINDOWS:
            raise InvalidInput(f"window is one of {', '.join(WINDOWS)}")
        self.flush()
        step, point, span = WINDOWS[window]
        now = clock.now()
        since = now - span
        rows = self.db.query(
            "SELECT * FROM deployment_metrics WHERE deployment = :d AND step = :s"
            " AND start >= :t ORDER BY start", d=deployment, s=step, t=since - since % step)
        versions: dict[str, dict] = {}
        for r in rows:
            v = versions.setdefault(r["version"], {"points": {}, "total": Bucket()})
            b = Bucket.from_row(r)
            t = r["start"] - r["start"] % point
            v["points"].setdefault(t, Bucket()).merge(b)
            v["total"].merge(b)
        out = []
        for version, v in sorted(versions.items(), key=lambda kv: int(kv[0])
                                 if kv[0].isdigit() else 0):
            out.append({"version": version, "total": v["total"].summary(span),
                        "points": [{"t": t, **b.summary(point)}
                                   for t, b in sorted(v["points"].items())]})
        total = Bucket()
        for v in versions.values():
            total.merge(v["total"])
        return {"window": window, "from": since, "to": now, "step_s": point,
                "versions": out, "total": total.summary(span)}

    def totals(self) -> dict[tuple[str, str], Bucket]:
        """Every deployment version's calls since its series began (hour buckets; for the
        Prometheus export, whose counters only ever grow while the series is kept)."""
        self.flush()
        out: dict[tuple[str, str], Bucket] = {}
        for r in self.db.query("SELECT * FROM deployment_metrics WHERE step = :s", s=HOUR):
            out.setdefault((r["deployment"], r["version"]), Bucket()).merge(Bucket.from_row(r))
        return out
