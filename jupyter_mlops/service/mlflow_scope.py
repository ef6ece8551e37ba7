"""Project scoping of MLflow, enforced in the gateway (the only way into MLflow).

An experiment belongs to the project named by its tag ``mlops.project`` (no tag: ``default``,
the project everyone is in); a run, a logged model and proxied artifacts belong to their
experiment's project; a registered model belongs to the project of its own ``mlops.project``
tag (no tag: ``default``). The route's rule (:mod:`.mlflow_routes`) says what a request is
about; on top of it every experiment, run and logged-model id the request names anywhere (query
arguments, JSON body at any depth, GraphQL arguments) must lie in a project of the caller. An
object of another project answers 404, exactly as MLflow does for an absent id, so its existence
does not leak. Searches are filtered, creations are stamped with a project the caller belongs
to, and new runs carry the hub user who created them (``mlops.user``), which no client can forge.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlparse

import httpx

from ..core.errors import Forbidden, InvalidInput, NotFound
from ..core.roles import Caller
from .mlflow_graphql import graphql_ids
from .mlflow_ids import Ids

log = logging.getLogger("jupyter_mlops.mlflow_gateway")

PROJECT_TAG = "mlops.project"
USER_TAG = "mlops.user"
DEFAULT_PROJECT = "default"


class Hidden(NotFound):
    """The request names something outside the caller's projects (answered as 404)."""

    def __init__(self, what: str, ident: str):
        super().__init__(f"{what} '{ident}' does not exist")


@dataclass
class Decision:
    """What the gateway does with one request besides forwarding it."""

    body: bytes | None = None  # the request body to forward (the checked one, re-serialised)
    filter: str = ""  # answer side: experiments | registered_models | model_versions
    check_experiment_answer: bool = False  # 404 if the answered experiment is invisible

    @property
    def reads_answer(self) -> bool:
        return bool(self.filter or self.check_experiment_answer)


class _Cache:
    def __init__(self, ttl: float, limit: int = 100_000):
        self.ttl, self.limit, self._d = ttl, limit, {}

    def get(self, key):
        hit = self._d.get(key)
        if hit and (self.ttl is None or time.monotonic() - hit[0] < self.ttl):
            return True, hit[1]
        return False, None

    def drop(self, key):
        self._d.pop(key, None)

    def put(self, key, value):
        if len(self._d) > self.limit:
            self._d.clear()
        self._d[key] = (time.monotonic(), value)
        return value


