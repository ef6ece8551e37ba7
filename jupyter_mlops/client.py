"""Typed async client of the control plane and of the MLflow gateway.

Used by the server extension (and later the magics) with the user's own hub token. Transport
failures become :class:`Unavailable`; error answers become the matching :mod:`core.errors`
class carrying the server's message, so a 403 from the control plane is a 403 in the lab.
"""
from __future__ import annotations

import httpx

from .core import errors

_BY_STATUS = {
    400: errors.InvalidInput,
    401: errors.NotAuthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
}


def _raise_for(resp: httpx.Response, what: str) -> None:
    if resp.status_code < 400:
        return
    code = None
    try:
        body = resp.json()
        message = body.get("message") or body.get("error") or resp.text
        code = body.get("error_code")  # MLflow's own error codes
    except (ValueError, AttributeError):
        message = resp.text[:500] or resp.reason_phrase
    cls = _BY_STATUS.get(resp.status_code)
    if code == "RESOURCE_ALREADY_EXISTS":  # MLflow answers 400 for an existing name
        cls = errors.Conflict
    if cls is None:
        cls = errors.Unavailable if resp.status_code >= 500 else errors.InvalidInput
    raise cls(f"{what}: {message}")


class _HubTokenClient:
    name = "service"

    def __init__(self, base_url: str, token: str, timeout: float = 10.0):
        if not base_url:
            raise errors.Unavailable(f"{self.name} URL is not configured")
        self.base_url = base_url.rstrip("/") + "/"
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"token {token}"} if token else {},
            timeout=timeout,
        )

    async def request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            resp = await self._http.request(method, path.lstrip("/"), **kw)
        except httpx.InvalidURL as e:  # a name or id no URL can carry: bad input
            raise errors.InvalidInput(f"not a valid name or id: {e}") from None
        except httpx.TransportError as e:
            raise errors.Unavailable(
                f"{self.name} unreachable at {self.base_url} ({e.__class__.__name__}: {e})"
            ) from None
        _raise_for(resp, self.name)
        return resp

    async def aclose(self) -> None:
        await self._http.aclose()


class JobsClientMixin:
    """Jobs, sweeps and pipelines of the control plane."""

    async def jobs(self, everyone: bool = False) -> dict:
        """``{"jobs": [...], "queue": [...]}``: the caller's jobs and the queue as they see it."""
        return (await self.request("GET", "api/jobs", params={"all": "1"} if everyone
                                   else None)).json()

    async def submit_job(self, body: dict) -> dict:
        return (await self.request("POST", "api/jobs", json=body)).json()

    async def job(self, job_id: int) -> dict:
        return (await self.request("GET", f"api/jobs/{int(job_id)}")).json()

    async def cancel_job(self, job_id: int) -> dict:
        return (await self.request("POST", f"api/jobs/{int(job_id)}/cancel")).json()

    async def rerun_job(self, job_id: int, exact: bool = False, params: dict | None = None
                        ) -> dict:
        body = {"exact": exact} if exact else {"params": params or {}}
        return (await self.request("POST", f"api/jobs/{int(job_id)}/rerun", json=body)).json()

    async def job_logs(self, job_id: int, offset: int = 0) -> dict:
        return (await self.request("GET", f"api/jobs/{int(job_id)}/logs",
                                   params={"offset": int(offset)})).json()

    async def sweeps(self) -> list[dict]:
        return (await self.request("GET", "api/sweeps")).json()["sweeps"]

    async def create_sweep(self, body: dict) -> dict:
        return (await self.request("POST", "api/sweeps", json=body)).json()

    async def sweep(self, sweep_id: int) -> dict:
        return (await self.request("GET", f"api/sweeps/{int(sweep_id)}")).json()

    async def cancel_sweep(self, sweep_id: int) -> dict:
        return (await self.request("POST", f"api/sweeps/{int(sweep_id)}/cancel")).json()

    async def pipelines(self) -> list[dict]:
        return (await self.request("GET", "api/pipelines")).json()["pipelines"]

    async def create_pipeline(self, body: dict) -> dict:
        return (await self.request("POST", "api/pipelines", json=body)).json()

    async def pipeline(self, pipeline_id: int) -> dict:
        return (await self.request("GET", f"api/pipelines/{int(pipeline_id)}")).json()

    async def cancel_pipeline(self, pipeline_id: int) -> dict:
        return (await self.request("POST", f"api/pipelines/{int(pipeline_id)}/cancel")).json()


