"""Experiments and runs routes of the server extension.

Every call goes to MLflow's own REST API through the client's
:class:`~jupyter_mlops.client.AsyncMlflowGateway` with the user's
hub token; the gateway decides what the user may see (project scoping, see docs/security.md).
These handlers only validate input, page, and reshape MLflow's answers into what the panels draw.
"""
from __future__ import annotations

import asyncio
import json
import mimetypes
from contextlib import asynccontextmanager

import tornado

from ..core.errors import InvalidInput, MlopsError
from .handlers import MlopsHandler

PROJECT_TAG = "mlops.project"
USER_TAG = "mlops.user"
DEFAULT_PROJECT = "default"
MAX_PAGE = 1000
MAX_COMPARE = 10
PREVIEW_LIMIT = 10 * 1024 * 1024  # an inline preview, not a download manager
DEFAULT_CHART_METRICS = 4


def _kv(items) -> dict:
    return {i["key"]: i.get("value") for i in items or []}


def run_summary(run: dict) -> dict:
    """One row of the runs table: MLflow's run with params/metrics/tags as plain dicts."""
    info, data = run.get("info", {}), run.get("data", {})
    tags = _kv(data.get("tags"))
    return {
        "run_id": info["run_id"],
        "run_name": info.get("run_name") or tags.get("mlflow.runName", ""),
        "experiment_id": info.get("experiment_id"),
        "status": info.get("status"),
        "start_time": info.get("start_time"),
        "end_time": info.get("end_time"),
        "user": tags.get(USER_TAG) or tags.get("mlflow.user") or info.get("user_id", ""),
        "metrics": {m["key"]: m.get("value") for m in data.get("metrics", [])},
        "params": _kv(data.get("params")),
    }


def logged_model_summary(model: dict) -> dict:
    """An MLflow 3 logged model (``log_model(..., name=...)``) as the run view lists it."""
    info = model.get("info", {})
    return {
        "model_id": info["model_id"],
        "name": info.get("name") or info["model_id"],
        "experiment_id": info.get("experiment_id"),
        "source_run_id": info.get("source_run_id") or None,
        "artifact_uri": info.get("artifact_uri"),
        "status": info.get("status"),
        "model_type": info.get("model_type"),
        "creation_timestamp": info.get("creation_timestamp_ms"),
        "registrations": _registrations(info),
    }


def _registrations(info: dict) -> list[dict]:
    """Registered versions made from a logged model: MLflow keeps them in the model's
    ``mlflow.modelVersions`` tag (a JSON list of ``{name, version}``)."""
    found = [{"name": r.get("name"), "version": str(r.get("version"))}
             for r in info.get("registrations") or []]
    raw = _kv(info.get("tags")).get("mlflow.modelVersions")
    try:
        tagged = json.loads(raw) if raw else []
    except ValueError:
        tagged = []
    for r in tagged if isinstance(tagged, list) else []:
        entry = {"name": r.get("name"), "version": str(r.get("version"))} \
            if isinstance(r, dict) else None
        if entry and entry not in found:
            found.append(entry)
    return found


MAX_MODEL_DIRS = 20  # top-level artifact directories looked into for an MLmodel file


async def run_logged_models(mlflow, run: dict) -> list[dict]:
    """A run's MLflow 3 logged models: linked as its outputs, or naming it as their source
    run (``mlflow.sklearn.log_model(clf, name="model")`` inside the run)."""
    info = run["info"]
    run_id, exp = info["run_id"], info.get("experiment_id")
    outputs = [o.get("model_id") for o in (run.get("outputs") or {}).get("model_outputs", [])
               if o.get("model_id")]
    try:  # run ids are [0-9a-zA-Z_-] (the route's pattern): safe inside the filter
        found = await mlflow.search_logged_models([exp], filter=f"source_run_id = '{run_id}'")
    except MlopsError:
        found = []  # a tracking server without logged models: classic artifacts only
    by_id = {m["info"]["model_id"]: m for m in found}
    missing = [i for i in dict.fromkeys(outputs) if i not in by_id]
    for model in await asyncio.gather(*(mlflow.get_logged_model(i) for i in missing),
                                      return_exceptions=True):
        if isinstance(model, dict):
            by_id[model["info"]["model_id"]] = model
    logged = sorted((logged_model_summary(m) for m in by_id.values()),
                    key=lambda m: m["creation_timestamp"] or 0)
    return logged


def experiment_summary(exp: dict) -> dict:
    tags = _kv(exp.get("tags"))
    return {
        "experiment_id": exp["experiment_id"],
        "name": exp["name"],
        "project": tags.get(PROJECT_TAG, DEFAULT_PROJECT),
        "lifecycle_stage": exp.get("lifecycle_stage"),
        "creation_time": exp.get("creation_time"),
        "last_update_time": exp.get("last_update_time"),
        "tags": {k: v for k, v in tags.items() if not k.startswith("mlflow.")},
    }


