"""`jupyter-mlops up`: clear errors for a busy data directory or port; state kept across starts."""
import socket
import subprocess
import sys

from tests.fixtures import Platform, free_port


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


def test_bad_gpu_devices_json_is_a_clear_error(tmp_path):
    r = run_up("--data-dir", str(tmp_path / "d"), "--port", str(free_port()),
               "--gpu-devices", "[{oops")
    assert r.returncode == 2 and "--gpu-devices is not JSON" in r.stderr


def test_restart_keeps_accounts_and_stops_every_child(shared_tmp):
    tmp_path = shared_tmp
    import psutil

    p = Platform(tmp_path / "data").start()
    password = p.admin_password
    assert password and len(password) >= 12
    p.add_user("carol", "carol-password-1")
    children = psutil.Process(p.proc.pid).children(recursive=True)
    assert len(children) >= 4  # hub, proxy, control plane, gateway, MLflow (+ workers)
    assert p.stop() == 0
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running: {[c.cmdline() for c in alive]}"
    # The password is stored hashed only, never in clear.
    stored = b"".join(f.read_bytes() for f in (tmp_path / "data" / "hub").glob("passwords*"))
    assert password.encode() not in stored and b"$2b$" in stored

    again = Platform(tmp_path / "data").start()
    try:
        assert again.admin_password is None  # not generated (nor shown) a second time
        again.admin_password = password
        again.login("carol", "carol-password-1")  # the account and its password survived
        r = again.hub("GET", "users/carol")
        assert r.status_code == 200
    finally:
        again.stop()
