"""The project's hub config loads and names our spawner, authenticator and services."""
import json
import os
import socket
from pathlib import Path

import pytest
from traitlets.config import Application, Config, PyFileConfigLoader

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def load():
    """Load hub_config/ as `jupyterhub -f ... --MlopsHub.data_dir=DIR` (what `up` runs) does."""

    def _load(data_dir) -> Config:
        app = Application.instance()
        app.parse_command_line([f"--MlopsHub.data_dir={data_dir}"])
        loader = PyFileConfigLoader("jupyterhub_config.py", path=str(REPO / "hub_config"))
        return loader.load_config()

    yield _load
    Application.clear_instance()


def test_hub_config_names_spawner_authenticator_and_services(tmp_path, load):
    c = load(tmp_path)
    assert c.JupyterHub.spawner_class == "jupyter_mlops_spawner.MlopsLocalSpawner"
    assert c.JupyterHub.authenticator_class == "firstuseauthenticator.FirstUseAuthenticator"
    names = {s["name"] for s in c.JupyterHub.services}
    assert {"mlops", "mlflow", "mlflow-server"} <= names
    assert c.FirstUseAuthenticator.create_users is False


def test_mlflow_listens_only_on_a_private_unix_socket(tmp_path, load):
    c = load(tmp_path)
    server = next(s for s in c.JupyterHub.services if s["name"] == "mlflow-server")
    cmd = server["command"]
    assert "--uds" in cmd[cmd.index("--uvicorn-opts") + 1]
    assert "url" not in server  # never routed by the proxy
    run_dir = tmp_path / "mlflow" / "run"
    assert run_dir.stat().st_mode & 0o777 == 0o700
    assert server["environment"]["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_custom_scopes_and_roles(tmp_path, load):
    c = load(tmp_path)
    assert set(c.JupyterHub.custom_scopes) == {
        "custom:mlops:use", "custom:mlops:manage", "custom:mlops:admin", "custom:mlops:metrics",
        "custom:mlops:spawner"}
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    # Administrators may mint a scraper's token that reads the Prometheus export only.
    assert "custom:mlops:metrics" in roles["mlops-admin"]["scopes"]
    assert "custom:mlops:metrics" not in roles["user"]["scopes"]
    assert "custom:mlops:use" in roles["user"]["scopes"]
    assert roles["mlops-admin"]["groups"] == ["mlops-admins"]
    assert "custom:mlops:admin" not in roles["mlops-project-manager"]["scopes"]



def _up_with(tmp_path, site_text: str):
    """``jupyter-mlops up --config site.py``: the hub's config, and the control plane as the
    hub's service command starts it."""
    from jupyter_mlops.service.app import MlopsService

    site = tmp_path / "site.py"
    site.write_text(site_text)
    app = Application.instance()
    app.parse_command_line([f"--MlopsHub.data_dir={tmp_path / 'data'}",
                            f"--MlopsHub.config_file={site}"])
    try:
        c = PyFileConfigLoader("jupyterhub_config.py", path=str(REPO / "hub_config")).load_config()
    finally:
        Application.clear_instance()
    cmd = next(s for s in c.JupyterHub.services if s["name"] == "mlops")["command"]
    assert f"--MlopsService.config_file={site}" in cmd
    service = MlopsService()
    service.initialize(cmd[3:])  # what follows `python -m jupyter_mlops.service`
    return c, service


def test_one_config_file_reaches_the_control_plane(tmp_path):
    """The hub applies the file's hub settings, the control plane (another process) its own;
    the hub's command line wins where both say something."""
    from jupyter_mlops.service.app import MlopsService
    from jupyter_mlops.service.jobs_platform import JobSettings

    c, service = _up_with(tmp_path, 'c.JobSettings.memory_limit = "16G"\n'
                                    'c.JobSettings.max_timeout = 3600\n'
                                    'c.JobSettings.tracking_uri = "http://overridden"\n'
                                    'c.JupyterHub.default_url = "/hub/home"\n')
    assert c.JupyterHub.default_url == "/hub/home"
    jobs = JobSettings(parent=service)
    assert jobs.memory_limit == 16 * 2**30 and jobs.max_timeout == 3600
    assert jobs.tracking_uri.endswith("/services/mlflow")  # the hub's, not the file's
    assert service.data_dir == str(tmp_path / "data")

    with pytest.raises(SystemExit, match="does not exist"):
        MlopsService().initialize([f"--MlopsService.config_file={tmp_path / 'nope.py'}"])


def test_jobs_follow_the_spawners_accounts(tmp_path):
    """Set once for the spawner, the account settings reach the control plane too."""
    from jupyter_mlops.backends.accounts import AccountSettings

    _, service = _up_with(tmp_path, 'c.MlopsLocalSpawner.system_user_prefix = "lab-"\n'
                                    'c.MlopsLocalSpawner.isolate_users = False\n')
    accounts = AccountSettings(parent=service)
    assert accounts.system_user_prefix == "lab-" and accounts.isolate_users is False
    assert accounts.user_accounts(tmp_path).name_of("alice") == "lab-alice"


def test_internal_ports_are_kept_across_starts(tmp_path, load):
    # Given a first start chose the internal addresses
    first = load(tmp_path)
    cp = next(s for s in first.JupyterHub.services if s["name"] == "mlops")
    # When the platform starts again on the same data directory
    Application.clear_instance()
    again = load(tmp_path)
    # Then every internal address is the same (jobs started before find the platform)
    assert again.JupyterHub.hub_bind_url == first.JupyterHub.hub_bind_url
    assert again.ConfigurableHTTPProxy.api_url == first.ConfigurableHTTPProxy.api_url
    assert next(s for s in again.JupyterHub.services if s["name"] == "mlops")["url"] == cp["url"]
    assert again.MlopsLocalSpawner.mlflow_url == first.MlopsLocalSpawner.mlflow_url
    ports = json.loads((tmp_path / "hub" / "ports.json").read_text())
    assert cp["url"] == f"http://127.0.0.1:{ports['control_plane']}"
    assert len(set(ports.values())) == 4


def test_kept_ports_are_ones_no_other_account_can_listen_on(tmp_path, load):
    import subprocess

    assert os.geteuid() == 0, "the platform (and CI) runs as root"
    # Given ports.json from a start without root (ports any account may take)
    (tmp_path / "hub").mkdir(parents=True)
    (tmp_path / "hub" / "ports.json").write_text(json.dumps(
        {"hub_api": 23001, "proxy_api": 23002, "control_plane": 23003, "gateway": 23004}))
    # When the platform starts as root
    load(tmp_path)
    ports = json.loads((tmp_path / "hub" / "ports.json").read_text())
    # Then every internal port is privileged: another local account cannot listen there,
    # not even while a crashed service is being restarted
    assert all(p < 1024 for p in ports.values()), ports
    code = ("import socket, sys; s = socket.socket(); "
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "try: s.bind(('127.0.0.1', int(sys.argv[1])))\n"
            "except PermissionError: print('refused')")
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        "/usr/bin/python3", "-c", code, str(ports["control_plane"])],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "refused", (r.stdout, r.stderr)


