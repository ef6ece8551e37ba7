"""Everything ``jupyter-mlops up`` started, so that nothing outlives it.

The hub starts its proxy, services and user servers in sessions of their own, and the control
plane starts jobs and model servers in sessions of their own (so they survive a restart of the
control plane alone): no process-group signal reaches them all, and once a parent dies its
children belong to init. So ``up`` keeps a record of the whole tree:

- the hub gets the kernel's parent-death signal (SIGTERM when ``up`` dies, even of SIGKILL) and
  stops its proxy, services and servers as on a normal stop;
- a watcher process (``python -m jupyter_mlops.hub.process_tree``), started by ``up`` next to the
  hub, notes the hub's descendants every :data:`INTERVAL` seconds in ``<data_dir>/`` +
  :data:`STATE_FILE` (pid and start time each, so a recycled pid is never taken for ours). It
  reads a pipe from ``up``; when the pipe closes (``up`` finished, or died) it ends whatever is
  left of the tree: the work started in sessions of its own (jobs, model servers) first, while
  MLflow still runs and a job can close its run, then the hub, then the rest;
- a later ``up`` on the same data directory ends what the file still lists (the watcher may have
  been killed too) and a hub left by an earlier ``up`` (its pid file), before checking the port.

What dies with ``up``, then: everything, jobs included (on SIGTERM a job's wrapper ends its MLflow
run as KILLED and records the job as cancelled). Jobs outlive a restart of the control plane
alone (the hub restarts it and it re-attaches them), not the end of the platform: while it is
down nobody enforces their time limits, quotas and GPU allocations, and they cannot report their
outcome. Model servers also stop by themselves when ``up``'s pid is gone (``--stop-with-pid``),
and the next start brings every deployment back.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

STATE_FILE = "up.processes.json"
INTERVAL = 1.0  # seconds between two looks at the tree (a process younger than this may be missed)
WORK_GRACE = 10.0  # how long jobs and model servers get to finish after SIGTERM
HUB_GRACE = 20.0  # how long the hub gets to stop its servers and services
LAST_GRACE = 5.0  # then whatever is left


def state_path(data_dir: Path) -> Path:
    return Path(data_dir) / STATE_FILE


def alive(p: psutil.Process) -> bool:
    """Running and still the same process (a zombie has ended: only its parent must reap it)."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def describe(p: psutil.Process) -> str:
    try:
        return f"{p.name()} (pid {p.pid})"
    except psutil.Error:
        return f"pid {p.pid}"


def end(procs, grace: float = LAST_GRACE) -> None:
    """SIGTERM to each process still running, SIGKILL to those still there after ``grace``."""
    procs = [p for p in procs if alive(p)]
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    deadline = time.monotonic() + grace
    while procs and time.monotonic() < deadline:
        time.sleep(0.1)
        procs = [p for p in procs if alive(p)]
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def detached_work(root: int, procs) -> list[psutil.Process]:
    """Jobs, model servers, kernels: descendants below the hub's own children that lead a
    session of their own (the hub's children are its proxy, services and user servers)."""
    out = []
    for p in procs:
        try:
            if p.ppid() != root and os.getsid(p.pid) == p.pid and alive(p):
                out.append(p)
        except (psutil.Error, OSError):
            pass
    return out


def end_tree(root: psutil.Process, known) -> None:
    """End what is left of a platform whose hub ``root`` was asked to stop already (by
    ``up``, or by the kernel when ``up`` died; a second SIGTERM would start a second cleanup):
    its detached work, then the hub if it does not stop in time, then the rest of ``known``."""
    known = list(known)
    end(detached_work(root.pid, known), WORK_GRACE)
    try:
        # Not root.wait(): a hub that init has not reaped yet is a zombie, ended already.
        deadline = time.monotonic() + HUB_GRACE
        while alive(root) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(root):
            root.kill()
    except psutil.Error:
        pass
    end(known)


def record(path: Path, up_pid: int, procs) -> None:
    """Write the tree atomically (a crash never leaves half a list)."""
    rows = []
    for p in procs:
        try:
            rows.append([p.pid, p.create_time(), p.name()])
        except psutil.Error:
            pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"up": up_pid, "processes": rows}))
    tmp.replace(path)


def _same(pid: int, create_time: float) -> psutil.Process | None:
    try:
        p = psutil.Process(pid)
        if abs(p.create_time() - create_time) < 1 and alive(p):
            return p
    except psutil.Error:
        pass
    return None


