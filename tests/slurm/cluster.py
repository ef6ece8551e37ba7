"""A real single-machine Slurm cluster for the tests: munged, slurmctld and slurmd.

Everything lives in one scratch directory (keys, sockets, state, logs, configuration) and on
free ports, so nothing of the machine's own ``/etc/slurm`` or ``/run/munge`` is used or
changed, and the cluster dies with the session. Slurm's commands find it through
``SLURM_CONF`` (the backend's ``slurm_conf``); munge through ``AuthInfo=socket=...``.

What it declares: this machine as one node with 2 CPUs and ``Gres=gpu:a100:2``, two fake GPUs
as GRES. Slurm only accepts GPUs it can see as character devices (``gres.conf`` ``File=``),
so two device nodes made with ``mknod`` (the same numbers as ``/dev/null``) stand in for
``/dev/nvidia0`` and ``/dev/nvidia1``; Slurm then sets ``CUDA_VISIBLE_DEVICES`` for a job as
it would with real GPUs. No cgroups (``proctrack/linuxproc``, ``task/none``): the tests run
in containers where cgroup plugins cannot start. No slurmdbd (it needs MariaDB): finished jobs
are recorded by ``jobcomp/filetxt`` in ``jobcomp.txt`` (without slurmdbd Slurm refuses
``AccountingStorageTRES=gres/gpu``, so those records hold no GPU count).
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

from tests.fixtures import until

GPUS = 2
GPU_TYPE = "a100"
PARTITION = "gpu"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    """munged + slurmctld + slurmd in ``root``; :meth:`start`, then :meth:`stop`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.jobcomp = self.root / "jobcomp.txt"
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        r = self.root
        for d in ("state", "spool", "log", "dev", "munge"):
            (r / d).mkdir(parents=True, exist_ok=True)
        r.chmod(0o755)
        (r / "munge").chmod(0o755)  # every user's sbatch talks to munged's socket
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        munge = pwd.getpwnam("munge")
        for p in (r / "munge", key):
            os.chown(p, munge.pw_uid, munge.pw_gid)
        key.chmod(0o400)
        devices = []
        for i in range(GPUS):
            dev = r / "dev" / f"nvidia{i}"
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # a character device
            devices.append(str(dev))
        (r / "gres.conf").write_text(
            f"NodeName={self.node} Name=gpu Type={GPU_TYPE} File={r}/dev/nvidia[0-{GPUS - 1}]\n")
        self.conf.write_text("\n".join([
            "ClusterName=mlops-test",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"AuthInfo=socket={r}/munge/munge.sock",
            f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={r}/slurmctld.pid",
            f"SlurmdPidFile={r}/slurmd.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log",
            f"SlurmdLogFile={r}/log/slurmd.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "GresTypes=gpu",
            "MpiDefault=none",
            "ReturnToService=2",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={self.jobcomp}",
            # Short timers: the tests wait for events, not for Slurm's defaults.
            "SchedulerParameters=sched_interval=2",
            "KillWait=3",
            "MinJobAge=600",
            "SlurmctldTimeout=10",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs=2 RealMemory=4000 "
            f"Gres=gpu:{GPU_TYPE}:{GPUS} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))
        for f in (self.conf, r / "gres.conf"):
            f.chmod(0o644)

    def start(self, timeout: float = 60) -> "SlurmCluster":
        missing = [c for c in ("munged", "slurmctld", "slurmd", "sbatch")
                   if shutil.which(c) is None]
        if missing:
            raise RuntimeError(f"Slurm is not installed ({', '.join(missing)} missing): "
                               "`make test` installs slurm-wlm and munge")
        self._write_config()
        try:
            self._start_daemons(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_daemons(self, timeout: float) -> None:
        r = self.root
        self._spawn("munged", ["munged", "--foreground",
                               f"--socket={r}/munge/munge.sock",
                               f"--key-file={r}/munge/munge.key",
                               f"--pid-file={r}/munge/munged.pid",
                               f"--seed-file={r}/munge/munged.seed",
                               f"--log-file={r}/munge/munged.log"], user="munge")
        self._until(lambda: (r / "munge" / "munge.sock").exists(), 20, "munged's socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        self._until(self._node_idle, timeout, "the Slurm node to be idle")

    def _spawn(self, name: str, cmd: list[str], **kw) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.env,
                                            start_new_session=True, **kw)
        log.close()

    def _node_idle(self) -> bool:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited ({p.returncode}):\n{self.logs()}")
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env,
                             capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.strip() == "idle"

    def _until(self, check, timeout: float, what: str) -> None:
        """:func:`tests.fixtures.until`, with the daemons' logs when it gives up."""
        try:
            until(check, timeout, what, every=0.2)
        except AssertionError as e:
            raise RuntimeError(f"{e}\n{self.logs()}") from None

    def logs(self, lines: int = 30) -> str:
        out = []
        for f in sorted((self.root / "log").glob("*")):
            out.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace")
                                                     .splitlines()[-lines:]))
        return "\n".join(out)

    def scontrol(self, *args: str) -> str:
        return subprocess.run(["scontrol", *args], env=self.env, capture_output=True,
                              text=True, check=True).stdout

    def stop(self) -> None:
        """Cancel what still runs, then end the daemons (slurmd first: it kills its jobs)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--full", f"--partition={PARTITION}"], env=self.env,
                           capture_output=True)
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            os.killpg(p.pid, 15)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait(5)
