"""The project's hub config loads and names our spawner, authenticator and services."""
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
        "custom:mlops:use", "custom:mlops:manage", "custom:mlops:admin"}
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert "custom:mlops:use" in roles["user"]["scopes"]
    assert roles["mlops-admin"]["groups"] == ["mlops-admins"]
    assert "custom:mlops:admin" not in roles["mlops-project-manager"]["scopes"]
