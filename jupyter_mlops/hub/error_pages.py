"""JSON, not the hub's HTML error page, when the proxy cannot reach an API.

When the proxy finds no target, or its target does not answer (a service restarting, a
stopped user server), it asks the hub's error page ``/hub/error/<code>?url=<path>`` and
answers with its body and content type. For the platform's APIs (``/services/<name>/api/...``,
MLflow's ``/services/mlflow/api|ajax-api/...``, ``/user/<name>/.../api/...``) that page is
JSON with a reason, like every other error of those APIs, so the lab and scripts show "the
control plane is restarting" instead of failing to parse HTML. Other paths keep the hub's
page.

JupyterHub has no setting for this page; :func:`install` puts the handler below in place of
the hub's own for the route ``/error/<code>`` before the hub builds its web application.
"""
from __future__ import annotations

import json
import re
from http.client import responses
from urllib.parse import urlparse

from jupyterhub.handlers.pages import ProxyErrorHandler

SERVICE_API = re.compile(r"^/services/(?P<service>[^/]+)/(?:.+/)?(?:api|ajax-api)(?:/|$)")
USER_API = re.compile(r"^/user/(?P<user>[^/]+)/(?:.+/)?api(?:/|$)")
WHAT = {"mlops": "the control plane", "mlflow": "MLflow"}


def api_error(code: int, path: str) -> dict | None:
    """The JSON body for an error of the proxy on ``path`` (after the hub's base URL), or
    ``None`` when ``path`` is not an API path."""
    reason = responses.get(code, "Error")
    if m := SERVICE_API.match(path):
        what = WHAT.get(m["service"], f"the service {m['service']}")
        if code == 503:
            message = (f"{what} is not answering (it may be restarting); try again in a few "
                       "seconds")
        else:
            message = f"{what} is not available here ({code} {reason})"
        return {"error": reason, "message": message, "service": m["service"]}
    if m := USER_API.match(path):
        if code == 503:
            message = f"the server of {m['user']} is not running; start it from the hub"
        else:
            message = f"the server of {m['user']} is not available ({code} {reason})"
        return {"error": reason, "message": message}
    return None


class ApiProxyErrorHandler(ProxyErrorHandler):
    """The hub's proxy error page, as JSON for API paths."""

    async def get(self, status_code_s):
        path = urlparse(self.get_argument("url", "")).path
        base = self.base_url.rstrip("/")
        if base and path.startswith(base + "/"):
            path = path[len(base):]
        body = api_error(int(status_code_s), path)
        if body is None:
            return await super().get(status_code_s)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(body))


def install() -> None:
    """Serve :class:`ApiProxyErrorHandler` at the hub's ``/error/<code>`` (idempotent)."""
    from jupyterhub import handlers

    routes = handlers.default_handlers
    for i, route in enumerate(routes):
        if route[1] is ProxyErrorHandler:
            routes[i] = (route[0], ApiProxyErrorHandler, *route[2:])
