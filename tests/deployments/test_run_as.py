"""A local model server runs as the account of the user who deployed (the platform is root)."""
from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from .test_endpoints import API, invoke, model_server_pid, split_body, wait_status


def status_ids(pid: int, key: str) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return [int(v) for v in line.split()[1:]]
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def test_model_server_runs_as_the_deployers_account(platform, registry):
    assert os.geteuid() == 0, "this test needs the platform to run as root (CI does)"
    platform.add_user("runa", "runa-password-1")
    runa = platform.token("runa")
    r = platform.api("POST", API, runa, json={"name": "runa-lr", "model_name": "lr",
                                              "version": 1})
    assert r.status_code == 201, r.text
    dep = wait_status(platform, runa, "runa-lr", {"ready", "failed"})
    assert dep["status"] == "ready", dep
    try:
        account = pwd.getpwnam("jm-runa")
        pid = model_server_pid(platform, "runa-lr")
        # real, effective, saved and file-system ids: all runa's account, none root
        assert status_ids(pid, "Uid") == [account.pw_uid] * 4
        assert status_ids(pid, "Gid") == [account.pw_gid] * 4
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        names = {e.split(b"=", 1)[0].decode() for e in environ if e}
        assert "USER=jm-runa".encode() in environ
        assert not {n for n in names if n.startswith(("JUPYTERHUB_", "AWS_"))}, names
        # it serves the version (from files it may read) ...
        r = invoke(platform, runa, "runa-lr", split_body(registry["probe"]))
        assert r.status_code == 200 and r.json()["predictions"] == registry["v1"], r.text
        # ... its directory is closed to other users; its log stays the control plane's
        workdir = platform.data_dir / "deployments" / "runa-lr"
        st = workdir.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, account.pw_gid, 0o750)
        logs = sorted(workdir.glob("version-1-*.log"))
        assert logs and logs[-1].stat().st_uid == 0
        assert "READY unix:" in logs[-1].read_text()  # no TCP port
        copies = list(workdir.glob("model-*"))
        assert len(copies) == 1 and (copies[0] / "MLmodel").exists()
    finally:
        assert platform.api("DELETE", f"{API}/runa-lr", runa).status_code == 204
    assert not list(workdir.glob("model-*"))  # the model's files go with the server
