"""A real JupyterHub with the jupyter-mlops config and a test's own spawner settings.

Like ``tests.fixtures.Platform`` (whose helpers it reuses) but started as ``jupyterhub -f``
with an extra config snippet, so tests can set profiles, simulated GPUs and the spawner class.
MLflow is left out (the spawner does not need it), which keeps a start at ~3 s.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from jupyter_mlops.hub.cli import set_password
from tests.fixtures import SESSION_DIRS, REPO, Platform, free_port, processes_under, until

GPU_PROFILES = [
    {"slug": "cpu", "display_name": "CPU only", "default": True, "cpu_limit": 1,
     "mem_limit": "2G"},
    {"slug": "gpu-1", "display_name": "One GPU", "gpus": 1, "mem_limit": "2G"},
    {"slug": "big", "display_name": "Deep learning (2 GPUs)", "gpus": 2,
     "allowed_groups": ["deep-learning"]},
]


def shared_tmpdir(prefix: str) -> Path:
    """A fresh directory other users can traverse.

    Not under pytest's /tmp/pytest-of-root: pytest resets that to 0700 at every session start
    (and other test sessions run in parallel), which would lock the per-user accounts out.
    """
    d = Path(tempfile.mkdtemp(prefix=f"mlops-{prefix}-", dir="/tmp"))
    d.chmod(0o711)
    SESSION_DIRS.append(d)  # checked for processes left running when the session ends
    return d


class SpawnerHub(Platform):
    def __init__(self, data_dir: Path, settings: str = "", gpus: int = 2,
                 profiles=GPU_PROFILES, keep_mlflow: bool = False):
        super().__init__(data_dir)
        self.settings = settings
        self.gpus = gpus
        self.profiles = profiles
        self.keep_mlflow = keep_mlflow
        self.hub_port = free_port()
        self.admin_password = secrets.token_urlsafe(12)
        self.log_file = None

    def config_text(self) -> str:
        keep = "" if self.keep_mlflow else (
            "c.JupyterHub.services = [s for s in c.JupyterHub.services if s['name'] in ('mlops', 'mlops-spawner')]\n")
        return f"""
c.MlopsHub.data_dir = {str(self.data_dir)!r}
c.MlopsHub.public_url = {self.url!r}
c.MlopsHub.gpu_devices = {[{"name": "Simulated A100"}] * self.gpus!r}
from jupyter_mlops.hub.config import configure_hub
configure_hub(c)
{keep}
# Fixed internal address: servers left running across a hub restart can reach it again.
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{self.hub_port}"
c.MlopsLocalSpawner.profiles = {self.profiles!r}
c.JupyterHub.load_groups["deep-learning"] = {{"users": []}}
{self.settings}
"""

    def start(self, timeout: float = 60) -> "SpawnerHub":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "hub").mkdir(exist_ok=True)
        cfg = self.data_dir / "test_hub_config.py"
        cfg.write_text(self.config_text())
        set_password(self.data_dir, "admin", self.admin_password)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        self.log_file = open(self.data_dir / "logs" / "hub.log", "ab")
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
               "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(cfg)], cwd=self.data_dir / "hub",
            stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        def answers() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError("hub exited:\n" + self.hub_log())
            try:
                return requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        try:
            until(answers, timeout, "the hub's API", every=0.2)
        except AssertionError:
            self.stop()
            raise RuntimeError("hub did not start:\n" + self.hub_log()) from None
        self._admin_token = None
        return self

    def stop(self) -> int | None:
        """Stop the hub as ``up`` does (SIGTERM, then its tree), then end whatever else still
        works in the data directory: servers that outlived a ``crash()``, a test's leftovers."""
        from jupyter_mlops.hub import process_tree
        from jupyter_mlops.hub.cli import stop

        if self.proc and self.proc.poll() is None:
            stop(self.proc)
        if self.log_file:
            self.log_file.close()
        process_tree.end(processes_under(self.data_dir))
        return self.proc.returncode if self.proc else None

    def crash(self) -> None:
        """End the hub without letting it clean up (as a power cut of the hub would).

        Its proxy and services go too (they would die with the hub's pod or machine); user
        servers, in sessions of their own, keep running.
        """
        import psutil

        family = psutil.Process(self.proc.pid).children(recursive=True)
        self.proc.kill()
        self.proc.wait()
        for p in family:
            try:
                cmd = " ".join(p.cmdline())
                if "jupyterhub-singleuser" not in cmd:
                    p.kill()
            except psutil.NoSuchProcess:
                pass

    def spawn(self, user: str, profile: str | None = None) -> requests.Response:
        body = {"profile": profile} if profile else {}
        return self.hub("POST", f"users/{user}/server", json=body)

    def server_state(self, user: str) -> dict:
        model = self.hub("GET", f"users/{user}").json()
        return (model.get("servers") or {}).get("", {})

    def wait_ready(self, user: str, timeout: float = 60) -> dict:
        try:
            return until(lambda: (s := self.server_state(user)).get("ready") and s, timeout,
                         f"server of {user} ready", every=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.hub_log()}") from None

    def wait_stopped(self, user: str, timeout: float = 30) -> None:
        until(lambda: not self.server_state(user), timeout, f"server of {user} to stop",
              every=0.2)