class ProjectScope:
    """Decides what one caller may reach; caches the few lookups it needs."""

    # The gateway's own pooled upstream (see MlflowGateway.make_app): these lookups run on every
    # proxied request, next to the forwarding, over the same connections.
    def __init__(self, upstream: httpx.AsyncClient, prefix: str,
                 projects_factory: Callable[[], object] | None, ttl: float = 5.0):
        self.upstream = upstream
        self.api = prefix.rstrip("/") + "/api/2.0/mlflow/"
        self._factory = projects_factory
        self._projects = None
        self._members = _Cache(ttl)
        self._exp_project = _Cache(ttl)  # an experiment's project tag may change
        self._model_project = _Cache(ttl)  # so may a registered model's
        self._run_exp = _Cache(None)  # a run never moves to another experiment
        self._logged_exp = _Cache(None)  # nor does a logged model

    @property
    def enabled(self) -> bool:
        return self._factory is not None

    def _projects_api(self):
        if self._projects is None:
            self._projects = self._factory()  # lazily: the control plane creates the database
        return self._projects

    def visible_projects(self, caller: Caller) -> set | None:
        """Names of the caller's projects; ``None`` means every project (administrators)."""
        if caller.is_admin or not self.enabled:
            return None
        hit, names = self._members.get(caller.name)
        if not hit:
            names = self._members.put(
                caller.name, {p.name for p in self._projects_api().list_for(caller)})
        return names

    # --- lookups in MLflow (absent: None; MLflow says so itself when the request goes on) ---

    async def _upstream_json(self, endpoint: str, **params) -> dict | None:
        resp = await self.upstream.get(self.api + endpoint, params=params)
        if resp.status_code != 200:
            return None
        return resp.json()

    async def experiment_project(self, experiment_id: str) -> str | None:
        hit, project = self._exp_project.get(experiment_id)
        if not hit:
            body = await self._upstream_json("experiments/get", experiment_id=experiment_id)
            project = self._exp_project.put(
                experiment_id, project_of(body["experiment"]) if body else None)
        return project

    async def run_experiment(self, run_id: str) -> str | None:
        hit, exp = self._run_exp.get(run_id)
        if not hit:
            body = await self._upstream_json("runs/get", run_id=run_id)
            if not body:
                return None
            exp = self._run_exp.put(run_id, body["run"]["info"]["experiment_id"])
        return exp

    async def logged_model_experiment(self, model_id: str) -> str | None:
        hit, exp = self._logged_exp.get(model_id)
        if not hit:
            body = await self._upstream_json(f"logged-models/{model_id}")
            if not body:
                return None
            exp = self._logged_exp.put(model_id, body["model"]["info"]["experiment_id"])
        return exp

    async def registered_model(self, name: str) -> dict | None:
        hit, model = self._model_project.get(name)
        if not hit:
            body = await self._upstream_json("registered-models/get", name=name)
            model = self._model_project.put(name, body["registered_model"] if body else None)
        return model

    # --- checks ------------------------------------------------------------------------------

    async def require_experiment(self, visible: set, experiment_id: str) -> str | None:
        project = await self.experiment_project(experiment_id)
        if project is not None and project not in visible:
            raise Hidden("Experiment", experiment_id)
        return project

    async def require_run(self, visible: set, run_id: str) -> str | None:
        exp = await self.run_experiment(run_id)
        if exp is None:
            return None
        try:
            return await self.require_experiment(visible, exp)
        except Hidden:
            raise Hidden("Run", run_id) from None

    async def require_logged_model(self, visible: set, model_id: str) -> str | None:
        exp = await self.logged_model_experiment(model_id)
        if exp is None:
            return None
        try:
            return await self.require_experiment(visible, exp)
        except Hidden:
            raise Hidden("Logged model", model_id) from None

    async def require_registered_model(self, visible: set, name: str) -> dict | None:
        model = await self.registered_model(name)
        if model is not None and project_of(model) not in visible:
            raise Hidden("Registered Model", name)
        return model

    async def require_ids(self, visible: set, ids: Ids) -> None:
        for run_id in ids.runs:
            await self.require_run(visible, run_id)
        for exp in ids.experiments:
            await self.require_experiment(visible, exp)
        for model_id in ids.logged_models:
            await self.require_logged_model(visible, model_id)

    async def decide(self, caller: Caller, rule: str, path: str, query: dict, data,
                     params: dict | None = None) -> Decision:
        """Raise :class:`Hidden`, ``Forbidden`` or ``InvalidInput``, or say how to forward.

        ``path`` is the decoded path below the service prefix, ``query`` the query arguments
        (lists), ``data`` the decoded JSON body (or None), ``params`` the route's path segments.
        """
        decision = Decision()
        if rule == "run_create":
            data = data if isinstance(data, dict) else {}
            data["tags"] = [t for t in _tags(data) if t["key"] != USER_TAG] + [
                {"key": USER_TAG, "value": caller.name}]
        visible = self.visible_projects(caller)
        if visible is not None:
            await self._check(visible, rule, path, query, data, params or {}, decision)
        if data is not None:
            decision.body = json.dumps(data).encode()
        return decision

    async def _check(self, visible: set, rule: str, path: str, query: dict, data,
                     params: dict, decision: Decision) -> None:
        ids = Ids()
        ids.collect_query(query)
        if data is not None:
            ids.collect(data)
        if params.get("model_id"):
            ids.logged_models.add(params["model_id"])
        body = data if isinstance(data, dict) else {}
        _no_parent_paths(query, body)

        if rule == "experiment_create":
            if body.get("artifact_location"):
                # Another experiment's directory would make its artifacts this one's.
                raise Forbidden("the platform chooses where an experiment's artifacts live; "
                                "leave out artifact_location")
            tags = {t["key"]: t["value"] for t in _tags(body)}
            project = tags.get(PROJECT_TAG) or DEFAULT_PROJECT
            if project not in visible:
                raise Hidden("Project", project)
            if PROJECT_TAG not in tags:
                body["tags"] = _tags(body) + [{"key": PROJECT_TAG, "value": project}]
        elif rule == "experiment_search":
            decision.filter = "experiments"
        elif rule == "experiment_by_name":
            decision.check_experiment_answer = True
        elif rule == "experiment":
            _project_tag_change(body, visible, "experiment")
        elif rule == "run":
            tags = _tags(body) if isinstance(body.get("tags"), list) else []
            if body.get("key") == USER_TAG or any(t["key"] == USER_TAG for t in tags):
                raise Forbidden(f"the run tag {USER_TAG} names who created the run; the "
                                "platform sets it")
        elif rule == "experiments" and not ids.experiments:
            raise InvalidInput("name the experiments to search (experiment_ids)")
        elif rule == "registered_model_create":
            tags = {t["key"]: t["value"] for t in _tags(body)}
            if tags.get(PROJECT_TAG, DEFAULT_PROJECT) not in visible:
                raise Hidden("Project", tags[PROJECT_TAG])
        elif rule == "registered_model":
            await self.require_registered_model(visible, _name(query, body))
            _project_tag_change(body, visible, "registered model")
        elif rule == "registered_model_search":
            decision.filter = "registered_models"
        elif rule == "model_version_search":
            decision.filter = "model_versions"
        elif rule == "model_version_create":
            await self.require_ids(visible, ids)
            await self._model_version_source(visible, body)
        elif rule == "artifact_path":
            ids.experiments.add(_artifact_experiment(path, query))
        elif rule == "graphql":
            found = graphql_ids(data)
            ids.experiments |= found.experiments
            ids.runs |= found.runs
            ids.logged_models |= found.logged_models
        await self.require_ids(visible, ids)

    async def _model_version_source(self, visible: set, body: dict) -> None:
        """A version's source must lie in the registered model's project.

        A model created without a project tag takes the project of its first version's source
        (so ``log_model(registered_model_name=...)`` in a private project keeps it private);
        sharing a private model with the lab is setting its tag to ``default``, explicitly.
        """
        name = _name({}, body)
        model = await self.require_registered_model(visible, name)
        source_project = await self._source_project(visible, body)
        if model is None:
            return  # MLflow answers that the registered model does not exist
        tagged = any(t.get("key") == PROJECT_TAG for t in model.get("tags") or [])
        model_project = project_of(model)
        if not tagged and not model.get("latest_versions") and source_project != model_project:
            r = await self.upstream.post(self.api + "registered-models/set-tag", json={
                "name": name, "key": PROJECT_TAG, "value": source_project})
            if r.status_code != 200:
                raise Forbidden(f"registered model {name!r} could not be placed in project "
                                f"{source_project!r}: {r.text[:200]}")
            self._model_project.drop(name)  # re-read at next use
            return
        if source_project != model_project:
            raise Forbidden(
                f"registered model {name!r} belongs to project {model_project!r} but this "
                f"version's source lies in project {source_project!r}; register it in a model "
                f"of {source_project!r} (tag {PROJECT_TAG})")

    async def _source_project(self, visible: set, body: dict) -> str:
        project = None
        if isinstance(body.get("run_id") or body.get("runId"), str):
            project = await self.require_run(visible, body.get("run_id") or body.get("runId"))
        model_id = body.get("model_id") or body.get("modelId")
        if isinstance(model_id, str) and model_id:
            project = await self.require_logged_model(visible, model_id) or project
        source = body.get("source")
        if not isinstance(source, str) or not source:
            raise InvalidInput("'source' is required (a string)")
        parsed = urlparse(source)
        path = [p for p in parsed.path.split("/") if p]
        if ".." in path or "." in path:
            raise Forbidden("a model version's source may not leave its run's or model's "
                            "artifacts ('..')")
        if parsed.scheme == "runs" and path:
            source_of = await self.require_run(visible, path[0])
        elif parsed.scheme == "models" and path and path[0].startswith("m-"):
            source_of = await self.require_logged_model(visible, path[0])
        elif parsed.scheme == "mlflow-artifacts" and path and path[0].isdigit():
            source_of = await self.require_experiment(visible, path[0])
        else:
            raise Forbidden("a model version's source must be a run's or a logged model's "
                            "artifacts (runs:/, models:/m-..., mlflow-artifacts:/)")
        return source_of or project or DEFAULT_PROJECT

    def filter_answer(self, caller: Caller, decision: Decision, content: bytes,
                      model_projects: dict | None = None) -> bytes:
        """Apply a decision's answer-side part; raises :class:`Hidden`."""
        visible = self.visible_projects(caller)
        body = _json(content)
        if visible is None or not isinstance(body, dict):
            return content
        if decision.filter in ("experiments", "registered_models"):
            body[decision.filter] = [e for e in body.get(decision.filter, [])
                                     if project_of(e) in visible]
            return json.dumps(body).encode()
        if decision.filter == "model_versions":
            body["model_versions"] = [v for v in body.get("model_versions", [])
                                      if (model_projects or {}).get(v.get("name")) in visible]
            return json.dumps(body).encode()
        if decision.check_experiment_answer and "experiment" in body:
            if project_of(body["experiment"]) not in visible:
                raise Hidden("Experiment", body["experiment"].get("name", ""))
        return content

    async def model_projects(self, content: bytes) -> dict:
        """Project of every registered model a ``model-versions/search`` answer names."""
        body = _json(content)
        names = {v.get("name") for v in (body or {}).get("model_versions", [])
                 if isinstance(v, dict)}
        out = {}
        for name in names:
            model = await self.registered_model(name) if isinstance(name, str) else None
            out[name] = project_of(model) if model else None
        return out


