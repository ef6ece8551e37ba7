"""Jobs as local processes: the embedded default.

Each job is ``python -m jupyter_mlops.backends.job_wrapper JOB_DIR`` in a session (and so a
process group) of its own, so it outlives the control plane (and is not hit by signals meant
for it) and can be stopped as a whole: cancel sends SIGTERM to the group, then SIGKILL after a
grace period. GPUs are handed over in ``CUDA_VISIBLE_DEVICES`` / ``NVIDIA_VISIBLE_DEVICES``;
stdout and stderr go to ``JOB_DIR/output.log``.

The handle kept in the database is ``{"pid", "create_time"}``: after a control plane restart
the job is found again by pid, and the start time guards against a recycled pid.
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


@dataclass
class Exit:
    """How a job ended, as the backend saw it."""

    status: str  # succeeded | failed | cancelled | pruned
    error: str = ""
    returncode: int | None = None
    metrics: dict | None = None


def read_exit(job_dir: Path) -> Exit | None:
    try:
        data = json.loads((job_dir / "exit.json").read_text())
    except (OSError, ValueError):
        return None
    return Exit(data.get("status", "failed"), data.get("error", ""), data.get("returncode"),
                data.get("metrics") or {})


class LocalJobBackend:
    """Start, watch and stop job processes on this machine.

    Parameters
    ----------
    python
        Interpreter the wrapper (and so the job) runs with: the user's environment.
    grace_seconds
        How long a cancelled job may take to stop after SIGTERM before it gets SIGKILL.
    """

    name = "local"

    def __init__(self, python: str = sys.executable, grace_seconds: float = 10.0):
        self.python = python
        self.grace_seconds = grace_seconds
        self._children: dict[int, subprocess.Popen] = {}
        self._term_sent: dict[int, float] = {}
        # Called (from a watcher thread) when a job process started here exits, so the runner
        # notices at once instead of at its next timed pass.
        self.on_exit = None

    def start(self, job_dir: Path, cwd: str, env: dict, gpu_indices: list[int]) -> dict:
        visible = ",".join(str(i) for i in gpu_indices)
        env = {**env, "CUDA_VISIBLE_DEVICES": visible, "NVIDIA_VISIBLE_DEVICES":
               visible or "void", "PYTHONUNBUFFERED": "1"}
        log = open(job_dir / "output.log", "ab")
        try:
            proc = subprocess.Popen(
                [self.python, "-m", "jupyter_mlops.backends.job_wrapper", str(job_dir)],
                cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            log.close()
        self._children[proc.pid] = proc
        threading.Thread(target=self._watch, args=(proc,), daemon=True,
                         name=f"job-{proc.pid}").start()
        try:
            create_time = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            create_time = 0.0
        return {"backend": self.name, "pid": proc.pid, "create_time": create_time}

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
        ex = read_exit(job_dir)
        if ex is not None:
            return ex
        code = child.returncode if child is not None else None
        if code is not None and code < 0:
            why = f"the job process was killed by signal {-code}"
        else:
            why = "the job process ended without recording an outcome (killed?)"
        return Exit("failed", why + "; see its log", code)

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
        try:
            return json.loads((job_dir / "progress.json").read_text())
        except (OSError, ValueError):
            return {}

    def run_info(self, job_dir: Path) -> dict:
        try:
            return json.loads((job_dir / "run.json").read_text())
        except (OSError, ValueError):
            return {}
