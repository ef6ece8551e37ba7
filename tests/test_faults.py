"""MLflow down: the sidebar's status says so with the reason, and recovers when it is back."""
import signal
import time

import psutil


def mlflow_server_processes(platform):
    sock = str(platform.data_dir / "mlflow" / "run" / "mlflow.sock")
    return [p for p in psutil.process_iter(["cmdline"])
            if "uvicorn" in " ".join(p.info["cmdline"] or []) and
            sock in " ".join(p.info["cmdline"] or [])]


def sidebar_status(platform):
    r = platform.api("GET", "/user/admin/mlops/api/status", platform.admin_token())
    assert r.status_code == 200, r.text
    return r.json()


def test_mlflow_down_is_reported_and_recovers(platform):
    platform.start_server("admin")
    assert sidebar_status(platform)["mlflow"]["reachable"] is True

    # When MLflow's server process dies
    procs = mlflow_server_processes(platform)
    assert procs, "MLflow server process not found"
    for p in procs:
        p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)

    # Then the sidebar says MLflow is unreachable, with the reason, and the rest still works
    status = sidebar_status(platform)
    assert status["mlflow"]["reachable"] is False
    assert "tracking server" in status["mlflow"]["error"]
    assert status["control_plane"]["reachable"] is True

    # And the hub restarts MLflow (a managed service): the status recovers on its own.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if sidebar_status(platform)["mlflow"]["reachable"]:
            break
        time.sleep(1)
    assert sidebar_status(platform)["mlflow"]["reachable"] is True
