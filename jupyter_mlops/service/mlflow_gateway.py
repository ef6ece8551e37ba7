"""The hub-authenticated front door of the MLflow tracking server.

MLflow listens on a unix socket inside a directory only the platform's own user can enter, so the
only way in is this hub service at ``/services/mlflow/``: browsers come with the service's OAuth
cookie, the MLflow client with ``MLFLOW_TRACKING_TOKEN`` (a hub API token, sent as a bearer
token). The hub's credentials are stripped before a request reaches MLflow.

Run by the hub as ``python -m jupyter_mlops.service.mlflow_gateway``.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import urlparse

import httpx
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import Float, Integer, Unicode, default
from traitlets.config import Application

from .._version import __version__
from ..core.roles import Caller
from .mlflow_scope import Hidden, ProjectScope

# Headers that describe one hop, or carry hub credentials MLflow must never see.
_DROP_REQUEST = {"host", "authorization", "cookie", "connection", "keep-alive",
                 "transfer-encoding", "te", "upgrade", "proxy-authorization", "content-length"}
_DROP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "content-length",
                  "content-encoding"}


class MlflowProxyHandler(HubOAuthenticated, web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

    def initialize(self, upstream: httpx.AsyncClient, prefix: str, scope: ProjectScope):
        self.upstream = upstream
        self.prefix = prefix
        self.scope = scope

    def _hidden(self, e: Hidden) -> None:
        # MLflow's own answer for an absent id, so clients and the UI behave as for one.
        self.set_status(404)
        self.finish({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": str(e)})

    def check_xsrf_cookie(self):
        # The MLflow UI cannot send JupyterHub's _xsrf token with its own fetch() calls. Accept a
        # cookie-authenticated write only when the browser says it comes from this origin AND
        # from a page of the MLflow UI itself; everything else gets JupyterHub's normal check.
        # Isolation from pages served by other users' servers on the same origin needs
        # subdomain_host, exactly as for JupyterHub itself (see docs/security.md).
        site = self.request.headers.get("Sec-Fetch-Site")
        referer = urlparse(self.request.headers.get("Referer", ""))
        if site == "same-origin" and referer.path.startswith(self.prefix):
            return
        return super().check_xsrf_cookie()

    def _wants_html(self) -> bool:
        return self.request.method == "GET" and "text/html" in self.request.headers.get(
            "Accept", ""
        )

    async def _proxy(self, *path_args):
        if self.current_user is None:
            if self._wants_html():
                self.redirect(self.get_login_url())
                return
            self.set_status(401)
            self.finish({"error_code": "UNAUTHENTICATED",
                         "message": "a hub login or hub API token is required for MLflow"})
            return
        headers = {k: v for k, v in self.request.headers.get_all()
                   if k.lower() not in _DROP_REQUEST}
        body = self.request.body if self.request.method not in ("GET", "HEAD") else None
        caller = Caller.from_hub_model(self.current_user)
        try:
            decision = await self.scope.decide(caller, self.request.method, self.request.uri,
                                               body or b"")
            if decision.body is not None:
                body = decision.body
            resp = await self.upstream.request(
                self.request.method, self.request.uri, headers=headers, content=body
            )
            content = resp.content
            if resp.status_code == 200 and (decision.filter_experiments
                                            or decision.check_experiment_answer):
                content = self.scope.filter_answer(caller, decision, content)
        except Hidden as e:
            self._hidden(e)
            return
        except httpx.TransportError as e:
            self.set_status(503)
            self.finish({"error_code": "TEMPORARILY_UNAVAILABLE",
                         "message": f"tracking server unreachable: {e.__class__.__name__}"})
            return
        self.set_status(resp.status_code, resp.reason_phrase or None)
        self.clear_header("Content-Type")  # tornado's default text/html must not linger
        for k, v in resp.headers.multi_items():
            if k.lower() in _DROP_RESPONSE:
                continue
            if k.lower() == "set-cookie":
                self.add_header(k, v)
            else:
                self.set_header(k, v)
        if self.request.method != "HEAD":
            self.write(content)
        self.finish()

    get = head = post = put = patch = delete = options = _proxy


class MlflowGateway(Application):
    name = "jupyter-mlops-mlflow-gateway"
    description = "Hub-authenticated proxy in front of an MLflow server on a unix socket."
    version = __version__

    socket_path = Unicode(
        help="The unix socket MLflow listens on (``mlflow server --uvicorn-opts '--uds PATH'``).",
    ).tag(config=True)

    timeout = Float(60.0, help="Seconds to wait for MLflow before answering 503.").tag(config=True)

    service_url = Unicode(help="Listen URL; defaults to $JUPYTERHUB_SERVICE_URL.").tag(config=True)

    @default("service_url")
    def _default_service_url(self):
        return os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10102")

    service_prefix = Unicode(help="Defaults to $JUPYTERHUB_SERVICE_PREFIX.").tag(config=True)

    @default("service_prefix")
    def _default_service_prefix(self):
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/mlflow/")

    cookie_secret_file = Unicode(help="Secret signing the OAuth state cookies.").tag(config=True)

    port = Integer(0, help="Port to listen on; 0 takes it from service_url.").tag(config=True)

    projects_db_url = Unicode(
        help="""SQLAlchemy URL of the control plane database, where projects and their members
        live. The gateway reads it to hide experiments and runs of projects the caller is not a
        member of (see docs/security.md). Defaults to the embedded layout,
        ``<data dir>/control/mlops.sqlite`` next to ``<data dir>/mlflow/run/mlflow.sock``.
        Set to an empty string to switch project scoping off (every hub user sees every run).""",
    ).tag(config=True)

    @default("projects_db_url")
    def _default_projects_db_url(self):
        if not self.socket_path:
            return ""
        data_dir = Path(self.socket_path).resolve().parents[2]
        return f"sqlite:///{data_dir / 'control' / 'mlops.sqlite'}"

    aliases = {"socket": "MlflowGateway.socket_path",
               "cookie-secret-file": "MlflowGateway.cookie_secret_file"}

    def make_app(self) -> web.Application:
        upstream = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=self.socket_path),
            # MLflow checks the Host header against DNS rebinding; it only ever sees this one.
            base_url="http://localhost",
            timeout=self.timeout,
        )
        prefix = self.service_prefix
        secret = os.urandom(32)
        if self.cookie_secret_file:
            path = Path(self.cookie_secret_file)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(secret.hex())
            secret = path.read_text().strip().encode()
        scope = ProjectScope(upstream, prefix, self._projects_factory())
        return web.Application(
            [
                (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
                (prefix.rstrip("/") + r"(/.*)?", MlflowProxyHandler,
                 {"upstream": upstream, "prefix": prefix, "scope": scope}),
            ],
            cookie_secret=secret,
        )

    def _projects_factory(self):
        if not self.projects_db_url:
            self.log.warning("MLflow project scoping is off: every hub user sees every run")
            return None
        url = self.projects_db_url

        def make():
            from ..core.db import Database
            from ..core.projects import Projects

            return Projects(Database(url))

        return make

    def start(self):
        asyncio.run(self._serve())

    async def _serve(self):
        app = self.make_app()
        url = urlparse(self.service_url)
        app.listen(self.port or url.port, url.hostname)
        self.log.info("MLflow gateway on %s -> unix:%s", self.service_url, self.socket_path)
        await asyncio.Event().wait()


main = MlflowGateway.launch_instance

if __name__ == "__main__":
    main()
