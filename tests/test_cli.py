"""`jupyter-mlops up`: clear errors for a busy data directory or port; state kept across starts."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

from jupyter_mlops.hub import process_tree
from tests.fixtures import Platform, free_port, processes_under


def run_up(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "jupyter_mlops", "up", *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_a_second_up_on_a_data_dir_in_use_is_refused(platform):
    before = sorted(p.name for p in (platform.data_dir / "hub").iterdir())
    r = run_up("--data-dir", str(platform.data_dir), "--port", str(free_port()))
    assert r.returncode == 2
    assert "already in use" in r.stderr and str(platform.data_dir) in r.stderr
    # Nothing was touched: the running platform still answers, its files are the same.
    assert platform.api("GET", "/services/mlops/api/status",
                        platform.admin_token()).status_code == 200
    assert sorted(p.name for p in (platform.data_dir / "hub").iterdir()) == before


def test_a_port_in_use_is_named(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_up("--data-dir", str(tmp_path / "d"), "--port", str(port))
    assert r.returncode == 2
    assert f"port {port}" in r.stderr and "--port" in r.stderr
    # Who holds it, and that it is not a platform (so it is not ours to stop)
    assert f"pid {os.getpid()}" in r.stderr and "not a jupyter-mlops platform" in r.stderr


def test_a_port_held_by_another_platform_names_its_data_dir(platform, tmp_path):
    r = run_up("--data-dir", str(tmp_path / "d"), "--port", str(platform.port))
    assert r.returncode == 2
    assert f"of the jupyter-mlops platform on {platform.data_dir}" in r.stderr, r.stderr
    assert "stop that one first or choose another with --port" in r.stderr


def test_bad_gpu_devices_json_is_a_clear_error(tmp_path):
    r = run_up("--data-dir", str(tmp_path / "d"), "--port", str(free_port()),
               "--gpu-devices", "[{oops")
    assert r.returncode == 2 and "--gpu-devices is not JSON" in r.stderr


def test_stop_signals_are_handled_whatever_was_inherited_except_nohups_sighup():
    code = ("import signal; from jupyter_mlops.hub.cli import handle_stop_signals; "
            "handle_stop_signals(); print([signal.getsignal(s) in (signal.SIG_IGN, "
            "signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)])")

    def started_with(*ignored):
        def dispositions():  # whatever this test run inherited itself (nohup: SIGHUP ignored)
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(s, signal.SIG_IGN if s in ignored else signal.SIG_DFL)
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              preexec_fn=dispositions).stdout.strip()

    # A background job of a script: SIGINT arrives ignored, `up` handles it all the same
    assert started_with(signal.SIGINT, signal.SIGTERM) == "[False, False, False]"
    # Under nohup, SIGHUP stays ignored: whoever started it asked it to outlive the terminal
    assert started_with(signal.SIGINT, signal.SIGHUP) == "[False, False, True]"


def gone(procs, timeout: float) -> list[str]:
    """Wait until none of ``procs`` runs (a zombie has ended); what still runs after."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in procs if process_tree.alive(p)]
        if not left or time.monotonic() > deadline:
            return [" ".join(p.cmdline()) for p in left if process_tree.alive(p)]
        time.sleep(0.2)


def test_restart_keeps_accounts_and_stops_every_child(shared_tmp):
    """Started as a background job would be (SIGINT ignored), `up` stops cleanly on SIGINT
    and on SIGTERM: exit 0 and nothing of its tree left."""
    tmp_path = shared_tmp
    p = Platform(tmp_path / "data").start(sigint_ignored=True)
    password = p.admin_password
    assert password and len(password) >= 12
    p.add_user("carol", "carol-password-1")
    children = process_tree.descendants(p.proc.pid)
    assert len(children) >= 5  # watcher, hub, proxy, control plane, gateway, MLflow (+ workers)
    assert p.stop(signal.SIGINT) == 0
    assert p.leftovers == [] and gone(children, 10) == []
    assert not (tmp_path / "data" / process_tree.STATE_FILE).exists()
    # The password is stored hashed only, never in clear.
    stored = b"".join(f.read_bytes() for f in (tmp_path / "data" / "hub").glob("passwords*"))
    assert password.encode() not in stored and b"$2b$" in stored

    again = Platform(tmp_path / "data").start(sigint_ignored=True)
    try:
        assert again.admin_password is None  # not generated (nor shown) a second time
        again.admin_password = password
        again.login("carol", "carol-password-1")  # the account and its password survived
        r = again.hub("GET", "users/carol")
        assert r.status_code == 200
        children = process_tree.descendants(again.proc.pid)
    finally:
        assert again.stop(signal.SIGTERM) == 0
    assert again.leftovers == [] and gone(children, 10) == []


def test_a_killed_up_takes_its_platform_along(shared_tmp):
    """`up` killed with everything that could clean up after it leaves its proxy and
    services running: the next `up` on the data directory ends them itself (saying so) and
    starts on the same port. `up` killed alone: its whole tree stops by itself."""
    p = Platform(shared_tmp / "data").start()
    try:
        tree = process_tree.descendants(p.proc.pid)
        watcher = next(c for c in tree if "jupyter_mlops.hub.process_tree" in c.cmdline())
        hub = next(c for c in tree if c.ppid() == p.proc.pid and c != watcher)
        state = shared_tmp / "data" / process_tree.STATE_FILE
        deadline = time.monotonic() + 30  # the watcher notes the tree within a second
        while {c.pid for c in tree if c != watcher} - recorded_pids(state):
            assert time.monotonic() < deadline, (state.read_text(), tree)
            time.sleep(0.2)
        for c in (watcher, hub, p.proc):
            c.kill()
        p.proc.wait()
        left = [c for c in tree if process_tree.alive(c)]
        assert len(left) >= 4, left  # proxy, control plane, gateway, MLflow (+ workers)
    except BaseException:
        p.stop()
        raise

    again = Platform(shared_tmp / "data", port=p.port)
    try:
        again.start()
        said = "".join(again.output)
        assert "did not stop cleanly; ending the" in said, said
        assert gone(left, 5) == []
        # When `up` alone is killed, the kernel stops the hub and the watcher ends the rest.
        tree = process_tree.descendants(again.proc.pid)
        again.proc.kill()
        again.proc.wait()
        assert gone(tree, 60) == []
        assert processes_under(shared_tmp / "data") == []
    finally:
        again.stop()
    assert again.leftovers == []


def recorded_pids(state) -> set:
    try:
        return {row[0] for row in json.loads(state.read_text())["processes"]}
    except (OSError, ValueError, KeyError):
        return set()
