"""Fixtures of the experiments tests: one real MLflow server per session, seeded once."""
from __future__ import annotations

import pytest

# jp_fetch and friends come from pytest_jupyter.jupyter_server, loaded as a plugin (pyproject).
from .mlflow_server import MlflowServer, log_model_dir, seed_runs


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seeded(mlflow_server, tmp_path_factory):
    """Experiments ``cells`` (120 runs, for paging) and ``small`` (3 runs with artifacts)."""
    client = mlflow_server.client()
    big = client.create_experiment("cells", tags={"mlops.project": "default"})
    small = client.create_experiment("small", tags={"mlops.project": "default"})
    big_runs = seed_runs(client, big, 120)
    small_runs = seed_runs(client, small, 3, metrics=2, steps=10)
    tmp = tmp_path_factory.mktemp("artifacts")
    log_model_dir(client, small_runs[0], tmp)
    return {"client": client, "big": big, "small": small, "big_runs": big_runs,
            "small_runs": small_runs}


@pytest.fixture
def jp_server_config(mlflow_server):
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_mlops": True,
                                              "jupyter_server_terminals": False},
                      "terminals_enabled": False,
                      "allow_unauthenticated_access": False},
        "MlopsSettings": {"mlflow_url": mlflow_server.url,
                          "mlflow_ui_url": "/services/mlflow/"},
    }
