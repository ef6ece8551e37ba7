"""Model servers as local processes of the control plane's machine (the embedded default).

Each deployment version is one ``python -m jupyter_mlops.serving`` process on a free loopback
port, in a session of its own so it outlives a control plane restart (the control plane takes
it over again from its database). It still never outlives the platform: it watches the
``jupyter-mlops up`` process and exits when that is gone.

Who a model server runs as: when the control plane is root (the embedded default), the
account of the user who created the deployment (``jm-<name>``, see :mod:`.accounts`), like
that user's server and jobs, so a model's pickled code runs with that user's rights, not the
platform's. The deployment's directory is then ``root:<the account's group>``, mode 0750: the
server may read it, other users may not enter; its log is written through the descriptor the
control plane opened (root-owned, so the panel can always show it). The artifact store lives in
the platform's private MLflow directory, so the version's files are made available in the
deployment's directory (hard links where possible, else copies), removed when the server stops.
Without root, model servers run as the control plane's user.

CPU and memory limits (``c.LocalDeployBackend.cpu_limit`` / ``memory_limit``): as root, each
model server process gets a cgroup of its own (:mod:`.limits`), so a model that grows cannot take
the memory of the GPUs' training jobs; a server killed for it while loading says so.

Also here: :class:`MlflowArtifactResolver`, which turns a registered model version into the
directory of its files in the local artifact store, read by the model server directly (no
token needed).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import httpx
from jupyterhub.traitlets import ByteSpecification
from traitlets import CaselessStrEnum, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from ..core.deployments import LoadFailed
from ..core.errors import InvalidInput, NotFound, Unavailable
from ..serving import fetch
from .accounts import AccountError, AccountSettings, SystemAccount, make_traversable
from .limits import PREFIX, CgroupLimits

SERVER_MODULE = "jupyter_mlops.serving"
# What a model server run as a user's account inherits of the control plane's environment.
USER_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


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

    cpu_limit = Float(
        0.0, help="""CPUs each model server may use (0: no limit). Enforced with a cgroup per
        server when the control plane is root.""").tag(config=True)

    memory_limit = ByteSpecification(
        0, help="""Memory each model server may use, e.g. ``"4G"`` (0: no limit). Enforced like
        ``cpu_limit``: the kernel stops a server going over it.""").tag(config=True)

    cgroup_root = Unicode(
        "/sys/fs/cgroup", help="Where cgroups are mounted (for ``cpu_limit``/``memory_limit``).",
    ).tag(config=True)

    def __init__(self, accounts=None, owner_of=None, **kw):
        super().__init__(**kw)
        self._children: dict[int, subprocess.Popen] = {}
        # ``accounts``: hub users -> system accounts (``None``: run as this process's user);
        # ``owner_of(deployment)``: the hub user whose account serves it.
        self.accounts = accounts
        self.owner_of = owner_of

    def _account_for(self, deployment: str) -> SystemAccount | None:
        if self.accounts is None or not self.accounts.isolated:
            return None
        owner = self.owner_of(deployment) if self.owner_of else None
        if not owner:
            raise LoadFailed(f"deployment {deployment} has no owner to run its server as")
        try:
            return self.accounts.account(owner)
        except AccountError as e:
            raise LoadFailed(str(e)) from None

    def _open_to(self, workdir: Path, account: SystemAccount) -> None:
        """``workdir`` readable by the account, closed to every other user."""
        run_dir = Path(self.run_dir)
        make_traversable(run_dir, True, self.log)
        run_dir.chmod(0o711)  # servers reach their own directory; nobody lists deployments
        os.chown(workdir, 0, account.gid, follow_symlinks=False)
        workdir.chmod(0o750)

    @staticmethod
    def _share_model(model_dir: Path, dest: Path, account: SystemAccount) -> None:
        """The model version's files at ``dest``, readable by the account (group).

        Hard links cost nothing and keep the store's files as they are (root-owned, not
        writable by the account); a file other users could not read in the store, or one on
        another file system, is copied instead and given to the account's group.
        """
        def link_or_copy(src, dst):
            if os.stat(src).st_mode & stat.S_IROTH:
                try:
                    os.link(src, dst, follow_symlinks=False)
                    return dst
                except OSError:
                    pass
            shutil.copy2(src, dst, follow_symlinks=False)
            os.chown(dst, 0, account.gid, follow_symlinks=False)
            os.chmod(dst, 0o640)
            return dst

        shutil.copytree(model_dir, dest, symlinks=True, copy_function=link_or_copy)
        for d in [dest, *(p for p in dest.rglob("*") if p.is_dir() and not p.is_symlink())]:
            os.chown(d, 0, account.gid)
            d.chmod(0o750)

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
        account = self._account_for(deployment)
        served_uri, model_copy = model_uri, ""
        if account is not None:
            self._open_to(workdir, account)
            if Path(model_uri).is_dir():  # a version in the platform's private artifact store
                model_copy = str(workdir / f"model-{log_path.stem}")
                self._share_model(Path(model_uri), Path(model_copy), account)
                served_uri = model_copy
        cmd = [self.python, "-m", SERVER_MODULE, f"--model-uri={served_uri}",
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
        run_as = {"start_new_session": True}
        if account is not None:
            # The model's code runs as a user: none of the platform's secrets (such as the
            # dataset store's S3 keys) go along, only what a process needs to run.
            env = {k: v for k, v in env.items() if k in USER_ENV}
            env.update(USER=account.name, LOGNAME=account.name, HOME=str(account.home),
                       MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1")
            run_as = account.popen_kwargs()
        group = self._limits_for(deployment, log_path.stem)
        if group is not None:
            env.update(group.env())  # the server waits until it is inside
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o640)
        with os.fdopen(fd, "ab") as logf:
            if account is not None:
                os.fchown(fd, 0, account.gid)
            proc = subprocess.Popen(cmd, cwd=workdir, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, **run_as)
        self._children[proc.pid] = proc
        inst = {"pid": proc.pid, "host": self.host, "port": port, "version": version,
                "log": str(log_path), "model_uri": model_uri}
        if group is not None:
            inst["cgroup"] = group.name.removeprefix(PREFIX)
            try:
                group.add(proc.pid)
            except OSError as e:  # the server gives up waiting: _wait_ready reports it
                self.log.warning("deployment %s: no limits for pid %d: %s", deployment,
                                 proc.pid, e)
        if model_copy:
            inst["model_copy"] = model_copy
        if account is not None:
            inst["account"] = account.name
        self.log.info("deployment %s: started version %s as pid %d on port %d", deployment,
                      version, proc.pid, port)
        try:
            await self._wait_ready(proc, inst)
        except BaseException:
            self._kill(proc)
            self._drop_model(inst)
            raise
        return inst

    # --- CPU and memory limits ------------------------------------------------------------------

    def _platform_tag(self) -> str:
        """Which platform's servers (two can share a machine: say, tests and a demo)."""
        return hashlib.blake2s(str(Path(self.run_dir).resolve()).encode(),
                               digest_size=3).hexdigest()

    def _limits_for(self, deployment: str, stem: str) -> CgroupLimits | None:
        if not (self.cpu_limit or self.memory_limit) or os.geteuid() != 0:
            return None
        group = CgroupLimits.create(
            self.cgroup_root, f"model-{self._platform_tag()}-{deployment}-{stem}",
            cpu=self.cpu_limit or None, memory=self.memory_limit or None, log=self.log)
        if group is None:
            self.log.warning("no writable cgroups under %s: model server limits are not "
                             "enforced", self.cgroup_root)
        return group

    def _group_of(self, instance: dict) -> CgroupLimits | None:
        name = instance.get("cgroup")
        return CgroupLimits.existing(self.cgroup_root, name) if name else None

    def _drop_model(self, instance: dict) -> None:
        """What a stopped server leaves: its copy of the model, its cgroup."""
        if instance.get("model_copy"):
            shutil.rmtree(instance["model_copy"], ignore_errors=True)
        if (group := self._group_of(instance)) is not None:
            group.remove()

    async def _wait_ready(self, proc: subprocess.Popen, inst: dict) -> None:
        deadline = time.monotonic() + self.start_timeout
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    group = self._group_of(inst)
                    if group is not None and (why := group.out_of_memory("the model server")):
                        raise LoadFailed(why, _tail(inst["log"]))
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
        try:
            await self._stop(instance)
        finally:
            self._drop_model(instance)

    async def _stop(self, instance: dict) -> None:
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
        # What servers that are gone left behind: model copies, empty cgroups.
        copies = {i.get("model_copy") for i in keep}
        for d in Path(self.run_dir).glob("*/model-*"):
            if d.is_dir() and not d.is_symlink() and str(d) not in copies:
                self.log.info("removing the model copy of a stopped server: %s", d)
                shutil.rmtree(d, ignore_errors=True)
        groups = {PREFIX + i["cgroup"] for i in keep if i.get("cgroup")}
        mine = f"{PREFIX}model-{self._platform_tag()}-"
        base = Path(self.cgroup_root)
        for parent in (base, base / "memory", base / "cpu"):
            for d in parent.glob(f"{mine}*") if parent.is_dir() else ():
                if d.name not in groups:
                    CgroupLimits([d], 0).remove()  # refused by the kernel while in use