def leftovers(data_dir: Path) -> list[psutil.Process]:
    """Processes of an earlier ``up`` on ``data_dir`` still running (call it holding the data
    directory's lock, so that ``up`` is gone): those its watcher recorded, and a hub of this
    data directory named by the hub's pid file, with its descendants."""
    found: dict[int, psutil.Process] = {}
    try:
        rows = json.loads(state_path(data_dir).read_text()).get("processes", [])
    except (OSError, ValueError, AttributeError):
        rows = []
    for row in rows:
        try:
            p = _same(int(row[0]), float(row[1]))
        except (TypeError, ValueError, IndexError):
            continue
        if p is not None:
            found[p.pid] = p
    try:
        hub = psutil.Process(int((Path(data_dir) / "hub" / "jupyterhub.pid").read_text()))
        if alive(hub) and f"--MlopsHub.data_dir={Path(data_dir).resolve()}" in hub.cmdline():
            for p in [hub, *descendants(hub.pid)]:
                found.setdefault(p.pid, p)
    except (OSError, ValueError, psutil.Error):
        pass
    return list(found.values())


def platform_of(pid: int) -> str | None:
    """The data directory of the jupyter-mlops hub ``pid`` is, or descends from (else None)."""
    try:
        chain = [psutil.Process(pid), *psutil.Process(pid).parents()]
    except psutil.Error:
        return None
    for p in chain:
        try:
            for arg in p.cmdline():
                if arg.startswith("--MlopsHub.data_dir="):
                    return arg.split("=", 1)[1]
        except psutil.Error:
            pass
    return None


def listener(ip: str, port: int) -> psutil.Process | None:
    """The process listening on ``ip:port`` (when this process may see it)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid \
                and c.laddr.ip in (ip, "0.0.0.0", "::", "::ffff:" + ip):
            try:
                return psutil.Process(c.pid)
            except psutil.Error:
                return None
    return None


def parent_death_signal(sig: int = signal.SIGTERM):
    """A ``preexec_fn``: the child gets ``sig`` when this process dies, even of SIGKILL.

    ``prctl(PR_SET_PDEATHSIG)`` fires when the *thread* that started the child ends: call it
    from the main thread of a process without threads (``up``). ``None`` where unavailable.
    """
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec():
        prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the call: nobody would signal us
            os._exit(1)
    return preexec


def start_watcher(hub_pid: int, data_dir: Path, log) -> subprocess.Popen:
    """The watcher of ``up``'s tree; close its stdin to have it end what is left and exit."""
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter_mlops.hub.process_tree", "--hub", str(hub_pid),
         "--up", str(os.getpid()), "--state", str(state_path(data_dir))],
        stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)  # a Ctrl-C or a group signal meant for `up` spares it


def watch(hub_pid: int, up_pid: int, state: Path, pipe_fd: int = 0) -> None:
    try:
        hub = psutil.Process(hub_pid)
    except psutil.NoSuchProcess:
        state.unlink(missing_ok=True)
        return
    known: dict[int, psutil.Process] = {hub.pid: hub}
    written: set = set()
    while True:
        ready, _, _ = select.select([pipe_fd], [], [], INTERVAL)
        if ready and not os.read(pipe_fd, 4096):
            break  # `up` has finished or died
        if alive(hub):
            for p in descendants(hub.pid):
                known.setdefault(p.pid, p)
        known = {pid: p for pid, p in known.items() if alive(p)}
        if set(known) != written:
            record(state, up_pid, known.values())
            written = set(known)
    if alive(hub):  # what it started since the last look
        for p in descendants(hub.pid):
            known.setdefault(p.pid, p)
    left = [p for p in known.values() if alive(p)]
    if left:
        print(f"jupyter-mlops: ending what is left of the platform of `up` (pid {up_pid}): "
              f"{', '.join(describe(p) for p in left)}", flush=True)
        end_tree(hub, left)
    state.unlink(missing_ok=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Watch the process tree of `jupyter-mlops up`.")
    p.add_argument("--hub", type=int, required=True)
    p.add_argument("--up", type=int, required=True)
    p.add_argument("--state", required=True)
    args = p.parse_args(argv)
    # Signals for `up` are not for the watcher: it must outlive `up` to clean up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    watch(args.hub, args.up, Path(args.state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
