"""Fixtures of the deployment tests: real models in the platform's real MLflow registry, and
the setup the tests share (a project with its people, a deployment serving)."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures import until

HERE = Path(__file__).parent
FEATURES = [f"f{i}" for i in range(20)]
API = "services/mlops/api/deployments"
PROJECTS = "services/mlops/api/projects"


def training_data(n=400, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    return pd.DataFrame(x, columns=FEATURES), y


def register_models(tracking_uri: str, token: str) -> dict:
    """Register ``lr`` v1 (a LogisticRegression), v2 (its labels flipped), v3 (never loads)
    and ``cells`` v1 (a tiny image detector). Returns the expected predictions of a probe row."""
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    with tracking_as(tracking_uri, token) as client:
        x, y = training_data()
        probe = x.iloc[:4]
        first = LogisticRegression().fit(x, y).predict(probe).tolist()
        expected = {"probe": probe, "v1": first, "v2": [1 - v for v in first]}
        if client.search_registered_models("name = 'cells'"):
            return expected  # registered earlier in this session (tests/ and ui-tests/ share it)
        mlflow.set_experiment("deployment-tests")
        for labels in (y, 1 - y):  # v2 learns the opposite labels: easy to tell apart
            model = LogisticRegression().fit(x, labels)
            with mlflow.start_run():
                mlflow.sklearn.log_model(model, name="model", registered_model_name="lr",
                                         signature=infer_signature(x, model.predict(x)),
                                         serialization_format="cloudpickle",
                                         pip_requirements=["mlflow", "scikit-learn"])
        with mlflow.start_run():
            mlflow.pyfunc.log_model(name="model", python_model=str(HERE / "broken_model.py"),
                                    pip_requirements=["mlflow"],
                                    registered_model_name="lr")
        with mlflow.start_run():
            mlflow.pyfunc.log_model(name="model", python_model=str(HERE / "detector_model.py"),
                                    pip_requirements=["mlflow", "scipy"],
                                    registered_model_name="cells")
        return expected


@contextmanager
def environment(env: dict):
    """``env`` in ``os.environ`` for the block (MLflow and boto3 read it there), then the
    variables as they were."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def tracking_as(tracking_uri: str, token: str):
    """MLflow's fluent API (and the client it yields) on ``tracking_uri`` with ``token`` for
    the block."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with environment({"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_TRACKING_TOKEN": token}):
        try:
            mlflow.set_tracking_uri(tracking_uri)
            yield mlflow.MlflowClient()
        finally:
            # set_tracking_uri is process-wide: leave the next test's MLflow alone.
            tracking_utils._tracking_uri = None


def project_with_people(platform, project: str, password: str, manager: str,
                        members: tuple = (), outsiders: tuple = ()) -> dict:
    """``project``, made by ``manager`` (a project manager) with ``members`` in it, and
    ``outsiders`` who are not: every one's hub token by name."""
    platform.add_user(manager, password, groups=["mlops-pms"])
    for u in (*members, *outsiders):
        platform.add_user(u, password)
    tokens = {u: platform.token(u) for u in (manager, *members, *outsiders)}
    r = platform.api("POST", PROJECTS, tokens[manager],
                     json={"name": project, "members": list(members)})
    assert r.status_code in (201, 409), r.text  # 409: a rerun in the same session
    return tokens


def wait_status(platform, token, name, want, timeout=90):
    def dep():
        d = platform.api("GET", f"{API}/{name}", token).json()
        return d if d["status"] in want else None
    return until(dep, timeout, f"{name} to become {'/'.join(sorted(want))}")


def deploy_ready(platform, token, name: str, model: str, version, **fields) -> dict:
    """Deploy ``model`` ``version`` as ``name`` (``fields``: the rest of the body, e.g.
    ``project``) and wait until it serves; the deployment as the API shows it then."""
    r = platform.api("POST", API, token, json={"name": name, "model_name": model,
                                               "version": version, **fields})
    assert r.status_code == 201, r.text
    dep = wait_status(platform, token, name, {"ready", "failed"})
    assert dep["status"] == "ready", dep
    return dep


@pytest.fixture(scope="session")
def registry(platform):
    t0 = time.monotonic()
    info = register_models(f"{platform.url}/services/mlflow", platform.admin_token())
    print(f"registered the test models in {time.monotonic() - t0:.1f} s")
    return info
