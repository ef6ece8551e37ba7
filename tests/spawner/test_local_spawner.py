"""The local spawner on a real hub: profiles, GPUs from a simulated inventory, isolation."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from jupyter_mlops.backends.limits import platform_tag
from tests.fixtures import until
from tests.spawner.hubfixture import SpawnerHub, shared_tmpdir

USERS = ["alice", "bob", "carol", "dave"]


@pytest.fixture(scope="module")
def hub():
    h = SpawnerHub(shared_tmpdir("spawner"),
                   settings="c.JupyterHub.cleanup_servers = False\n").start()
    for u in USERS:
        h.add_user(u, f"{u}-password-1")
    try:
        yield h
        for u in USERS:
            h.hub("DELETE", f"users/{u}/server")
        for u in USERS:
            h.wait_stopped(u)
    finally:
        h.stop()
        shutil.rmtree(h.data_dir, ignore_errors=True)


def environ(pid: int) -> dict:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(x.decode().split("=", 1) for x in raw if b"=" in x)


def uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))


def as_uid(uid: int, *cmd: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` as a process of that user (same uid and groups as the user's server)."""
    import pwd

    name = pwd.getpwuid(uid).pw_name
    return subprocess.run(["runuser", "-u", name, "--", *cmd], capture_output=True, text=True,
                          timeout=30)


