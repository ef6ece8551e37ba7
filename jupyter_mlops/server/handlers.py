"""The base of every route of the server extension (one error mapper), the status check, and
the JSON 404 of unknown paths. ``self.mlops`` (:class:`~.settings.MlopsSettings`) holds the
clients of the control plane and MLflow, with the user's own token."""
from __future__ import annotations

import asyncio
import os

import tornado
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from ..core import api_schema, gpus, json_body
from ..core.documented_requests import DocumentedRequests
from ..core.errors import MlopsError


class MlopsHandler(DocumentedRequests, APIHandler):
    """Base of every route: one error mapper (MlopsError -> status + JSON message), one body
    decoder, and the document's checks of path and query parameters (``core.api_schema``)."""

    def initialize(self, settings):
        self.mlops = settings

    async def prepare(self):
        await super().prepare()
        if self.current_user:  # anonymous callers are refused by @authenticated, not told more
            self.check_url()

    def api_operations(self) -> api_schema.Operations:
        return api_schema.operations(api_schema.SERVER, url_path_join(self.base_url, "mlops/"))

    def write(self, chunk) -> None:
        if isinstance(chunk, (dict, list)):
            self.set_header("Content-Type", "application/json")
            chunk = json_body.encode(chunk)
        super().write(chunk)

    def write_error(self, status_code, **kwargs):
        """Every error as ``{"error", "message"}``, as docs/openapi.yaml states."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.set_header("Content-Type", "application/json")
        if isinstance(exc, MlopsError):
            self.set_status(exc.status)
            self.finish(json_body.encode(exc.to_dict()))
            return
        reason = tornado.httputil.responses.get(status_code, "Error")
        if isinstance(exc, tornado.web.HTTPError):
            message = exc.log_message or exc.reason or reason
        else:
            message = "internal error; see the Jupyter server log" if status_code >= 500 \
                else reason
        self.finish(json_body.encode({"error": reason, "message": message}))

    def send_error(self, status_code=500, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, MlopsError):
            status_code = exc.status
        super().send_error(status_code, **kwargs)

    def json_body(self) -> dict:
        """The request's JSON object (``{}`` when empty), checked by ``core.json_body`` and
        against the body schema of the documented operation: anything else is a 4xx."""
        body = json_body.decode(self.request.body)
        found = self.operation()
        if found:
            found[0].check_body(body)
        return body



async def _check(make_client, call) -> dict:
    """Run one live check; a failure is an answer (reachable: false, with the reason)."""
    try:
        return {"reachable": True, **(await call(make_client()))}
    except MlopsError as e:
        return {"reachable": False, "error": e.message}


class StatusHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self):
        async def cp(client):
            s = await client.status()
            return {"version": s["version"], "user": s["user"], "role": s["role"]}

        async def mlflow(client):
            return {"version": await client.version()}

        timeout = self.mlops.check_timeout
        cp_status, mlflow_status = await asyncio.gather(
            _check(lambda: self.mlops.control_plane(timeout), cp),
            _check(lambda: self.mlops.tracking(timeout), mlflow))
        mlflow_status["ui_url"] = self.mlops.mlflow_ui_url
        ds = self.mlops.datasets_dir
        self.finish(
            {
                "user": {
                    "name": cp_status.pop("user", None) or self.current_user.username,
                    "role": cp_status.pop("role", None) or "unknown",
                },
                "control_plane": cp_status,
                "mlflow": mlflow_status,
                "gpus": self._gpus(),
                "dataset": {
                    "path": ds,
                    "exists": bool(ds) and os.path.isdir(ds),
                    "writable": bool(ds) and os.access(ds, os.W_OK),
                },
            }
        )

    def _gpus(self) -> dict:
        """The GPUs this server holds. A server whose allocation asked for none (a CPU profile)
        holding none is normal, not a fault: ``requested`` tells the sidebar which it is."""
        cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
        nvidia = os.environ.get("NVIDIA_VISIBLE_DEVICES")
        profile = os.environ.get("JUPYTER_MLOPS_PROFILE", "")
        reading = gpus.held(self.mlops.gpu_inventory().read(), cuda, nvidia)
        requested = gpus_requested(cuda, nvidia, profile)
        if reading.gpus:
            message = f"{len(reading.gpus)} GPU(s)"
        elif requested is False and profile:
            message = "CPU profile: no GPU requested"
        elif requested:
            message = "GPU requested, but none visible on this server"
        else:
            message = "no GPU on this server"
        detail = reading.reason
        if profile and not reading.gpus:
            # "no GPU on this server" again would read as a fault where none was asked for
            detail = f"profile {profile}" + (f": {detail}" if requested is not False else "")
        return {"devices": [g.to_dict() for g in reading.gpus], "message": message,
                "detail": detail, "requested": requested, "profile": profile}


def gpus_requested(cuda_visible_devices: str | None, nvidia_visible_devices: str | None,
                   profile: str) -> bool | None:
    """Whether the server's allocation asked for GPUs, from what its spawner announced.

    The local spawner sets ``CUDA_VISIBLE_DEVICES`` (empty for none) and
    ``NVIDIA_VISIBLE_DEVICES`` (``void`` for none); on Kubernetes the device plugin names the
    devices of a GPU pod only, so a pod of a profile (``JUPYTER_MLOPS_PROFILE``) that names
    none asked for none. ``None``: nothing announced (a server started outside the platform).
    """
    named = [t.strip() for t in (cuda_visible_devices or "").split(",")
             if t.strip() and t.strip() != "-1"]
    named += [t.strip() for t in (nvidia_visible_devices or "").split(",")
              if t.strip() and t.strip().lower() not in ("void", "none")]
    if named:
        return True
    if cuda_visible_devices is not None or nvidia_visible_devices is not None or profile:
        return False
    return None


class NotFoundHandler(MlopsHandler):
    """Last route of the table: any other path under the API, or a path parameter the route
    patterns refuse, is a JSON 404 (after authentication, so nothing leaks)."""

    def _not_found(self, *args):
        raise tornado.web.HTTPError(404, f"no route {self.request.path}")

    get = post = put = patch = delete = tornado.web.authenticated(_not_found)
