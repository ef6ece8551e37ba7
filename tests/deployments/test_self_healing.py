"""Model servers on the real platform heal, and nobody reaches them but the control plane.

A real model server killed with SIGKILL while it serves real traffic through the control plane:
nobody acts, yet within 30 s it serves again; requests meanwhile fail with a JSON 503 that says
why, never a hang or an HTML page; the REST answer shows the restart as it happens and the
audit log keeps it. Then the door: the server listens on a unix socket in a directory only the
platform's user may enter, so another local account (or even the account the server runs as)
is refused at ``connect``, while a project member through the control plane gets an answer.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import psutil
import requests

from jupyter_mlops.backends.accounts import UserAccounts
from tests.fixtures import until

from .test_endpoints import API, ENDPOINT, invoke, model_server_pid, split_body, wait_status

CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(type(e).__name__, e)
    sys.exit(1)
s.sendall(b"GET /ping HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
print(s.recv(100).decode(errors="replace"))
"""


def test_a_model_server_killed_while_serving_serves_again(platform, registry):
    admin = platform.admin_token()
    r = platform.api("POST", API, admin, json={"name": "heal-lr", "model_name": "lr",
                                               "version": 1})
    assert r.status_code == 201, r.text
    try:
        assert wait_status(platform, admin, "heal-lr", {"ready", "failed"})["status"] == "ready"
        body = split_body(registry["probe"])
        answers, stop = [], threading.Event()

        def load():
            s = requests.Session()
            s.headers["Authorization"] = f"token {admin}"
            while not stop.is_set():
                try:
                    r = s.post(f"{platform.url}/{ENDPOINT}/heal-lr/invocations", json=body,
                               timeout=30)
                    answers.append((time.monotonic(), r.status_code,
                                    r.headers.get("Content-Type", ""), r.text))
                except requests.RequestException as e:  # a hang or a reset: what must not be
                    answers.append((time.monotonic(), 0, "", repr(e)))
                if answers[-1][1] != 200:
                    time.sleep(0.05)  # as a client told "try again in a few seconds" would

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            until(lambda: sum(a[1] == 200 for a in answers) >= 10, 30, "served under load",
                  every=0.1)
            pid = model_server_pid(platform, "heal-lr")
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)

            seen = []  # what the REST answer said while it healed

            def healed():
                dep = platform.api("GET", f"{API}/heal-lr", admin).json()
                seen.append((dep["status"], dep["replicas"], (dep["server"] or {}).get(
                    "summary")))
                return dep if dep["status"] == "ready" and dep["server"]["restarts"] >= 1 \
                    else None

            dep = until(healed, 30, "ready again", every=0.1)
            healed_after = time.monotonic() - killed_at
            # later requests succeed: wait for ten answered after it said ready
            until(lambda: sum(a[1] == 200 and a[0] > killed_at + healed_after
                              for a in answers) >= 10, 30, "served again", every=0.1)
        finally:
            stop.set()
            for t in threads:
                t.join()
        print(f"model server killed with SIGKILL: ready again after {healed_after:.1f} s")
        assert healed_after < 30
        assert model_server_pid(platform, "heal-lr") != pid
        assert dep["serving_version"] == "1" and dep["replicas"] == 1
        assert dep["server"]["last_exit"] == "killed by signal 9 (SIGKILL)"
        assert ("restarting", 0, "restarting, attempt 1, last exit: killed by signal 9 "
                                 "(SIGKILL)") in seen, seen

        # Every request got an answer; those that failed, a JSON 503 saying why.
        failed = [a for a in answers if a[1] != 200]
        assert failed, "no request met the restart: the test proves nothing"
        assert {a[1] for a in failed} == {503}, failed[:5]
        assert all(a[2].startswith("application/json") for a in failed), failed[:5]
        import json

        reasons = [json.loads(a[3])["message"] for a in failed]
        assert all("heal-lr" in m and "try again" in m for m in reasons), reasons[:5]
        assert any("killed by signal 9" in m for m in reasons), reasons[:5]
        print(f"{len(failed)} of {len(answers)} requests failed (JSON 503) during the restart")
        assert {a[1] for a in answers if a[0] > killed_at + healed_after} == {200}
        r = invoke(platform, admin, "heal-lr", body)
        assert r.status_code == 200 and r.json()["predictions"] == registry["v1"]

        events = platform.api("GET", f"{API}/heal-lr/events", admin).json()["events"]
        story = [(e["action"], e["actor"], e["model_version"]) for e in events]
        assert story[-2:] == [("server_exited", "system", "1"), ("restarted", "system", "1")]
        assert "killed by signal 9 (SIGKILL)" in events[-2]["detail"]
        assert "after 1 attempt(s)" in events[-1]["detail"]
        print(events[-2]["detail"], "|", events[-1]["detail"],
              f"| noticed {events[-2]['at'] - (time.time() - (time.monotonic() - killed_at)):.1f}"
              " s after the kill")
    finally:
        assert platform.api("DELETE", f"{API}/heal-lr", admin).status_code == 204


def test_model_servers_answer_only_through_the_control_plane(platform, registry):
    assert os.geteuid() == 0, "this test needs the platform to run as root (CI does)"
    platform.add_user("sock-owner", "sock-owner-password-1")
    platform.add_user("sock-peer", "sock-peer-password-1")
    owner, peer = platform.token("sock-owner"), platform.token("sock-peer")
    r = platform.api("POST", API, owner, json={"name": "sock-lr", "model_name": "lr",
                                               "version": 1})
    assert r.status_code == 201, r.text
    try:
        assert wait_status(platform, owner, "sock-lr", {"ready", "failed"})["status"] == "ready"
        server = psutil.Process(model_server_pid(platform, "sock-lr"))
        assert server.net_connections(kind="inet") == []  # no TCP port at all
        listening = [c.laddr for c in server.net_connections(kind="unix") if c.laddr]
        assert len(listening) == 1, listening
        sock = Path(listening[0])
        st = sock.parent.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700)

        accounts = UserAccounts(platform.data_dir / "users")
        for account in (accounts.account("sock-peer"), accounts.account("sock-owner")):
            # another local account, and the very account the server runs as
            r = subprocess.run(["/usr/bin/python3", "-c", CONNECT, str(sock)],
                               capture_output=True, text=True, timeout=30,
                               user=account.uid, group=account.gid,
                               extra_groups=list(account.groups))
            assert r.returncode == 1 and r.stdout.startswith("PermissionError"), \
                (account.name, r.stdout, r.stderr)
        # the platform itself reaches it there (so the refusals above are about who asks)
        r = subprocess.run(["/usr/bin/python3", "-c", CONNECT, str(sock)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.startswith("HTTP/1.1 200"), r.stdout + r.stderr

        # A member of the project (default), not its owner, through the control plane: served.
        r = invoke(platform, peer, "sock-lr", split_body(registry["probe"]))
        assert r.status_code == 200 and r.json()["predictions"] == registry["v1"], r.text
    finally:
        assert platform.api("DELETE", f"{API}/sock-lr", owner).status_code == 204
