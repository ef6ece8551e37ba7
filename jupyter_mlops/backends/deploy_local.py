"""Model servers as local processes of the control plane's machine (the embedded default).

Each deployment version is one ``python -m jupyter_mlops.serving`` process, in a session of its
own so it outlives a control plane restart (the control plane takes it over again from its
database). It still never outlives the platform: it watches the ``jupyter-mlops up`` process and
exits when that is gone.

Where a model server listens: on a unix socket the control plane binds itself in
``socket_dir`` (``<run_dir>/.sockets``, mode 0700, the platform's user) and hands over as an
inherited descriptor. No TCP port, and no local account can connect: not another user, and
not even the account the server runs as (it never needs the directory, so it may not enter
it). The only way to a model server is the control plane's endpoint, which checks the caller.
The control plane keeps no copy of the listening socket, so a server that dies refuses
connections at once instead of leaving them queued.

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

Supervision (:mod:`..core.deployments.supervision`) asks this backend why a server exited
(:meth:`LocalDeployBackend.exit_reason`), whether it answers (:meth:`~LocalDeployBackend.answers`)
and to kill one that hangs; its timing is configured here (``probe_interval`` and the like).
The registered model version -> files resolvers are in :mod:`.model_resolvers`.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from jupyterhub.traitlets import ByteSpecification
from traitlets import CaselessStrEnum, Float, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from ..client import AsyncTransport, ClientConfig
from ..core.deployments import LoadFailed, SupervisionPolicy
from ..core.errors import MlopsError, Unavailable
from .accounts import AccountError, AccountSettings, SystemAccount, make_traversable
from .limits import PREFIX, CgroupLimits
from .model_resolvers import MlflowArtifactResolver, MlflowRegistryUriResolver

__all__ = ["DeploymentSettings", "LocalDeployBackend", "MlflowArtifactResolver",
           "MlflowRegistryUriResolver", "build_deployments"]

SERVER_MODULE = "jupyter_mlops.serving"
# What a model server run as a user's account inherits of the control plane's environment.
USER_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


# The longest path a unix socket address holds (sun_path, with its NUL).
SUN_PATH_MAX = 107


def describe_exit(returncode: int) -> str:
    """``-9`` -> ``killed by signal 9 (SIGKILL)``, ``3`` -> ``exited with status 3``."""
    if returncode < 0:
        try:
            name = f" ({signal.Signals(-returncode).name})"
        except ValueError:
            name = ""
        return f"killed by signal {-returncode}{name}"
    return f"exited with status {returncode}"


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

    socket_dir = Unicode(
        help="""Directory of the model servers' unix sockets (default ``<run_dir>/.sockets``),
        made mode 0700 for the control plane's user: only the control plane may connect.
        Socket paths longer than 107 bytes are bound and reached through the directory's
        descriptor, so a long data directory needs no setting here.""",
    ).tag(config=True)

    @default("socket_dir")
    def _socket_dir_default(self):
        return str(Path(self.run_dir) / ".sockets")  # no deployment name starts with a dot

    probe_interval = Float(
        2.0, help="""Seconds between two liveness probes (``GET /ping``) of a model server. A
        request that finds a server unreachable also probes it at once.""",
    ).tag(config=True)

    probe_timeout = Float(
        5.0, help="Seconds a liveness probe waits for the answer of ``/ping``.").tag(config=True)

    unresponsive_after = Float(
        60.0, help="""Seconds a model server that still runs may fail its probes before it is
        killed and restarted. Generous: a server answers ``/ping`` between two model calls, so
        a long batch delays it; meanwhile the deployment is ``unresponsive``, not ``ready``.""",
    ).tag(config=True)

    restart_backoff = Float(
        1.0, help="""Seconds before the first restart of a model server that stopped; each
        failed attempt doubles the wait, up to ``restart_backoff_max``.""",
    ).tag(config=True)

    restart_backoff_max = Float(
        60.0, help="Longest wait between two restart attempts of a model server.",
    ).tag(config=True)

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
        self._exits: dict[int, str] = {}  # pid -> why it ended, for the supervisor
        self._socket_dir_fd: int | None = None
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
        log_path = workdir / f"version-{version}-{int(time.time() * 1000)}.log"
        account = self._account_for(deployment)
        served_uri, model_copy = model_uri, ""
        if account is not None:
            self._open_to(workdir, account)
            if Path(model_uri).is_dir():  # a version in the platform's private artifact store
                model_copy = str(workdir / f"model-{log_path.stem}")
                self._share_model(Path(model_uri), Path(model_copy), account)
                served_uri = model_copy
        sock_path = Path(self.socket_dir) / hashlib.blake2s(
            f"{deployment}/{log_path.stem}".encode(), digest_size=8).hexdigest()
        listener = self._listen(sock_path)
        cmd = [self.python, "-m", SERVER_MODULE, f"--model-uri={served_uri}",
               f"--socket-fd={listener.fileno()}", f"--deployment={deployment}",
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
            env.update(account.login_env(), MLFLOW_DISABLE_TELEMETRY="true",
                       PYTHONUNBUFFERED="1")
            run_as = account.popen_kwargs()
        group = self._limits_for(deployment, log_path.stem)
        if group is not None:
            env.update(group.env())  # the server waits until it is inside
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o640)
        with os.fdopen(fd, "ab") as logf, listener:
            if account is not None:
                os.fchown(fd, 0, account.gid)
            # Our copy of the listener closes with this block: once the server is gone,
            # connections are refused rather than queued for nobody.
            proc = subprocess.Popen(cmd, cwd=workdir, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env,
                                    pass_fds=(listener.fileno(),), **run_as)
        self._children[proc.pid] = proc
        inst = {"pid": proc.pid, "socket": str(sock_path), "version": version,
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
        self.log.info("deployment %s: started version %s as pid %d on %s", deployment,
                      version, proc.pid, sock_path)
        try:
            await self._wait_ready(proc, inst)
        except BaseException:
            self._kill(proc)
            self._drop_model(inst)
            raise
        return inst

    # --- unix sockets ----------------------------------------------------------------------

    def _dir_fd(self) -> int:
        """A descriptor of ``socket_dir``, made 0700 for this process's user."""
        if self._socket_dir_fd is None:
            d = Path(self.socket_dir)
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            st = os.fstat(fd)
            if st.st_uid != os.geteuid():  # fail closed: someone else's directory
                os.close(fd)
                raise LoadFailed(f"{d} belongs to uid {st.st_uid}, not to the control plane")
            os.chmod(f"/proc/self/fd/{fd}", 0o700)  # the directory just checked
            self._socket_dir_fd = fd
        return self._socket_dir_fd

    def _address(self, path: str | Path) -> str:
        """Where to bind or connect ``path``: itself, or when too long for a socket address,
        the same file through ``/proc/self/fd/<socket_dir's descriptor>``."""
        path = str(path)
        if len(os.fsencode(path)) <= SUN_PATH_MAX:
            return path
        return f"/proc/self/fd/{self._dir_fd()}/{os.path.basename(path)}"

    def _listen(self, path: Path) -> socket.socket:
        self._dir_fd()
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self._address(path))
            listener.listen(1024)
        except OSError as e:
            listener.close()
            raise LoadFailed(f"cannot listen on {path}: {e}") from None
        return listener

    def socket(self, instance: dict) -> str:
        """The address the control plane connects to (empty for a server on a TCP port,
        started by an earlier version of the platform)."""
        return self._address(instance["socket"]) if instance.get("socket") else ""

    def url(self, instance: dict) -> str:
        if instance.get("socket"):
            return "http://model-server"  # the host part is not used on a unix socket
        return f"http://{instance['host']}:{instance['port']}"

    def _http(self, instance: dict, timeout: float) -> AsyncTransport:
        """The model server's own address (``/ping`` only: predictions go through the
        control plane's proxy); answers come back whatever their status."""
        return AsyncTransport(ClientConfig(self.url(instance), timeout=timeout,
                                           uds=self.socket(instance) or None,
                                           name="model server"))

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
        """What a stopped server leaves: its socket, its copy of the model, its cgroup."""
        if instance.get("socket"):
            Path(instance["socket"]).unlink(missing_ok=True)
        if instance.get("model_copy"):
            shutil.rmtree(instance["model_copy"], ignore_errors=True)
        if (group := self._group_of(instance)) is not None:
            group.remove()

    async def _wait_ready(self, proc: subprocess.Popen, inst: dict) -> None:
        deadline = time.monotonic() + self.start_timeout
        async with self._http(inst, 2.0) as http:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    group = self._group_of(inst)
                    if group is not None and (why := group.out_of_memory("the model server")):
                        raise LoadFailed(why, _tail(inst["log"]))
                    raise LoadFailed(f"the model server {describe_exit(proc.returncode)}",
                                     _tail(inst["log"]))
                try:
                    r = await http.request("GET", "ping", check=False)
                    if r.status_code == 200:
                        return
                except Unavailable:  # not listening yet
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
            self._exits.pop(instance["pid"], None)
            self._drop_model(instance)

    async def kill(self, instance: dict) -> None:
        """Stop a server that no longer answers: no draining, SIGKILL at once."""
        if self._running(instance["pid"]):
            try:
                os.kill(instance["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        await self.stop(instance)

    def exit_reason(self, instance: dict) -> str | None:
        """``None`` while the server runs; else why it ended (``killed by signal 9
        (SIGKILL)``), as far as this control plane can tell."""
        pid = instance["pid"]
        if pid in self._exits:
            return self._exits[pid]
        child = self._children.get(pid)
        if child is not None:
            if child.poll() is None:
                return None
            self._children.pop(pid, None)
            group = self._group_of(instance)
            why = (group.out_of_memory("the model server") if group is not None else "") or \
                describe_exit(child.returncode)
        elif self._running(pid):
            return None
        else:
            why = "exited (its exit status is unknown: an earlier control plane started it)"
        self._exits[pid] = why
        return why

    async def answers(self, instance: dict, timeout: float) -> bool:
        """Whether the server answers ``/ping`` within ``timeout`` seconds."""
        try:
            async with self._http(instance, timeout) as http:
                return (await http.request("GET", "ping", check=False)).status_code == 200
        except MlopsError:
            return False

    def supervision(self) -> SupervisionPolicy:
        """How the control plane supervises these servers (this backend's settings)."""
        return SupervisionPolicy(
            probe_interval=self.probe_interval, probe_timeout=self.probe_timeout,
            unresponsive_after=self.unresponsive_after, backoff=self.restart_backoff,
            backoff_max=self.restart_backoff_max)

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
        return self._running(instance["pid"]) and await self.answers(instance, 3.0)

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
        # What servers that are gone left behind: sockets, model copies, empty cgroups.
        sockets = {i.get("socket") for i in keep}
        for s in Path(self.socket_dir).glob("*") if Path(self.socket_dir).is_dir() else ():
            if str(s) not in sockets and s.is_socket():
                s.unlink(missing_ok=True)
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
        from .hub_tokens import HubTokenIssuer
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