class SpawnerGpuClient(_HubTokenClient):
    """The GPU allocation calls of the hub's spawner (token of the ``mlops-spawner`` service,
    scope ``custom:mlops:spawner``): the control plane owns every allocation."""

    name = "control plane"

    async def allocate_server(self, owner: str, *, user: str, count: int, groups=(),
                              gpu_type: str | None = None) -> list[dict]:
        body = {"owner": owner, "user": user, "count": count, "groups": sorted(groups),
                "gpu_type": gpu_type}
        return (await self.request("POST", "api/gpus/allocations/servers",
                                   json=body)).json()["gpus"]

    async def request_server(self, owner: str, *, user: str, count: int, groups=(),
                             gpu_type: str | None = None) -> dict:
        """``{"gpus": [...]}`` when the server may start, ``{"queued": True, "position",
        "reason"}`` while it waits in the GPU queue (asking again is how to wait)."""
        body = {"owner": owner, "user": user, "count": count, "groups": sorted(groups),
                "gpu_type": gpu_type, "wait": True}
        return (await self.request("POST", "api/gpus/allocations/servers", json=body)).json()

    async def release_server(self, owner: str) -> int:
        from urllib.parse import quote

        return (await self.request(
            "DELETE", f"api/gpus/allocations/servers/{quote(owner, safe='')}")).json()["released"]

    async def availability(self, user: str, groups=(), gpu_type: str | None = None) -> dict:
        params = [("user", user), *(("group", g) for g in sorted(groups))]
        if gpu_type:
            params.append(("gpu_type", gpu_type))
        return (await self.request("GET", "api/gpus/availability", params=params)).json()


class ControlPlaneClient(JobsClientMixin, _HubTokenClient):
    name = "control plane"

    async def status(self) -> dict:
        return (await self.request("GET", "api/status")).json()

    async def gpu_usage(self, csv: bool = False):
        """The caller's visible GPU-hours (core.usage.visible_report), or its CSV text."""
        r = await self.request("GET", "api/usage", params={"format": "csv" if csv else "json"})
        return r.text if csv else r.json()

    # --- deployments ---------------------------------------------------------------

    async def list_deployments(self) -> list[dict]:
        return (await self.request("GET", "api/deployments")).json()["deployments"]

    async def create_deployment(self, body: dict) -> dict:
        return (await self.request("POST", "api/deployments", json=body)).json()

    async def get_deployment(self, name: str) -> dict:
        return (await self.request("GET", f"api/deployments/{name}")).json()

    async def switch_deployment(self, name: str, version: str) -> dict:
        return (await self.request("PATCH", f"api/deployments/{name}",
                                   json={"version": version})).json()

    async def delete_deployment(self, name: str) -> None:
        await self.request("DELETE", f"api/deployments/{name}")

    async def deployment_events(self, name: str) -> list[dict]:
        return (await self.request("GET", f"api/deployments/{name}/events")).json()["events"]

    async def deployment_monitoring(self, name: str, what: str, window: str | None = None,
                                    body: dict | None = None) -> dict:
        """``what`` is ``metrics`` (``window`` 1h, 1d or 7d), ``drift`` or ``monitoring`` (the
        input recording settings; ``body`` changes them)."""
        params = {"window": window} if window else None
        return (await self.request("PUT" if body is not None else "GET",
                                   f"api/deployments/{name}/{what}", params=params,
                                   json=body)).json()

    async def deployment_tokens(self, name: str) -> list[dict]:
        return (await self.request("GET", f"api/deployments/{name}/tokens")).json()["tokens"]

    async def create_deployment_token(self, name: str, note: str) -> dict:
        return (await self.request("POST", f"api/deployments/{name}/tokens",
                                   json={"note": note})).json()

    async def revoke_deployment_token(self, name: str, token_id: str) -> None:
        await self.request("DELETE", f"api/deployments/{name}/tokens/{token_id}")

    async def decide_deployment(self, name: str, decision: str, reason: str = "") -> dict:
        """``decision``: ``approve`` or ``reject`` a deploy waiting for approval."""
        return (await self.request("POST", f"api/deployments/{name}/{decision}",
                                   json={"reason": reason} if reason else {})).json()

    async def invoke_endpoint(self, name: str, body: bytes, content_type: str) -> dict:
        """POST to the deployment's stable endpoint, as an outside client would."""
        return (await self.request("POST", f"endpoints/{name}/invocations", content=body,
                                   headers={"Content-Type": content_type})).json()

    async def create_batch_prediction(self, body: dict) -> dict:
        """A model version over a dataset version, as a job (``{job, outputs, ...}``)."""
        return (await self.request("POST", "api/batch-predictions", json=body)).json()

    # --- projects ------------------------------------------------------------------

    async def projects(self) -> list[dict]:
        """The caller's projects (``can_manage`` tells where they are a manager)."""
        return (await self.request("GET", "api/projects")).json()["projects"]

    async def project(self, name: str) -> dict:
        """One project with members, groups and milestones (NotFound if not a member)."""
        from urllib.parse import quote

        return (await self.request("GET", f"api/projects/{quote(name, safe='')}")).json()


    # --- notifications -------------------------------------------------------------

    async def notifications(self, since: int = 0, limit: int = 100) -> dict:
        """The caller's own notifications after id ``since`` (``{notifications, unread,
        last_id}``)."""
        return (await self.request("GET", "api/notifications",
                                   params={"since": since, "limit": limit})).json()

    async def mark_notification_read(self, notification_id: int) -> dict:
        return (await self.request("POST", f"api/notifications/{int(notification_id)}/read",
                                   json={})).json()


