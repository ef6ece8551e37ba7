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
from urllib.parse import parse_qs, quote, unquote, urlparse

import httpx
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError
from traitlets import Float, Integer, Unicode, default
from traitlets.config import Application

from .._version import __version__
from ..core.errors import MlopsError, PayloadTooLarge
from ..core.roles import Caller
from . import mlflow_routes
from .mlflow_ids import decode_json
from .mlflow_scope import ProjectScope

# Headers that describe one hop, or carry hub credentials MLflow must never see.
_DROP_REQUEST = {"host", "authorization", "cookie", "connection", "keep-alive",
                 "transfer-encoding", "te", "upgrade", "proxy-authorization", "content-length"}
_DROP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "content-length"}

# MLflow's own error codes, so its clients and UI read the gateway's answers as MLflow's.
_ERROR_CODES = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED",
                403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
                405: "INVALID_PARAMETER_VALUE", 413: "INVALID_PARAMETER_VALUE",
                503: "TEMPORARILY_UNAVAILABLE"}


@web.stream_request_body
class MlflowProxyHandler(HubOAuthenticated, web.RequestHandler):
    """Forwards an allowed, scoped request to MLflow; streams artifact bytes both ways.

    ``prepare`` authenticates and matches the route before any of the body is read: artifact
    bodies then flow to MLflow as they arrive (bounded memory, ``max_artifact_bytes``), other
    bodies are read up to ``max_json_bytes``, checked whole and forwarded re-serialised.
    """

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

    def initialize(self, upstream: httpx.AsyncClient, prefix: str, scope: ProjectScope,
                   limits: dict):
        self.upstream = upstream
        self.prefix = prefix
        self.scope = scope
        self.limits = limits
        self._body = bytearray()
        self._too_large = False
        self._queue: asyncio.Queue | None = None
        self._sending: asyncio.Future | None = None
        self._later = None  # an answer decided before the body was read
        self.decision = None  # what the scope decided for a checked (non-streamed) request

    # --- errors: always JSON, in MLflow's shape ----------------------------------------------

    def _error(self, status: int, message: str) -> None:
        if self._finished:
            return
        self.clear()
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish({"error_code": _ERROR_CODES.get(status, "INTERNAL_ERROR"),
                     "message": message})

    def write_error(self, status_code: int, **kwargs):
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        else:
            message = self._reason
        self.set_header("Content-Type", "application/json")
        self.finish({"error_code": _ERROR_CODES.get(status_code, "INTERNAL_ERROR"),
                     "message": message})

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

    # --- before the body ---------------------------------------------------------------------

    async def prepare(self):
        # Answers decided here are given once the body has been read (and dropped): a handler
        # that finishes before the request is read makes tornado close the connection, and the
        # proxy's next request on that kept-alive connection would fail.
        self.request.connection.set_max_body_size(self.limits["artifact"] + 1)
        if self.current_user is None:
            if self._wants_html():
                self._later = lambda: self.redirect(self.get_login_url())
            else:
                self._later = lambda: self._error(
                    401, "a hub login or hub API token is required for MLflow")
            return
        self.caller = Caller.from_hub_model(self.current_user)
        raw = self.request.path
        path = unquote(raw)
        below = "/" + path[len(self.prefix.rstrip("/")):].lstrip("/")
        if not path.startswith(self.prefix.rstrip("/")) or "\x00" in path or any(
                seg in (".", "..") for seg in below.split("/")):
            self._later = lambda: self._error(400, f"not a valid MLflow path: {raw[:200]}")
            return
        self.below = below
        self.route = mlflow_routes.match(self.request.method, below)
        if self.route.rule is None and not self.caller.is_admin:
            status = 403 if self.request.method != "OPTIONS" else 405
            self._later = lambda: self._error(status, self.route.reason)
            return
        if self.route.rule == "no_ai_gateway":
            self._later = lambda: self.finish({"endpoints": []})
            return
        # Forward exactly the path that was matched (MLflow decodes it the same way once).
        self.forward_url = quote(self.prefix.rstrip("/") + below,
                                 safe="/:@!$&'()*+,;=-._~") + (
            f"?{self.request.query}" if self.request.query else "")
        self.query = parse_qs(self.request.query, keep_blank_values=True)
        # Artifact uploads stream; every other body is read whole and checked.
        streams = self.request.method == "PUT" and (self.route.streams or self.route.rule is None)
        limit = self.limits["artifact"] if streams else self.limits["json"]
        length = self.request.headers.get("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            # Refused before it is sent: the connection closes after this answer.
            self._error(413, f"the request body is larger than this route takes ({limit} bytes)"
                        if length.isdigit() else "invalid Content-Length")
            return
        if streams:
            await self._start_streaming()

    async def _start_streaming(self):
        try:
            await self.scope.decide(self.caller, self.route.rule or "", self.below, self.query,
                                    None, self.route.params)
        except MlopsError as e:
            status, message = e.status, e.message
            self._later = lambda: self._error(status, message)
            return
        except httpx.TransportError as e:
            name = e.__class__.__name__
            self._later = lambda: self._error(503, f"tracking server unreachable: {name}")
            return
        self._queue = asyncio.Queue(maxsize=16)
        headers = self._forward_headers()
        length = self.request.headers.get("Content-Length")
        if length is not None:
            headers["Content-Length"] = length

        async def body():
            while (chunk := await self._queue.get()) is not None:
                yield chunk

        request = self.upstream.build_request(self.request.method, self.forward_url,
                                              headers=headers, content=body())
        self._sending = asyncio.ensure_future(self.upstream.send(request, stream=True))

    async def data_received(self, chunk: bytes):
        if self._later is not None:
            return  # answered without it
        if self._sending is not None:
            put = asyncio.ensure_future(self._queue.put(chunk))
            await asyncio.wait({put, self._sending}, return_when=asyncio.FIRST_COMPLETED)
            if not put.done():
                put.cancel()  # MLflow stopped reading (it answered, or failed): drop the rest
        elif len(self._body) + len(chunk) > self.limits["json"]:
            self._too_large = True
        elif not self._too_large:
            self._body.extend(chunk)

    def _forward_headers(self) -> dict:
        return {k: v for k, v in self.request.headers.get_all()
                if k.lower() not in _DROP_REQUEST}

    # --- after the body ----------------------------------------------------------------------

    async def _proxy(self, *path_args):
        if self._later is not None:
            self._later()
            return
        try:
            if self._sending is not None:
                if not self._sending.done():
                    await self._queue.put(None)
                resp = await self._sending
            else:
                resp = await self._forward_checked()
            await self._answer(resp)
        except MlopsError as e:
            self._error(e.status, e.message)
        except httpx.TransportError as e:
            if self._headers_written:  # MLflow failed mid-answer: the client sees it cut short
                self.request.connection.close()
                return
            self._error(503, f"tracking server unreachable: {e.__class__.__name__}")

    async def _forward_checked(self) -> httpx.Response:
        if self._too_large:
            raise PayloadTooLarge(f"the request body is larger than {self.limits['json']} "
                                  "bytes")
        if self.route.rule is None:  # an administrator, on a route outside the allow-list
            return await self._send(bytes(self._body) or None, self._forward_headers())
        data = decode_json(bytes(self._body))
        self.decision = await self.scope.decide(
            self.caller, self.route.rule or "", self.below, self.query, data, self.route.params)
        body = self.decision.body if data is not None else (bytes(self._body) or None)
        headers = self._forward_headers()
        if data is not None:
            headers["Content-Type"] = "application/json"
        return await self._send(body, headers)

    async def _send(self, body: bytes | None, headers: dict) -> httpx.Response:
        request = self.upstream.build_request(self.request.method, self.forward_url,
                                              headers=headers, content=body)
        return await self.upstream.send(request, stream=True)

    async def _answer(self, resp: httpx.Response) -> None:
        try:
            decision = self.decision
            if decision is not None and decision.reads_answer and resp.status_code == 200:
                content = await resp.aread()
                projects = (await self.scope.model_projects(content)
                            if decision.filter == "model_versions" else None)
                content = self.scope.filter_answer(self.caller, decision, content, projects)
                self._start_answer(resp, raw=False)
                self.finish(content)
                return
            self._start_answer(resp, raw=True)
            if self.request.method != "HEAD":
                async for chunk in resp.aiter_raw():
                    self.write(chunk)
                    await self.flush()
            self.finish()
        except StreamClosedError:
            pass  # the client went away; nothing to answer
        finally:
            await resp.aclose()

    def _start_answer(self, resp: httpx.Response, raw: bool) -> None:
        self.set_status(resp.status_code, resp.reason_phrase or None)
        self.clear_header("Content-Type")  # tornado's default text/html must not linger
        for k, v in resp.headers.multi_items():
            key = k.lower()
            if key == "content-length":
                if raw and self.request.method != "HEAD":
                    self.set_header(k, v)  # the same bytes pass through
                continue
            if key in _DROP_RESPONSE or (not raw and key == "content-encoding"):
                continue
            if key == "set-cookie":
                self.add_header(k, v)
            else:
                self.set_header(k, v)

    get = head = post = put = patch = delete = options = _proxy

    def on_connection_close(self):
        super().on_connection_close()
        if self._sending is not None and not self._sending.done():
            self._sending.cancel()  # the client gave up mid-upload: so does the upstream call


class NotMlflowHandler(web.RequestHandler):
    """Paths outside the service prefix: JSON 404, never tornado's HTML page."""

    def prepare(self):
        self.set_status(404)
        self.finish({"error_code": "ENDPOINT_NOT_FOUND",
                     "message": f"{self.request.path[:200]} is not an MLflow path"})


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

    max_artifact_bytes = Integer(
        50 * 1024**3,
        help="""Largest artifact one upload may carry (bytes). Artifact bodies stream through
        the gateway to MLflow as they arrive (memory stays at a few chunks whatever the size),
        so this bounds disk use per file, not memory: 50 GiB by default, above any model a lab
        trains on a workstation. Larger uploads answer 413.""",
    ).tag(config=True)

    max_json_bytes = Integer(
        32 * 1024**2,
        help="""Largest non-artifact request body (bytes). These bodies are read whole and
        checked before they reach MLflow; MLflow's own largest, ``runs/log-batch`` (1,000
        metrics, 100 params, 100 tags), stays well below 32 MiB. Larger bodies answer 413.""",
    ).tag(config=True)

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
        # httpx itself, not jupyter_mlops.client: the gateway is a proxy that forwards requests
        # and streams MLflow's answers back as they are, error statuses included.
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
                 {"upstream": upstream, "prefix": prefix, "scope": scope,
                  "limits": {"artifact": self.max_artifact_bytes,
                             "json": self.max_json_bytes}}),
            ],
            cookie_secret=secret,
            default_handler_class=NotMlflowHandler,
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
        try:
            asyncio.run(self._serve())
        except KeyboardInterrupt:
            # The hub stops its services with SIGINT: a normal stop, not a crash to trace.
            # asyncio.run has cancelled every task by now, so their clean-up has run.
            self.log.info("MLflow gateway stopped")

    async def _serve(self):
        app = self.make_app()
        url = urlparse(self.service_url)
        app.listen(self.port or url.port, url.hostname)
        self.log.info("MLflow gateway on %s -> unix:%s", self.service_url, self.socket_path)
        await asyncio.Event().wait()


main = MlflowGateway.launch_instance

if __name__ == "__main__":
    main()
