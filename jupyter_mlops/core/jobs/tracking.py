"""How jobs reach MLflow and the catalog: a short-lived hub token of the job's user, and a
tiny REST client.

Decision (least privilege): a job never sees the control plane's own token. For each job the
control plane asks the hub for a token *of the job's user* with three scopes: access to the
MLflow service, access to the control plane, and the lab's ``use`` scope (never ``manage`` or
``admin``, whatever the user holds), expiring with the job's time limit and revoked when the job
ends. The job's runs are therefore the user's runs in MLflow, and ``datasets.get`` in a job
reads the catalog as the user (any tag, any store, lineage recorded) but cannot approve,
administer or act as anyone else. The control plane needs the hub scope ``tokens`` for this,
filtered to users who are not hub administrators (``jupyter_mlops.hub.sso``,
``jupyter_mlops.hub.members``): work of a hub administrator gets no token.
"""
from __future__ import annotations

from typing import Protocol

import httpx

from .. import roles
from ..errors import Forbidden, Unavailable

MLFLOW_SCOPE = "access:services!service=mlflow"
JOB_SCOPES = [MLFLOW_SCOPE, "access:services!service=mlops", roles.USE]
# A model server only downloads its model version through the MLflow gateway: access to the
# gateway is all the gateway asks of a token (it then scopes by the user's project membership),
# and the hub has no narrower, read-only scope for a service.
MODEL_SERVER_SCOPES = [MLFLOW_SCOPE]


class TokenIssuer(Protocol):
    async def mint(self, user: str, lifetime: int, note: str,
                   scopes: list[str] | None = None) -> tuple[str, str]:
        """``(token, token_id)`` of a new token of ``user`` with ``scopes`` (default
        :data:`JOB_SCOPES`), expiring after ``lifetime`` seconds (0: the hub's maximum, if it
        sets one, else never)."""

    async def revoke(self, user: str, token_id: str) -> None: ...


class HubTokenIssuer:
    """Tokens from the hub's REST API, requested with the control plane's service token."""

    def __init__(self, hub_api_url: str, service_token: str):
        self.hub_api_url = hub_api_url.rstrip("/")
        self.service_token = service_token

    async def _request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=10) as c:
                return await c.request(
                    method, f"{self.hub_api_url}/{path}",
                    headers={"Authorization": f"token {self.service_token}"}, **kw)
        except httpx.TransportError as e:
            raise Unavailable(f"hub unreachable for a token: {e}") from None

    async def mint(self, user: str, lifetime: int, note: str,
                   scopes: list[str] | None = None) -> tuple[str, str]:
        # expires_in null, not 0: 0 would slip past the hub's token_expires_in_max_seconds.
        r = await self._request("POST", f"users/{user}/tokens", json={
            "note": note, "expires_in": int(lifetime) or None,
            "scopes": list(scopes or JOB_SCOPES)})
        if r.status_code == 403:
            # The control plane's role mints tokens only for users who are not hub
            # administrators (jupyter_mlops.hub.members); a job must never act as one.
            raise Forbidden(f"the platform does not act for {user}: hub administrators' work "
                            "cannot get a token; run it from an account that is not a hub "
                            "administrator")
        if r.status_code >= 300:
            raise Unavailable(f"the hub refused a token for {user}: {r.status_code} "
                              f"{r.text[:200]}")
        body = r.json()
        return body["token"], body["id"]

    async def revoke(self, user: str, token_id: str) -> None:
        if token_id:
            await self._request("DELETE", f"users/{user}/tokens/{token_id}")


class FixedTokenIssuer:
    """Hands out given tokens (tests, and MLflow servers without authentication)."""

    def __init__(self, tokens: dict[str, str] | None = None):
        self.tokens = tokens or {}

    async def mint(self, user: str, lifetime: int, note: str,
                   scopes: list[str] | None = None) -> tuple[str, str]:
        return self.tokens.get(user, ""), ""

    async def revoke(self, user: str, token_id: str) -> None:
        return None


class MlflowRest:
    """The few MLflow REST calls the control plane itself makes (sweep parent runs)."""

    def __init__(self, tracking_uri: str, token: str):
        self.base = tracking_uri.rstrip("/") + "/api/2.0/mlflow/"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def _call(self, method: str, path: str, **kw) -> dict:
        try:
            async with httpx.AsyncClient(timeout=15) as c:
                r = await c.request(method, self.base + path, headers=self.headers, **kw)
        except httpx.TransportError as e:
            raise Unavailable(f"MLflow unreachable: {e}") from None
        if r.status_code >= 300:
            raise Unavailable(f"MLflow answered {r.status_code} to {path}: {r.text[:200]}")
        return r.json() if r.content else {}

    async def experiment_id(self, name: str, project: str = "default") -> str:
        try:
            got = await self._call("GET", "experiments/get-by-name",
                                   params={"experiment_name": name})
            return got["experiment"]["experiment_id"]
        except Unavailable as e:
            if "RESOURCE_DOES_NOT_EXIST" not in str(e):
                raise
        return (await self._call("POST", "experiments/create", json={
            "name": name, "tags": [{"key": "mlops.project", "value": project}]}))["experiment_id"]

    async def create_run(self, experiment_id: str, name: str, tags: dict) -> str:
        from .. import clock

        body = {"experiment_id": experiment_id, "run_name": name,
                "start_time": int(clock.now() * 1000),
                "tags": [{"key": k, "value": str(v)} for k, v in tags.items()]}
        return (await self._call("POST", "runs/create", json=body))["run"]["info"]["run_id"]

    async def log(self, run_id: str, params: dict | None = None, metrics: dict | None = None,
                  tags: dict | None = None) -> None:
        from .. import clock

        t = int(clock.now() * 1000)
        await self._call("POST", "runs/log-batch", json={
            "run_id": run_id,
            "params": [{"key": k, "value": str(v)} for k, v in (params or {}).items()],
            "metrics": [{"key": k, "value": float(v), "timestamp": t, "step": 0}
                        for k, v in (metrics or {}).items()],
            "tags": [{"key": k, "value": str(v)} for k, v in (tags or {}).items()]})

    async def finish_run(self, run_id: str, status: str = "FINISHED") -> None:
        from .. import clock

        await self._call("POST", "runs/update", json={
            "run_id": run_id, "status": status, "end_time": int(clock.now() * 1000)})

    async def end_if_running(self, run_id: str, status: str) -> bool:
        """End a run still RUNNING with ``status``; False if it had ended already (its job's
        wrapper ends it, unless the wrapper itself was killed)."""
        got = await self._call("GET", "runs/get", params={"run_id": run_id})
        if got["run"]["info"]["status"] != "RUNNING":
            return False
        await self.finish_run(run_id, status)
        return True
