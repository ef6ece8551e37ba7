"""CPU and memory limits for local processes through cgroups (v2, or v1 ``memory`` + ``cpu``).

User servers: the hub (root) creates ``jupyter-mlops-user-<platform>-<account>`` with the
profile's limits (``<platform>``: :func:`platform_tag` of the workspace root); the
server's process joins it between fork and exec (``join`` runs in the child, still as root), so
everything the user starts from the server (kernels, terminals) is counted and capped together.

Jobs and model servers: the control plane starts them with ``subprocess``'s own user switch
(no Python between fork and exec: it has threads), so it moves the new process in from outside
(``add``) and the process, before it runs anything of the user's, waits until it is inside
(``wait_until_joined``, told the group's name in ``$JUPYTER_MLOPS_CGROUP``). Nothing the job
starts can therefore escape the limit by forking early.

A group is one scheduling entity: under contention it gets CPU in proportion to its weight, not
to how many threads it runs. The weight is the profile's CPU guarantee (else its limit) in
CPUs, so a 2-CPU server weighs as much as two busy processes outside any group; with the
default weight (one CPU) a user's whole tree would count as one process and starve on a busy
machine. Groups sit directly under the controller's root, not under a common parent: a parent
would put all users together at the weight of one process (measured: JupyterLab's start took
1.8x longer on a loaded machine that way).
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

PERIOD_US = 100_000  # the CFS period the CPU quota is expressed in (the kernel's default)
PREFIX = "jupyter-mlops-"
ENV = "JUPYTER_MLOPS_CGROUP"  # the group a started process must be in before it goes on


def platform_tag(path) -> str:
    """Six hex digits naming the platform a directory of it belongs to, for group names.

    Several platforms can share a machine (a test run and a demo, two labs): groups are
    created under the controller's root, so each name carries the platform's tag, and one
    platform never writes another's limits or removes its groups.
    """
    return hashlib.blake2s(str(Path(path).resolve()).encode(), digest_size=3).hexdigest()


class CgroupLimits:
    def __init__(self, dirs: list[Path], version: int):
        self.dirs = dirs
        self.version = version

    @classmethod
    def create(cls, root: str, name: str, *, cpu: float | None, memory: int | None,
               cpu_weight: float | None = None, log=None) -> "CgroupLimits | None":
        """Create and configure the group; ``None`` when cgroups are absent or not writable.

        ``cpu`` caps CPUs (a CFS quota), ``memory`` bytes, ``cpu_weight`` (in CPUs, default
        ``cpu``) is the share under contention.
        """
        base = Path(root)
        weight = cpu_weight or cpu
        try:
            if (base / "cgroup.controllers").exists():
                return cls._create_v2(base, name, cpu, memory, weight)
            if (base / "memory").is_dir() or (base / "cpu").is_dir():
                return cls._create_v1(base, name, cpu, memory, weight)
        except OSError as e:
            if log:
                log.warning("cgroup limits unavailable under %s: %s", root, e)
        return None

    @classmethod
    def _create_v2(cls, base: Path, name: str, cpu, memory, weight) -> "CgroupLimits":
        # Controllers must be enabled in the parent's subtree_control to be usable below.
        (base / "cgroup.subtree_control").write_text("+memory +cpu")
        d = base / f"{PREFIX}{name}"
        d.mkdir(exist_ok=True)
        (d / "memory.max").write_text(str(memory) if memory else "max")
        (d / "cpu.max").write_text(f"{int(cpu * PERIOD_US)} {PERIOD_US}" if cpu else
                                   f"max {PERIOD_US}")
        if weight:  # cpu.weight: 100 is one ordinary process
            (d / "cpu.weight").write_text(str(max(1, min(10000, int(weight * 100)))))
        return cls([d], 2)

    @classmethod
    def _create_v1(cls, base: Path, name: str, cpu, memory, weight) -> "CgroupLimits":
        dirs = []
        if memory and (base / "memory").is_dir():
            d = base / "memory" / f"{PREFIX}{name}"
            d.mkdir(exist_ok=True)
            (d / "memory.limit_in_bytes").write_text(str(memory))
            dirs.append(d)
        if (cpu or weight) and (base / "cpu").is_dir():
            d = base / "cpu" / f"{PREFIX}{name}"
            d.mkdir(exist_ok=True)
            (d / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (d / "cpu.cfs_quota_us").write_text(str(int(cpu * PERIOD_US)) if cpu else "-1")
            # cpu.shares: 1024 is one ordinary process
            (d / "cpu.shares").write_text(str(max(2, int((weight or 1) * 1024))))
            dirs.append(d)
        return cls(dirs, 1)

    @classmethod
    def existing(cls, root: str, name: str) -> "CgroupLimits | None":
        """The group ``name`` made earlier (by this or a previous control plane), if any."""
        base = Path(root)
        if (base / "cgroup.controllers").exists():
            d = base / f"{PREFIX}{name}"
            return cls([d], 2) if d.is_dir() else None
        dirs = [base / c / f"{PREFIX}{name}" for c in ("memory", "cpu")]
        dirs = [d for d in dirs if d.is_dir()]
        return cls(dirs, 1) if dirs else None

    @property
    def name(self) -> str:
        return self.dirs[0].name if self.dirs else ""

    def env(self) -> dict:
        """What a process started for this group waits on (see ``wait_until_joined``)."""
        return {ENV: f"{self.name}:{len(self.dirs)}"}

    def add(self, pid: int) -> None:
        """Move process ``pid`` (not its existing children) into the group."""
        for d in self.dirs:
            with open(d / "cgroup.procs", "w") as f:
                f.write(str(pid))

    def oom_kills(self) -> int:
        """How many processes the kernel killed for going over the group's memory limit."""
        for d in self.dirs:
            for fname in ("memory.events", "memory.oom_control"):  # v2, v1
                try:
                    m = re.search(r"^oom_kill (\d+)", (d / fname).read_text(), re.M)
                except OSError:
                    continue
                if m:
                    return int(m.group(1))
        return 0

    def out_of_memory(self, what: str) -> str:
        """"out of memory: <what> went over its limit of N" once the kernel killed something
        here for it, else ""; N is the limit the group holds (not today's setting)."""
        if not self.oom_kills():
            return ""
        limit = 0
        for d in self.dirs:
            for fname in ("memory.max", "memory.limit_in_bytes"):
                try:
                    limit = int((d / fname).read_text())
                except (OSError, ValueError):
                    continue
        size = f"{limit / 2**30:.3g} GiB" if limit >= 2**30 else f"{limit / 2**20:.0f} MiB"
        return f"out of memory: {what} went over its limit of {size}"

    def join(self) -> None:
        """Move the calling process into the group (between fork and exec: no logging)."""
        for d in self.dirs:
            with open(d / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

    def limits(self) -> dict:
        """What the kernel holds now, for tests and the admin page."""
        out = {}
        for d in self.dirs:
            for fname in ("memory.max", "cpu.max", "cpu.weight", "memory.limit_in_bytes",
                          "cpu.cfs_quota_us", "cpu.shares"):
                if (d / fname).exists():
                    out[fname] = (d / fname).read_text().strip()
        return out

    def remove(self) -> None:
        """Remove the group once empty (the kernel refuses while processes remain)."""
        for d in self.dirs:
            try:
                d.rmdir()
            except OSError:
                pass


def wait_until_joined(timeout: float = 10.0) -> None:
    """Block until this process is in the group ``$JUPYTER_MLOPS_CGROUP`` names (when set).

    The process that started us moves us in right after the fork (``CgroupLimits.env``); a
    process started without limits has no such variable and goes on at once. Raises
    ``RuntimeError`` if the move never comes, rather than running unconfined.
    """
    value = os.environ.pop(ENV, "")
    if not value:
        return
    name, _, count = value.rpartition(":")
    deadline = time.monotonic() + timeout
    while _memberships(name) < int(count):  # cgroup v1: one line per controller
        if time.monotonic() > deadline:
            raise RuntimeError(f"this process was not moved into its resource limits ({name})")
        time.sleep(0.005)


def _memberships(name: str) -> int:
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    return sum(1 for line in lines if line.endswith(f"/{name}"))
