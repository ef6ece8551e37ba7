"""Jobs as local processes: the embedded default.

Each job is ``python -m jupyter_mlops.backends.job_wrapper JOB_DIR`` in a session (and so a
process group) of its own, so it outlives the control plane (and is not hit by signals meant
for it) and can be stopped as a whole: cancel sends SIGTERM to the group, then SIGKILL after a
grace period. GPUs are handed over in ``CUDA_VISIBLE_DEVICES`` / ``NVIDIA_VISIBLE_DEVICES``;
stdout and stderr go to ``JOB_DIR/output.log``.

Who the job runs as: when the control plane is root (the embedded default), the job runs as its
user's account (``jm-<name>``, see :mod:`.accounts`), exactly like the user's server: same uid,
home = workspace, umask 077, so it can read and write that user's workspace and nobody else's,
and reads the shared dataset (root-owned, not writable). Its directory becomes ``root:<the
account's group>``, mode ``1770``: the job can create its outcome files there (``exit.json``,
``progress.json``, ``run.json``, ``report.jsonl``), cannot change or remove what the control
plane put there (``launch.json``, the code snapshot, ``output.log``: sticky bit), and other users
cannot enter it. The control plane reads job-written files without following symlinks
(:mod:`..core.jobs.jobfiles`). Without root, jobs run as the control plane's user, as everything
else does then, and users are not isolated from one another.

CPU and memory limits (``c.JobSettings.cpu_limit`` / ``memory_limit``): as root, each job gets
a cgroup of its own, ``jupyter-mlops-job-<id>-<platform>`` (:mod:`.limits`), holding the wrapper and
everything it starts (the notebook's kernel, data loader workers). A job the kernel kills for
going over its memory fails with that said, not with a bare "killed by signal 9".

The handle kept in the database is ``{"pid", "create_time", "cgroup"}``: after a control plane
restart the job is found again by pid, and the start time guards against a recycled pid.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..core.jobs.jobfiles import read_untrusted
from .accounts import AccountError, SystemAccount, UserAccounts, make_traversable, \
    unreachable_part
from .limits import PREFIX, CgroupLimits, platform_tag


@dataclass
class Exit:
    """How a job ended, as the backend saw it."""

    status: str  # succeeded | failed | cancelled | pruned
    error: str = ""
    returncode: int | None = None
    metrics: dict | None = None
    environment: dict | None = None  # the lock's hash, package count, rebuilt or not
    # When the job's work really started and ended, when the backend knows better than the
    # runner's clock (a Slurm job waits in Slurm's queue after it was submitted).
    started_at: float | None = None
    finished_at: float | None = None


def _read_json(path: Path):
    try:
        return json.loads(read_untrusted(path) or "")
    except ValueError:
        return None


def read_exit(job_dir: Path) -> Exit | None:
    data = _read_json(job_dir / "exit.json")
    if not isinstance(data, dict):
        return None
    env = data.get("environment")
    return Exit(data.get("status", "failed"), data.get("error", ""), data.get("returncode"),
                data.get("metrics") or {},
                {k: env[k] for k in ("hash", "packages", "rebuilt") if k in env}
                if isinstance(env, dict) else {})


def read_progress(job_dir: Path) -> dict:
    data = _read_json(job_dir / "progress.json")
    return data if isinstance(data, dict) else {}


def read_run_info(job_dir: Path) -> dict:
    data = _read_json(job_dir / "run.json")
    return data if isinstance(data, dict) and {"run_id", "experiment_id"} <= set(data) else {}


# --- who the job runs as: the same for the Slurm backend, whose nodes run the same wrapper in
# the same job directory (mounted at the same paths) ----------------------------------------

def run_as(job_dir: Path, accounts: UserAccounts | None, python: str,
           env: dict) -> tuple[SystemAccount | None, dict, dict]:
    """``(account, env, popen_kwargs)`` of the job in ``job_dir``: its user's account when
    accounts are isolated (its directory handed over as the module docstring describes, its
    user's name and home in ``env``), else ``None`` and this process's user; in a session of
    its own either way, so it outlives the control plane and is stopped as a whole."""
    env = {**env, "PYTHONUNBUFFERED": "1"}
    if accounts is None or not accounts.isolated:
        return None, env, {"start_new_session": True}
    launch = json.loads((job_dir / "launch.json").read_text())
    if not launch.get("user"):
        raise AccountError("the job names no user to run as")
    env_dir = Path(python).parent
    if (bad := unreachable_part(env_dir)) is not None:
        raise AccountError(f"the Python environment {env_dir} is not usable by per-user "
                           f"accounts: {bad} has no o+x (see the README)")
    account = accounts.account(launch["user"])
    _hand_over(job_dir, account)
    _environments_of(launch, account)
    return account, {**env, **account.login_env()}, account.popen_kwargs()


def open_job_log(job_dir: Path, account: SystemAccount | None, mode: int) -> int:
    """A descriptor appending to ``JOB_DIR/output.log``, made here: root's, in the job
    account's group with ``mode``, so the job cannot swap it for a link to a file the control
    plane would then serve as the log (the directory's sticky bit keeps root's files).
    O_NOFOLLOW: never append through a link, whoever could have left one there."""
    fd = os.open(job_dir / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND
                 | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        if account is not None:
            os.fchown(fd, 0, account.gid)
            os.fchmod(fd, mode)  # the umask may have taken the group's bits
    except BaseException:
        os.close(fd)
        raise
    return fd


def _hand_over(job_dir: Path, account: SystemAccount) -> None:
    """The job directory as the module docstring describes: the job may add files, not
    change the control plane's; other users may not enter. Runs before the job ever
    could write there, so nothing in it is the job's yet."""
    make_traversable(job_dir.parent)
    job_dir.parent.chmod(0o711)  # every job's user passes through; nobody lists the jobs
    for path in [job_dir, *sorted(job_dir.rglob("*"))]:
        if path.is_symlink():
            continue
        os.chown(path, 0, account.gid, follow_symlinks=False)
        if path == job_dir:
            path.chmod(0o1770)
        else:
            path.chmod(0o750 if path.is_dir() else 0o640)


def _environments_of(launch: dict, account: SystemAccount) -> None:
    """The folder where the job's account builds and caches locked environments: its
    own (an environment another account built could have been changed by it since)."""
    where = (launch.get("environment") or {}).get("dir")
    if not where:
        return
    d = Path(where)
    d.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
    make_traversable(d.parent)
    d.mkdir(mode=0o700, exist_ok=True)
    if d.is_symlink():
        raise AccountError(f"{d} is a symbolic link")
    os.chown(d, account.uid, account.gid, follow_symlinks=False)


class LocalJobBackend:
    """Start, watch and stop job processes on this machine.

    Parameters
    ----------
    python
        Interpreter the wrapper (and so the job) runs with: the user's environment.
    grace_seconds
        How long a cancelled job may take to stop after SIGTERM before it gets SIGKILL.
    accounts
        Hub users -> system accounts; ``None`` (or not root): jobs run as this process's user.
    cpu_limit, memory_limit
        CPUs and bytes each job may use (0: no limit); enforced with cgroups when root.
    """

    name = "local"

    def __init__(self, python: str = sys.executable, grace_seconds: float = 10.0,
                 accounts: UserAccounts | None = None, cpu_limit: float = 0,
                 memory_limit: int = 0, cgroup_root: str = "/sys/fs/cgroup", log=None):
        self.python = python
        self.grace_seconds = grace_seconds
        self.accounts = accounts
        self.cpu_limit = cpu_limit
        self.memory_limit = memory_limit
        self.cgroup_root = cgroup_root
        self.log = log
        self._children: dict[int, subprocess.Popen] = {}
        self._term_sent: dict[int, float] = {}
        # Called (from a watcher thread) when a job process started here exits, so the runner
        # notices at once instead of at its next timed pass.
        self.on_exit = None

    def start(self, job_dir: Path, cwd: str, env: dict, gpu_indices: list[int]) -> dict:
        visible = ",".join(str(i) for i in gpu_indices)
        account, env, popen_kw = run_as(job_dir, self.accounts, self.python, {
            **env, "CUDA_VISIBLE_DEVICES": visible, "NVIDIA_VISIBLE_DEVICES": visible or "void"})
        group = self._limits_for(job_dir)
        if group is not None:
            env.update(group.env())  # the wrapper waits until it is inside
        # The job writes it through its stdout only.
        log = os.fdopen(open_job_log(job_dir, account, 0o640), "ab")
        try:
            proc = subprocess.Popen(
                [self.python, "-m", "jupyter_mlops.backends.job_wrapper", str(job_dir)],
                cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                **popen_kw)
        finally:
            log.close()
        if group is not None:
            try:
                group.add(proc.pid)
            except OSError as e:  # the wrapper gives up waiting and fails: say why here
                self._warn("job %s runs without its limits: %s", job_dir.name, e)
        self._children[proc.pid] = proc
        threading.Thread(target=self._watch, args=(proc,), daemon=True,
                         name=f"job-{proc.pid}").start()
        try:
            create_time = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            create_time = 0.0
        return {"backend": self.name, "pid": proc.pid, "create_time": create_time,
                "cgroup": group.name.removeprefix(PREFIX) if group is not None else ""}

    # --- CPU and memory limits ------------------------------------------------------------------

    def _limits_for(self, job_dir: Path) -> CgroupLimits | None:
        if not (self.cpu_limit or self.memory_limit) or os.geteuid() != 0:
            return None
        # The job's id, and which platform's (two can share a machine: say, tests and a demo).
        group = CgroupLimits.create(self.cgroup_root,
                                    f"job-{job_dir.name}-{platform_tag(job_dir.parent)}",
                                    cpu=self.cpu_limit or None,
                                    memory=self.memory_limit or None, log=self.log)
        if group is None:
            self._warn("no writable cgroups under %s: job limits are not enforced",
                       self.cgroup_root)
        return group

    def _limits_outcome(self, handle: dict, ex: Exit) -> Exit:
        """Say so when the job failed because it went over its memory; drop its group."""
        group = CgroupLimits.existing(self.cgroup_root, handle.get("cgroup") or "") \
            if handle.get("cgroup") else None
        if group is None:
            return ex
        why = group.out_of_memory("the job") if ex.status == "failed" else ""
        if why:
            ex = Exit(ex.status, f"{why}; {ex.error}" if ex.error else why, ex.returncode,
                      ex.metrics, ex.environment)
        group.remove()
        return ex

    def _warn(self, msg: str, *args) -> None:
        if self.log is not None:
            self.log.warning(msg, *args)

    def _watch(self, proc: subprocess.Popen) -> None:
        proc.wait()
        if self.on_exit is not None:
            self.on_exit()

    def _alive(self, handle: dict) -> bool:
        pid = handle.get("pid")
        if not pid:
            return False
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        try:
            p = psutil.Process(pid)
            if handle.get("create_time") and abs(p.create_time() - handle["create_time"]) > 1:
                return False  # the pid was reused by another process
            if p.status() == psutil.STATUS_ZOMBIE:
                try:  # our own child from before a restart of the runner in this process
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                return False
            return True
        except psutil.NoSuchProcess:
            return False

    def poll(self, job_dir: Path, handle: dict) -> Exit | None:
        """``None`` while the job runs; how it ended once it has."""
        if self._alive(handle):
            pid = handle["pid"]
            sent = self._term_sent.get(pid)
            if sent is not None and time.monotonic() - sent > self.grace_seconds:
                self._signal(handle, signal.SIGKILL)
            return None
        pid = handle.get("pid")
        child = self._children.pop(pid, None)
        self._term_sent.pop(pid, None)
        self._kill_what_outlived(handle)
        ex = read_exit(job_dir)
        if ex is None:
            code = child.returncode if child is not None else None
            if code is not None and code < 0:
                why = f"the job process was killed by signal {-code}"
            else:
                why = "the job process ended without recording an outcome (killed?)"
            ex = Exit("failed", why + "; see its log", code)
        return self._limits_outcome(handle, ex)

    def _kill_what_outlived(self, handle: dict) -> None:
        """SIGKILL what is left of a job whose wrapper has ended: a script that ignores
        SIGTERM, or anything it started, would otherwise keep running (and using its GPU)
        after the job is recorded as ended. Only processes of the job's own group started
        since the job, so a reused pid is never taken for it."""
        pid, started = handle.get("pid"), handle.get("create_time") or 0
        if not pid:
            return
        for p in psutil.process_iter(["create_time", "status"]):
            try:
                if (p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pid
                        and p.info["create_time"] >= started - 1):
                    p.kill()
            except (psutil.Error, ProcessLookupError):
                continue

    def _signal(self, handle: dict, sig: int) -> None:
        pid = handle.get("pid")
        if not pid or not self._alive(handle):
            return
        try:
            os.killpg(pid, sig)  # the job is its own session leader: pgid == pid
        except ProcessLookupError:
            pass

    def stop(self, handle: dict) -> None:
        """SIGTERM to the job's process group now, SIGKILL once the grace period is over."""
        pid = handle.get("pid")
        if pid and pid not in self._term_sent:
            self._term_sent[pid] = time.monotonic()
            self._signal(handle, signal.SIGTERM)

    def progress(self, job_dir: Path) -> dict:
        return read_progress(job_dir)

    def run_info(self, job_dir: Path) -> dict:
        return read_run_info(job_dir)