def test_two_gpus_three_users_release_and_restart(hub):
    # Given 2 simulated GPUs, three users each asking for one
    for u in ("alice", "bob"):
        assert hub.spawn(u, "gpu-1").status_code in (201, 202), hub.hub_log()
    a, b = hub.wait_ready("alice"), hub.wait_ready("bob")
    env_a, env_b = environ(a["state"]["pid"]), environ(b["state"]["pid"])
    # Then two get different devices, exclusively
    assert {env_a["CUDA_VISIBLE_DEVICES"], env_b["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}
    assert env_a["NVIDIA_VISIBLE_DEVICES"].startswith("GPU-simulated-")
    assert env_a["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    # and the third waits in the GPU queue, shown her place and who holds the GPUs
    r = hub.spawn("carol", "gpu-1")
    assert r.status_code == 202, r.text
    assert progress_until(hub, "carol", "you are 1st") == (
        "Waiting in the GPU queue: waiting for 1 GPU: 2 of 2 in use (held by someone's server,"
        " by someone's server), you are 1st")
    assert not hub.server_state("carol").get("ready")

    # The control plane sees the same allocations (one database)
    token = hub.token("admin")
    gpus = hub.api("GET", "/services/mlops/api/gpus", token).json()
    assert gpus["total"] == 2 and gpus["free"] == 0
    assert {g["holder"]["username"] for g in gpus["gpus"]} == {"alice", "bob"}

    # When alice stops, her GPU is released and carol's server starts by itself on it
    assert hub.hub("DELETE", "users/alice/server").status_code in (202, 204)
    hub.wait_stopped("alice")
    c = hub.wait_ready("carol")
    assert environ(c["state"]["pid"])["CUDA_VISIBLE_DEVICES"] == env_a["CUDA_VISIBLE_DEVICES"]

    # When the hub dies and restarts, running servers keep their GPUs: nobody gets them twice
    hub.crash()
    hub.start()
    assert hub.server_state("bob").get("ready") and hub.server_state("carol").get("ready")
    r = hub.spawn("dave", "gpu-1")
    assert r.status_code == 202, r.text
    assert "you are 1st" in progress_until(hub, "dave", "you are 1st")
    gpus = hub.api("GET", "/services/mlops/api/gpus", hub.token("admin")).json()
    assert {g["holder"]["username"] for g in gpus["gpus"]} == {"bob", "carol"}
    # and giving up the wait leaves the queue: nothing is held for dave
    assert hub.hub("DELETE", "users/dave/server").status_code in (202, 204)
    hub.wait_stopped("dave")
    gpus = hub.api("GET", "/services/mlops/api/gpus", hub.token("admin")).json()
    assert {g["holder"]["username"] for g in gpus["gpus"]} == {"bob", "carol"}


def progress_until(hub, user: str, text: str, timeout: float = 60) -> str:
    """The first message of the user's spawn progress (the spawn page's event stream) that
    contains ``text``."""
    import json

    seen = []
    with requests.get(f"{hub.url}/hub/api/users/{user}/server/progress", stream=True,
                      headers={"Authorization": f"token {hub.admin_token()}"},
                      timeout=timeout) as r:
        assert r.status_code == 200, r.text
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                seen.append(json.loads(line[5:]).get("message", ""))
                if text in seen[-1]:
                    return seen[-1]
    raise AssertionError(f"{text!r} never in {user}'s spawn progress: {seen}")


def test_isolation_as_root(hub):
    assert os.geteuid() == 0, "the isolation test needs the hub to run as root (CI does)"
    # bob and carol run since the first test (as their own accounts)
    a, d = hub.server_state("bob"), hub.server_state("carol")
    pa, pd = a["state"]["pid"], d["state"]["pid"]
    ua, ud = uid_of(pa), uid_of(pd)
    assert ua != 0 and ud != 0 and ua != ud
    ws = hub.data_dir / "users"
    secret = ws / "carol" / "secret.txt"
    secret.write_text("carol's notes")
    os.chown(secret, ud, ud)
    secret.chmod(0o600)
    # bob's processes cannot read carol's workspace ...
    r = as_uid(ua, "cat", str(secret))
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = as_uid(ua, "ls", str(ws / "carol"))
    assert r.returncode != 0 and "Permission denied" in r.stderr
    # ... nor signal carol's server
    r = as_uid(ua, "kill", "-0", str(pd))
    assert r.returncode != 0 and "not permitted" in r.stderr
    # the shared dataset is readable, not writable
    ds = hub.data_dir / "datasets"
    (ds / "cells.txt").write_text("image-0001.tif\n")
    env = environ(pa)
    assert env["JUPYTER_MLOPS_DATASETS"] == str(ds)
    assert as_uid(ua, "cat", str(ds / "cells.txt")).stdout == "image-0001.tif\n"
    r = as_uid(ua, "touch", str(ds / "mine.txt"))
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = as_uid(ua, "sh", "-c", f"echo x >> {ds / 'cells.txt'}")
    assert r.returncode != 0
    assert (ws / "bob" / "datasets").resolve() == ds.resolve()
    # bob can write his own workspace
    assert as_uid(ua, "touch", str(ws / "bob" / "mine.txt")).returncode == 0


def test_the_terminal_and_kernels_of_a_server_share_one_environment(hub):
    # bob's server runs since the first test, as his own account
    pid = hub.server_state("bob")["state"]["pid"]
    env = environ(pid)
    python_env = env["PATH"].split(os.pathsep)[0]
    # the platform's environment comes first on PATH: a terminal finds its python, pip, mlflow
    r = as_uid(uid_of(pid), "env", f"PATH={env['PATH']}", "sh", "-c",
               "command -v python pip mlflow jupyter-mlops && "
               "python -c 'import jupyter_mlops, mlflow'")
    assert r.returncode == 0, r.stderr
    assert all(line.startswith(python_env + "/") for line in r.stdout.split()), r.stdout
    # and every IPython kernel loads the %mlops magics at start
    assert env["PYTHONSTARTUP"].endswith("jupyter_mlops/magics/kernel_startup.py")


def test_profile_limits_enforced_by_cgroup(hub):
    pid = hub.server_state("carol")["state"]["pid"]
    cgroups = Path(f"/proc/{pid}/cgroup").read_text()
    # the group is this platform's own (another platform's carol has another one)
    group = f"jupyter-mlops-user-{platform_tag(hub.data_dir / 'users')}-jm-carol"
    assert group in cgroups, cgroups
    env = environ(pid)
    assert env["MEM_LIMIT"] == str(2 * 1024**3) and env["JUPYTER_MLOPS_PROFILE"] == "gpu-1"
    mem = Path(f"/sys/fs/cgroup/memory/{group}/memory.limit_in_bytes")
    v2 = Path(f"/sys/fs/cgroup/{group}/memory.max")
    limit = (mem if mem.exists() else v2).read_text().strip()
    assert limit == str(2 * 1024**3)


def test_quota_exceeded_names_quota_and_use(hub):
    # bob holds one GPU (previous test); an administrator caps him at 1
    token = hub.token("admin")
    r = hub.api("PUT", "/services/mlops/api/gpus/quotas/user/dave", token, json={"gpus": 0})
    assert r.status_code == 200, r.text
    hub.hub("DELETE", "users/bob/server")
    hub.wait_stopped("bob")
    r = hub.spawn("dave", "gpu-1")
    assert r.status_code == 403, r.text
    assert r.json()["message"] == ("Cannot start One GPU: GPU quota of user dave is 0; "
                                   "0 in use now, 1 more asked for")
    bad = hub.api("PUT", "/services/mlops/api/gpus/quotas/user/dave", token, json={"gpus": -1})
    assert bad.status_code == 400 and bad.json()["message"] == (
        "a GPU quota is a whole number >= 0 or null, not -1")
    user_token = hub.token("dave")
    assert hub.api("PUT", "/services/mlops/api/gpus/quotas/user/dave", user_token,
                   json={"gpus": 5}).status_code == 403
    hub.api("DELETE", "/services/mlops/api/gpus/quotas/user/dave", token)


def spawn_form(hub, user: str) -> tuple[requests.Session, str]:
    s = hub.login(user, f"{user}-password-1")
    r = s.get(f"{hub.url}/hub/spawn/{user}")
    assert r.status_code == 200, r.text
    return s, r.text


def test_restricted_profiles_hidden_and_refused(hub):
    # dave is in no group: the form offers cpu and gpu-1, not the deep-learning profile
    s, page = spawn_form(hub, "dave")
    assert 'value="cpu"' in page and 'value="gpu-1"' in page
    assert 'value="big"' not in page
    assert re.search(r"\d of 2 GPUs free", page)
    # posting it anyway is refused with the reason, by form and by REST
    r = s.post(f"{hub.url}/hub/spawn/dave", data={"profile": "big", "_xsrf": s.cookies["_xsrf"]})
    assert r.status_code == 403
    assert "profile &#39;big&#39; is not available to dave" in r.text or \
        "profile 'big' is not available to dave" in r.text
    r = hub.spawn("dave", "big")
    assert r.status_code == 403 and "deep-learning" in r.json()["message"]
    assert hub.spawn("dave", "no-such").status_code == 400
    # a member of deep-learning sees it
    hub.hub("POST", "groups/deep-learning/users", json={"users": ["alice"]}).raise_for_status()
    _, page = spawn_form(hub, "alice")
    assert 'value="big"' in page


def test_a_server_that_exits_by_itself_is_reaped_and_stopped_at_once(hub):
    """File > Shut Down (or a crash): no zombie ``jupyterhub-singleuser`` and no server shown
    as ready until the hub's next poll (every 30 s)."""
    import psutil

    assert hub.spawn("alice", "cpu").status_code in (201, 202)
    pid = hub.wait_ready("alice")["state"]["pid"]
    r = hub.api("POST", "/user/alice/api/shutdown", hub.admin_token())
    assert r.status_code == 200, r.text
    until(lambda: not hub.server_state("alice") and not psutil.pid_exists(pid), 10,
          "alice's server gone, its process reaped", every=0.2)


def test_only_the_hub_spawner_allocates_and_the_hub_keeps_no_gpu_state(hub):
    import sqlite3

    # Given the hub's own database: no GPU table (allocations are the control plane's)
    with sqlite3.connect(hub.data_dir / "hub" / "jupyterhub.sqlite") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert "users" in tables and not {"gpu_allocations", "gpu_quotas"} & tables
    url = "/services/mlops/api/gpus/allocations/servers"
    body = {"owner": "dave", "user": "dave", "count": 1}
    # When a user, or an administrator, asks for a server's GPUs with a valid request: 403
    for who in ("dave", "admin"):
        r = hub.api("POST", url, hub.token(who), json=body)
        assert r.status_code == 403, (who, r.text)
        assert hub.api("DELETE", url + "/carol", hub.token(who)).status_code == 403
        assert hub.api("GET", "/services/mlops/api/gpus/availability", hub.token(who),
                       params={"user": "dave"}).status_code == 403
    # Then only the spawner's token does, for one of the user's own servers
    hub.hub("DELETE", "users/carol/server")  # one GPU free, whatever ran before
    hub.wait_stopped("carol")
    spawner = (hub.data_dir / "hub" / "spawner_token").read_text().strip()
    r = hub.api("POST", url, spawner, json={**body, "owner": "carol"})
    assert r.status_code == 400 and "not one of dave's servers" in r.json()["message"], r.text
    r = hub.api("POST", url, spawner, json={**body, "owner": "dave/nb"})
    assert r.status_code == 201, r.text
    assert r.json()["owner"] == "dave/nb" and len(r.json()["gpus"]) == 1
    holders = hub.api("GET", "/services/mlops/api/gpus/allocations", hub.token("admin")).json()
    assert "dave/nb" in {a["owner"] for a in holders["allocations"]}
    r = hub.api("DELETE", url + "/dave%2Fnb", spawner)
    assert r.status_code == 200 and r.json() == {"owner": "dave/nb", "released": 1}, r.text


def test_the_kube_spawner_takes_gpus_from_the_control_plane(hub, tmp_path):
    """The Kubernetes spawner accounts as configure_kubernetes sets it up: the control plane's
    API with the mlops-spawner token, no database of its own (the Kubernetes API simulated)."""
    import asyncio

    from tornado import web
    from traitlets.config import Config

    from jupyter_mlops_spawner.kube import MlopsKubeSpawner
    from tests.kube_fake import KubeFake, use_kubeconfig
    from tests.spawner.kube_helpers import make_spawner

    for u in USERS:  # both simulated GPUs free, whatever ran before
        hub.hub("DELETE", f"users/{u}/server")
    for u in USERS:
        hub.wait_stopped(u)
    admin = hub.token("admin")
    c = Config()
    c.MlopsKubeSpawner.gpu_api_url = f"{hub.url}/services/mlops/"
    c.MlopsKubeSpawner.gpu_api_token = (hub.data_dir / "hub" / "spawner_token").read_text()
    c.MlopsKubeSpawner.gpu_queue = False  # refuse at once instead of waiting in the queue
    c.MlopsKubeSpawner.profiles = [{"slug": "two", "display_name": "Two GPUs", "gpus": 2}]

    def free() -> int:
        r = hub.api("GET", "/services/mlops/api/gpus", admin)
        assert r.status_code == 200, r.text
        return sum(g["free"] for g in r.json()["gpus"])

    async def scenario(fake):
        # Given alice's pod holding both GPUs
        alice = make_spawner("alice", c, profile="two")
        await alice.start()
        assert free() == 0
        # When bob asks for them: refused by the control plane, before any Kubernetes object
        bob = make_spawner("bob", c, profile="two")
        before = len(fake.requests)
        try:
            await bob.start()
            raise AssertionError("bob started without free GPUs")
        except web.HTTPError as e:
            assert e.status_code == 409, e.jupyterhub_message
            assert "no GPU free: 2 asked for, 0 of 2 free" in e.jupyterhub_message
        assert not [r for r in fake.requests[before:] if r[0] == "POST"]
        # Then stopping alice gives them back; a quota refuses before Kubernetes too (403),
        # and bob's quota of 1 is the GPU cap of his namespace
        await alice.stop()
        assert free() == 2
        r = hub.api("PUT", "/services/mlops/api/gpus/quotas/user/bob", admin, json={"gpus": 1})
        assert r.status_code == 200, r.text
        before = len(fake.requests)
        try:
            await bob.start()
            raise AssertionError("bob started over his quota")
        except web.HTTPError as e:
            assert e.status_code == 403, e.jupyterhub_message
            assert "GPU quota of user bob is 1; 0 in use now, 2 more asked for" in \
                e.jupyterhub_message
        assert not [r for r in fake.requests[before:] if r[0] == "POST"]
        ns_config = Config()
        ns_config.merge(c)
        ns_config.MlopsKubeSpawner.enable_user_namespaces = True
        ns_config.MlopsKubeSpawner.user_namespace_template = "jupyter-{username}"
        ns_config.MlopsKubeSpawner.profiles = [{"slug": "cpu", "display_name": "CPU"}]
        bob = make_spawner("bob", ns_config, profile="cpu")
        await bob.start()
        quota = fake.get("resourcequotas", "jupyter-bob", "jupyter-mlops-gpus")
        assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "1"}
        await bob.stop()
        await MlopsKubeSpawner._stop_all_reflectors()

    try:
        with KubeFake(node_gpus=2) as fake, pytest.MonkeyPatch.context() as mp:
            use_kubeconfig(mp, fake.write_kubeconfig(tmp_path / "kubeconfig"))
            asyncio.run(scenario(fake))
    finally:
        hub.api("DELETE", "/services/mlops/api/gpus/quotas/user/bob", admin)
