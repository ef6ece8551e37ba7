"""Jobs run as their user's system account (the control plane is root here, as in CI)."""
from __future__ import annotations

import asyncio
import json
import os
import pwd
import stat
import subprocess

import pytest

from jupyter_mlops.core.errors import InvalidInput

from .conftest import caller

PROBE = """
import os, pwd
from pathlib import Path
me = pwd.getpwuid(os.getuid())
print(f"running as uid={os.getuid()} name={me.pw_name} home={os.environ['HOME']}", flush=True)
ds = Path(os.environ["JUPYTER_MLOPS_DATASETS"])
print("dataset says:", (ds / "cells.txt").read_text().strip(), flush=True)
try:
    (ds / "mine.txt").write_text("x")
    print("dataset WRITABLE", flush=True)
except PermissionError:
    print("dataset is read-only", flush=True)
Path("own-output.txt").write_text("written by the job")
print("now reading", SECRET, flush=True)
print(open(SECRET).read())
"""


@pytest.fixture
def root_only():
    assert os.geteuid() == 0, "the isolation tests need root (CI runs as root)"


@pytest.mark.asyncio
async def test_job_runs_as_its_users_account_and_cannot_read_another_workspace(
        quick_lab, root_only):
    lab = quick_lab
    bob = lab.accounts.account("bob")
    secret = lab.root / "users" / "bob" / "secret.txt"
    secret.write_text("bob's notes")
    os.chown(secret, bob.uid, bob.gid)
    secret.chmod(0o600)
    (lab.datasets / "cells.txt").write_text("image-0001.tif\n")

    lab.write("alice", "probe.py", f"SECRET = {str(secret)!r}\n" + PROBE)
    job = lab.jobs.submit(caller("alice"), {"path": "probe.py"})
    done = await lab.wait(job.id)
    log = lab.jobs.logs(caller("alice"), job.id)["text"]
    alice = pwd.getpwnam("jm-alice")
    # it ran as alice's account, at home in her workspace ...
    assert f"running as uid={alice.pw_uid} name=jm-alice" in log, log
    assert f"home={lab.root / 'users' / 'alice'}" in log
    own = lab.root / "users" / "alice" / "own-output.txt"
    assert own.stat().st_uid == alice.pw_uid and stat.S_IMODE(own.stat().st_mode) == 0o600
    # ... read the shared dataset but could not write it ...
    assert "dataset says: image-0001.tif" in log and "dataset is read-only" in log
    assert not (lab.datasets / "mine.txt").exists()
    # ... and was refused bob's file: the job failed on it
    assert done.state == "failed", log
    assert "PermissionError: [Errno 13] Permission denied" in log, log
    assert "bob's notes" not in log

    # The job's directory: alice's group may add files, other users may not even look.
    d = lab.jobs.job_dir(job.id)
    st = d.stat()
    assert st.st_uid == 0 and st.st_gid == alice.pw_gid
    assert stat.S_IMODE(st.st_mode) == 0o1770
    exit_file = (d / "exit.json").stat()
    assert exit_file.st_uid == alice.pw_uid and not exit_file.st_mode & 0o077
    r = subprocess.run(["ls", str(d)], user=bob.uid, group=bob.gid, extra_groups=[],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    # alice cannot replace what the control plane keeps there (sticky directory)
    r = subprocess.run(["rm", "-f", str(d / "output.log")], user=alice.pw_uid,
                       group=alice.pw_gid, extra_groups=[], capture_output=True, text=True)
    assert r.returncode != 0 and (d / "output.log").exists()


TRAP = """
import os, time
from pathlib import Path
d = Path(os.environ["MLOPS_JOB_DIR"])
os.symlink({secret!r}, d / "progress.json")
os.mkfifo(d / "run.json")
print("traps set", flush=True)
time.sleep(2.5)
"""


@pytest.mark.asyncio
async def test_control_plane_never_reads_through_a_jobs_symlink(quick_lab, root_only):
    lab = quick_lab
    # A file only root may read, shaped like what the control plane would show as progress.
    secret = lab.root / "root-only.json"
    secret.write_text(json.dumps({"done": 1, "total": 1, "label": "root's secret"}))
    secret.chmod(0o600)
    lab.write("alice", "trap.py", TRAP.format(secret=str(secret)))
    job = lab.jobs.submit(caller("alice"), {"path": "trap.py"})
    await lab.wait(job.id, states=("running",))
    for _ in range(50):  # the runner passes over the job (every 0.2 s) while traps are set
        if "traps set" in lab.jobs.logs(caller("alice"), job.id)["text"]:
            break
        await asyncio.sleep(0.1)
    done = await lab.wait(job.id, timeout=30)
    assert done.state == "succeeded", done.reason  # the FIFO did not block the runner
    assert "root's secret" not in json.dumps(done.progress)
    assert lab.backend.progress(lab.jobs.job_dir(job.id)) == {}


@pytest.mark.asyncio
async def test_submitting_copies_only_what_the_user_may_read_and_git_runs_as_the_user(
        quick_lab, root_only):
    lab = quick_lab
    alice = lab.accounts.account("alice")
    ws = lab.root / "users" / "alice"
    os.chown(ws, alice.uid, alice.gid)
    # a root-only file inside alice's workspace: the control plane (root) could read it, she
    # cannot, so it is not hers to run (nor to see copied into her job's snapshot)
    hidden = ws / "root_only.py"
    hidden.write_text("print('root secrets')\n")
    hidden.chmod(0o600)
    with pytest.raises(InvalidInput, match="not readable by you"):
        lab.jobs.submit(caller("alice"), {"path": "root_only.py"})
    assert not list((lab.root / "jobs" / ".staging").iterdir())  # nothing left staged
    # her own script in her own git repository: the snapshot records the commit and the diff,
    # git running as her account (as root, git refuses a repository owned by someone else)
    repo = ws / "proj"
    repo.mkdir()
    (repo / "train.py").write_text("print('v1')\n")
    subprocess.run(["chown", "-R", f"{alice.uid}:{alice.gid}", str(repo)], check=True)
    as_alice = {"user": alice.uid, "group": alice.gid, "extra_groups": [], "cwd": repo,
                "env": {**os.environ, "HOME": str(ws)}, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **as_alice)
    subprocess.run(["git", "add", "train.py"], **as_alice)
    subprocess.run(["git", "-c", "user.name=A", "-c", "user.email=a@lab", "commit", "-qm",
                    "first"], **as_alice)
    head = subprocess.run(["git", "rev-parse", "HEAD"], text=True, **as_alice).stdout.strip()
    (repo / "train.py").write_text("print('v2')\n")
    job = lab.jobs.submit(caller("alice"), {"path": "proj/train.py"})
    source = json.loads((lab.root / "jobs" / str(job.id) / "snapshot" / "source.json")
                        .read_text())
    assert source["git_commit"] == head and source["dirty"] is True, source
    snap = lab.root / "jobs" / str(job.id) / "snapshot"
    assert (snap / "train.py").read_text() == "print('v2')\n"
    assert "+print('v2')" in (snap / "diff.patch").read_text()
    await lab.wait(job.id)