def test_a_kept_port_taken_by_another_process_is_an_error_naming_it(tmp_path, load):
    from jupyter_mlops.hub.ports import PortInUse

    load(tmp_path)
    Application.clear_instance()
    port = json.loads((tmp_path / "hub" / "ports.json").read_text())["gateway"]
    # Given another program listens on the gateway's kept port
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        # Then the start refuses, naming the port, the listener and who holds it
        with pytest.raises(PortInUse) as e:
            load(tmp_path)
    msg = str(e.value)
    assert f"port {port}" in msg and "MLflow gateway" in msg and f"pid {os.getpid()}" in msg
    # and the kept ports were not replaced
    assert json.loads((tmp_path / "hub" / "ports.json").read_text())["gateway"] == port


def test_the_proxys_error_answers_are_json_for_api_paths_only():
    from jupyter_mlops.hub.error_pages import api_error

    mlflow = api_error(503, "/services/mlflow/ajax-api/2.0/mlflow/runs/search")
    assert mlflow["error"] == "Service Unavailable" and mlflow["service"] == "mlflow"
    assert "MLflow is not answering" in mlflow["message"]
    assert api_error(503, "/services/mlflow/api/2.0/mlflow/runs/get")["service"] == "mlflow"
    cp = api_error(503, "/services/mlops/api/jobs")
    assert cp["message"].startswith("the control plane is not answering")
    user = api_error(503, "/user/ana/mlops/api/status")
    assert "server of ana is not running" in user["message"]
    # pages (the MLflow UI, the admin page, JupyterLab) keep the hub's HTML page
    for page in ("/services/mlflow/", "/services/mlops/admin", "/user/ana/lab",
                 "/services/mlops/apiary", "/hub/home"):
        assert api_error(503, page) is None, page


def _load_tls(tmp_path, public_url: str) -> Config:
    from tests.test_restart_tls import self_signed  # a certificate naming 127.0.0.1

    cert, key = self_signed(tmp_path)
    app = Application.instance()
    app.parse_command_line([f"--MlopsHub.data_dir={tmp_path / 'data'}",
                            f"--MlopsHub.public_url={public_url}",
                            f"--MlopsHub.ssl_cert={cert}", f"--MlopsHub.ssl_key={key}"])
    try:
        return PyFileConfigLoader("jupyterhub_config.py", path=str(REPO / "hub_config")).load_config()
    finally:
        Application.clear_instance()


def _spawner_env(c) -> dict:
    env = c.MlopsLocalSpawner.environment  # the config's .update(): applied to the trait's {}
    return env.get_value({}) if hasattr(env, "get_value") else dict(env)


def test_with_tls_kernels_and_jobs_track_mlflow_at_the_public_https_address(tmp_path):
    c = _load_tls(tmp_path, "https://127.0.0.1:8443")
    # MLflow's printed links are the address people open
    assert c.MlopsLocalSpawner.mlflow_url == "https://127.0.0.1:8443/services/mlflow"
    cp = next(s for s in c.JupyterHub.services if s["name"] == "mlops")
    assert "--JobSettings.tracking_uri=https://127.0.0.1:8443/services/mlflow" in cp["command"]
    # and the servers (so their kernels), the control plane and its jobs trust its certificate
    env = _spawner_env(c)
    bundle = Path(env["REQUESTS_CA_BUNDLE"])
    assert env["SSL_CERT_FILE"] == str(bundle)
    assert cp["environment"]["REQUESTS_CA_BUNDLE"] == str(bundle)
    text = bundle.read_text()
    assert (tmp_path / "cert.pem").read_text().strip() in text  # the platform's certificate
    assert text.count("BEGIN CERTIFICATE") > 50  # and the public CAs, still trusted
    assert "PRIVATE KEY" not in text and bundle.stat().st_mode & 0o777 == 0o644


def test_with_tls_a_certificate_not_naming_the_public_host_keeps_the_internal_gateway(tmp_path):
    c = _load_tls(tmp_path, "https://hub.lab:8443")  # the certificate names 127.0.0.1 only
    assert c.MlopsLocalSpawner.mlflow_url.startswith("http://127.0.0.1:")
    assert "REQUESTS_CA_BUNDLE" not in _spawner_env(c)
