"""Deployments on the real platform: real MLflow registry, real model servers, real hub auth.

One deployment ``lr-prod`` goes through its life in order (the tests of this module depend on
each other's effects, as a user's actions would): deploy v1, predict, switch to v2 under load
without a failed request, try a version that cannot load, survive a control plane restart,
undeploy.
"""
from __future__ import annotations

import io
import threading

import numpy as np
import psutil
import pytest
import requests

from tests.fixtures import until

from .conftest import API, deploy_ready, wait_status

ENDPOINT = "services/mlops/endpoints"


def ended(pid: int) -> bool:
    """The process is gone, or a zombie until its parent reaps it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def invoke(platform, token, name, json=None, headers=None, **kw):
    headers = {"Authorization": f"token {token}", **(headers or {})}
    return requests.post(f"{platform.url}/{ENDPOINT}/{name}/invocations", json=json,
                         headers=headers, timeout=60, **kw)


def split_body(frame):
    return {"dataframe_split": {"columns": list(frame.columns),
                                "data": frame.to_numpy().tolist()}}


def model_server_pid(platform, name) -> int:
    """The model server of ``name`` on this platform (other platforms may run one too)."""
    workdir = str(platform.data_dir.resolve() / "deployments" / name)
    inst = [p for p in psutil.process_iter(["pid", "cmdline", "cwd"])
            if f"--deployment={name}" in " ".join(p.info["cmdline"] or ())
            and p.info["cwd"] == workdir]
    assert len(inst) == 1, [p.info for p in inst]
    return inst[0].info["pid"]


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin_token()


def test_deploy_and_predict(platform, registry, admin):
    r = platform.api("POST", API, admin, json={"name": "lr-prod", "model_name": "lr",
                                               "version": 1})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "starting"
    dep = wait_status(platform, admin, "lr-prod", {"ready", "failed"})
    assert dep["status"] == "ready", dep
    assert dep["serving_version"] == "1" and dep["replicas"] == 1

    probe = registry["probe"]
    r = invoke(platform, admin, "lr-prod", split_body(probe))
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": registry["v1"]}
    assert r.headers["X-Model-Version"] == "1"
    # The other formats of MLflow's scoring protocol answer the same.
    records = {"dataframe_records": probe.to_dict(orient="records")}
    assert invoke(platform, admin, "lr-prod", records).json()["predictions"] == registry["v1"]
    csv = probe.to_csv(index=False).encode()
    r = invoke(platform, admin, "lr-prod", data=csv, headers={"Content-Type": "text/csv"})
    assert r.json()["predictions"] == registry["v1"], r.text
    for action in ("ping", "health", "version", "metrics"):
        assert platform.api("GET", f"{ENDPOINT}/lr-prod/{action}", admin).status_code == 200
    listed = platform.api("GET", API, admin).json()["deployments"]
    mine = [d for d in listed if d["name"] == "lr-prod"]
    assert len(mine) == 1 and mine[0]["traffic"]["requests_per_s"] > 0


def test_bad_requests(platform, registry, admin):
    r = invoke(platform, admin, "lr-prod", data=b'{"dataframe_split": [1,', headers={
        "Content-Type": "application/json"})
    assert r.status_code == 400 and "malformed JSON" in r.json()["message"]
    r = invoke(platform, admin, "lr-prod", {"rows": [[1, 2]]})
    assert r.status_code == 400 and "dataframe_split" in r.json()["message"]
    r = invoke(platform, admin, "lr-prod", {"dataframe_split": {"columns": ["f0"],
                                                                 "data": [[1.0]]}})
    assert r.status_code == 400 and "refused" in r.json()["message"]
    big = b'{"inputs": [' + b"0," * (9 * 1024 * 1024) + b"0]}"  # 18 MiB > the 16 MiB limit
    r = invoke(platform, admin, "lr-prod", data=big, headers={"Content-Type":
                                                              "application/json"})
    assert r.status_code == 413, r.text[:200]
    r = platform.api("POST", API, admin, json={"name": "Bad Name", "model_name": "lr",
                                               "version": 1})
    assert r.status_code == 400 and "lowercase" in r.json()["message"]
    r = platform.api("POST", API, admin, json={"name": "nope", "model_name": "lr",
                                               "version": 99})
    assert r.status_code == 404, r.text
    r = platform.api("POST", API, admin, json={"name": "lr-prod", "model_name": "lr",
                                               "version": 1})
    assert r.status_code == 409


def test_switch_version_under_load_without_a_failed_request(platform, registry, admin):
    body = split_body(registry["probe"])
    seen, failures, stop = [], [], threading.Event()

    def load():
        s = requests.Session()
        s.headers["Authorization"] = f"token {admin}"
        while not stop.is_set():
            r = s.post(f"{platform.url}/{ENDPOINT}/lr-prod/invocations", json=body, timeout=30)
            if r.status_code != 200:
                failures.append((r.status_code, r.text[:200]))
            else:
                seen.append((r.headers["X-Model-Version"], r.json()["predictions"]))

    old = model_server_pid(platform, "lr-prod")
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        until(lambda: seen, 30, "answers of version 1 under load")
        r = platform.api("PATCH", f"{API}/lr-prod", admin, json={"version": 2})
        assert r.status_code == 200 and r.json()["status"] == "updating", r.text
        dep = wait_status(platform, admin, "lr-prod", {"ready", "failed"})
        # the load stays on while the old version drains and stops
        until(lambda: ended(old), 60, "version 1's model server to stop")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert dep["status"] == "ready" and dep["serving_version"] == "2", dep
    assert failures == []
    versions = [v for v, _ in seen]
    assert versions[0] == "1" and versions[-1] == "2"
    # Once version 2 answered, version 1 never answered again, and each answered its own way.
    assert "1" not in versions[versions.index("2"):]
    expected = {"1": registry["v1"], "2": registry["v2"]}
    assert all(p == expected[v] for v, p in seen)


def test_a_version_that_fails_to_load_leaves_the_previous_serving(platform, registry, admin):
    r = platform.api("PATCH", f"{API}/lr-prod", admin, json={"version": 3})
    assert r.status_code == 200, r.text
    dep = wait_status(platform, admin, "lr-prod", {"failed", "ready"}, timeout=120)
    assert dep["status"] == "failed", dep
    assert dep["serving_version"] == "2"
    assert "version 2 keeps serving" in dep["message"]
    assert "weights file is corrupt" in dep["log"]
    r = invoke(platform, admin, "lr-prod", split_body(registry["probe"]))
    assert r.status_code == 200 and r.json()["predictions"] == registry["v2"]

    events = platform.api("GET", f"{API}/lr-prod/events", admin).json()["events"]
    story = [(e["action"], e["model_version"], e["actor"]) for e in events]
    assert story == [("created", "1", "admin"), ("serving", "1", "admin"),
                     ("switched", "2", "admin"), ("serving", "2", "admin"),
                     ("switched", "3", "admin"), ("failed", "3", "system")]


def test_image_model_boxes_and_bad_images(platform, registry, admin):
    from PIL import Image

    deploy_ready(platform, admin, "cells", "cells", "1", visibility="lab")
    img = np.zeros((64, 96, 3), np.uint8)
    img[10:20, 5:15] = 255
    img[40:60, 50:90] = 200
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    r = invoke(platform, admin, "cells", data=buf.getvalue(),
               headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [{"boxes": [[5, 10, 15, 20], [50, 40, 90, 60]],
                                        "scores": [1.0, 1.0], "labels": ["cell", "cell"]}]
    r = invoke(platform, admin, "cells", data=b"\x89PNG not really",
               headers={"Content-Type": "image/png"})
    assert r.status_code == 400 and "malformed image" in r.json()["message"]


def test_auth(platform, registry, admin):
    body = split_body(registry["probe"])
    r = requests.post(f"{platform.url}/{ENDPOINT}/lr-prod/invocations", json=body, timeout=30)
    assert r.status_code == 401, r.text
    r = invoke(platform, "not-a-token", "lr-prod", body)
    assert r.status_code == 401
    # A private deployment of project "vision", which bob is not in.
    r = platform.api("POST", "services/mlops/api/projects", admin,
                     json={"name": "vision", "description": "deployment tests"})
    assert r.status_code in (201, 409), r.text
    r = platform.api("POST", API, admin, json={"name": "vision-lr", "model_name": "lr",
                                               "version": 1, "project": "vision"})
    assert r.status_code == 201, r.text
    platform.add_user("bob", "bob-password-1")
    bob = platform.token("bob")
    r = invoke(platform, bob, "vision-lr", body)
    assert r.status_code == 403 and "private to project 'vision'" in r.json()["message"]
    assert platform.api("GET", f"{API}/vision-lr", bob).status_code == 404
    assert "vision-lr" not in [d["name"] for d in
                               platform.api("GET", API, bob).json()["deployments"]]
    # "cells" is visible to the whole lab: bob may call it, but not change it.
    r = invoke(platform, bob, "cells", {"inputs": [[[0, 255]]]})
    assert r.status_code == 200, r.text
    # A token for an outside client works for its deployment only, and until revoked.
    r = platform.api("POST", f"{API}/lr-prod/tokens", admin, json={"note": "cell counter"})
    assert r.status_code == 201, r.text
    tok = r.json()
    r = requests.post(f"{platform.url}/{ENDPOINT}/lr-prod/invocations", json=body,
                      headers={"Authorization": f"Bearer {tok['token']}"}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(f"{platform.url}/{ENDPOINT}/cells/invocations", json=body,
                      headers={"Authorization": f"Bearer {tok['token']}"}, timeout=30)
    assert r.status_code == 403
    listed = platform.api("GET", f"{API}/lr-prod/tokens", admin).json()["tokens"]
    assert [t["note"] for t in listed] == ["cell counter"] and "token" not in listed[0]
    assert platform.api("DELETE", f"{API}/lr-prod/tokens/{tok['id']}", admin).status_code == 204
    r = requests.post(f"{platform.url}/{ENDPOINT}/lr-prod/invocations", json=body,
                      headers={"Authorization": f"Bearer {tok['token']}"}, timeout=30)
    assert r.status_code == 403


def _control_plane(platform) -> psutil.Process:
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or ())
        if "jupyter_mlops.service " in cmd + " " and \
                f"--MlopsService.data_dir={platform.data_dir}" in cmd:
            return p
    raise AssertionError("no control plane process")


def test_control_plane_restart_keeps_deployments(platform, registry, admin):
    server_pid = model_server_pid(platform, "lr-prod")
    cp = _control_plane(platform)
    cp.terminate()
    until(lambda: ended(cp.pid), 15, "the control plane to end", every=0.1)

    # The hub notices (it polls its services every 30 s) and starts the control plane again.
    def answers() -> bool:
        try:
            return platform.api("GET", "services/mlops/api/status", admin).status_code == 200
        except requests.RequestException:
            return False

    until(answers, 75, "the control plane back", every=0.5)
    assert _control_plane(platform).pid != cp.pid
    r = invoke(platform, admin, "lr-prod", split_body(registry["probe"]))
    assert r.status_code == 200 and r.json()["predictions"] == registry["v2"], r.text
    assert model_server_pid(platform, "lr-prod") == server_pid  # taken over, not restarted
    dep = platform.api("GET", f"{API}/lr-prod", admin).json()
    assert dep["serving_version"] == "2" and dep["status"] == "failed"


def test_undeploy(platform, registry, admin):
    server_pid = model_server_pid(platform, "lr-prod")
    assert platform.api("DELETE", f"{API}/lr-prod", admin).status_code == 204
    assert not psutil.pid_exists(server_pid) or \
        psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
    r = invoke(platform, admin, "lr-prod", split_body(registry["probe"]))
    assert r.status_code == 404
    assert platform.api("GET", f"{API}/lr-prod", admin).status_code == 404
    for name in ("cells", "vision-lr"):
        assert platform.api("DELETE", f"{API}/{name}", admin).status_code == 204
