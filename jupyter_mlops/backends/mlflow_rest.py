"""The MLflow REST calls the control plane itself makes (``core.jobs.tracking.MlflowRuns``):
a sweep's parent run, and ending the run of a job whose wrapper was killed.

Over the platform's one HTTP client (``jupyter_mlops.client.AsyncMlflowGateway``): the same
transport, token header and error mapping as every other caller of MLflow. A connection per call:
these are a few calls per sweep or job, and nothing stays open between a sweep's ticks.
"""
from __future__ import annotations

from ..client import AsyncMlflowGateway
from ..client.mlflow_calls import API
from ..core import clock
from ..core.errors import MlopsError, NotFound, Unavailable


class MlflowRest:
    """The few MLflow REST calls the control plane itself makes (sweep parent runs)."""

    def __init__(self, tracking_uri: str, token: str):
        self.tracking_uri = tracking_uri
        self.token = token

    async def _call(self, method: str, path: str, **kw) -> dict:
        try:
            async with AsyncMlflowGateway(self.tracking_uri, self.token, timeout=15) as mlflow:
                r = await mlflow.request(method, API + path, **kw)
        except NotFound:
            raise
        except MlopsError as e:
            raise Unavailable(f"MLflow refused {path}: {e}") from None
        return r.json() if r.content else {}

    async def experiment_id(self, name: str, project: str = "default") -> str:
        try:
            got = await self._call("GET", "experiments/get-by-name",
                                   params={"experiment_name": name})
            return got["experiment"]["experiment_id"]
        except NotFound:  # RESOURCE_DOES_NOT_EXIST: create it
            pass
        return (await self._call("POST", "experiments/create", json={
            "name": name, "tags": [{"key": "mlops.project", "value": project}]}))["experiment_id"]

    async def create_run(self, experiment_id: str, name: str, tags: dict) -> str:
        body = {"experiment_id": experiment_id, "run_name": name,
                "start_time": int(clock.now() * 1000),
                "tags": [{"key": k, "value": str(v)} for k, v in tags.items()]}
        return (await self._call("POST", "runs/create", json=body))["run"]["info"]["run_id"]

    async def log(self, run_id: str, params: dict | None = None, metrics: dict | None = None,
                  tags: dict | None = None) -> None:
        t = int(clock.now() * 1000)
        await self._call("POST", "runs/log-batch", json={
            "run_id": run_id,
            "params": [{"key": k, "value": str(v)} for k, v in (params or {}).items()],
            "metrics": [{"key": k, "value": float(v), "timestamp": t, "step": 0}
                        for k, v in (metrics or {}).items()],
            "tags": [{"key": k, "value": str(v)} for k, v in (tags or {}).items()]})

    async def finish_run(self, run_id: str, status: str = "FINISHED") -> None:
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
