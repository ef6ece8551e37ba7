"""The lab's calls that the server extension forwards to the control plane unchanged.

One table, :data:`PASSTHROUGH`: a URL pattern under ``<base_url>mlops/api/`` (named groups
only), the control plane path it stands for, and the methods it allows. Each call is sent with
the user's own hub token, so the control plane decides what the user may do and see; its answer
(status, body, content type) is the lab's answer, and its errors come back as the core's errors
(``jupyter_mlops.client``) through the one error mapper of :class:`~.handlers.MlopsHandler`.
Before forwarding, the document's checks of path, query and JSON body run here as for every
route (``core.api_schema``).

The routes that add something keep their own handler, below the table:

- ``projects``, ``projects/<name>``: the browser URL of the project pages;
- ``usage``: a CSV answer is sent as a download (``Content-Disposition``);
- ``deployments/<name>``: GET answers the deployment with its events, PATCH sends the version
  as a string;
- ``deployments/<name>/predict``: the payload limit, and any body (CSV, an image) as is;
- and elsewhere the thumbnail cache, uploads, publishing and folder status
  (:mod:`.dataset_workspace`), the MLflow views (:mod:`.experiment_views`, :mod:`.models`,
  :mod:`.telemetry`) and the status check (:mod:`.handlers`).
"""
from __future__ import annotations

import os
from urllib.parse import quote

import tornado

from ..core.datasets.manifest import NAME_PATTERN, REF_PATTERN
from ..core.errors import InvalidInput, PayloadTooLarge
from .handlers import MlopsHandler

NAME = rf"(?P<name>{NAME_PATTERN})"
REF = rf"(?P<ref>{REF_PATTERN})"
DEPLOYMENT = r"(?P<name>[a-z0-9-]+)"
ID = r"(?P<id>[0-9]+)"

PASSTHROUGH: list[tuple[str, str, tuple[str, ...]]] = [
    # the dataset catalog
    (r"datasets", "api/datasets", ("GET",)),
    (rf"datasets/{NAME}", "api/datasets/{name}", ("GET",)),
    (rf"datasets/{NAME}/versions/{REF}", "api/datasets/{name}/versions/{ref}", ("GET",)),
    (rf"datasets/{NAME}/versions/{REF}/annotations",
     "api/datasets/{name}/versions/{ref}/annotations", ("GET",)),
    (rf"datasets/{NAME}/versions/{REF}/reference",
     "api/datasets/{name}/versions/{ref}/reference", ("PUT",)),
    (rf"datasets/{NAME}/diff", "api/datasets/{name}/diff", ("GET",)),
    (rf"datasets/{NAME}/tags/(?P<tag>{REF_PATTERN})", "api/datasets/{name}/tags/{tag}",
     ("PUT",)),
    # jobs, sweeps, pipelines
    (r"jobs", "api/jobs", ("GET", "POST")),
    (rf"jobs/{ID}", "api/jobs/{id}", ("GET",)),
    (rf"jobs/{ID}/cancel", "api/jobs/{id}/cancel", ("POST",)),
    (rf"jobs/{ID}/rerun", "api/jobs/{id}/rerun", ("POST",)),
    (rf"jobs/{ID}/logs", "api/jobs/{id}/logs", ("GET",)),
    (r"sweeps", "api/sweeps", ("GET", "POST")),
    (rf"sweeps/{ID}", "api/sweeps/{id}", ("GET",)),
    (rf"sweeps/{ID}/cancel", "api/sweeps/{id}/cancel", ("POST",)),
    (r"pipelines", "api/pipelines", ("GET", "POST")),
    (rf"pipelines/{ID}", "api/pipelines/{id}", ("GET",)),
    (rf"pipelines/{ID}/cancel", "api/pipelines/{id}/cancel", ("POST",)),
    # deployments
    (r"deployments", "api/deployments", ("GET", "POST")),
    (rf"deployments/{DEPLOYMENT}/tokens", "api/deployments/{name}/tokens", ("GET", "POST")),
    (rf"deployments/{DEPLOYMENT}/(?P<decision>approve|reject)",
     "api/deployments/{name}/{decision}", ("POST",)),
    (rf"deployments/{DEPLOYMENT}/(?P<what>metrics|drift)", "api/deployments/{name}/{what}",
     ("GET",)),
    (rf"deployments/{DEPLOYMENT}/monitoring", "api/deployments/{name}/monitoring",
     ("GET", "PUT")),
    (r"batch-predictions", "api/batch-predictions", ("POST",)),
    # the caller's notification feed
    (r"notifications", "api/notifications", ("GET",)),
    (rf"notifications/{ID}/read", "api/notifications/{id}/read", ("POST",)),
    # lineage: dataset version <-> runs <-> model versions <-> deployments
    (rf"datasets/{NAME}/versions/{REF}/lineage", "api/datasets/{name}/versions/{ref}/lineage",
     ("GET",)),
    (rf"deployments/{DEPLOYMENT}/lineage", "api/deployments/{name}/lineage", ("GET",)),
    (r"models/(?P<name>[^/]+)/versions/(?P<version>[0-9]{1,9})/lineage",
     "api/models/{name}/versions/{version}/lineage", ("GET",)),
]

