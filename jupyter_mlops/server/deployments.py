"""Deployment routes of the server extension: the lab's side of ``api/deployments`` of the
control plane, called with the user's own hub token (so the control plane decides)."""
from __future__ import annotations


import tornado

from ..client import ControlPlaneClient
from ..core.errors import InvalidInput, PayloadTooLarge
from .handlers import MlopsHandler

TRY_IT_MAX_BYTES = 16 * 1024 * 1024


class DeploymentHandlerBase(MlopsHandler):
    def cp(self) -> ControlPlaneClient:
        # Longer than the status checks' timeout: a first prediction may load lazily.
        return ControlPlaneClient(self.mlops.control_plane_url, self.mlops.api_token,
                                  timeout=60.0)

    async def call(self, method: str, *args):
        cp = self.cp()
        try:
            return await getattr(cp, method)(*args)
        finally:
            await cp.aclose()


class DeploymentsHandler(DeploymentHandlerBase):
    @tornado.web.authenticated
    async def get(self):
        self.finish({"deployments": await self.call("list_deployments")})

    @tornado.web.authenticated
    async def post(self):
        self.set_status(201)
        self.finish(await self.call("create_deployment", self.json_body()))


class DeploymentHandler(DeploymentHandlerBase):
    @tornado.web.authenticated
    async def get(self, name):
        dep = await self.call("get_deployment", name)
        dep["events"] = await self.call("deployment_events", name)
        self.finish(dep)

    @tornado.web.authenticated
    async def patch(self, name):
        body = self.json_body()
        if "version" not in body:
            raise InvalidInput("send {\"version\": <number>} to switch the served version")
        self.finish(await self.call("switch_deployment", name, str(body["version"])))

    @tornado.web.authenticated
    async def delete(self, name):
        await self.call("delete_deployment", name)
        self.set_status(204)
        self.finish()


class DeploymentTokensHandler(DeploymentHandlerBase):
    @tornado.web.authenticated
    async def get(self, name):
        self.finish({"tokens": await self.call("deployment_tokens", name)})

    @tornado.web.authenticated
    async def post(self, name):
        note = self.json_body().get("note", "")
        self.set_status(201)
        self.finish(await self.call("create_deployment_token", name, note))


class DeploymentApprovalHandler(DeploymentHandlerBase):
    @tornado.web.authenticated
    async def post(self, name, decision):
        reason = self.json_body().get("reason", "") if decision == "reject" else ""
        self.finish(await self.call("decide_deployment", name, decision, reason))


class DeploymentPredictHandler(DeploymentHandlerBase):
    """"Try it": the body (JSON, CSV or an image) goes to the deployment's endpoint as is."""

    @tornado.web.authenticated
    async def post(self, name):
        if len(self.request.body) > TRY_IT_MAX_BYTES:
            raise PayloadTooLarge(f"try-it payloads are limited to {TRY_IT_MAX_BYTES} bytes")
        ctype = self.request.headers.get("Content-Type", "application/json")
        self.finish(await self.call("invoke_endpoint", name, self.request.body, ctype))


class DeploymentMonitoringHandler(DeploymentHandlerBase):
    """The monitoring view: traffic series, drift, and the input recording settings."""

    @tornado.web.authenticated
    async def get(self, name, what):
        window = self.get_query_argument("window", None) if what == "metrics" else None
        self.finish(await self.call("deployment_monitoring", name, what, window))

    @tornado.web.authenticated
    async def put(self, name, what):
        if what != "monitoring":
            raise tornado.web.HTTPError(405, f"PUT only to monitoring, not {what}")
        self.finish(await self.call("deployment_monitoring", name, what, None,
                                    self.json_body()))


class BatchPredictionsHandler(DeploymentHandlerBase):
    """The Models panel's "Batch predict": submitted as a job by the control plane."""

    @tornado.web.authenticated
    async def post(self):
        self.set_status(201)
        self.finish(await self.call("create_batch_prediction", self.json_body()))


ROUTES = [
    (r"deployments", DeploymentsHandler),
    (r"deployments/(?P<name>[a-z0-9-]+)", DeploymentHandler),
    (r"deployments/(?P<name>[a-z0-9-]+)/tokens", DeploymentTokensHandler),
    (r"deployments/(?P<name>[a-z0-9-]+)/predict", DeploymentPredictHandler),
    (r"deployments/(?P<name>[a-z0-9-]+)/(?P<decision>approve|reject)",
     DeploymentApprovalHandler),
    (r"deployments/(?P<name>[a-z0-9-]+)/(?P<what>metrics|drift|monitoring)",
     DeploymentMonitoringHandler),
    (r"batch-predictions", BatchPredictionsHandler),
]
