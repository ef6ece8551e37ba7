"""What deployed models see: opt-in recording of sampled inputs, and drift against the
training data of the served version.

Recording is off until someone who may change the deployment turns it on, with a sampling rate
(the share of requests whose inputs are kept) and a retention (days; older samples are
deleted). Only the monitored features are kept: the numeric columns of tabular requests, and
for images their height, width and mean intensity and the number of objects predicted, never
the image itself. After each recorded request the most recent samples of the served version
are compared with its reference (see :mod:`.drift`); when the first feature crosses the
deployment's threshold, the deployment's owner and its project's managers are notified once,
and again only after the inputs came back under it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Callable, Protocol

import sqlalchemy as sa

from .. import clock
from ..db import Database
from ..errors import InvalidInput, NotFound
from . import drift

log = logging.getLogger("jupyter_mlops.monitoring")

# Fewer recent rows than this are too few to score ("collecting"): with ten bins, PSI between
# two samples of the same distribution is about 9 * (1/n + 1/m) by chance alone, 0.2 for 50
# rows; from 200 rows on, chance stays well under the default threshold for every feature.
MIN_SAMPLES = 200
RECENT_ROWS = 500  # the recent window compared with the reference
ROWS_PER_REQUEST = 100  # at most this many rows of one request are kept
DEFAULTS = {"record_inputs": False, "sample_rate": 0.1, "retention_days": 7,
            "drift_threshold": 0.2}

SCHEMA = [
    """CREATE TABLE deployment_monitoring (
        deployment VARCHAR(40) PRIMARY KEY,
        record_inputs BOOLEAN NOT NULL,
        sample_rate FLOAT NOT NULL,
        retention_days FLOAT NOT NULL,
        drift_threshold FLOAT NOT NULL,
        updated_by VARCHAR(255) NOT NULL,
        updated_at FLOAT NOT NULL
    )""",
    """CREATE TABLE deployment_inputs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment VARCHAR(40) NOT NULL,
        version VARCHAR(32) NOT NULL,
        at FLOAT NOT NULL,
        features TEXT NOT NULL
    )""",
    "CREATE INDEX ix_deployment_inputs ON deployment_inputs (deployment, version, id)",
    """CREATE TABLE deployment_drift (
        deployment VARCHAR(40) PRIMARY KEY,
        version VARCHAR(32) NOT NULL,
        drifted BOOLEAN NOT NULL,
        features TEXT NOT NULL,
        at FLOAT NOT NULL
    )""",
]


class ReferenceData(Protocol):
    async def columns(self, model_name: str, version: str) -> tuple[str, dict[str, list]]:
        """(where it came from, feature -> values) of the version's training or evaluation
        data; :class:`NotFound` with the reason when the version has none."""


Notify = Callable[[list, str, str, "str | None"], None]


class InputMonitor:
    def __init__(self, db: Database, reference: ReferenceData | None,
                 notify: Callable[[], "Notify | None"] = lambda: None,
                 rng: Callable[[], float] = random.random):
        self.db = db
        self.reference = reference
        self.notify = notify  # looked up when needed: the feed may be added after start
        self.rng = rng
        self._settings: dict[str, dict] = {}
        self._refs: dict[tuple[str, str], tuple[float, object]] = {}
        self._evaluating: dict[str, asyncio.Lock] = {}  # one evaluation per deployment at once
        db.migrate("deployment_monitoring", SCHEMA)

    # --- settings ----------------------------------------------------------------------------

    def settings(self, name: str) -> dict:
        if name not in self._settings:
            rows = self.db.query("SELECT * FROM deployment_monitoring WHERE deployment = :d",
                                 d=name)
            s = dict(DEFAULTS, updated_by=None, updated_at=None)
            if rows:
                s.update({k: rows[0][k] for k in (*DEFAULTS, "updated_by", "updated_at")})
                s["record_inputs"] = bool(s["record_inputs"])
            self._settings[name] = s
        return dict(self._settings[name])

    def set_settings(self, name: str, user: str, body: dict) -> dict:
        unknown = set(body) - set(DEFAULTS)
        if unknown:
            raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
        s = {k: v for k, v in self.settings(name).items() if k in DEFAULTS}
        s.update(body)
        if not isinstance(s["record_inputs"], bool):
            raise InvalidInput("record_inputs is true or false")
        for key, lo, hi in (("sample_rate", 0.0, 1.0), ("retention_days", 1, 365),
                            ("drift_threshold", 0.01, 10.0)):
            v = s[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise InvalidInput(f"{key} is a number from {lo:g} to {hi:g}")
        now = clock.now()
        with self.db.tx() as conn:
            conn.execute(sa.text("DELETE FROM deployment_monitoring WHERE deployment = :d"),
                         {"d": name})
            conn.execute(sa.text(
                "INSERT INTO deployment_monitoring (deployment, record_inputs, sample_rate,"
                " retention_days, drift_threshold, updated_by, updated_at) VALUES (:d, :r,"
                " :s, :k, :t, :u, :at)"),
                {"d": name, "r": s["record_inputs"], "s": float(s["sample_rate"]),
                 "k": float(s["retention_days"]), "t": float(s["drift_threshold"]), "u": user,
                 "at": now})
            if not s["record_inputs"]:  # turning recording off deletes what was kept
                conn.execute(sa.text("DELETE FROM deployment_inputs WHERE deployment = :d"),
                             {"d": name})
        self._settings.pop(name, None)
        return self.settings(name)

    def forget(self, name: str) -> None:
        with self.db.tx() as conn:
            for table in ("deployment_monitoring", "deployment_inputs", "deployment_drift"):
                conn.execute(sa.text(f"DELETE FROM {table} WHERE deployment = :d"), {"d": name})
        self._settings.pop(name, None)

    # --- recording ---------------------------------------------------------------------------

    def wants(self, name: str) -> bool:
        """Whether this request's inputs are to be kept (recording on, and sampled)."""
        s = self.settings(name)
        return s["record_inputs"] and self.rng() < s["sample_rate"]

    def record(self, name: str, version: str, rows: list[dict]) -> int:
        rows = [r for r in rows[:ROWS_PER_REQUEST] if r]
        if not rows:
            return 0
        now = clock.now()
        keep = self.settings(name)["retention_days"] * 86400
        with self.db.tx() as conn:
            conn.execute(sa.text(
                "INSERT INTO deployment_inputs (deployment, version, at, features)"
                " VALUES (:d, :v, :t, :f)"),
                [{"d": name, "v": str(version), "t": now, "f": json.dumps(r)} for r in rows])
            conn.execute(sa.text("DELETE FROM deployment_inputs WHERE deployment = :d"
                                 " AND at < :t"), {"d": name, "t": now - keep})
        return len(rows)

    def recent(self, name: str, version: str) -> dict[str, list[float]]:
        rows = self.db.query(
            "SELECT features FROM deployment_inputs WHERE deployment = :d AND version = :v"
            " ORDER BY id DESC LIMIT :n", d=name, v=str(version), n=RECENT_ROWS)
        out: dict[str, list[float]] = {}
        for r in rows:
            for k, v in json.loads(r["features"]).items():
                out.setdefault(k, []).append(v)
        return out

    # --- drift -------------------------------------------------------------------------------

    async def _reference(self, model: str, version: str):
        key = (model, str(version))
        hit = self._refs.get(key)
        if hit and (not isinstance(hit[1], str) or clock.now() - hit[0] < 300):
            return hit[1]  # data is kept; a reason why there is none is asked again in 5 min
        if self.reference is None:
            got = "this platform has no source of reference data"
        else:
            try:
                got = await self.reference.columns(model, str(version))
            except NotFound as e:
                got = e.message
        self._refs[key] = (clock.now(), got)
        return got

    async def report(self, deployment: dict) -> dict:
        """The drift report of the version serving ``deployment`` (a deployment's public dict)."""
        name = deployment["name"]
        version = deployment.get("serving_version") or deployment["model_version"]
        s = self.settings(name)
        out = {"deployment": name, "version": version, "settings": s,
               "min_samples": MIN_SAMPLES, "samples": 0, "features": [], "reference": None,
               "state": "off" if not s["record_inputs"] else "collecting"}
        recent = self.recent(name, version)
        out["samples"] = max((len(v) for v in recent.values()), default=0)
        ref = await self._reference(deployment["model_name"], version)
        if isinstance(ref, str):
            out["reference"] = {"source": None, "reason": ref}
            if s["record_inputs"]:
                out["state"] = "no_reference"
            return out
        source, columns = ref
        out["reference"] = {"source": source,
                            "rows": max((len(v) for v in columns.values()), default=0)}
        if out["samples"] < MIN_SAMPLES:
            return out
        out["features"] = [drift.feature_report(f, columns[f], recent[f], s["drift_threshold"])
                           for f in sorted(columns) if len(recent.get(f, ())) >= MIN_SAMPLES]
        if out["features"]:
            out["state"] = ("drifted" if any(f["drifted"] for f in out["features"])
                            else "stable")
        return out

    async def evaluate(self, deployment: dict, managers: list[str]) -> dict:
        """Score the recent inputs and remember the state; notify on a crossing."""
        async with self._evaluating.setdefault(deployment["name"], asyncio.Lock()):
            return await self._evaluate(deployment, managers)

    async def _evaluate(self, deployment: dict, managers: list[str]) -> dict:
        rep = await self.report(deployment)
        if rep["state"] not in ("drifted", "stable"):
            return rep
        name, drifted = deployment["name"], rep["state"] == "drifted"
        before = self.db.query("SELECT drifted, version FROM deployment_drift"
                               " WHERE deployment = :d", d=name)
        crossed = drifted and not (before and before[0]["drifted"]
                                   and before[0]["version"] == rep["version"])
        with self.db.tx() as conn:
            conn.execute(sa.text("DELETE FROM deployment_drift WHERE deployment = :d"),
                         {"d": name})
            conn.execute(sa.text(
                "INSERT INTO deployment_drift (deployment, version, drifted, features, at)"
                " VALUES (:d, :v, :x, :f, :t)"),
                {"d": name, "v": rep["version"], "x": drifted, "t": clock.now(),
                 "f": json.dumps([f["feature"] for f in rep["features"] if f["drifted"]])})
        if crossed:
            shifted = [f"{f['feature']} (PSI {f['psi']:.2f})"
                       for f in rep["features"] if f["drifted"]]
            message = (f"Inputs of deployment {name} (version {rep['version']}) drifted from "
                       f"its training data: {', '.join(shifted)}; threshold "
                       f"{rep['settings']['drift_threshold']:g}")
            users = sorted({deployment["created_by"], *managers})
            notify = self.notify()
            if notify is not None:
                notify(users, "deployment.drift-warning", message, f"mlops:deployments/{name}")
            log.warning("%s (told %s)", message, ", ".join(users))
        rep["notified"] = crossed
        return rep

    def state(self, name: str) -> dict | None:
        rows = self.db.query("SELECT * FROM deployment_drift WHERE deployment = :d", d=name)
        if not rows:
            return None
        r = rows[0]
        return {"version": r["version"], "drifted": bool(r["drifted"]),
                "features": json.loads(r["features"]), "at": r["at"]}