class MlflowGatewayClient(_HubTokenClient):
    name = "tracking server"

    async def version(self) -> str:
        return (await self.request("GET", "version")).text.strip()

    # --- MLflow's own REST API (https://mlflow.org/docs/latest/rest-api.html) -----------------
    # Thin wrappers: the gateway (or MLflow itself) does the work; these only name the calls.

    async def _get(self, endpoint: str, /, **params) -> dict:
        params = {k: v for k, v in params.items() if v is not None and v != ""}
        return (await self.request("GET", f"api/2.0/mlflow/{endpoint}", params=params)).json()

    async def _post(self, endpoint: str, body: dict) -> dict:
        return (await self.request("POST", f"api/2.0/mlflow/{endpoint}", json=body)).json()

    async def search_experiments(self, *, filter: str = "", max_results: int = 1000,
                                 page_token: str = "", order_by=("name ASC",)) -> dict:
        return await self._post("experiments/search", {
            "filter": filter, "max_results": max_results, "page_token": page_token,
            "order_by": list(order_by)})

    async def get_experiment(self, experiment_id: str) -> dict:
        return (await self._get("experiments/get", experiment_id=experiment_id))["experiment"]

    async def get_experiment_by_name(self, name: str) -> dict:
        return (await self._get("experiments/get-by-name",
                                experiment_name=name))["experiment"]

    async def create_experiment(self, name: str, tags: dict | None = None) -> str:
        body = {"name": name, "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
        return (await self._post("experiments/create", body))["experiment_id"]

    async def search_runs(self, experiment_ids: list[str], *, filter: str = "",
                          order_by: list[str] | None = None, max_results: int = 100,
                          page_token: str = "") -> dict:
        body = {"experiment_ids": experiment_ids, "filter": filter, "max_results": max_results,
                "order_by": order_by or [], "run_view_type": "ACTIVE_ONLY"}
        if page_token:
            body["page_token"] = page_token
        return await self._post("runs/search", body)

    async def get_run(self, run_id: str) -> dict:
        return (await self._get("runs/get", run_id=run_id))["run"]

    async def metric_history(self, run_id: str, key: str, max_results: int = 25000) -> list:
        out, token = [], None
        while True:
            page = await self._get("metrics/get-history", run_id=run_id, metric_key=key,
                                   max_results=max_results, page_token=token)
            out.extend(page.get("metrics", []))
            token = page.get("next_page_token")
            if not token:
                return out

    async def list_artifacts(self, run_id: str, path: str = "") -> list:
        return (await self._get("artifacts/list", run_id=run_id, path=path)).get("files", [])

    async def get_artifact(self, run_id: str, path: str) -> httpx.Response:
        # The download route MLflow's own UI uses (served next to the API, under the prefix).
        return await self.request("GET", "get-artifact", params={"run_id": run_id, "path": path})

    async def search_registered_models(self, *, filter: str = "", max_results: int = 100,
                                       page_token: str = "") -> dict:
        return await self._get("registered-models/search", filter=filter,
                               max_results=max_results, page_token=page_token)

    async def get_registered_model(self, name: str) -> dict:
        return (await self._get("registered-models/get", name=name))["registered_model"]

    async def search_model_versions(self, name: str, max_results: int = 200) -> list:
        escaped = name.replace("'", "\\'")
        out, token = [], None
        while True:
            page = await self._get("model-versions/search", filter=f"name='{escaped}'",
                                   max_results=max_results, page_token=token)
            out.extend(page.get("model_versions", []))
            token = page.get("next_page_token")
            if not token:
                return out

    async def create_registered_model(self, name: str) -> dict:
        return (await self._post("registered-models/create", {"name": name}))["registered_model"]

    async def create_model_version(self, name: str, source: str, run_id: str,
                                   model_id: str | None = None) -> dict:
        body = {"name": name, "source": source, "run_id": run_id}
        if model_id:
            body["model_id"] = model_id  # MLflow 3: the version comes from a logged model
        return (await self._post("model-versions/create", body))["model_version"]

    async def get_logged_model(self, model_id: str) -> dict:
        """An MLflow 3 logged model (``{info, data}``)."""
        from urllib.parse import quote

        return (await self._get(f"logged-models/{quote(model_id, safe='')}"))["model"]

    async def search_logged_models(self, experiment_ids: list[str], *, filter: str = "",
                                   max_results: int = 100) -> list[dict]:
        """Logged models of the experiments (``filter``: e.g. ``source_run_id = '...'``)."""
        body = {"experiment_ids": experiment_ids, "filter": filter,
                "max_results": max_results}
        return (await self._post("logged-models/search", body)).get("models", [])

    async def set_alias(self, name: str, alias: str, version: str) -> None:
        await self._post("registered-models/alias",
                         {"name": name, "alias": alias, "version": str(version)})

    async def delete_alias(self, name: str, alias: str) -> None:
        # MLflow reads a DELETE's parameters from a JSON body, as its own client sends them.
        await self.request("DELETE", "api/2.0/mlflow/registered-models/alias",
                           json={"name": name, "alias": alias})