def int_arg(handler, name: str, default: int, lo: int, hi: int) -> int:
    raw = handler.get_query_argument(name, None)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, not {raw!r}") from None
    if not lo <= value <= hi:
        raise InvalidInput(f"{name} must be between {lo} and {hi}, not {value}")
    return value


class TrackingHandler(MlopsHandler):
    """Base of the experiments and models routes, sharing one MLflow client."""

    @asynccontextmanager
    async def tracking(self):
        yield self.mlops.tracking()

    def ui_url(self, experiment_id: str, run_id: str | None = None) -> str:
        url = f"{self.mlops.mlflow_ui_url.rstrip('/')}/#/experiments/{experiment_id}"
        return f"{url}/runs/{run_id}" if run_id else url


class ExperimentsHandler(TrackingHandler):
    @tornado.web.authenticated
    async def get(self):
        max_results = int_arg(self, "max_results", 200, 1, MAX_PAGE)
        async with self.tracking() as mlflow:
            page = await mlflow.search_experiments(
                filter=self.get_query_argument("filter", ""), max_results=max_results,
                page_token=self.get_query_argument("page_token", ""))
        exps = [experiment_summary(e) for e in page.get("experiments", [])]
        for e in exps:
            e["ui_url"] = self.ui_url(e["experiment_id"])
        self.finish({"experiments": exps, "next_page_token": page.get("next_page_token")})


class ExperimentHandler(TrackingHandler):
    @tornado.web.authenticated
    async def get(self, experiment_id):
        async with self.tracking() as mlflow:
            exp = experiment_summary(await mlflow.get_experiment(experiment_id))
        exp["ui_url"] = self.ui_url(experiment_id)
        self.finish(exp)


class RunsHandler(TrackingHandler):
    """One page of an experiment's runs: MLflow's search syntax, ordering and page tokens."""

    @tornado.web.authenticated
    async def get(self, experiment_id):
        max_results = int_arg(self, "max_results", 100, 1, MAX_PAGE)
        order_by = [o for o in self.get_query_arguments("order_by") if o]
        async with self.tracking() as mlflow:
            page = await mlflow.search_runs(
                [experiment_id], filter=self.get_query_argument("filter", ""),
                order_by=order_by, max_results=max_results,
                page_token=self.get_query_argument("page_token", ""))
        runs = [run_summary(r) for r in page.get("runs", [])]
        for r in runs:
            r["ui_url"] = self.ui_url(r["experiment_id"], r["run_id"])
        metric_keys = sorted({k for r in runs for k in r["metrics"]})
        param_keys = sorted({k for r in runs for k in r["params"]})
        self.finish({"runs": runs, "next_page_token": page.get("next_page_token") or None,
                     "metric_keys": metric_keys, "param_keys": param_keys})


class RunHandler(TrackingHandler):
    """A run's detail: params, metrics, tags, dataset inputs, git commit, top-level artifacts."""

    @tornado.web.authenticated
    async def get(self, run_id):
        async with self.tracking() as mlflow:
            run = await mlflow.get_run(run_id)
            artifacts = await mlflow.list_artifacts(run_id)
            logged = await run_logged_models(mlflow, run)
            model_dirs = await self._model_dirs(mlflow, run_id, artifacts)
        out = run_summary(run)
        tags = _kv(run.get("data", {}).get("tags"))
        out["tags"] = tags
        out["artifact_uri"] = run["info"].get("artifact_uri")
        out["git"] = {
            "commit": tags.get("mlflow.source.git.commit"),
            "repo": tags.get("mlflow.source.git.repoURL"),
            "branch": tags.get("mlflow.source.git.branch"),
            "dirty": tags.get("mlops.git.dirty"),
        }
        out["inputs"] = [
            {"name": d["dataset"].get("name"), "digest": d["dataset"].get("digest"),
             "source_type": d["dataset"].get("source_type"),
             "source": d["dataset"].get("source"), "context": _kv(d.get("tags")).get(
                 "mlflow.data.context")}
            for d in (run.get("inputs") or {}).get("dataset_inputs", [])
        ]
        out["models"] = [o.get("model_id") for o in
                         (run.get("outputs") or {}).get("model_outputs", [])]
        out["artifacts"] = artifacts
        out["ui_url"] = self.ui_url(out["experiment_id"], run_id)
        for m in logged:
            m["ui_url"] = f"{self.ui_url(m['experiment_id'] or out['experiment_id'])}/models/" \
                          f"{m['model_id']}"
        out["logged_models"] = logged
        out["model_artifacts"] = model_dirs
        self.finish(out)

    @staticmethod
    async def _model_dirs(mlflow, run_id: str, artifacts: list) -> list[str]:
        """Paths of the run's artifacts holding an MLmodel file (``""``: the root itself)."""
        def has_mlmodel(files):
            return any(not f.get("is_dir") and f["path"].rsplit("/", 1)[-1] == "MLmodel"
                       for f in files)

        dirs = [f["path"] for f in artifacts if f.get("is_dir")][:MAX_MODEL_DIRS]
        listed = await asyncio.gather(*(mlflow.list_artifacts(run_id, d) for d in dirs),
                                      return_exceptions=True)
        found = [""] if has_mlmodel(artifacts) else []
        return found + [d for d, files in zip(dirs, listed)
                        if isinstance(files, list) and has_mlmodel(files)]


