"""Monitoring of deployed models and of the platform (overview in docs/monitoring.md).

:class:`Monitoring` joins the pieces the control plane holds: the traffic time series of every
endpoint (:mod:`.timeseries`), opt-in input recording and drift (:mod:`.inputs`,
:mod:`.drift`), the platform's health (:mod:`.health`) and the Prometheus export
(:mod:`.prometheus`). Reads of a deployment's monitoring need the same access as reading the
deployment; changing its recording, the same as changing the deployment.
"""
from __future__ import annotations

import logging
from typing import Callable

from ..deployments import Deployments
from ..roles import Caller
from .health import PlatformHealth
from .inputs import InputMonitor
from .timeseries import TrafficSeries

log = logging.getLogger("jupyter_mlops.monitoring")

# Events of the audit log drawn on the charts.
MARKED = ("serving", "rejected", "failed", "restarted")


class Monitoring:
    def __init__(self, deployments: Deployments, traffic: TrafficSeries, inputs: InputMonitor,
                 health: PlatformHealth,
                 features_of: Callable[[str, bytes, bytes], list[dict]]):
        self.deployments = deployments
        self.traffic = traffic
        self.inputs = inputs
        self.health = health
        self.features_of = features_of  # (content type, request body, answer) -> rows

    # --- the endpoint ------------------------------------------------------------------------

    def called(self, name: str, version: str, seconds: float, status: int,
               rows: int | None) -> None:
        self.traffic.record(name, version, seconds, status, rows)

    async def observe_inputs(self, name: str, version: str, content_type: str, body: bytes,
                             answer: bytes) -> None:
        """Record the inputs of an answered call when recording is on and it is sampled."""
        if not self.inputs.wants(name):
            return
        try:
            rows = self.features_of(content_type, body, answer)
        except Exception as e:  # an input the model server accepted but we cannot read
            log.info("deployment %s: inputs not recorded (%s)", name, e)
            return
        if self.inputs.record(name, version, rows):
            dep = self.deployments.describe(name)
            if dep is not None:
                await self.inputs.evaluate(dep, self._managers(dep["project"]))

    def _managers(self, project: str) -> list[str]:
        return self.deployments.projects.manager_names(project)

    # --- reading -----------------------------------------------------------------------------

    def metrics(self, caller: Caller, name: str, window: str) -> dict:
        dep = self.deployments.get(caller, name)  # NotFound unless the caller sees it
        out = self.traffic.window(name, window)
        out["deployment"] = name
        out["serving_version"] = dep["serving_version"]
        marks, previous = [], None
        for e in sorted(self.deployments.events(caller, name), key=lambda e: e["at"]):
            if e["action"] == "serving":
                v = e.get("model_version")
                kind = "start" if previous is None else (
                    "rollback" if (v or "").isdigit() and (previous or "").isdigit()
                    and int(v) < int(previous) else "switch")
                previous = v
            elif e["action"] in MARKED:
                kind = e["action"]
            else:
                continue
            if e["at"] >= out["from"]:
                marks.append({"at": e["at"], "kind": kind, "version": e.get("model_version"),
                              "actor": e.get("actor"), "detail": e.get("detail", "")})
        out["events"] = marks
        return out

    async def drift(self, caller: Caller, name: str) -> dict:
        dep = self.deployments.get(caller, name)
        out = await self.inputs.report(dep)
        out["last_alert"] = self.inputs.state(name)
        return out

    def settings(self, caller: Caller, name: str) -> dict:
        self.deployments.get(caller, name)
        return self.inputs.settings(name)

    def set_settings(self, caller: Caller, name: str, body: dict) -> dict:
        self.deployments.require_change(caller, name)
        return self.inputs.set_settings(name, caller.name, body)

    def forget(self, name: str) -> None:
        """A deployment was deleted: its series, settings and samples go with it."""
        self.traffic.forget(name)
        self.inputs.forget(name)

    def snapshot(self) -> dict:
        """Everything the Prometheus export reads."""
        deployments = self.deployments.all()
        drift = {}
        for d in deployments:
            st = self.inputs.state(d["name"])
            if st:
                drift[d["name"]] = st
        return {"deployments": deployments,
                "totals": self.traffic.totals(), "drift": drift,
                "health": {"services": self.health.services(), "disk": self.health.disk(),
                           "queue": self.health.queue()}}
