"""Lineage, both directions: dataset version -> runs that used it -> model versions registered
from those runs -> deployments serving them, and from a deployment or a model version back to
its dataset versions.

The records are those the platform already keeps: a run used a dataset version when the version
is one of its MLflow dataset inputs (``datasets.get`` logs ``name@vN``) or when it is a job's run
whose ``dataset_version`` was pinned to it (the run's tag ``mlops.dataset_version``); a model
version names its source run (MLflow's registry); deployments name the model version they serve.

Each object is shown only to whom may see it, by the rule of its own kind: a dataset version to
readers of its dataset (:class:`DatasetCatalog`), a run to members of its experiment's project, a
model version to members of its registered model's project, a deployment to members of its
project (the same rules the MLflow gateway and the deployments apply). What the caller may not
see is left out of the chain, not named; the starting object answers :class:`NotFound`.
"""
from __future__ import annotations

import asyncio
from typing import Protocol

from ..errors import InvalidInput, NotFound
from ..roles import Caller
from .manifest import VERSION_RE, check_name

MAX_RUNS = 200  # a lab's version is used by tens of runs; the answer stays one screen


class LineageRecords(Protocol):
    """What lineage reads in the tracking server (``backends.mlflow_lineage``)."""

    async def experiment_projects(self) -> dict[str, str]:
        """Experiment id -> its project, for every active experiment."""

    async def runs_using(self, experiment_ids: list[str], dataset_version: str,
                         limit: int) -> list[dict]:
        """Runs of those experiments that used ``name@vN``: ``{run_id, run_name,
        experiment_id, status, start_time, job_id}``, newest first."""

    async def run(self, run_id: str) -> dict | None:
        """One run as :meth:`runs_using` gives it, plus ``datasets``: the ``name@vN`` it used."""

    async def model_versions_of(self, run_ids: list[str]) -> list[dict]:
        """Model versions registered from those runs: ``{name, version, run_id}``."""

    async def model_version(self, name: str, version: str) -> dict | None:
        """``{name, version, run_id}`` or None when absent."""

    async def model_project(self, name: str) -> str | None:
        """The project of a registered model, or None when absent."""


class Lineage:
    def __init__(self, catalog, deployments, projects, records: LineageRecords):
        self.catalog = catalog
        self.deployments = deployments
        self.projects = projects
        self.records = records

    def _visible(self, caller: Caller) -> set[str] | None:
        """The caller's projects; None: every project (administrators)."""
        if caller.is_admin:
            return None
        return {p.name for p in self.projects.list_for(caller)}

    @staticmethod
    def _sees(visible: set[str] | None, project: str | None) -> bool:
        return project is not None and (visible is None or project in visible)

    def _deployments_of(self, caller: Caller, name: str, version: str) -> list[dict]:
        if self.deployments is None:
            return []
        out = []
        for d in self.deployments.list_for(caller):
            serving = str(d.get("serving_version") or "")
            if d["model_name"] == name and version in (str(d["model_version"]), serving):
                out.append({"name": d["name"], "project": d["project"], "status": d["status"],
                            "model_version": str(d["model_version"]),
                            "serving": serving == version})
        return out

    async def _model_versions(self, caller: Caller, visible, run_ids: list[str]) -> list[dict]:
        found = await self.records.model_versions_of(run_ids) if run_ids else []
        projects = {}
        for name in {m["name"] for m in found}:
            projects[name] = await self.records.model_project(name)
        return [{**m, "project": projects[m["name"]],
                 "deployments": self._deployments_of(caller, m["name"], str(m["version"]))}
                for m in found if self._sees(visible, projects[m["name"]])]

    async def of_dataset_version(self, caller: Caller, name: str, ref: str) -> dict:
        """Downstream: the runs that used the version, their model versions, their
        deployments."""
        version = await asyncio.to_thread(self.catalog.resolve, caller, name, ref)
        visible = self._visible(caller)
        projects = await self.records.experiment_projects()
        experiments = sorted(e for e, p in projects.items() if self._sees(visible, p))
        runs = await self.records.runs_using(experiments, f"{name}@{version.version}",
                                             MAX_RUNS) if experiments else []
        models = await self._model_versions(caller, visible, [r["run_id"] for r in runs])
        for r in runs:
            r["project"] = projects.get(r["experiment_id"])
            r["model_versions"] = [m for m in models if m["run_id"] == r["run_id"]]
        return {"dataset": name, "version": version.version, "runs": runs,
                "truncated": len(runs) >= MAX_RUNS}

    async def _upstream(self, caller: Caller, visible, name: str, version: str) -> dict:
        """A visible model version with its run and the run's dataset versions."""
        mv = await self.records.model_version(name, version)
        out = {"name": name, "version": str(version), "run": None}
        if not mv or not mv.get("run_id"):
            return out
        run = await self.records.run(mv["run_id"])
        if run is None:
            return out
        project = (await self.records.experiment_projects()).get(run["experiment_id"])
        if not self._sees(visible, project):
            return out
        datasets = []
        for ref in run.pop("datasets", []):
            ds, _, v = ref.partition("@")
            try:
                check_name(ds)
                if not VERSION_RE.match(v):
                    continue
                got = await asyncio.to_thread(self.catalog.resolve, caller, ds, v)
            except (InvalidInput, NotFound):  # not a catalog version, or not the caller's
                continue
            datasets.append({"dataset": ds, "version": got.version})
        out["run"] = {**run, "project": project, "datasets": datasets}
        return out

    async def of_model_version(self, caller: Caller, name: str, version: str) -> dict:
        """Upstream from a registered model version: its run, the run's dataset versions;
        and the deployments serving it."""
        visible = self._visible(caller)
        project = await self.records.model_project(name)
        if not self._sees(visible, project) or await self.records.model_version(
                name, version) is None:
            raise NotFound(f"no model version {name} {version}")
        mv = await self._upstream(caller, visible, name, version)
        mv.update(project=project, deployments=self._deployments_of(caller, name, version))
        return {"model_version": mv}

    async def of_deployment(self, caller: Caller, name: str) -> dict:
        """Upstream from a deployment: the model versions it serves (the one asked for and,
        during a switch, the one still serving), each back to its run and dataset versions."""
        dep = self.deployments.get(caller, name) if self.deployments else None
        if dep is None:
            raise NotFound(f"no deployment {name!r}")
        visible = self._visible(caller)
        versions = []
        for v in dict.fromkeys(str(x) for x in (dep["model_version"], dep["serving_version"])
                               if x):
            project = await self.records.model_project(dep["model_name"])
            mv = await self._upstream(caller, visible, dep["model_name"], v) \
                if self._sees(visible, project) else {"name": dep["model_name"], "version": v,
                                                      "run": None, "hidden": True}
            mv["serving"] = v == str(dep["serving_version"] or "")
            versions.append(mv)
        return {"deployment": {"name": dep["name"], "project": dep["project"],
                               "status": dep["status"], "model_name": dep["model_name"]},
                "model_versions": versions}