def _artifact_path(handler) -> str:
    path = handler.get_query_argument("path", "")
    if path.startswith("/") or ".." in path.split("/"):
        raise InvalidInput(f"artifact path {path!r} must be relative, without '..'")
    return path


class ArtifactsHandler(TrackingHandler):
    @tornado.web.authenticated
    async def get(self, run_id):
        path = _artifact_path(self)
        async with self.tracking() as mlflow:
            files = await mlflow.list_artifacts(run_id, path)
        self.finish({"path": path, "files": files})


class ArtifactHandler(TrackingHandler):
    """The bytes of one artifact, for inline previews of images and text."""

    @tornado.web.authenticated
    async def get(self, run_id):
        path = _artifact_path(self)
        if not path:
            raise InvalidInput("give the artifact's path")
        async with self.tracking() as mlflow:
            resp = await mlflow.get_artifact(run_id, path)
        if len(resp.content) > PREVIEW_LIMIT:
            raise InvalidInput(f"{path} is larger than {PREVIEW_LIMIT // 2**20} MB; open it in "
                               "the MLflow UI instead")
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/json", "application/x-yaml"):
            ctype += "; charset=utf-8"
        elif path.endswith(("MLmodel", ".log", ".txt", ".yaml", ".yml", ".md")):
            ctype = "text/plain; charset=utf-8"
        self.set_header("Content-Type", ctype)
        # An artifact is user content: never let the browser run it in the lab's origin.
        self.set_header("Content-Security-Policy", "sandbox; default-src 'none'")
        self.set_header("X-Content-Type-Options", "nosniff")
        # APIHandler.finish would force application/json onto the bytes.
        tornado.web.RequestHandler.finish(self, resp.content)


class CompareHandler(TrackingHandler):
    """2-10 runs side by side: differing params, final metrics, metric histories to overlay."""

    @tornado.web.authenticated
    async def get(self):
        ids = [i for i in self.get_query_argument("run_ids", "").split(",") if i]
        if not 2 <= len(set(ids)) <= MAX_COMPARE or len(set(ids)) != len(ids):
            raise InvalidInput(f"compare 2 to {MAX_COMPARE} distinct runs (run_ids=a,b,...), "
                               f"not {len(ids)}")
        wanted = [k for k in self.get_query_argument("metrics", "").split(",") if k]
        async with self.tracking() as mlflow:
            runs = [run_summary(r) for r in
                    await asyncio.gather(*(mlflow.get_run(i) for i in ids))]
            keys = sorted({k for r in runs for k in r["metrics"]})
            if not wanted:
                # Metrics every run has first: those are the ones worth overlaying.
                common = [k for k in keys if all(k in r["metrics"] for r in runs)]
                wanted = (common or keys)[:DEFAULT_CHART_METRICS]
            unknown = [k for k in wanted if k not in keys]
            if unknown:
                raise InvalidInput(f"none of these runs logged the metric(s) {unknown}")
            pairs = [(r["run_id"], k) for k in wanted for r in runs if k in r["metrics"]]
            histories = await asyncio.gather(*(mlflow.metric_history(i, k) for i, k in pairs))
        charts: dict = {k: {} for k in wanted}
        for (run_id, key), points in zip(pairs, histories):
            points.sort(key=lambda m: (int(m.get("step", 0)), int(m.get("timestamp", 0))))
            charts[key][run_id] = [[int(m.get("step", 0)), m["value"]] for m in points]
        param_keys = sorted({k for r in runs for k in r["params"]})
        differing = [k for k in param_keys if len({r["params"].get(k) for r in runs}) > 1]
        for r in runs:
            r["ui_url"] = self.ui_url(r["experiment_id"], r["run_id"])
        self.finish({"runs": runs, "param_keys": param_keys, "differing_params": differing,
                     "metric_keys": keys, "histories": charts})
