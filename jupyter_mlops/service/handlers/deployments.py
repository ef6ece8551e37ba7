"""Deployments: management routes (``api/deployments...``) and the endpoints themselves.

The endpoint of a deployment is ``/services/mlops/endpoints/<name>/invocations`` (plus
``ping``, ``health``, ``version``, ``metrics``): behind the hub's proxy, it accepts a hub API
token with ``custom:mlops:use`` or a deployment token created for an outside client, and passes
the request to the model server currently serving (see ``core.deployments`` for switching).
"""
from __future__ import annotations

import asyncio
import time

import httpx
from tornado import web

from ...core import roles
from ...core.deployments import TOKEN_PREFIX
from ...core.errors import Forbidden, InvalidInput, NotAuthenticated
from ...core.roles import Caller
from ...serving.app import BATCH_ROWS_HEADER
from .base import ApiHandler
from .pages import PageHandler

_PASS_HEADERS = ("Content-Type",)


class DeploymentsHandler(ApiHandler):
    async def get(self):
        self.write_json({"deployments": self.context.deployments.list_for(self.caller)})

    async def post(self):
        body = self.get_json_body()
        unknown = set(body) - {"name", "model_name", "version", "project", "visibility"}
        if unknown:
            raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
        dep = await self.context.deployments.create(
            self.caller, body.get("name"), body.get("model_name"), body.get("version"),
            project=body.get("project") or "default",
            visibility=body.get("visibility") or "project")
        self.write_json(dep, status=201)


class DeploymentHandler(ApiHandler):
    async def get(self, name):
        self.write_json(self.context.deployments.get(self.caller, name))

    async def patch(self, name):
        body = self.get_json_body()
        if set(body) != {"version"}:
            raise InvalidInput("send {\"version\": <number>} to switch the served version")
        self.write_json(await self.context.deployments.switch(self.caller, name,
                                                              body["version"]))

    async def delete(self, name):
        await self.context.deployments.delete(self.caller, name)
        self.context.monitoring.forget(name)  # its traffic series and recorded inputs
        self.set_status(204)
        self.finish()


class DeploymentEventsHandler(ApiHandler):
    async def get(self, name):
        self.write_json({"events": self.context.deployments.events(self.caller, name)})


class DeploymentTokensHandler(ApiHandler):
    async def get(self, name):
        self.write_json({"tokens": self.context.deployments.tokens(self.caller, name)})

    async def post(self, name):
        note = self.get_json_body().get("note", "")
        self.write_json(self.context.deployments.create_token(self.caller, name, note), 201)


class DeploymentTokenHandler(ApiHandler):
    async def delete(self, name, token_id):
        self.context.deployments.revoke_token(self.caller, name, token_id)
        self.set_status(204)
        self.finish()


class DeploymentApprovalHandler(ApiHandler):
    """``POST deployments/<name>/approve`` or ``.../reject`` (a manager of its project)."""

    async def post(self, name, decision):
        deployments = self.context.deployments
        if decision == "approve":
            self.write_json(deployments.approve(self.caller, name))
        else:
            reason = self.get_json_body().get("reason", "")
            if not isinstance(reason, str):
                raise InvalidInput("reason must be a string")
            self.write_json(deployments.reject(self.caller, name, reason[:500]))


class DeploymentPolicyHandler(ApiHandler):
    """Whether deploys of a project wait for a project manager's approval."""

    async def get(self, project):
        self.write_json(self.context.deployments.policy(self.caller, project))

    async def put(self, project):
        body = self.get_json_body()
        self.write_json(self.context.deployments.set_policy(
            self.caller, project, body.get("require_approval")))


# --- approvals on the hub's pages (admin page and /approvals for project managers) ------------

BACK = {"admin": "admin#deploy-approvals", "approvals": "approvals"}


class DeployApprovalsPage(PageHandler):
    """Policies of the projects the caller manages and the deploys waiting in them."""

    async def get(self):
        self.render_page("approvals.html",
                         approvals=self.context.deployments.approvals(self.caller))


class DeployDecisionForm(PageHandler):
    """POST deployment, decision (approve | reject), reason, back (admin | approvals)."""

    async def post(self):
        name, decision = self.form("deployment"), self.form("decision")
        back = BACK.get(self.form("back", False), BACK["approvals"])
        deployments = self.context.deployments
        if decision == "approve":
            await self.run_form(back, lambda: deployments.approve(self.caller, name),
                                f"deployment {name} approved: it is starting")
        elif decision == "reject":
            reason = self.form("reason", False)[:500]
            await self.run_form(back, lambda: deployments.reject(self.caller, name, reason),
                                f"deployment {name} rejected")
        else:
            raise InvalidInput('decision is "approve" or "reject"')


class DeployPolicyForm(PageHandler):
    """POST project, require_approval (a checkbox: present means on), back."""

    async def post(self):
        project = self.form("project")
        on = self.get_body_argument("require_approval", "") in ("on", "true", "1")
        back = BACK.get(self.form("back", False), BACK["approvals"])
        await self.run_form(
            back, lambda: self.context.deployments.set_policy(self.caller, project, on),
            f"deploys of project {project} " + ("now wait for a manager's approval" if on
                                                 else "no longer wait for approval"))


