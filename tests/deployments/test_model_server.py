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
                             "--model-version=7", "--max-body-bytes=200000",
                             "--request-timeout=1", "--idle-timeout=2"],
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


def _exchange(url: str, data: bytes, pause_after: int | None = None) -> tuple[bytes, float]:
    """Send ``data`` on a new connection (stopping after ``pause_after`` bytes, as a client
    trickling a request would), then read until the server closes it: (all read, seconds
    from the last byte sent to the close)."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(data[:pause_after] if pause_after is not None else data)
        t0, got = time.monotonic(), b""
        while chunk := s.recv(65536):
            got += chunk
        return got, time.monotonic() - t0


def _answers(raw: bytes) -> list[tuple[int, dict | bytes]]:
    """The (status, JSON body or bytes) of each HTTP response in ``raw``."""
    import json

    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
        body, raw = rest[:length], rest[length:]
        ctype = re.search(rb"(?im)^content-type: *(\S+)", head).group(1)
        is_json = ctype == b"application/json" and body.strip()  # /ping's body is "\n"
        out.append((status, json.loads(body) if is_json else body))
    return out


def test_request_limits_answer_json_errors_and_close(served):
    url, _, _ = served
    big_head = b"GET /ping HTTP/1.1\r\nX-Pad: " + b"a" * 70_000 + b"\r\n\r\n"
    many = b"GET /ping HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + \
        b"\r\n"
    cases = [
        (big_head, 431, "request headers too large"),
        (many, 431, "more than 100 request headers"),
        (b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
         411, "chunked request bodies are not supported"),
        (b"POST /invocations HTTP/1.1\r\nContent-Length: -3\r\n\r\n", 400,
         "invalid Content-Length"),
        (b"NONSENSE\r\n\r\n", 400, "malformed request line"),
    ]
    for data, status, message in cases:
        raw, _ = _exchange(url, data)
        [(got, body)] = _answers(raw)  # one answer, then the server hung up
        assert got == status and message in body["message"], (status, raw[:300])
    # A request still fine on a new connection: the refusals left the server well.
    assert requests.get(f"{url}/ping", timeout=5).status_code == 200


def test_keep_alive_and_the_timeouts_of_slow_and_idle_connections(served):
    url, _, _ = served
    # Two requests on one connection are both answered; then, idle, it is closed after
    # idle_timeout (2 s here).
    raw, idle = _exchange(url, b"GET /ping HTTP/1.1\r\n\r\nGET /ping HTTP/1.1\r\n\r\n")
    assert [s for s, _ in _answers(raw)] == [200, 200]
    assert 1.5 <= idle < 8, idle
    # A request trickled in (half its head, then nothing) is answered 408 after
    # request_timeout (1 s here), and the connection closed.
    head = b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
    raw, slow = _exchange(url, head + b"Content-Length: 2\r\n\r\n{}", pause_after=len(head))
    [(status, body)] = _answers(raw)
    assert status == 408 and "request not received within 1 s" in body["message"]
    assert 0.5 <= slow < 8, slow
    # The same with its body cut short.
    raw, _ = _exchange(url, head + b"Content-Length: 20\r\n\r\n{}")
    assert [s for s, _ in _answers(raw)] == [408]


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
