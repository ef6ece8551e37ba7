"""Real components for the tests: the whole platform started through `jupyter-mlops up`.

Loaded as a pytest plugin for tests/ and ui-tests/ alike (`-p tests.fixtures`). Nothing here
is mocked: a real hub, proxy, control plane, MLflow gateway and MLflow server run in a temporary
data directory on free ports.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Platform:
    """A running `jupyter-mlops up` and helpers to act on it as a user would."""

    def __init__(self, data_dir: Path, port: int | None = None, extra_args=()):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.admin_password: str | None = None
        self.output: list[str] = []
        self._admin_token: str | None = None
        self._passwords: dict[str, str] = {}
        self.leftovers: list[str] = []

    def start(self, timeout: float = 240, sigint_ignored: bool = False) -> "Platform":
        """``sigint_ignored``: start ``up`` as a background job of a non-interactive shell
        would (``nohup ... &``, CI runners): with SIGINT ignored."""
        # Generous: on a loaded 2-core machine MLflow alone can take a minute to answer.
        cmd = [sys.executable, "-m", "jupyter_mlops", "up", "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--timeout", str(timeout), *self.extra_args]
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored \
            else None
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, cwd=REPO,
                                     preexec_fn=ignore)
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            self.output.append(line)
            m = re.match(r"\s+password:\s+(\S+)", line)
            if m:
                self.admin_password = m.group(1)
            if line.startswith("Press Ctrl-C"):
                return self
            if time.monotonic() > deadline:
                break
        self.stop()
        raise RuntimeError("platform did not start:\n" + "".join(self.output) + self.hub_log())

    def hub_log(self, lines: int = 80) -> str:
        p = self.data_dir / "logs" / "hub.log"
        return "\n".join(p.read_text().splitlines()[-lines:]) if p.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop ``up`` with ``sig`` (SIGTERM, as a service manager does); whatever its tree
        still runs afterwards (it should be nothing) is noted in ``leftovers`` and ended, so a
        failing test never leaves processes behind."""
        from jupyter_mlops.hub import process_tree

        if self.proc is None:
            return None
        family = process_tree.descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        left = [p for p in family if process_tree.alive(p)]
        left += [p for p in process_tree.leftovers(self.data_dir) if p not in left]
        left += [p for p in processes_under(self.data_dir) if p not in left]
        self.leftovers = [process_tree.describe(p) for p in left]
        process_tree.end(left)
        return self.proc.returncode

    # --- acting as people -------------------------------------------------------------------

    def login(self, username: str, password: str) -> requests.Session:
        """A browser-like session: GET the login page for _xsrf, POST the form."""
        s = requests.Session()
        s.get(f"{self.url}/hub/login")
        r = s.post(f"{self.url}/hub/login?next=",
                   data={"username": username, "password": password,
                         "_xsrf": s.cookies.get("_xsrf")})
        if "/hub/login" in r.url:
            raise AssertionError(f"login of {username} failed: {r.status_code}")
        return s

    def admin_token(self) -> str:
        if self._admin_token is None:
            self._admin_token = self.token("admin", session=self.login("admin",
                                                                       self.admin_password))
        return self._admin_token

    def token(self, user: str, scopes=None, session: requests.Session | None = None) -> str:
        """A hub API token of ``user`` (issued by the admin unless a session is given)."""
        body = {"note": "tests", "expires_in": 3600}
        if scopes is not None:
            body["scopes"] = list(scopes)
        if session is not None:
            r = session.post(f"{self.url}/hub/api/users/{user}/tokens", json=body,
                             headers={"X-XSRFToken": session.cookies.get("_xsrf")})
        else:
            r = self.hub("POST", f"users/{user}/tokens", json=body)
        r.raise_for_status()
        return r.json()["token"]

    def hub(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        token = token or self.admin_token()
        return requests.request(method, f"{self.url}/hub/api/{path}",
                                headers={"Authorization": f"token {token}"}, timeout=30, **kw)

    def add_user(self, name: str, password: str, groups=()) -> requests.Session:
        """The admin adds ``name``; the user sets a password at first login.

        The platform is shared by a whole test session, so two modules may add the same name:
        the password chosen at the first login stays (as it would for a person).
        """
        password = self._passwords.setdefault(name, password)
        r = self.hub("POST", f"users/{name}")
        assert r.status_code in (201, 409), r.text
        for g in groups:
            self.hub("POST", f"groups/{g}/users", json={"users": [name]}).raise_for_status()
        return self.login(name, password)

    def api(self, method: str, path: str, token: str, **kw) -> requests.Response:
        """Call a route through the public proxy with a hub token."""
        return requests.request(method, f"{self.url}/{path.lstrip('/')}",
                                headers={"Authorization": f"token {token}"}, timeout=60, **kw)

    def start_server(self, user: str, token: str | None = None, timeout: float = 90) -> None:
        r = self.hub("POST", f"users/{user}/server", token=token)
        assert r.status_code in (201, 202, 400), r.text  # 400: already running
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.hub("GET", f"users/{user}").json()
            server = model.get("servers", {}).get("", {})
            if server.get("ready"):
                return
            time.sleep(0.3)
        raise AssertionError(f"server of {user} not ready:\n{self.hub_log()}")


# A config snippet (for ``up --config``) that has the hub check its managed services (MLflow,
# the control plane, the gateway) every 2 s instead of JupyterHub's fixed 30 s, so a test that
# kills one waits seconds, not half a minute, for the hub to start it again. JupyterHub has no
# setting for it: services run under its private ``_ServiceSpawner``, made without the config,
# so a subclass with another default takes its place. Only in the hub's process (the control
# plane reads the file too), and once however often the file is read.
PROMPT_SERVICE_RESTARTS = """
import sys as _sys

if "jupyterhub.app" in _sys.modules:
    from jupyterhub.services import service as _hub_service
    from traitlets import default as _default

    _base = getattr(_hub_service, "_mlops_tests_original_spawner", _hub_service._ServiceSpawner)
    _hub_service._mlops_tests_original_spawner = _base

    class _PromptlyPolledServiceSpawner(_base):
        @_default("poll_interval")
        def _poll_interval_default(self):
            return 2

    _hub_service._ServiceSpawner = _PromptlyPolledServiceSpawner
"""


def processes_under(directory: Path) -> list:
    """Running processes that work in ``directory`` or name it on their command line: a
    platform's hub and proxy, services, user servers and their kernels, jobs. This process
    and its ancestors excepted."""
    import psutil

    from jupyter_mlops.hub import process_tree

    d = str(Path(directory).resolve())
    named = re.compile(re.escape(d) + r"(?=$|[/\s'\",:;])")  # not /tmp/x-1 for /tmp/x-10
    me = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for p in psutil.process_iter(["cwd", "cmdline"]):
        if p.pid in me:
            continue
        cwd, cmd = p.info["cwd"] or "", " ".join(p.info["cmdline"] or [])
        if (cwd == d or cwd.startswith(d + "/") or named.search(cmd)) and process_tree.alive(p):
            found.append(p)
    return found


def until(check, timeout: float, what: str, every: float = 0.3):
    """Poll ``check()`` until it answers something true; that answer, or AssertionError."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


async def until_async(check, timeout: float, what: str, every: float = 0.1):
    """:func:`until` for tests whose event loop must keep running meanwhile (a job runner or
    a deployment rollout in the same loop)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def shared_tmp_dir(prefix: str = "mlops-test-") -> Path:
    """A temporary directory other local users can traverse.

    pytest's own tmp_path lives under /tmp/pytest-of-root (mode 0700); user servers run as
    per-user system accounts and must reach their workspace and the shared dataset inside the
    data directory.
    """
    import tempfile

    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    SESSION_DIRS.append(d)
    return d


# Directories this test session made outside pytest's own tmp_path: checked for processes
# still running in them at the end of the session.
SESSION_DIRS: list[Path] = []


def end_processes_under(*dirs: Path) -> list[str]:
    """End every process still working in ``dirs`` (see :func:`processes_under`); what
    was ended, described (an empty list when the tests left nothing behind)."""
    from jupyter_mlops.hub import process_tree

    left = {p.pid: p for d in dirs for p in processes_under(d)}
    described = [f"{process_tree.describe(p)}: {' '.join(p.cmdline())[:200]}"
                 for p in left.values() if process_tree.alive(p)]
    process_tree.end(left.values())
    return described


@pytest.fixture
def shared_tmp():
    import shutil
    import warnings

    d = shared_tmp_dir()
    yield d
    left = end_processes_under(d)
    if left:
        warnings.warn(f"a test left processes running in {d}, ended now: {left}")
    shutil.rmtree(d, ignore_errors=True)


def pytest_sessionstart(session):
    """SIGTERM (a CI runner's timeout, ``kill``) ends the run as Ctrl-C does, so the session's
    fixtures still stop every platform and server they started: by default Python dies on it
    at once, and a run started in the background has SIGINT ignored."""
    main = os.getpid()

    def interrupt(signum, frame):
        if os.getpid() != main:  # a forked child keeps the default behaviour
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind(tmp_path_factory):
    """Whatever a failed fixture or test left running in this session's directories is
    ended when the session ends (and named in the warnings summary)."""
    import warnings

    yield
    left = end_processes_under(tmp_path_factory.getbasetemp(), *SESSION_DIRS)
    if left:
        warnings.warn(f"processes left running by the tests, ended now: {left}")


@pytest.fixture(scope="session")
def platform():
    """One platform for the whole session (starting one takes ~5 s). The hub restarts a
    killed service within seconds (:data:`PROMPT_SERVICE_RESTARTS`)."""
    import shutil

    d = shared_tmp_dir("mlops-platform-")
    config = d / "session_config.py"
    config.write_text(PROMPT_SERVICE_RESTARTS)
    p = Platform(d / "data", extra_args=["--config", str(config)]).start()
    yield p
    p.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def _restore_mlflow_globals():
    """MLflow keeps the tracking URI and the active experiment in process globals, and
    ``set_tracking_uri`` also writes ``os.environ``: put them back after every test so one
    test's MLflow server never becomes the next test's."""
    env = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    saved = None
    if "mlflow" in sys.modules:
        from mlflow.tracking import fluent
        from mlflow.tracking._tracking_service import utils

        saved = (utils._tracking_uri, fluent._active_experiment_id)
    yield
    if "mlflow" in sys.modules:
        from mlflow.tracking import fluent
        from mlflow.tracking._tracking_service import utils

        utils._tracking_uri, fluent._active_experiment_id = saved or (None, None)
    for k in [k for k in os.environ if k.startswith("MLFLOW_") and k not in env]:
        del os.environ[k]
    os.environ.update(env)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-machine Slurm cluster (munged, slurmctld, slurmd; two fake GPUs as GRES
    ``gpu:a100:2``) for the session: ``tests/slurm/cluster.py``."""
    import shutil

    from tests.slurm.cluster import SlurmCluster

    d = shared_tmp_dir("mlops-slurm-")
    cluster = SlurmCluster(d).start()
    yield cluster
    cluster.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_platform(slurm_cluster):
    """A second platform, started with a ``--config`` file naming the Slurm job backend
    (``c.JobSettings.backend = "slurm"``) on ``slurm_cluster``; shared by the API and browser
    tests of it."""
    import shutil

    d = shared_tmp_dir("mlops-slurm-platform-")
    config = d / "slurm_config.py"
    config.write_text(f'c.JobSettings.backend = "slurm"\n'
                      f'c.SlurmJobBackend.slurm_conf = {str(slurm_cluster.conf)!r}\n'
                      f'c.SlurmJobBackend.gpu_type = "a100"\n')
    p = Platform(d / "data", extra_args=["--config", str(config)]).start()
    yield p
    p.stop()
    shutil.rmtree(d, ignore_errors=True)
