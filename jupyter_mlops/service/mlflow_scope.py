"""Project scoping of MLflow, enforced in the gateway (the only way into MLflow).

An experiment belongs to the project named by its tag ``mlops.project`` (no tag: ``default``,
the project everyone is in); a run belongs to its experiment's project. For every request the
gateway collects the experiment and run ids the request names (query arguments, JSON body,
GraphQL variables, artifact paths) and answers 404 -- exactly as MLflow does for an absent id --
when one of them lies in a project the caller is not a member of. Experiment searches are
filtered, creations are stamped with a project the caller belongs to, and new runs carry the
hub user who created them (``mlops.user``), which no client can forge.

What is *not* scoped is listed in docs/security.md (the model registry is lab-wide).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs, unquote, urlparse

import httpx

from ..core.roles import Caller

log = logging.getLogger("jupyter_mlops.mlflow_gateway")

PROJECT_TAG = "mlops.project"
USER_TAG = "mlops.user"
DEFAULT_PROJECT = "default"

_EXPERIMENT_KEYS = {"experiment_id", "experimentId"}
_EXPERIMENTS_KEYS = {"experiment_ids", "experimentIds"}
_RUN_KEYS = {"run_id", "run_uuid", "runId", "runUuid"}
_RUNS_KEYS = {"run_ids", "runIds", "runUuids"}


class Hidden(Exception):
    """The request names something outside the caller's projects (answered as 404)."""

    def __init__(self, what: str, ident: str):
        super().__init__(f"{what} '{ident}' does not exist")


@dataclass
class Decision:
    """What the gateway does with one request besides forwarding it."""

    body: bytes | None = None  # a rewritten request body
    filter_experiments: bool = False  # drop invisible experiments from the answer
    check_experiment_answer: bool = False  # 404 if the answered experiment is invisible


@dataclass
class _Ids:
    experiments: set = field(default_factory=set)
    runs: set = field(default_factory=set)

    def collect(self, data, deep: bool = False) -> None:
        if isinstance(data, dict):
            for k, v in data.items():
                if k in _EXPERIMENT_KEYS and isinstance(v, (str, int)):
                    self.experiments.add(str(v))
                elif k in _EXPERIMENTS_KEYS and isinstance(v, list):
                    self.experiments.update(str(x) for x in v)
                elif k in _RUN_KEYS and isinstance(v, str):
                    self.runs.add(v)
                elif k in _RUNS_KEYS and isinstance(v, list):
                    self.runs.update(str(x) for x in v)
                elif deep:
                    self.collect(v, deep)
        elif deep and isinstance(data, list):
            for v in data:
                self.collect(v, deep)


