"""The lineage records of the tracking server (``core.datasets.lineage.LineageRecords``), read
from the platform's MLflow server on its unix socket, as model versions are
(:class:`MlflowArtifactResolver`). The control plane does the scoping; MLflow only answers."""
from __future__ import annotations

from ..client import parse
from ..client.mlflow_calls import API
from ..client.platform_clients import AsyncMlflowGateway, mlflow_socket_config
from ..core.errors import NotFound

PROJECT_TAG, DEFAULT_PROJECT = "mlops.project", "default"  # as the MLflow gateway reads them
DATASET_TAG = "mlops.dataset_version"  # a job's pinned dataset version (core.jobs.runner)


def _project(obj: dict) -> str:
    tags = {t.get("key"): t.get("value") for t in obj.get("tags") or []}
    return tags.get(PROJECT_TAG) or DEFAULT_PROJECT


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _run(body: dict) -> dict:
    info, data = body.get("info") or {}, body.get("data") or {}
    tags = {t.get("key"): t.get("value") for t in data.get("tags") or []}
    used = [d["dataset"]["name"] for d in (body.get("inputs") or {}).get("dataset_inputs") or []
            if (d.get("dataset") or {}).get("name")]
    if tags.get(DATASET_TAG):
        used.append(tags[DATASET_TAG])
    return {"run_id": info.get("run_id"), "run_name": info.get("run_name") or "",
            "experiment_id": info.get("experiment_id"), "status": info.get("status"),
            "start_time": info.get("start_time"), "job_id": tags.get("mlops.job_id"),
            # the gateway's mlops.user (which no client can forge), not the client's mlflow.user
            "user": tags.get("mlops.user") or tags.get("mlflow.user") or "",
            "datasets": list(dict.fromkeys(used))}


class MlflowLineageRecords:
    def __init__(self, socket_path: str, prefix: str = "/services/mlflow"):
        self.socket_path = socket_path
        self.config = mlflow_socket_config(socket_path, prefix)

    async def _call(self, method: str, path: str, **kw) -> dict | None:
        """MLflow's JSON answer; None for an absent object."""
        try:
            async with AsyncMlflowGateway(config=self.config) as mlflow:
                return parse.json_object(await mlflow.request(method, API + path, **kw))
        except NotFound:
            return None

    async def experiment_projects(self) -> dict[str, str]:
        out, token = {}, None
        while True:
            body = await self._call("POST", "experiments/search", json={
                "max_results": 1000, "view_type": "ACTIVE_ONLY",
                **({"page_token": token} if token else {})}) or {}
            for e in body.get("experiments") or []:
                out[e["experiment_id"]] = _project(e)
            token = body.get("next_page_token")
            if not token:
                return out

    async def runs_using(self, experiment_ids: list[str], dataset_version: str,
                         limit: int) -> list[dict]:
        found: dict[str, dict] = {}
        for flt in (f"dataset.name = {_quote(dataset_version)}",
                    f"tags.`{DATASET_TAG}` = {_quote(dataset_version)}"):
            for i in range(0, len(experiment_ids), 100):
                body = await self._call("POST", "runs/search", json={
                    "experiment_ids": experiment_ids[i:i + 100], "filter": flt,
                    "max_results": limit, "run_view_type": "ACTIVE_ONLY",
                    "order_by": ["attributes.start_time DESC"]}) or {}
                for r in body.get("runs") or []:
                    run = _run(r)
                    found.setdefault(run["run_id"], run)
        runs = sorted(found.values(), key=lambda r: -(int(r["start_time"] or 0)))[:limit]
        for r in runs:
            r.pop("datasets", None)
        return runs

    async def run(self, run_id: str) -> dict | None:
        body = await self._call("GET", "runs/get", params={"run_id": run_id})
        return _run(body["run"]) if body and body.get("run") else None

    async def model_versions_of(self, run_ids: list[str]) -> list[dict]:
        out = []
        for i in range(0, len(run_ids), 50):
            ids = ", ".join(_quote(r) for r in run_ids[i:i + 50])
            body = await self._call("GET", "model-versions/search", params={
                "filter": f"run_id IN ({ids})", "max_results": 1000}) or {}
            out += [{"name": m["name"], "version": str(m["version"]), "run_id": m.get("run_id")}
                    for m in body.get("model_versions") or []]
        return sorted(out, key=lambda m: (m["name"], int(m["version"])))

    async def model_version(self, name: str, version: str) -> dict | None:
        body = await self._call("GET", "model-versions/get",
                                params={"name": name, "version": version})
        mv = (body or {}).get("model_version")
        return {"name": mv["name"], "version": str(mv["version"]),
                "run_id": mv.get("run_id") or ""} if mv else None

    async def model_project(self, name: str) -> str | None:
        body = await self._call("GET", "registered-models/get", params={"name": name})
        return _project(body["registered_model"]) if body and body.get(
            "registered_model") else None