def project_of(obj: dict) -> str:
    """The project of an experiment or a registered model (its ``mlops.project`` tag)."""
    for t in obj.get("tags") or []:
        if t.get("key") == PROJECT_TAG:
            return t.get("value") or DEFAULT_PROJECT
    return DEFAULT_PROJECT


def _tags(body: dict) -> list:
    tags = body.get("tags") or []
    if not isinstance(tags, list) or not all(
            isinstance(t, dict) and isinstance(t.get("key"), str)
            and isinstance(t.get("value", ""), str) for t in tags):
        raise InvalidInput("'tags' must be a list of {key, value} strings")
    return tags


def _name(query: dict, body: dict) -> str:
    names = query.get("name") or [body.get("name")]
    if len(names) != 1 or not isinstance(names[0], str) or not names[0]:
        raise InvalidInput("'name' is required (one registered model name, a string)")
    return names[0]


def _project_tag_change(body: dict, visible: set, what: str) -> None:
    """Moving an object to another project needs membership of both; removing the tag (which
    would move it to ``default``) is refused: sharing is setting the tag to ``default``."""
    if body.get("key") != PROJECT_TAG:
        return
    if "value" not in body:
        raise Forbidden(f"the {what}'s {PROJECT_TAG} tag cannot be removed; set it to "
                        f"'{DEFAULT_PROJECT}' to share it with the lab")
    if body.get("value") not in visible:
        raise Hidden("Project", str(body.get("value")))


