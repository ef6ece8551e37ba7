"""Idle GPU servers on a real hub: the holder is nudged in the lab's feed, keeps the GPU once,
and the server is released by itself; simulated devices whose utilisation the test changes
through the inventory file (the control plane's ``MlopsService.gpu_devices_file``)."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.fixtures import until
from tests.spawner.hubfixture import SpawnerHub, shared_tmpdir

HOLDER, OTHER = "tamsin", "rufus"  # unique across test modules
API = "/services/mlops/api"


def write_devices(path, utilization):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"name": "Simulated A100", "utilization_pct": utilization}] * 2))
    os.replace(tmp, path)  # the control plane never reads half a file


@pytest.fixture(scope="module")
def hub():
    data = shared_tmpdir("culling")
    devices = data / "gpus.json"
    write_devices(devices, None)  # unknown utilisation: the activity rule
    settings = f"""
cp = next(s for s in c.JupyterHub.services if s['name'] == 'mlops')
cp['command'] += ['--GpuCulling.idle_minutes=0.5', '--GpuCulling.warning_minutes=0.4',
                  '--GpuCulling.interval_seconds=1', '--PlatformAdmin.usage_sync_seconds=1',
                  '--MlopsService.gpu_devices_file={devices}']
"""
    h = SpawnerHub(data, settings=settings).start()
    h.devices = devices
    for u in (HOLDER, OTHER):
        h.add_user(u, f"{u}-password-1")
    try:
        yield h
    finally:
        h.stop()
        shutil.rmtree(h.data_dir, ignore_errors=True)


def feed(hub, token, kind):
    r = hub.api("GET", f"{API}/notifications", token)
    assert r.status_code == 200, r.text
    return [n for n in r.json()["notifications"] if n["kind"] == kind]


def test_idle_gpu_server_is_nudged_kept_once_then_released(hub):
    mine, other, admin = hub.token(HOLDER), hub.token(OTHER), hub.token("admin")
    # Given tamsin's GPU server, idle from the start (nobody uses it)
    assert hub.spawn(HOLDER, "gpu-1").status_code in (201, 202), hub.hub_log()
    hub.wait_ready(HOLDER)
    # Then she is nudged in her feed, with the keep link, under the activity rule
    nudge = until(lambda: feed(hub, mine, "gpu.idle"), 60, "idle-GPU notification")[0]
    assert "your GPU has been idle" in nudge["message"] and "will be released in" in \
        nudge["message"]
    assert nudge["link"] == f"/services/mlops/gpus/keep/{HOLDER}"
    idle = hub.api("GET", f"{API}/gpus/idle", admin).json()["servers"]
    assert [(s["owner"], s["rule"], s["warned"]) for s in idle] == [(HOLDER, "activity", True)]
    # When rufus asks to keep her server (a valid request): absent for him
    r = hub.api("POST", f"{API}/gpus/idle/{HOLDER}/keep", other)
    assert r.status_code == 404, r.text
    assert hub.api("GET", f"{API}/gpus/idle", other).status_code == 403
    # and she keeps it: the idle clock starts again
    r = hub.api("POST", f"{API}/gpus/idle/{HOLDER}/keep", mine)
    assert r.status_code == 200 and r.json() == {"owner": HOLDER, "kept": True}, r.text
    idle = hub.api("GET", f"{API}/gpus/idle", admin).json()["servers"]
    assert idle[0]["warned"] is False and idle[0]["idle_minutes"] < 0.3
    # When the inventory reads the devices' utilisation, that rule is in force
    write_devices(hub.devices, 0)
    until(lambda: hub.api("GET", f"{API}/gpus/idle", admin).json()["servers"][0]["rule"]
          == "gpu-utilisation", 30, "the GPU-utilisation rule in force")
    page = hub.login("admin", hub.admin_password).get(f"{hub.url}/services/mlops/admin")
    assert "GPU servers and their idle rule" in page.text and "gpu-utilisation" in page.text
    # Then, idle at 0 %, the server is released by itself and the release recorded
    hub.wait_stopped(HOLDER, timeout=90)
    culls = hub.api("GET", f"{API}/gpus/idle", admin).json()["culls"]
    assert [(c["owner"], c["rule"], c["gpus"]) for c in culls] == [
        (HOLDER, "gpu-utilisation", 1)]
    assert culls[0]["idle_minutes"] >= 0.5
    gone = until(lambda: feed(hub, mine, "gpu.released"), 30, "release notification")[0]
    assert "files are kept" in gone["message"]
    gpus = hub.api("GET", f"{API}/gpus", admin).json()
    assert gpus["free"] == gpus["total"] == 2
