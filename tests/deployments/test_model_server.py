"""The model server on its own: a real process serving a real scikit-learn model."""
from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import requests

from tests.fixtures import free_port

from .conftest import FEATURES, training_data


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A LogisticRegression saved without a signature (so every input format reaches it)."""
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    x, y = training_data()
    model = LogisticRegression().fit(x, y)
    path = tmp_path_factory.mktemp("model") / "lr"
    mlflow.sklearn.save_model(model, str(path), serialization_format="cloudpickle",
                              pip_requirements=["mlflow", "scikit-learn"])
    port = free_port()
    log = open(path.parent / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.serving",
                             f"--model-uri={path}", f"--port={port}", "--deployment=unit",
                             "--model-version=7", "--max-body-bytes=200000"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/ping", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError((path.parent / "server.log").read_text())
    yield url, model, x
    proc.terminate()
    assert proc.wait(20) == 0  # SIGTERM drains and exits cleanly
    log.close()


def test_scoring_protocol_formats(served):
    url, model, x = served
    rows = x.iloc[:5]
    want = model.predict(rows).tolist()
    post = lambda **kw: requests.post(f"{url}/invocations", timeout=10, **kw)  # noqa: E731
    split = {"dataframe_split": {"columns": FEATURES, "data": rows.to_numpy().tolist()}}
    assert post(json=split).json() == {"predictions": want}
    assert post(json={"dataframe_records": rows.to_dict("records")}).json()["predictions"] == want
    assert post(json={"instances": rows.to_numpy().tolist()}).json()["predictions"] == want
    assert post(json={"inputs": rows.to_numpy().tolist()}).json()["predictions"] == want
    r = post(data=rows.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert r.json()["predictions"] == want


def test_errors_say_why(served):
    url, _, _ = served
    post = lambda **kw: requests.post(f"{url}/invocations", timeout=10, **kw)  # noqa: E731
    r = post(data=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST"
    assert "malformed JSON" in r.json()["message"]
    r = post(json={"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}})
    assert r.status_code == 400 and "row 0 has 2 values, expected 1" in r.json()["message"]
    r = post(json={"instances": [1], "extra": 2})
    assert r.status_code == 400 and "unexpected keys" in r.json()["message"]
    r = post(data=b"GIF89a....", headers={"Content-Type": "image/gif"})
    assert r.status_code == 400 and "unsupported Content-Type" in r.json()["message"]
    r = post(data=b"\x89PNG\r\n\x1a\n broken", headers={"Content-Type": "image/png"})
    assert r.status_code == 400 and "malformed image" in r.json()["message"]
    r = post(data=b"a,b\n1", headers={"Content-Type": "text/csv"})
    assert r.status_code == 400  # one column short of what the model was fitted on
    r = post(data=b"[" + b"1," * 150_000 + b"1]", headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "exceeds the limit of 200000 bytes" in r.json()["message"]
    assert requests.get(f"{url}/invocations", timeout=5).status_code == 405
    assert requests.get(f"{url}/nowhere", timeout=5).status_code == 404


def test_probes(served):
    url, _, _ = served
    assert requests.get(f"{url}/ping", timeout=5).status_code == 200
    import mlflow

    # /version names the model served (here the deployment's name: no models:/ URI), not only MLflow
    assert requests.get(f"{url}/version", timeout=5).json() == {
        "model": "unit", "model_version": "7", "deployment": "unit",
        "mlflow_version": mlflow.__version__}
    health = requests.get(f"{url}/health", timeout=5).json()
    assert health["deployment"] == "unit" and health["model_version"] == "7"
    assert health["flavor"] == "mlflow.sklearn"


async def _concurrent(url, bodies):
    async with httpx.AsyncClient(timeout=30) as http:
        return await asyncio.gather(*(http.post(f"{url}/invocations", json=b) for b in bodies))


def _metric(text: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


def test_concurrent_requests_share_model_calls_and_get_their_own_answers(served):
    url, model, x = served
    before = requests.get(f"{url}/metrics", timeout=5).text
    rows = x.iloc[:96].to_numpy()
    bodies = [{"dataframe_split": {"columns": FEATURES, "data": [row.tolist()]}} for row in rows]
    answers = asyncio.run(_concurrent(url, bodies))
    want = model.predict(x.iloc[:96]).tolist()
    assert [a.json()["predictions"] for a in answers] == [[w] for w in want]
    after = requests.get(f"{url}/metrics", timeout=5).text
    calls = _metric(after, "mlops_batch_requests_count") - _metric(before,
                                                                    "mlops_batch_requests_count")
    served_requests = _metric(after, "mlops_batch_requests_sum") - _metric(
        before, "mlops_batch_requests_sum")
    assert served_requests == 96
    assert calls < served_requests / 2, (calls, served_requests)  # batches, not one by one

    # One malformed request inside a batch fails alone; its neighbours get their answers.
    bad = {"dataframe_split": {"columns": FEATURES, "data": [["x"] * len(FEATURES)]}}
    answers = asyncio.run(_concurrent(url, bodies[:20] + [bad] + bodies[20:40]))
    assert answers[20].status_code == 400 and "refused" in answers[20].json()["message"]
    good = answers[:20] + answers[21:]
    assert [a.json()["predictions"] for a in good] == [[w] for w in want[:40]]
    assert 'mlops_invocations_total{status="200"}' in after
    assert np.isfinite(_metric(after, "mlops_invocation_seconds_sum"))


def test_version_names_the_registered_model_of_a_models_uri():
    from jupyter_mlops.serving.app import ModelServer

    assert ModelServer(model_uri="models:/cells/3", deployment="cells-prod").model_name == "cells"
    assert ModelServer(model_uri="models:/cells@champion").model_name == "cells"
    assert ModelServer(model_uri="/srv/m", deployment="d", model_name="cells").model_name == "cells"