_PATH_KEYS = ("path", "artifact_path", "artifact_file_path")


def _no_parent_paths(query: dict, body: dict) -> None:
    """Artifact paths inside a run or model stay inside it (MLflow checks too: fail closed)."""
    values = [v for k in _PATH_KEYS for v in query.get(k, [])]
    values += [body[k] for k in _PATH_KEYS if isinstance(body.get(k), str)]
    for value in values:
        if ".." in value.replace("\\", "/").split("/"):
            raise InvalidInput("an artifact path may not contain '..'")


def _artifact_experiment(path: str, query: dict) -> str:
    """The experiment id proxied artifacts live under: ``<experiment id>/...``."""
    tail = path.split("/mlflow-artifacts/", 1)[-1]
    if tail == "artifacts":  # the listing: ?path=
        paths = query.get("path") or [""]
        if len(paths) != 1:
            raise InvalidInput("give one 'path'")
        rest = paths[0]
    elif tail.startswith("artifacts/"):
        rest = tail[len("artifacts/"):]
    else:  # mpu/<create|complete|abort>/<path>
        rest = tail.split("/", 2)[-1]
    parts = rest.strip("/").split("/")
    if any(p in ("", ".", "..") for p in parts) or not parts[0].isdigit():
        raise Forbidden("artifacts are reachable only below an experiment: "
                        "<experiment id>/<run id>/artifacts/...")
    return parts[0]


def _json(body: bytes):
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
