"""MLflow's own REST API through the platform's hub-authenticated gateway
(https://mlflow.org/docs/latest/rest-api.html). Thin: the gateway (or MLflow itself) does the
work and decides what the caller may see; these only name the calls."""
from __future__ import annotations

from . import parse
from .catalog_calls import seg

API = "api/2.0/mlflow/"


def _query(params: dict) -> dict:
    return {k: v for k, v in params.items() if v is not None and v != ""}


class MlflowCalls:
    def version(self):
        return self._send("GET", "version", lambda r: r.text.strip())

    def _get(self, endpoint: str, parse_=parse.body, /, **params):
        return self._send("GET", API + endpoint, parse_, params=_query(params))

    def _post(self, endpoint: str, body: dict, parse_=parse.body):
        return self._send("POST", API + endpoint, parse_, json=body)

    def search_experiments(self, *, filter: str = "", max_results: int = 1000,
                           page_token: str = "", order_by=("name ASC",)):
        return self._post("experiments/search", {
            "filter": filter, "max_results": max_results, "page_token": page_token,
            "order_by": list(order_by)})

    def get_experiment(self, experiment_id: str):
        return self._get("experiments/get", parse.key("experiment"),
                         experiment_id=experiment_id)

    def get_experiment_by_name(self, name: str):
        return self._get("experiments/get-by-name", parse.key("experiment"),
                         experiment_name=name)

    def create_experiment(self, name: str, tags: dict | None = None):
        body = {"name": name, "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
        return self._post("experiments/create", body, parse.key("experiment_id"))

    def search_runs(self, experiment_ids: list[str], *, filter: str = "",
                    order_by: list[str] | None = None, max_results: int = 100,
                    page_token: str = ""):
        body = {"experiment_ids": experiment_ids, "filter": filter, "max_results": max_results,
                "order_by": order_by or [], "run_view_type": "ACTIVE_ONLY"}
        if page_token:
            body["page_token"] = page_token
        return self._post("runs/search", body)

    def get_run(self, run_id: str):
        return self._get("runs/get", parse.key("run"), run_id=run_id)

    def metric_history(self, run_id: str, key: str, max_results: int = 25000):
        """Every point of one metric, all pages."""
        return self._pages("GET", API + "metrics/get-history", "metrics",
                           {"run_id": run_id, "metric_key": key, "max_results": max_results})

    def list_artifacts(self, run_id: str, path: str = ""):
        return self._get("artifacts/list", lambda r: r.json().get("files", []),
                         run_id=run_id, path=path)

    def get_artifact(self, run_id: str, path: str):
        """The artifact's answer (bytes and content type), through the download route MLflow's
        own UI uses (served next to the API, under the prefix)."""
        return self._send("GET", "get-artifact", parse.response,
                          params={"run_id": run_id, "path": path})

    def search_registered_models(self, *, filter: str = "", max_results: int = 100,
                                 page_token: str = ""):
        return self._get("registered-models/search", filter=filter, max_results=max_results,
                         page_token=page_token)

    def get_registered_model(self, name: str):
        return self._get("registered-models/get", parse.key("registered_model"), name=name)

    def search_model_versions(self, name: str, max_results: int = 200):
        """Every version of registered model ``name``, all pages."""
        escaped = name.replace("'", "\\'")
        return self._pages("GET", API + "model-versions/search", "model_versions",
                           {"filter": f"name='{escaped}'", "max_results": max_results})

    def create_registered_model(self, name: str):
        return self._post("registered-models/create", {"name": name},
                          parse.key("registered_model"))

    def create_model_version(self, name: str, source: str, run_id: str,
                             model_id: str | None = None):
        body = {"name": name, "source": source, "run_id": run_id}
        if model_id:
            body["model_id"] = model_id  # MLflow 3: the version comes from a logged model
        return self._post("model-versions/create", body, parse.key("model_version"))

    def get_logged_model(self, model_id: str):
        """An MLflow 3 logged model (``{info, data}``)."""
        return self._get(f"logged-models/{seg(model_id)}", parse.key("model"))

    def search_logged_models(self, experiment_ids: list[str], *, filter: str = "",
                             max_results: int = 100):
        """Logged models of the experiments (``filter``: e.g. ``source_run_id = '...'``)."""
        body = {"experiment_ids": experiment_ids, "filter": filter, "max_results": max_results}
        return self._post("logged-models/search", body, lambda r: r.json().get("models", []))

    def get_model_version(self, name: str, version: str):
        return self._get("model-versions/get", parse.key("model_version"), name=name,
                         version=str(version))

    def model_version_download_uri(self, name: str, version: str) -> str:
        return self._get("model-versions/get-download-uri", parse.key("artifact_uri"),
                         name=name, version=str(version))

    def download_artifact(self, path: str):
        """The answer of MLflow's artifact proxy for ``mlflow-artifacts:/<path>``, whatever its
        status (a missing file may answer 404 or 500 depending on the store); only no answer
        raises."""
        return self._send("GET", "api/2.0/mlflow-artifacts/artifacts/" + path.lstrip("/"),
                          parse.response, check=False)

    def set_alias(self, name: str, alias: str, version: str):
        return self._post("registered-models/alias",
                          {"name": name, "alias": alias, "version": str(version)},
                          parse.nothing)

    def delete_alias(self, name: str, alias: str):
        # MLflow reads a DELETE's parameters from a JSON body, as its own client sends them.
        return self._send("DELETE", API + "registered-models/alias", parse.nothing,
                          json={"name": name, "alias": alias})