def batch_predictions(context):
    """The batch prediction submitter over the context's jobs, catalog and model registry."""
    from ...core.batch_predictions import BatchPredictions

    return BatchPredictions(context.jobs.jobs, context.datasets, context.deployments.resolver)


class BatchPredictionsHandler(ApiHandler):
    """``POST batch-predictions``: a model version over a dataset version, as a job."""

    async def post(self):
        out = await batch_predictions(self.context).submit(self.caller, self.get_json_body())
        self.write_json(out, status=201)


class EndpointHandler(ApiHandler):
    """``endpoints/<name>/<action>``: authenticate, authorise, pass on to the model server."""

    # httpx itself, not jupyter_mlops.client: a proxy that forwards the caller's request and
    # streams the model server's answer back as it is, error statuses included.
    _clients: dict[str, httpx.AsyncClient] = {}  # per unix socket ("" for plain URLs)

    def http(self, route) -> httpx.AsyncClient:
        clients = EndpointHandler._clients
        client = clients.get(route.socket)
        if client is None:
            if len(clients) > 64:  # forget the sockets of servers long replaced
                live = {r.socket for r in self.context.deployments.routes.values()}
                for sock in [s for s in clients if s not in live]:
                    asyncio.get_running_loop().create_task(clients.pop(sock).aclose())
            client = clients[route.socket] = httpx.AsyncClient(
                timeout=httpx.Timeout(120.0, connect=5.0),
                transport=httpx.AsyncHTTPTransport(uds=route.socket or None, limits=httpx.Limits(
                    max_connections=256, max_keepalive_connections=64)))
        return client

    async def prepare(self):
        pass  # authentication depends on the kind of token: see _route

    async def _route(self, name):
        deployments = self.context.deployments
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if token.startswith(TOKEN_PREFIX) and scheme.lower() in ("token", "bearer"):
            return deployments.authorize(name, token=token)
        model = await self.hub_auth.get_user(self, sync=False)
        if not model:
            raise NotAuthenticated("send a hub API token or a deployment token "
                                   "(Authorization: Bearer <token>)")
        caller = Caller.from_hub_model(model)
        if roles.USE not in caller.scopes:
            raise Forbidden(f"{caller.name} lacks the scope {roles.USE}")
        return deployments.authorize(name, caller=caller)

    async def _forward(self, name, action):
        route = await self._route(name)
        deployments = self.context.deployments
        headers = {h: self.request.headers[h] for h in _PASS_HEADERS if h in self.request.headers}
        body = self.request.body if self.request.method == "POST" else None
        t0 = time.perf_counter()
        ok = False
        for attempt in range(2):
            route.inflight += 1
            try:
                resp = await self.http(route).request(
                    self.request.method, f"{route.url}/{action}", content=body, headers=headers)
                break
            except httpx.TransportError as e:
                # The version we picked may have just been retired: retry on the new one once.
                newer = deployments.routes.get(name)
                if attempt == 0 and newer is not None and newer is not route:
                    route = newer
                    continue
                if action == "invocations":
                    self.context.monitoring.called(name, route.version,
                                                   time.perf_counter() - t0, 503, None)
                raise deployments.unreachable(name, type(e).__name__) from None
            finally:
                route.inflight -= 1
        ok = resp.status_code < 500
        if action == "invocations":
            seconds = time.perf_counter() - t0
            deployments.record(name, seconds, ok)
            rows = resp.headers.get(BATCH_ROWS_HEADER, "")
            self.context.monitoring.called(name, route.version, seconds, resp.status_code,
                                           int(rows) if rows.isdigit() else None)
        self.set_status(resp.status_code)
        self.set_header("Content-Type", resp.headers.get("content-type", "application/json"))
        self.set_header("X-Model-Version", route.version)
        self.finish(resp.content)
        if action == "invocations" and resp.status_code == 200:  # after the caller has it
            await self.context.monitoring.observe_inputs(
                name, route.version, self.request.headers.get("Content-Type", ""), body,
                resp.content)

    async def post(self, name, action):
        if action != "invocations":
            raise web.HTTPError(405, f"POST only to invocations, not {action}")
        await self._forward(name, action)

    async def get(self, name, action):
        if action == "invocations":
            raise web.HTTPError(405, "use POST for invocations")
        await self._forward(name, action)


ROUTES = [
    (r"/deployments", DeploymentsHandler),
    (r"/deployments/([a-z0-9-]+)", DeploymentHandler),
    (r"/deployments/([a-z0-9-]+)/events", DeploymentEventsHandler),
    (r"/deployments/([a-z0-9-]+)/tokens", DeploymentTokensHandler),
    (r"/deployments/([a-z0-9-]+)/tokens/([a-z0-9]+)", DeploymentTokenHandler),
    (r"/deployments/([a-z0-9-]+)/(approve|reject)", DeploymentApprovalHandler),
    (r"/deployment-policies/([a-z0-9-]+)", DeploymentPolicyHandler),
    (r"/batch-predictions", BatchPredictionsHandler),
]

# Pages under the service prefix (see service/routes.py).
PAGES = [
    (r"/approvals", DeployApprovalsPage),
    (r"/approvals/decide", DeployDecisionForm),
    (r"/approvals/policy", DeployPolicyForm),
]

# Outside ``api/``: the stable URL clients call.
ENDPOINT_ROUTE = (r"endpoints/([a-z0-9-]+)/(invocations|ping|health|version|metrics)",
                  EndpointHandler)
