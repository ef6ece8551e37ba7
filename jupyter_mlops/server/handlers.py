"""Route handlers of the server extension: each a few lines over the client and core."""
from __future__ import annotations

import asyncio
import json
import os

import tornado
from jupyter_server.base.handlers import APIHandler

from ..client import ControlPlaneClient, MlflowGatewayClient
from ..core import gpus
from ..core.errors import InvalidInput, MlopsError


class MlopsHandler(APIHandler):
    """Base of every route: one error mapper (MlopsError -> status + JSON message)."""

    def initialize(self, settings):
        self.mlops = settings

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, MlopsError):
            self.set_status(exc.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(exc.to_dict()))
            return
        super().write_error(status_code, **kwargs)

    def send_error(self, status_code=500, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, MlopsError):
            status_code = exc.status
        super().send_error(status_code, **kwargs)

    def json_body(self) -> dict:
        """The request's JSON object (``{}`` when empty); anything else is a 400 with the reason."""
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as e:
            raise InvalidInput(f"request body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise InvalidInput("request body must be a JSON object")
        return body

    def control_plane(self) -> ControlPlaneClient:
        return ControlPlaneClient(self.mlops.control_plane_url, self.mlops.api_token,
                                  timeout=self.mlops.check_timeout)

    def mlflow(self) -> MlflowGatewayClient:
        return MlflowGatewayClient(self.mlops.mlflow_url, self.mlops.api_token,
                                   timeout=self.mlops.check_timeout)


async def _check(make_client, call) -> dict:
    """Run one live check; a failure is an answer (reachable: false, with the reason)."""
    try:
        client = make_client()
    except MlopsError as e:
        return {"reachable": False, "error": e.message}
    try:
        return {"reachable": True, **(await call(client))}
    except MlopsError as e:
        return {"reachable": False, "error": e.message}
    finally:
        await client.aclose()


class StatusHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self):
        async def cp(client):
            s = await client.status()
            return {"version": s["version"], "user": s["user"], "role": s["role"]}

        async def mlflow(client):
            return {"version": await client.version()}

        cp_status, mlflow_status = await asyncio.gather(
            _check(self.control_plane, cp), _check(self.mlflow, mlflow)
        )
        mlflow_status["ui_url"] = self.mlops.mlflow_ui_url
        reading = gpus.visible(gpus.NvmlInventory().read(), os.environ.get("CUDA_VISIBLE_DEVICES"))
        ds = self.mlops.datasets_dir
        self.finish(
            {
                "user": {
                    "name": cp_status.pop("user", None) or self.current_user.username,
                    "role": cp_status.pop("role", None) or "unknown",
                },
                "control_plane": cp_status,
                "mlflow": mlflow_status,
                "gpus": {
                    "devices": [g.to_dict() for g in reading.gpus],
                    "message": f"{len(reading.gpus)} GPU(s)" if reading.gpus
                    else "no GPU on this server",
                    "detail": reading.reason,
                },
                "dataset": {
                    "path": ds,
                    "exists": bool(ds) and os.path.isdir(ds),
                    "writable": bool(ds) and os.access(ds, os.W_OK),
                },
            }
        )
