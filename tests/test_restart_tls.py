"""Restarts and the public address: a running job keeps reporting across a platform restart
(internal addresses are kept), the control plane's API answers JSON while it restarts, and
`up` serves HTTPS when given a certificate (plain HTTP beyond loopback is said plainly)."""
from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import subprocess
import sys
import time

import psutil
import requests

from tests.fixtures import Platform, until

API = "services/mlops/api"
WAIT = "import time\nprint('waiting for a cancel', flush=True)\ntime.sleep(600)\n"


def dead(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, made with ``cryptography``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jupyter-mlops test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def control_plane_process(data_dir) -> psutil.Process:
    found = [p for p in psutil.process_iter(["cmdline"])
             if "jupyter_mlops.service" in (p.info["cmdline"] or [])
             and f"--MlopsService.data_dir={data_dir}" in (p.info["cmdline"] or [])]
    assert len(found) == 1, found
    return found[0]


def submit_waiting_job(platform, user: str) -> tuple[str, dict]:
    """``user``'s token and their job, running with its MLflow run open."""
    platform.add_user(user, f"{user}-password-1")
    token = platform.token(user)
    ws = platform.data_dir / "users" / user
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "wait.py").write_text(WAIT)
    r = platform.api("POST", f"{API}/jobs", token, json={"path": "wait.py"})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    job = until(lambda: (j := platform.api(
        "GET", f"{API}/jobs/{job_id}", token).json())["state"] == "running"
        and j.get("run_id") and j, 120, "the job's run")
    return token, job


def run_status(platform, token, run_id) -> str:
    r = platform.api("GET", f"services/mlflow/api/2.0/mlflow/runs/get?run_id={run_id}", token)
    return r.json()["run"]["info"]["status"]


def test_the_control_plane_restarts_answering_json_meanwhile_and_keeps_its_jobs(platform):
    token, job = submit_waiting_job(platform, "rosa")
    # Given the control plane process dies while rosa's job runs
    old = control_plane_process(platform.data_dir)
    old.kill()
    # dead once it is gone or a zombie: the hub reaps it at its own pace on a loaded machine
    until(lambda: dead(old), 10, "the kill")
    # Then its API answers a JSON 503 with a reason, not the hub's HTML page
    r = platform.api("GET", f"{API}/status", token)
    assert r.status_code == 503, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert "control plane is not answering" in r.json()["message"]
    # (pages outside the APIs keep the hub's own error page)
    page = platform.api("GET", "services/mlops/projects", token)
    assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html")
    # and once the hub has started it again, the route answers again
    until(lambda: platform.api("GET", f"{API}/status", token).status_code == 200, 120,
          "the control plane back")
    assert control_plane_process(platform.data_dir).pid != old.pid
    # and the job started before the restart still reports to the platform: cancelled now,
    # its MLflow run ends KILLED (the job reaches the gateway at the address it was given)
    path = f"{API}/jobs/{job['id']}"
    assert platform.api("GET", path, token).json()["state"] == "running"
    assert platform.api("POST", f"{path}/cancel", token).status_code == 200
    until(lambda: platform.api("GET", path, token).json()["state"] == "cancelled", 120,
          "the cancel")
    assert run_status(platform, token, job["run_id"]) == "KILLED"


def test_plain_http_beyond_loopback_is_said_plainly(tmp_path):
    with socket.socket() as s:  # a busy port: `up` stops right after its first checks
        s.bind(("0.0.0.0", 0))
        s.listen()
        r = subprocess.run([sys.executable, "-m", "jupyter_mlops", "up", "--data-dir",
                            str(tmp_path / "d"), "--ip", "0.0.0.0", "--port",
                            str(s.getsockname()[1])], capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
    assert "WARNING: serving plain HTTP on 0.0.0.0" in r.stderr, r.stderr
    assert "--ssl-cert" in r.stderr


def listening_ports(data_dir) -> dict[str, int]:
    """The TCP ports the control plane and the MLflow gateway of ``data_dir`` listen on."""
    out = {}
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(data_dir) not in cmd:
            continue
        name = ("control_plane" if "jupyter_mlops.service " in cmd + " " else
                "gateway" if "jupyter_mlops.service.mlflow_gateway" in cmd else None)
        if name:
            out[name] = next(c.laddr.port for c in p.net_connections("tcp")
                             if c.status == psutil.CONN_LISTEN)
    return out


def test_a_restart_switching_to_https_keeps_internal_addresses_and_the_jobs_outcome(
        shared_tmp, monkeypatch):
    data = shared_tmp / "data"
    first = Platform(data).start()
    try:
        before = listening_ports(data)
        token, job = submit_waiting_job(first, "rita")
    finally:
        first.stop()  # Given the platform stops while rita's job runs
    cert, key = self_signed(shared_tmp)
    again = Platform(data, port=first.port,
                     extra_args=["--ssl-cert", str(cert), "--ssl-key", str(key)])
    again.url = f"https://127.0.0.1:{again.port}"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # the test's client trusts the cert
    # When it starts again, now serving HTTPS
    again.start()
    try:
        again.admin_password = first.admin_password
        assert any(f"is up at https://127.0.0.1:{again.port}/" in line
                   for line in again.output), again.output
        # Then HTTPS verifies against the certificate, and plain HTTP is not served
        assert requests.get(f"{again.url}/hub/api/", timeout=30).status_code == 200
        try:
            plain = requests.get(f"http://127.0.0.1:{again.port}/hub/api/", timeout=30)
            assert plain.status_code >= 400
        except requests.ConnectionError:
            pass
        # and the internal listeners are where they were
        assert listening_ports(data) == before and len(before) == 2, before
        # and a kernel's MLflow client (the tracking URI and CA bundle users' servers get)
        # reaches MLflow at the public https address, so the links it prints open for people
        bundle = data / "tls" / "ca-bundle.pem"
        kernel = subprocess.run(
            [sys.executable, "-c", "import mlflow; print(len(mlflow.search_experiments()))"],
            env={"PATH": os.environ["PATH"], "HOME": str(shared_tmp),
                 "MLFLOW_TRACKING_URI": f"{again.url}/services/mlflow",
                 "MLFLOW_TRACKING_TOKEN": token, "MLFLOW_DISABLE_TELEMETRY": "true",
                 "REQUESTS_CA_BUNDLE": str(bundle), "SSL_CERT_FILE": str(bundle)},
            capture_output=True, text=True, timeout=120)
        assert kernel.returncode == 0 and int(kernel.stdout.split()[-1]) >= 1, kernel.stderr
        # and the job's outcome reached the platform: stopped with it, its run KILLED
        done = again.api("GET", f"{API}/jobs/{job['id']}", token).json()
        assert done["state"] == "cancelled", done
        assert "the platform shut down" in done["reason"], done
        assert run_status(again, token, job["run_id"]) == "KILLED"
    finally:
        again.stop()
