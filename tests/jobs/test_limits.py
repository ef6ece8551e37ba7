"""Jobs inside their CPU and memory limits: real processes in real cgroups (root, as in CI)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from jupyter_mlops.backends.limits import PREFIX

from .conftest import caller

# Reports where it and a child it starts at once are, then grows past 100 MiB.
HUNGRY = """
import subprocess, sys
print("job in", open("/proc/self/cgroup").read().replace("\\n", " "), flush=True)
child = subprocess.run([sys.executable, "-c", "print(open('/proc/self/cgroup').read())"],
                       capture_output=True, text=True).stdout.replace("\\n", " ")
print("child in", child, flush=True)
b = bytearray(400 * 2**20)
b[::4096] = b"x" * len(b[::4096])
print("survived", flush=True)
"""


@pytest.fixture
def limited(quick_lab):
    assert os.geteuid() == 0, "cgroups need root (CI runs as root)"
    quick_lab.backend.memory_limit = 100 * 2**20
    quick_lab.backend.cpu_limit = 1.0
    return quick_lab


def _groups(name: str) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    return [d for d in (root / name, root / "memory" / name, root / "cpu" / name) if d.is_dir()]


@pytest.mark.asyncio
async def test_a_job_over_its_memory_fails_saying_so(limited):
    lab = limited
    lab.write("alice", "hungry.py", HUNGRY)
    job = lab.jobs.submit(caller("alice"), {"path": "hungry.py"})
    done = await lab.wait(job.id)
    log = lab.jobs.logs(caller("alice"), job.id)["text"]
    name = PREFIX + done.handle["cgroup"]
    assert done.handle["cgroup"].startswith(f"job-{job.id}-")
    # the job and what it started were inside its group from their first instruction ...
    job_line = next(line for line in log.splitlines() if line.startswith("job in"))
    child_line = next(line for line in log.splitlines() if line.startswith("child in"))
    assert f"memory:/{name}" in job_line or f"::/{name}" in job_line, job_line
    assert f"memory:/{name}" in child_line or f"::/{name}" in child_line, child_line
    # ... the kernel stopped it at the limit, and the job says why
    assert "survived" not in log
    assert done.state == "failed"
    assert done.reason.startswith("out of memory: the job went over its limit of 100 MiB"), \
        done.reason
    assert _groups(name) == []  # the group went with the job


@pytest.mark.asyncio
async def test_a_job_within_its_limits_is_not_affected(limited):
    lab = limited
    lab.write("bob", "small.py", "x = bytearray(20 * 2**20)\nprint('fine')\n")
    job = lab.jobs.submit(caller("bob"), {"path": "small.py"})
    done = await lab.wait(job.id)
    assert done.state == "succeeded", lab.jobs.logs(caller("bob"), job.id)["text"]
    assert _groups(PREFIX + done.handle["cgroup"]) == []


@pytest.mark.asyncio
async def test_no_limits_no_group(quick_lab):
    lab = quick_lab
    lab.write("carol", "plain.py", "print(open('/proc/self/cgroup').read())\n")
    job = lab.jobs.submit(caller("carol"), {"path": "plain.py"})
    done = await lab.wait(job.id)
    assert done.state == "succeeded" and done.handle["cgroup"] == ""
    assert PREFIX not in lab.jobs.logs(caller("carol"), job.id)["text"]
