"""Fixtures of the deployment tests: real models in the platform's real MLflow registry."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
FEATURES = [f"f{i}" for i in range(20)]


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

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN")}
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    try:
        mlflow.set_tracking_uri(tracking_uri)
        x, y = training_data()
        probe = x.iloc[:4]
        first = LogisticRegression().fit(x, y).predict(probe).tolist()
        expected = {"probe": probe, "v1": first, "v2": [1 - v for v in first]}
        if mlflow.MlflowClient().search_registered_models("name = 'cells'"):
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
    finally:
        # set_tracking_uri is process-wide: leave the next test's MLflow alone.
        from mlflow.tracking._tracking_service import utils as tracking_utils

        tracking_utils._tracking_uri = None
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def registry(platform):
    t0 = time.monotonic()
    info = register_models(f"{platform.url}/services/mlflow", platform.admin_token())
    print(f"registered the test models in {time.monotonic() - t0:.1f} s")
    return info