BODY_METHODS = ("POST", "PUT", "PATCH")
# The Jupyter server's own credentials in a URL stay here: the control plane gets the server's
# hub token in a header, never the browser's.
NOT_FORWARDED = {"token", "_xsrf"}


class PassthroughHandler(MlopsHandler):
    """Forwards one row of :data:`PASSTHROUGH` (``target`` and ``methods`` set per row)."""

    target = ""
    methods: tuple[str, ...] = ()

    @classmethod
    def to(cls, target: str, methods: tuple[str, ...]) -> type[PassthroughHandler]:
        return type(f"Passthrough({target})", (cls,), {"target": target, "methods": methods})

    async def _forward(self, **parts):
        method = self.request.method
        if method not in self.methods:
            raise tornado.web.HTTPError(405, f"{method} not allowed on {self.request.path}")
        path = self.target.format(**{k: quote(v, safe="") for k, v in parts.items()})
        query = [(k, v.decode()) for k, vs in self.request.query_arguments.items()
                 if k not in NOT_FORWARDED for v in vs]
        body = self.json_body() if method in BODY_METHODS else None
        resp = await self.mlops.control_plane().request(method, path, params=query, json=body)
        self.set_status(resp.status_code)
        if resp.status_code == 204:
            self.finish()
            return
        self.finish(resp.content,
                    set_content_type=resp.headers.get("content-type", "application/json"))

    get = post = put = patch = delete = tornado.web.authenticated(_forward)


def _pages_url() -> str:
    """Browser URL of the control plane's project pages."""
    return os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/services/mlops/projects"


class ProjectsHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self):
        projects = await self.mlops.control_plane().projects()
        self.finish({"projects": projects, "pages_url": _pages_url()})


class ProjectHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self, name: str):
        project = await self.mlops.control_plane().project(name)
        self.finish({**project, "page_url": f"{_pages_url()}/{name}"})


class UsageHandler(MlopsHandler):
    """The caller's GPU-hours (their own, their managed projects', or everything for
    administrators); the CSV export as a download."""

    @tornado.web.authenticated
    async def get(self):
        csv = self.get_argument("format", "json") == "csv"
        body = await self.mlops.control_plane().gpu_usage(csv=csv)
        if csv:
            self.set_header("Content-Disposition", 'attachment; filename="gpu-hours.csv"')
            # jupyter_server's APIHandler.finish labels every answer JSON unless told otherwise.
            self.finish(body, set_content_type="text/csv; charset=utf-8")
            return
        self.finish(body)


TRY_IT_MAX_BYTES = 16 * 1024 * 1024


class DeploymentHandler(PassthroughHandler):
    """GET adds the deployment's events; DELETE is forwarded; PATCH sends the version as the
    control plane's switch expects it (a string, whatever JSON type the lab sent)."""

    target = "api/deployments/{name}"
    methods = ("DELETE",)

    @tornado.web.authenticated
    async def get(self, name):
        cp = self.mlops.control_plane()
        dep = await cp.deployment(name)
        dep["events"] = await cp.deployment_events(name)
        self.finish(dep)

    @tornado.web.authenticated
    async def patch(self, name):
        body = self.json_body()
        if "version" not in body:
            raise InvalidInput("send {\"version\": <number>} to switch the served version")
        self.finish(await self.mlops.control_plane().switch_deployment(name,
                                                                       str(body["version"])))


class DeploymentPredictHandler(MlopsHandler):
    """"Try it": the body (JSON, CSV or an image) goes to the deployment's endpoint as is."""

    @tornado.web.authenticated
    async def post(self, name):
        if len(self.request.body) > TRY_IT_MAX_BYTES:
            raise PayloadTooLarge(f"try-it payloads are limited to {TRY_IT_MAX_BYTES} bytes")
        ctype = self.request.headers.get("Content-Type", "application/json")
        self.finish(await self.mlops.control_plane().invoke_endpoint(name, self.request.body,
                                                                      ctype))


ROUTES = [
    *((pattern, PassthroughHandler.to(target, methods))
      for pattern, target, methods in PASSTHROUGH),
    (r"projects", ProjectsHandler),
    (r"projects/(?P<name>[^/]+)", ProjectHandler),
    (r"usage", UsageHandler),
    (rf"deployments/{DEPLOYMENT}", DeploymentHandler),
    (rf"deployments/{DEPLOYMENT}/predict", DeploymentPredictHandler),
]
