"""What every control plane handler shares: hub authentication, scope checks, one error mapper."""
from __future__ import annotations

import logging

from jupyterhub.services.auth import HubOAuthenticated, check_scopes
from tornado import web

from ...core import api_schema, json_body, roles
from ...core.roles import Caller
from ...core.errors import Forbidden, MlopsError, NotAuthenticated
from ...core.documented_requests import DocumentedRequests

log = logging.getLogger("jupyter_mlops.service")


def error_body(status: int, message: str, reason: str | None = None) -> dict:
    return {"error": reason or web.httputil.responses.get(status, "Error"), "message": message}


class ApiHandler(DocumentedRequests, HubOAuthenticated, web.RequestHandler):
    """A JSON route of the control plane.

    Authenticates with a hub token (``Authorization: token ...``) or the service's OAuth cookie,
    then requires ``required_scopes`` (any one of them). No token gives 401, a token without the
    scope 403, each with a JSON body ``{"error", "message"}``.
    """

    required_scopes: tuple[str, ...] = (roles.USE,)

    def initialize(self, context=None, service_prefix: str = api_schema.SERVICE):
        self.context = context
        self.service_prefix = service_prefix

    @property
    def hub_scopes(self):
        return set(self.required_scopes)

    async def prepare(self):
        model = await self.hub_auth.get_user(self, sync=False)
        if not model:
            raise NotAuthenticated("log in to JupyterHub or send a hub API token")
        scopes = set(model.get("scopes") or ())
        if not check_scopes(set(self.required_scopes), scopes):
            raise Forbidden(
                f"{model['name']} lacks the scope {' or '.join(self.required_scopes)}"
            )
        self.caller = Caller.from_hub_model(model)
        self._hub_auth_user_cache = model
        self.check_url()

    def api_operations(self) -> api_schema.Operations:
        return api_schema.operations(api_schema.SERVICE, self.service_prefix)

    def get_json_body(self) -> dict:
        """The request's JSON object (``{}`` when empty), checked by ``core.json_body`` and
        against the body schema of the documented operation: anything else is a 4xx."""
        body = json_body.decode(self.request.body)
        found = self.operation()
        if found:
            found[0].check_body(body)
        return body

    def write(self, chunk) -> None:
        if isinstance(chunk, (dict, list)):
            self.set_header("Content-Type", "application/json")
            chunk = json_body.encode(chunk)
        super().write(chunk)

    def write_json(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json_body.encode(data))

    def write_error(self, status_code: int, **kwargs) -> None:
        self.set_header("Content-Type", "application/json")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, MlopsError):
            body = exc.to_dict()
        elif isinstance(exc, web.HTTPError):
            body = error_body(status_code, exc.log_message or exc.reason or "")
        else:
            body = error_body(status_code, "internal error; see the control plane log")
        self.finish(json_body.encode(body))

    def log_exception(self, typ, value, tb):
        if isinstance(value, MlopsError):
            log.info("%s %s -> %s: %s", self.request.method, self.request.uri, value.status,
                     value.message)
        else:
            super().log_exception(typ, value, tb)

    def send_error(self, status_code: int = 500, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, MlopsError):
            status_code = exc.status
        super().send_error(status_code, **kwargs)


class NotFoundHandler(ApiHandler):
    """Unknown API paths answer JSON 404 (after authentication, so nothing leaks)."""

    async def prepare(self):
        await super().prepare()
        raise web.HTTPError(404, f"no route {self.request.path}")


class NoSuchEndpointHandler(ApiHandler):
    """A model endpoint path the endpoint route refuses: no deployment can have that name or
    answer that action, so a JSON 404 before authentication tells nothing (endpoints also take
    deployment tokens, which the hub would not know)."""

    async def prepare(self):
        raise web.HTTPError(404, f"no endpoint {self.request.path}")
