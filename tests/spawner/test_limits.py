"""cgroup limits really hold: real processes in a real cgroup (the hub runs as root here)."""
import os
import subprocess
import sys

import pytest

from jupyter_mlops.backends.limits import CgroupLimits

EAT = "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('survived')"
SPIN = ("import time\nt, s = time.process_time(), time.time()\n"
        "while time.time() - s < 1.5: pass\nprint((time.process_time() - t) / 1.5)")


@pytest.fixture
def group():
    assert os.geteuid() == 0, "creating cgroups needs root (CI runs as root)"
    cg = CgroupLimits.create("/sys/fs/cgroup", f"jm-test-{os.getpid()}", cpu=0.5,
                             memory=100 * 2**20)
    assert cg is not None, "no writable cgroups on this machine"
    yield cg
    cg.remove()


def test_memory_limit_kills_beyond_it(group):
    r = subprocess.run([sys.executable, "-c", EAT], preexec_fn=group.join, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == -9 and "survived" not in r.stdout
    # the same program outside the group is fine
    r = subprocess.run([sys.executable, "-c", EAT], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "survived"


def test_cpu_limit_caps_a_busy_process(group):
    r = subprocess.run([sys.executable, "-c", SPIN], preexec_fn=group.join, capture_output=True,
                       text=True, timeout=60)
    assert float(r.stdout) <= 0.6, r.stdout  # 0.5 CPU allowed (+ scheduler slack)
    limits = group.limits()
    assert limits.get("cpu.cfs_quota_us", limits.get("cpu.max", "").split(" ")[0]) == "50000"
    assert limits.get("cpu.shares", "512") == "512" or limits.get("cpu.weight") == "50"


def test_two_platforms_never_share_a_users_group(tmp_path):
    # Given the same user on two platforms of one machine (their own workspace roots)
    from types import SimpleNamespace

    from jupyter_mlops_spawner import MlopsLocalSpawner

    user = SimpleNamespace(name="carol", groups=[], roles=[])
    names = {MlopsLocalSpawner(user=user, workspace_root=str(tmp_path / p / "users")).cgroup_name
             for p in ("lab", "demo")}
    # Then each platform names its own group, and the same root always the same one
    assert len(names) == 2 and all(n.endswith("-jm-carol") for n in names)
    again = MlopsLocalSpawner(user=user, workspace_root=str(tmp_path / "lab" / "users"))
    assert again.cgroup_name in names
