"""Model servers as local processes of the control plane's machine (the embedded default).

Each deployment version is one ``python -m jupyter_mlops.serving`` process on a free loopback
port, in a session of its own so it outlives a control plane restart (the control plane takes
it over again from its database). It still never outlives the platform: it watches the
``jupyter-mlops up`` process and exits when that is gone.

Also here: :class:`MlflowArtifactResolver`, which turns a registered model version into the
directory of its files in the local artifact store, read by the model server directly (no
token needed, no copy made).
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
from traitlets import CaselessStrEnum, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from ..core.deployments import LoadFailed
from ..core.errors import InvalidInput, NotFound, Unavailable

SERVER_MODULE = "jupyter_mlops.serving"


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tail(path: str, lines: int = 60) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class LocalDeployBackend(LoggingConfigurable):
    run_dir = Unicode(
        help="""Directory of the model servers' logs, one subdirectory per deployment
        (``<data dir>/deployments``).""",
    ).tag(config=True)

    python = Unicode(sys.executable, help="Interpreter running the model servers.").tag(
        config=True)

    host = Unicode("127.0.0.1", help="Address model servers listen on (only the control plane"
                   " calls them).").tag(config=True)

    start_timeout = Float(
        180.0, help="Seconds a model server may take to load its model and answer /ping.",
    ).tag(config=True)

    stop_timeout = Float(
        35.0, help="Seconds a stopping model server may drain before it is killed.",
    ).tag(config=True)

    owner_pid_file = Unicode(
        "",
        help="""File holding ``pid N`` of the process the model servers must not outlive (the
        ``up.lock`` of ``jupyter-mlops up``). Empty or missing: they run until stopped.""",
    ).tag(config=True)

    max_batch_size = Integer(64, help="Micro-batch size of the model servers (1: off).").tag(
        config=True)

    max_batch_delay_ms = Float(
        2.0, help="Longest wait (ms) of a model server for a batch to fill.").tag(config=True)

    def __init__(self, **kw):
        super().__init__(**kw)
        self._children: dict[int, subprocess.Popen] = {}

    def _owner_pid(self) -> int:
        try:
            text = Path(self.owner_pid_file).read_text().split()
            return int(text[1]) if len(text) == 2 and text[0] == "pid" else 0
        except (OSError, ValueError):
            return 0

    async def start(self, deployment: str, version: str, model_uri: str) -> dict:
        workdir = Path(self.run_dir) / deployment
        workdir.mkdir(parents=True, exist_ok=True)
        port = _free_port(self.host)
        log_path = workdir / f"version-{version}-{int(time.time() * 1000)}.log"
        cmd = [self.python, "-m", SERVER_MODULE, f"--model-uri={model_uri}",
               f"--host={self.host}", f"--port={port}", f"--deployment={deployment}",
               f"--model-version={version}", f"--max-batch-size={self.max_batch_size}",
               f"--max-batch-delay-ms={self.max_batch_delay_ms}"]
        owner = self._owner_pid()
        if owner:
            cmd.append(f"--stop-with-pid={owner}")
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
        # The hub's credentials of the control plane stay with the control plane.
        for key in [k for k in env if k.startswith("JUPYTERHUB_")]:
            env.pop(key)
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(cmd, cwd=workdir, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self._children[proc.pid] = proc
        inst = {"pid": proc.pid, "host": self.host, "port": port, "version": version,
                "log": str(log_path), "model_uri": model_uri}
        self.log.info("deployment %s: started version %s as pid %d on port %d", deployment,
                      version, proc.pid, port)
        try:
            await self._wait_ready(proc, inst)
        except BaseException:
            self._kill(proc)
            raise
        return inst

    async def _wait_ready(self, proc: subprocess.Popen, inst: dict) -> None:
        deadline = time.monotonic() + self.start_timeout
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise LoadFailed(f"the model server exited with status {proc.returncode}",
                                     _tail(inst["log"]))
                try:
                    r = await http.get(f"{self.url(inst)}/ping")
                    if r.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise LoadFailed(f"the model server did not answer within {self.start_timeout:.0f} s",
                         _tail(inst["log"]))

    def _kill(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._children.pop(proc.pid, None)

    def _running(self, pid: int) -> bool:
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        try:
            import psutil

            p = psutil.Process(pid)
            return p.status() != psutil.STATUS_ZOMBIE and SERVER_MODULE in " ".join(p.cmdline())
        except Exception:  # NoSuchProcess, AccessDenied: not one of ours
            return False

    async def stop(self, instance: dict) -> None:
        pid = instance["pid"]
        if not self._running(pid):
            self._children.pop(pid, None)
            return
        try:
            os.kill(pid, signal.SIGTERM)  # the server drains, then exits
        except ProcessLookupError:
            return
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and self._running(pid):
            await asyncio.sleep(0.05)
        if self._running(pid):
            os.kill(pid, signal.SIGKILL)
        child = self._children.pop(pid, None)
        if child is not None:
            child.wait()

    async def alive(self, instance: dict) -> bool:
        if not self._running(instance["pid"]):
            return False
        try:
            async with httpx.AsyncClient(timeout=3.0) as http:
                return (await http.get(f"{self.url(instance)}/ping")).status_code == 200
        except httpx.TransportError:
            return False

    def url(self, instance: dict) -> str:
        return f"http://{instance['host']}:{instance['port']}"

    def replicas(self, instance: dict) -> int:
        return 1

    async def reap(self, keep: list[dict]) -> None:
        """Stop model servers of this platform that no deployment uses (after a restart)."""
        import psutil

        kept = {i["pid"] for i in keep}
        root = str(Path(self.run_dir).resolve())
        for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
            try:
                cmd = " ".join(p.info["cmdline"] or ())
                if SERVER_MODULE not in cmd or p.info["pid"] in kept:
                    continue
                if (p.info["cwd"] or "").startswith(root + os.sep):
                    self.log.info("stopping orphaned model server pid %d", p.info["pid"])
                    await self.stop({"pid": p.info["pid"]})
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue


class MlflowArtifactResolver:
    """Registered model version -> its directory in the local MLflow artifact store.

    Asks the MLflow server on its unix socket (the control plane runs as the platform's user)
    for the version's download URI, ``mlflow-artifacts:/<path>``, which lives at
    ``<artifacts_dir>/<path>``.
    """

    def __init__(self, socket_path: str, artifacts_dir: str, prefix: str = "/services/mlflow"):
        self.socket_path = socket_path
        self.artifacts_dir = Path(artifacts_dir).resolve()
        self.prefix = prefix.rstrip("/")

    async def _get(self, path: str, **params) -> dict:
        try:
            async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=self.socket_path),
                                         base_url="http://localhost", timeout=30) as http:
                r = await http.get(f"{self.prefix}/api/2.0/mlflow/{path}", params=params)
        except httpx.TransportError as e:
            raise Unavailable(f"the MLflow server is unreachable ({type(e).__name__})") from None
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") \
            else {}
        if r.status_code == 404 or body.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
            raise NotFound(body.get("message") or f"not found: {path}")
        if r.status_code == 400:
            raise InvalidInput(body.get("message") or r.text)
        if r.status_code >= 300:
            raise Unavailable(f"MLflow answered {r.status_code}: {r.text[:300]}")
        return body

    async def resolve(self, model_name: str, version: str) -> str:
        await self._get("model-versions/get", name=model_name, version=version)
        uri = (await self._get("model-versions/get-download-uri", name=model_name,
                               version=version))["artifact_uri"]
        parsed = urlparse(uri)
        if parsed.scheme in ("mlflow-artifacts", "file", ""):
            rel = unquote(parsed.path).lstrip("/")
            path = (self.artifacts_dir / rel).resolve() if parsed.scheme == "mlflow-artifacts" \
                else Path(unquote(parsed.path)).resolve()
            if parsed.scheme == "mlflow-artifacts" and not path.is_relative_to(self.artifacts_dir):
                raise InvalidInput(f"model version {model_name}/{version} points outside the "
                                   "artifact store")
            if not (path / "MLmodel").exists():
                raise NotFound(f"model version {model_name}/{version} has no MLmodel at {uri}")
            return str(path)
        return uri  # s3://... and the like: the model server loads it with MLflow itself


class MlflowRegistryUriResolver(MlflowArtifactResolver):
    """Registered model version -> ``models:/<name>/<version>`` (checked to exist), for model
    servers that load through MLflow themselves (Kubernetes pods with a reader token)."""

    async def resolve(self, model_name: str, version: str) -> str:
        await self._get("model-versions/get", name=model_name, version=version)
        return f"models:/{model_name}/{version}"


class DeploymentSettings(LoggingConfigurable):
    backend = CaselessStrEnum(
        ["local", "kubernetes"], "local",
        help="""Where model servers run: ``local`` processes of the control plane's machine
        (configure with ``c.LocalDeployBackend.*``) or ``kubernetes`` Deployments + Services
        (``c.KubeDeployBackend.*``).""",
    ).tag(config=True)


def build_deployments(parent, data_dir, db, projects):
    """The control plane's :class:`Deployments`, with the backend ``c.DeploymentSettings``
    picks; model versions are looked up in the MLflow server on its unix socket."""
    from ..core.deployments import Deployments

    data_dir = Path(data_dir)
    socket_path = str(data_dir / "mlflow" / "run" / "mlflow.sock")
    artifacts = str(data_dir / "mlflow" / "artifacts")
    if DeploymentSettings(parent=parent).backend == "kubernetes":
        from .deploy_kube import KubeDeployBackend

        return Deployments(db, projects, KubeDeployBackend(parent=parent),
                           MlflowRegistryUriResolver(socket_path, artifacts))
    backend = LocalDeployBackend(parent=parent, run_dir=str(data_dir / "deployments"),
                                 owner_pid_file=str(data_dir / "up.lock"))
    return Deployments(db, projects, backend, MlflowArtifactResolver(socket_path, artifacts))
