"""The model server process: load one MLflow pyfunc model, serve it until told to stop."""
from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

from traitlets import Float, Integer, Unicode, default
from traitlets.config import Application

from .._version import __version__
from .batching import MicroBatcher, PredictError
from .http import HttpProtocol, Request, close_expired
from .inputs import BadRequest, parse, predictions_body
from .metrics import ServerMetrics


BATCH_ROWS_HEADER = "X-Batch-Rows"


def _error(code: str, message: str) -> bytes:
    # MLflow's scoring server error shape, so MLflow clients read our errors unchanged.
    return json.dumps({"error_code": code, "message": message}).encode()


class ModelServer(Application):
    name = "jupyter-mlops-model-server"
    description = "Serve one MLflow pyfunc model with MLflow's scoring protocol."
    version = __version__

    model_uri = Unicode(
        help="""The model to serve: a local directory of an MLflow model, or any URI MLflow can
        load (``models:/cells/3`` with $MLFLOW_TRACKING_URI and $MLFLOW_TRACKING_TOKEN set).""",
    ).tag(config=True)

    host = Unicode("127.0.0.1", help="Address to listen on.").tag(config=True)

    port = Integer(5000, help="Port to listen on.").tag(config=True)

    socket_fd = Integer(
        0,
        help="""A listening unix socket inherited from the control plane (its descriptor
        number): serve on it instead of ``host``/``port``. The control plane binds it in a
        directory only it can enter, so no local account can call the server directly, not
        even the one the server runs as. 0: listen on ``host``/``port``.""",
    ).tag(config=True)

    deployment = Unicode("", help="Name of the deployment (shown by /health and /metrics).").tag(
        config=True)

    model_version = Unicode("", help="Registered model version served (for /health).").tag(
        config=True)

    model_name = Unicode(
        help="""Registered model served, answered by /version with ``model_version``. Default:
        the name in a ``models:/NAME/VERSION`` ``model_uri``, else the deployment's name (a
        deployment is named after its model unless its owner chose otherwise).""",
    ).tag(config=True)

    @default("model_name")
    def _default_model_name(self):
        if self.model_uri.startswith("models:/"):
            return self.model_uri[len("models:/"):].split("/")[0].split("@")[0]
        return self.deployment

    max_batch_size = Integer(
        64,
        help="""Most requests gathered into one model call. 1 turns micro-batching off (for
        models whose prediction for a row depends on the other rows).""",
    ).tag(config=True)

    max_batch_delay_ms = Float(
        2.0,
        help="""Longest time (ms) a batch waits for more requests, and only while recent batches
        were larger than what is queued; an idle server never waits. 0 never waits.""",
    ).tag(config=True)

    max_body_bytes = Integer(
        16 * 1024 * 1024,
        help="Largest request body accepted; larger ones are answered 413 without being read.",
    ).tag(config=True)

    request_timeout = Float(
        30.0,
        help="""Seconds a request may take to arrive, from its first byte to its last; a
        slower one is answered 408 and its connection closed, so a client trickling requests
        ("slowloris") cannot hold connections. The control plane, the only client, sends
        bodies it already holds (at most ``max_body_bytes``) over a local socket.""",
    ).tag(config=True)

    idle_timeout = Float(
        60.0,
        help="""Seconds a keep-alive connection may stay without a request before it is closed.
        Longer than the control plane's client keeps an idle connection (httpx: 5 s), so the
        server never closes one the control plane is about to reuse.""",
    ).tag(config=True)

    drain_timeout = Float(
        30.0, help="Seconds SIGTERM waits for requests in flight before the process exits.",
    ).tag(config=True)

    stop_with_pid = Integer(
        0,
        help="""Exit when this process is gone (the platform's ``jupyter-mlops up``), so model
        servers, which outlive control plane restarts, do not outlive the platform. 0: never.""",
    ).tag(config=True)

    mlflow_socket = Unicode(
        "",
        help="""Unix socket of the platform's MLflow server. With it, a model URI
        ``mlflow-artifacts:/<path>`` (MLflow proxying its artifact store, e.g. S3) is copied
        through MLflow's artifact proxy into ``model_cache_dir`` and loaded from there: the
        model server needs no S3 credentials and no TCP MLflow.""",
    ).tag(config=True)

    mlflow_prefix = Unicode("/services/mlflow",
                            help="URL prefix of the MLflow server on ``mlflow_socket``.").tag(
        config=True)

    model_cache_dir = Unicode(
        "", help="Where models fetched through ``mlflow_socket`` are kept (default: ./models).",
    ).tag(config=True)

    aliases = {
        "model-uri": "ModelServer.model_uri",
        "host": "ModelServer.host",
        "port": "ModelServer.port",
        "socket-fd": "ModelServer.socket_fd",
        "deployment": "ModelServer.deployment",
        "model-version": "ModelServer.model_version",
        "model-name": "ModelServer.model_name",
        "max-batch-size": "ModelServer.max_batch_size",
        "max-batch-delay-ms": "ModelServer.max_batch_delay_ms",
        "max-body-bytes": "ModelServer.max_body_bytes",
        "request-timeout": "ModelServer.request_timeout",
        "idle-timeout": "ModelServer.idle_timeout",
        "stop-with-pid": "ModelServer.stop_with_pid",
        "mlflow-socket": "ModelServer.mlflow_socket",
        "model-cache-dir": "ModelServer.model_cache_dir",
    }

    # --- model -------------------------------------------------------------------------------

    def load_model(self):
        import mlflow.pyfunc

        t0 = time.monotonic()
        self.log.info("loading %s", self.model_uri)
        self.model = mlflow.pyfunc.load_model(self.local_model())
        meta = self.model.metadata
        self.flavor = self.model.loader_module or "pyfunc"
        self.signature = meta.signature.to_dict() if meta.signature else None
        self.load_seconds = time.monotonic() - t0
        self.log.info("loaded %s (%s) in %.1f s", self.model_uri, self.flavor, self.load_seconds)

    def local_model(self) -> str:
        """What ``mlflow.pyfunc`` loads: the URI itself, or for ``mlflow-artifacts:`` URIs with
        a socket, a local copy fetched through MLflow's artifact proxy."""
        from .fetch import SCHEME, artifact_path, download

        if not (self.mlflow_socket and self.model_uri.startswith(SCHEME + ":")):
            return self.model_uri
        cache = Path(self.model_cache_dir or "models")
        dest = cache / artifact_path(self.model_uri).replace("/", "__")
        return str(download(self.model_uri, self.mlflow_socket, dest, self.mlflow_prefix))

    def predict(self, data, params):
        if params:
            return self.model.predict(data, params=params)
        return self.model.predict(data)

    # --- HTTP --------------------------------------------------------------------------------

    def handle(self, req: Request, respond) -> None:
        path = req.path
        if path == "/invocations":
            if req.method != "POST":
                respond(405, _error("BAD_REQUEST", "use POST /invocations"))
                return
            self.invocation(req, respond)
        elif path in ("/ping", "/health"):
            if path == "/ping":
                respond(200, b"\n")
            else:
                respond(200, json.dumps(self.health()).encode())
        elif path == "/version":
            respond(200, json.dumps(self.version_info()).encode())
        elif path == "/metrics":
            body, ctype = self.metrics.render()
            respond(200, body, ctype)
        else:
            respond(404, _error("ENDPOINT_NOT_FOUND", f"no route {path}"))

    def invocation(self, req: Request, respond) -> None:
        t0 = time.perf_counter()
        self.inflight += 1
        metrics = self.metrics

        rows = None

        def finish(status: int, body: bytes):
            self.inflight -= 1
            metrics.request(status, time.perf_counter() - t0)
            # The rows of the request, for the control plane's batch-size series.
            respond(status, body, "application/json",
                    {BATCH_ROWS_HEADER: rows} if rows is not None else None)

        try:
            payload = parse(req.headers.get("content-type", ""), req.body)
        except BadRequest as e:
            finish(400, _error("BAD_REQUEST", str(e)))
            return
        rows = payload.n

        def done(result):
            if isinstance(result, PredictError):
                finish(400, _error("BAD_REQUEST", f"the model refused the input: {result}"))
                return
            try:
                body = predictions_body(result)
            except Exception as e:
                finish(500, _error("INTERNAL_ERROR", f"prediction is not JSON-serialisable: {e}"))
                return
            finish(200, body)

        self.batcher.submit(payload, done)

    def version_info(self) -> dict:
        """What /version answers: the model served, not only the MLflow that serves it (MLflow's
        own scoring server answers just its version, which tells a caller nothing about which
        model answers them)."""
        import mlflow

        return {"model": self.model_name, "model_version": self.model_version,
                "deployment": self.deployment, "mlflow_version": mlflow.__version__}

    def health(self) -> dict:
        return {
            "status": "ok",
            "deployment": self.deployment,
            "model_uri": self.model_uri,
            "model_version": self.model_version,
            "flavor": self.flavor,
            "signature": self.signature,
            "max_batch_size": self.batcher.max_batch_size,
            "load_seconds": round(self.load_seconds, 3),
            "uptime_seconds": round(time.monotonic() - self.started, 1),
            "pid": os.getpid(),
        }

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self):
        try:
            self.load_model()
        except Exception:
            self.log.exception("the model %s failed to load", self.model_uri)
            sys.exit(3)
        # The model's objects live as long as the process: keep them out of the GC's scans so
        # collections stay short (they are what a p99 latency would otherwise see).
        gc.collect()
        gc.freeze()
        asyncio.run(self._serve())

    async def _serve(self):
        loop = asyncio.get_running_loop()
        self.started = time.monotonic()
        self.inflight = 0
        self.metrics = ServerMetrics(self.deployment, self.model_version)
        self.batcher = MicroBatcher(self.predict, self.max_batch_size,
                                    self.max_batch_delay_ms / 1000.0, self.metrics.batch)
        connections: set = set()

        def protocol():
            return HttpProtocol(self.handle, self.max_body_bytes, on_open=connections.add,
                                on_close=connections.discard,
                                request_timeout=self.request_timeout,
                                idle_timeout=self.idle_timeout)

        if self.socket_fd:
            sock = socket.socket(fileno=self.socket_fd)
            server = await loop.create_unix_server(protocol, sock=sock, backlog=1024)
            where = f"unix:{sock.getsockname()}"
        else:
            server = await loop.create_server(protocol, self.host, self.port, backlog=1024)
            where = f"http://{self.host}:{self.port}"
        stopping = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
        loop.add_signal_handler(signal.SIGINT, stopping.set)
        if self.stop_with_pid:
            loop.create_task(self._watch_owner(stopping))
        sweeper = loop.create_task(self._close_expired(connections))
        self.log.info("serving %s on %s (max batch %d)", self.model_uri, where,
                      self.max_batch_size)
        print(f"READY {where}", flush=True)
        await stopping.wait()
        # Drain: accept nothing new, let requests in flight finish, then close the connections.
        server.close()
        sweeper.cancel()
        deadline = time.monotonic() + self.drain_timeout
        while self.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for proto in list(connections):
            if proto.transport is not None:
                proto.transport.close()
        self.log.info("stopped after draining (%d request(s) left)", self.inflight)

    async def _close_expired(self, connections: set):
        # Once a second is fine grain for timeouts of tens of seconds, and keeps timers off
        # the request path.
        while True:
            await asyncio.sleep(min(1.0, self.request_timeout / 4, self.idle_timeout / 4))
            close_expired(connections)

    async def _watch_owner(self, stopping: asyncio.Event):
        while not stopping.is_set():
            try:
                os.kill(self.stop_with_pid, 0)
            except ProcessLookupError:
                self.log.info("the platform (pid %d) is gone; stopping", self.stop_with_pid)
                stopping.set()
                return
            except PermissionError:
                pass  # alive, owned by someone else
            await asyncio.sleep(2.0)


main = ModelServer.launch_instance
