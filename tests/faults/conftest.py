"""Fault injection against a real platform: SIGKILL a component in the middle of real work.

One platform for the whole package (``faulty``), started by ``jupyter-mlops up`` with two
simulated GPUs, so that a kill never disturbs the session platform other test modules share.
Its test-only settings: the hub polls user servers and its managed services every 2 s instead
of 30 s, so a dead one is noticed within seconds (what a kill proves does not depend on how long
the hub takes to look).

Processes are found by what they are, not by port (internal addresses are not stable): the
descendants of ``up`` and every process whose command line names the data directory.
"""
from __future__ import annotations

import json
import shutil
import signal
import time

import psutil
import pytest

from tests.fixtures import (  # noqa: F401 (the suite's modules import until from here)
    PROMPT_SERVICE_RESTARTS, Platform, shared_tmp_dir, until)

API = "services/mlops/api"
GPUS = 2
# The hub notices a dead managed service at its next poll (2 s here), then starts it again;
# MLflow takes up to a minute to answer on a loaded machine.
HEAL_SECONDS = 150


@pytest.fixture(scope="package")
def faulty():
    d = shared_tmp_dir("mlops-faults-")
    config = d / "faults_config.py"
    config.write_text("c.Spawner.poll_interval = 2\n" + PROMPT_SERVICE_RESTARTS)
    p = Platform(d / "data", extra_args=[
        "--gpu-devices", json.dumps([{"name": "Simulated A100"}] * GPUS),
        "--config", str(config)]).start()
    yield p
    p.stop()
    shutil.rmtree(d, ignore_errors=True)


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def platform_processes(platform: Platform) -> list[psutil.Process]:
    """Every live process of ``platform``: ``up``'s descendants and whatever names its data
    directory on its command line."""
    found: dict[int, psutil.Process] = {}
    try:
        for p in psutil.Process(platform.proc.pid).children(recursive=True):
            found[p.pid] = p
    except psutil.NoSuchProcess:
        pass
    data_dir = str(platform.data_dir)
    for p in psutil.process_iter():
        if p.pid not in found and any(data_dir in a for a in _cmdline(p)):
            found[p.pid] = p
    return [p for p in found.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _is(kind: str, argv: list[str]) -> bool:
    joined = " ".join(argv)
    if kind == "control plane":
        return "jupyter_mlops.service" in argv  # ``python -m jupyter_mlops.service``
    if kind == "gateway":
        return "jupyter_mlops.service.mlflow_gateway" in joined
    if kind == "mlflow":  # ``mlflow server`` and the uvicorn server it runs
        return ("mlflow" in joined and " server" in joined) or "uvicorn" in joined
    if kind.startswith("user server "):
        user = kind.removeprefix("user server ")
        return "jupyterhub-singleuser" in joined and f"/user/{user}/" in joined
    raise ValueError(kind)


def component(platform: Platform, kind: str) -> list[psutil.Process]:
    """The processes of one component of ``platform`` (``"mlflow"``, ``"gateway"``,
    ``"control plane"``, ``"user server alice"``)."""
    return [p for p in platform_processes(platform) if _is(kind, _cmdline(p))]


def kill(platform: Platform, kind: str) -> list[int]:
    """SIGKILL every process of a component at once (as the kernel's OOM killer or a
    ``kill -9`` would); their pids."""
    procs = component(platform, kind)
    running = [_cmdline(p) for p in platform_processes(platform)]
    assert procs, f"no {kind} process found among {running}"
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    return [p.pid for p in procs]


def restarted(platform: Platform, kind: str, old: list[int]):
    """The component's processes once the hub started new ones (different pids), else []."""
    return [p for p in component(platform, kind) if p.pid not in old]


def is_json_error(r, status=(502, 503, 504)) -> bool:
    """A clear answer while a component is down: a JSON error with a reason, not an HTML page."""
    if r.status_code not in status or "json" not in r.headers.get("Content-Type", ""):
        return False
    body = r.json()
    return bool(body.get("message") or body.get("error"))
