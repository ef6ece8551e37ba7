"""Model registry routes of the server extension, over MLflow's registry REST API."""
from __future__ import annotations

import re

import tornado

from ..core.errors import Conflict, InvalidInput
from .experiment_views import TrackingHandler, _kv, int_arg


LOGGED_MODEL_ID = re.compile(r"^m-[0-9A-Za-z_-]{1,64}$")  # MLflow 3: m-<32 hex digits>


def _logged_model_of(source) -> str | None:
    """The MLflow 3 logged model a version came from: its source is ``models:/m-...`` (the
    registry does not return the ``model_id`` it was given)."""
    if isinstance(source, str) and source.startswith("models:/m-"):
        return source[len("models:/"):].split("/", 1)[0]
    return None


def version_summary(v: dict) -> dict:
    return {
        "name": v["name"],
        "version": str(v["version"]),
        "status": v.get("status"),
        "run_id": v.get("run_id") or None,
        "model_id": v.get("model_id") or _logged_model_of(v.get("source")),
        "source": v.get("source"),
        "aliases": list(v.get("aliases") or []),
        "tags": _kv(v.get("tags")),
        "description": v.get("description", ""),
        "creation_timestamp": v.get("creation_timestamp"),
    }


def model_summary(m: dict) -> dict:
    return {
        "name": m["name"],
        "description": m.get("description", ""),
        "aliases": {a["alias"]: str(a["version"]) for a in m.get("aliases") or []},
        "tags": _kv(m.get("tags")),
        "latest_version": max((int(v["version"]) for v in m.get("latest_versions") or []),
                              default=None),
        "last_updated_timestamp": m.get("last_updated_timestamp"),
    }


def required_str(body: dict, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"'{key}' is required (a non-empty string)")
    return value.strip()


class ModelsHandler(TrackingHandler):
    @tornado.web.authenticated
    async def get(self):
        max_results = int_arg(self, "max_results", 100, 1, 1000)
        async with self.tracking() as mlflow:
            page = await mlflow.search_registered_models(
                filter=self.get_query_argument("filter", ""), max_results=max_results,
                page_token=self.get_query_argument("page_token", ""))
        self.finish({"models": [model_summary(m) for m in page.get("registered_models", [])],
                     "next_page_token": page.get("next_page_token") or None})


class ModelVersionsHandler(TrackingHandler):
    @tornado.web.authenticated
    async def get(self, name):
        async with self.tracking() as mlflow:
            model = model_summary(await mlflow.get_registered_model(name))
            versions = [version_summary(v) for v in await mlflow.search_model_versions(name)]
        versions.sort(key=lambda v: int(v["version"]), reverse=True)
        # MLflow's version search leaves aliases out; the registered model has them all.
        for v in versions:
            v["aliases"] = sorted(a for a, n in model["aliases"].items() if n == v["version"])
        base = self.mlops.mlflow_ui_url.rstrip("/")
        for v in versions:
            v["ui_url"] = f"{base}/#/models/{name}/versions/{v['version']}"
        self.finish({"model": model, "versions": versions})


class RegisterHandler(TrackingHandler):
    """Register a model version from a run: an MLflow 3 logged model of it (``model_id``, what
    ``log_model(..., name=...)`` makes) or a run's artifact directory holding an ``MLmodel``
    file (``path``, the classic ``log_artifacts`` pattern).

    The registered model is created on first use. MLflow records the lineage itself: the
    version's ``run_id`` and, for a logged model, its ``model_id``.
    """

    @tornado.web.authenticated
    async def post(self):
        body = self.json_body()
        run_id, name = required_str(body, "run_id"), required_str(body, "name")
        if body.get("model_id") is not None:
            model_id = required_str(body, "model_id")
            if not LOGGED_MODEL_ID.match(model_id):
                raise InvalidInput(f"'model_id' is a logged model's id (m-...), not "
                                   f"{model_id[:40]!r}")
            await self._register_logged_model(run_id, name, model_id)
            return
        path = (body.get("path") or "").strip("/")
        if ".." in path.split("/"):
            raise InvalidInput("'path' must stay inside the run's artifacts")
        async with self.tracking() as mlflow:
            run = await mlflow.get_run(run_id)  # 404 when absent or not visible
            files = await mlflow.list_artifacts(run_id, path)
            if not any(f["path"].rsplit("/", 1)[-1] == "MLmodel" and not f.get("is_dir")
                       for f in files):
                raise InvalidInput(f"artifact {path or '/'!r} of run {run_id} is not an MLflow "
                                   "model directory (no MLmodel file in it)")
            try:
                await mlflow.create_registered_model(name)
            except Conflict:
                pass  # registering a new version of an existing model
            root = run["info"]["artifact_uri"].rstrip("/")
            version = await mlflow.create_model_version(
                name, f"{root}/{path}" if path else root, run_id)
        self.set_status(201)
        self.finish(version_summary(version))

    async def _register_logged_model(self, run_id: str, name: str, model_id: str) -> None:
        async with self.tracking() as mlflow:
            model = await mlflow.get_logged_model(model_id)  # 404 when absent or not visible
            info = model.get("info", {})
            if (info.get("source_run_id") or run_id) != run_id:
                raise InvalidInput(f"logged model {model_id} was not logged by run {run_id}")
            try:
                await mlflow.create_registered_model(name)
            except Conflict:
                pass  # registering a new version of an existing model
            version = await mlflow.create_model_version(name, f"models:/{model_id}", run_id,
                                                        model_id=model_id)
        self.set_status(201)
        self.finish(version_summary(version))


class AliasHandler(TrackingHandler):
    """Set or move an alias (e.g. ``champion``) to a version; DELETE removes it."""

    @tornado.web.authenticated
    async def put(self, name, alias):
        version = self.json_body().get("version")
        if not str(version or "").isdigit():
            raise InvalidInput("'version' is required (a version number)")
        async with self.tracking() as mlflow:
            await mlflow.set_alias(name, alias, str(version))
            model = model_summary(await mlflow.get_registered_model(name))
        self.finish(model)

    @tornado.web.authenticated
    async def delete(self, name, alias):
        async with self.tracking() as mlflow:
            await mlflow.delete_alias(name, alias)
        self.set_status(204)
        self.finish()