class ProjectScope:
    """Decides what one caller may reach; caches the few lookups it needs."""

    def __init__(self, upstream: httpx.AsyncClient, prefix: str,
                 projects_factory: Callable[[], object] | None, ttl: float = 5.0):
        self.upstream = upstream
        self.api = prefix.rstrip("/") + "/api/2.0/mlflow/"
        self._factory = projects_factory
        self._projects = None
        self.ttl = ttl
        self._members: dict[str, tuple[float, set | None]] = {}
        self._exp_project: dict[str, tuple[float, str | None]] = {}
        self._run_exp: dict[str, str] = {}  # a run never moves to another experiment

    @property
    def enabled(self) -> bool:
        return self._factory is not None

    def _projects_api(self):
        if self._projects is None:
            self._projects = self._factory()  # lazily: the control plane creates the database
        return self._projects

    def visible_projects(self, caller: Caller) -> set | None:
        """Names of the caller's projects; ``None`` means every project (administrators)."""
        if caller.is_admin:
            return None
        hit = self._members.get(caller.name)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        names = {p.name for p in self._projects_api().list_for(caller)}
        self._members[caller.name] = (time.monotonic(), names)
        return names

    async def _upstream_json(self, endpoint: str, **params) -> dict | None:
        resp = await self.upstream.get(self.api + endpoint, params=params)
        if resp.status_code != 200:
            return None  # absent: MLflow itself will say so when the request is forwarded
        return resp.json()

    async def experiment_project(self, experiment_id: str) -> str | None:
        hit = self._exp_project.get(experiment_id)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        body = await self._upstream_json("experiments/get", experiment_id=experiment_id)
        project = project_of(body["experiment"]) if body else None
        self._exp_project[experiment_id] = (time.monotonic(), project)
        return project

    async def run_experiment(self, run_id: str) -> str | None:
        if run_id not in self._run_exp:
            body = await self._upstream_json("runs/get", run_id=run_id)
            if not body:
                return None
            if len(self._run_exp) > 200_000:
                self._run_exp.clear()
            self._run_exp[run_id] = body["run"]["info"]["experiment_id"]
        return self._run_exp[run_id]

    async def _require_experiment(self, visible: set, experiment_id: str) -> None:
        project = await self.experiment_project(experiment_id)
        if project is not None and project not in visible:
            raise Hidden("Experiment", experiment_id)

    async def decide(self, caller: Caller, method: str, uri: str, body: bytes) -> Decision:
        """Raise :class:`Hidden` or say how to forward. Unscoped: only the run-user stamp."""
        url = urlparse(uri)
        path = unquote(url.path)
        endpoint = path.split("/mlflow/", 1)[1] if "/mlflow/" in path else ""
        data = _json(body) if method in ("POST", "PATCH", "PUT", "DELETE") else None
        decision = Decision()
        if endpoint.endswith("runs/create") and isinstance(data, dict):
            tags = [t for t in data.get("tags") or [] if t.get("key") != USER_TAG]
            data["tags"] = tags + [{"key": USER_TAG, "value": caller.name}]
            decision.body = json.dumps(data).encode()
        if not self.enabled:
            return decision
        visible = self.visible_projects(caller)
        if visible is None:
            return decision

        if endpoint.endswith("experiments/create") and isinstance(data, dict):
            tags = {t.get("key"): t.get("value") for t in data.get("tags") or []}
            project = tags.get(PROJECT_TAG) or DEFAULT_PROJECT
            if project not in visible:
                raise Hidden("Project", project)
            if PROJECT_TAG not in tags:
                data["tags"] = (data.get("tags") or []) + [
                    {"key": PROJECT_TAG, "value": project}]
                decision.body = json.dumps(data).encode()
        elif endpoint.endswith("experiments/search"):
            decision.filter_experiments = True
        elif endpoint.endswith("experiments/get-by-name"):
            decision.check_experiment_answer = True
        elif endpoint.endswith("experiments/set-experiment-tag") and isinstance(data, dict):
            # Moving an experiment: only into a project the caller is in as well.
            if data.get("key") == PROJECT_TAG and data.get("value") not in visible:
                raise Hidden("Project", str(data.get("value")))

        ids = _Ids()
        ids.collect({k: v if len(v) > 1 else v[0] for k, v in parse_qs(url.query).items()})
        for k in _EXPERIMENTS_KEYS | _RUNS_KEYS:  # repeated query arguments are lists
            ids.collect({k: parse_qs(url.query).get(k, [])})
        if data is not None:
            ids.collect(data, deep=path.rstrip("/").endswith("graphql"))
        if "/mlflow-artifacts/" in path:
            # Proxied artifacts live at <experiment id>/<run id>/artifacts/...
            rest = path.split("/artifacts/", 1)[1] if "/artifacts/" in path else ""
            first = rest.split("/", 1)[0]
            if first.isdigit():
                ids.experiments.add(first)
        for run_id in ids.runs:
            exp = await self.run_experiment(run_id)
            if exp is not None:
                try:
                    await self._require_experiment(visible, exp)
                except Hidden:
                    raise Hidden("Run", run_id) from None
        for exp in ids.experiments:
            await self._require_experiment(visible, exp)
        return decision

    def filter_answer(self, caller: Caller, decision: Decision, content: bytes) -> bytes:
        """Apply a decision's answer-side part; raises :class:`Hidden`."""
        visible = self.visible_projects(caller)
        body = _json(content)
        if visible is None or not isinstance(body, dict):
            return content
        if decision.filter_experiments:
            body["experiments"] = [e for e in body.get("experiments", [])
                                   if project_of(e) in visible]
            return json.dumps(body).encode()
        if decision.check_experiment_answer and "experiment" in body:
            if project_of(body["experiment"]) not in visible:
                raise Hidden("Experiment", body["experiment"].get("name", ""))
        return content


def project_of(experiment: dict) -> str:
    for t in experiment.get("tags") or []:
        if t.get("key") == PROJECT_TAG:
            return t.get("value") or DEFAULT_PROJECT
    return DEFAULT_PROJECT


def _json(body: bytes):
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
