"""A user's server with a GPU killed: the hub notices by itself, the GPU goes back to the pool
(once), and the user can start the server again and gets a GPU again."""
from __future__ import annotations

import signal

import psutil

from .conftest import API, is_json_error, until


def _server(p, user):
    return p.hub("GET", f"users/{user}").json().get("servers", {}).get("")


def _held_by(p, user):
    r = p.api("GET", f"{API}/gpus/allocations", p.admin_token())
    assert r.status_code == 200, r.text
    return [a for a in r.json()["allocations"]
            if a["owner_kind"] == "server" and a["username"] == user]


def _start_with_a_gpu(p, user, token):
    r = p.hub("POST", f"users/{user}/server", token=token, json={"profile": "gpu-1"})
    assert r.status_code in (201, 202), r.text
    return until(lambda: (s := _server(p, user)) and s.get("ready") and s, 120,
                 f"the server of {user} is ready")


def test_user_server_killed_gives_its_gpu_back_and_starts_again(faulty):
    p = faulty
    p.add_user("uma", "uma-password-1")
    token = p.token("uma")
    server = _start_with_a_gpu(p, "uma", token)
    held = _held_by(p, "uma")
    assert len(held) == 1, held
    pid = server["state"]["pid"]  # the admin sees the spawner's state

    # When the server's processes die (SIGKILL, the whole tree)
    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    for x in procs:
        x.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)

    # Then the user's API calls get a JSON error at once (no hang) that says what to do
    r = p.api("GET", "user/uma/api/status", token)
    assert is_json_error(r, (424, 503)), (r.status_code, r.text[:300])
    assert "running" in r.json()["message"]  # "... no longer running ... Restart the server"
    # The hub notices at its next poll: the server is gone and its GPU is free again
    until(lambda: _server(p, "uma") is None, 60, "the hub notices the server is gone")
    until(lambda: _held_by(p, "uma") == [], 30, "the GPU is released")
    gpus = p.api("GET", f"{API}/gpus", token).json()
    assert gpus["free"] == gpus["total"], gpus

    # And the user starts it again, with one GPU held again
    _start_with_a_gpu(p, "uma", token)
    assert len(_held_by(p, "uma")) == 1
    r = p.api("GET", "user/uma/api/status", token)
    assert r.status_code == 200, r.text[:300]
    p.hub("DELETE", "users/uma/server", token=token)
    until(lambda: _server(p, "uma") is None, 60, "the server stops")
    assert _held_by(p, "uma") == []