class MlflowArtifactResolver:
    """Registered model version -> a local directory holding it.

    Asks the MLflow server on its unix socket (the control plane runs as the platform's user)
    for the version's download URI. ``mlflow-artifacts:/<path>`` lives at
    ``<artifacts_dir>/<path>`` when MLflow keeps artifacts on this machine. With ``cache_dir``
    set, a version stored elsewhere (MLflow proxying S3, or ``s3://`` and the like) is copied
    once into ``<cache_dir>/<name>/<version>`` by the control plane itself, so model servers
    running as a user's account need neither the MLflow socket nor the store's keys. Without
    it, such URIs are handed to the model server as they are.
    """

    def __init__(self, socket_path: str, artifacts_dir: str, prefix: str = "/services/mlflow",
                 cache_dir: str = ""):
        self.socket_path = socket_path
        self.artifacts_dir = Path(artifacts_dir).resolve()
        self.prefix = prefix.rstrip("/")
        self.cache_dir = Path(cache_dir) if cache_dir else None

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
            if (path / "MLmodel").exists():
                return str(path)
            if parsed.scheme != "mlflow-artifacts" or self.cache_dir is None:
                raise NotFound(f"model version {model_name}/{version} has no MLmodel at {uri}")
        elif self.cache_dir is None:
            return uri  # s3://... and the like: the model server loads it with MLflow itself
        return await asyncio.to_thread(self._copy, model_name, version, uri)

    def _copy(self, model_name: str, version: str, uri: str) -> str:
        """The version's files in the cache (versions never change: one copy serves all)."""
        dest = self.cache_dir / quote(model_name, safe="") / str(version)
        if (dest / "MLmodel").exists():
            return str(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            if uri.startswith(f"{fetch.SCHEME}:"):
                fetch.download(uri, self.socket_path, dest, prefix=self.prefix)
            else:
                import mlflow.artifacts

                tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=dest.parent))
                got = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                               dst_path=str(tmp)))
                if not (got / "MLmodel").exists():
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise FileNotFoundError("no MLmodel in it")
                os.replace(got, dest)  # the copy appears whole, or not at all
                shutil.rmtree(tmp, ignore_errors=True)
        except Exception as e:  # the store's own errors vary (botocore, httpx, OSError)
            raise NotFound(f"model version {model_name}/{version} could not be copied from "
                           f"{uri}: {e}") from None
        return str(dest)


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

    def owner_of(deployment: str) -> str | None:
        rows = db.query("SELECT created_by FROM deployments WHERE name = :n", n=deployment)
        return rows[0]["created_by"] if rows else None

    if DeploymentSettings(parent=parent).backend == "kubernetes":
        from ..core.jobs.tracking import HubTokenIssuer
        from .deploy_kube import KubeDeployBackend

        # As a hub service the control plane issues each model server version a token of the
        # deployment's creator (the MLflow gateway scopes by project membership, so no shared
        # token serves every project); outside the hub: KubeDeployBackend.token_secret.
        hub_api = os.environ.get("JUPYTERHUB_API_URL", "")
        service_token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        tokens = HubTokenIssuer(hub_api, service_token) if hub_api and service_token else None
        return Deployments(db, projects,
                           KubeDeployBackend(parent=parent, tokens=tokens, owner_of=owner_of),
                           MlflowRegistryUriResolver(socket_path, artifacts))

    # Model servers run as the account of the deployment's creator: that user's server, jobs
    # and deployments are one account. (The user's workspace root is the spawner's default.)
    accounts = AccountSettings(parent=parent).user_accounts(data_dir / "users")
    backend = LocalDeployBackend(parent=parent, run_dir=str(data_dir / "deployments"),
                                 owner_pid_file=str(data_dir / "up.lock"), accounts=accounts,
                                 owner_of=owner_of)
    return Deployments(db, projects, backend, MlflowArtifactResolver(
        socket_path, artifacts, cache_dir=str(data_dir / "control" / "model-cache")))
