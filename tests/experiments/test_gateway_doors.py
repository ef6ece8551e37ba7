"""The MLflow gateway fails closed: every kind of MLflow object, through every way in.

On the real platform: ann logs a run (metric, param, artifact), a logged model and a registered
model version in her private project with MLflow's own client through the gateway; bob, who is
not a member, sends *valid* requests for each of them (REST, the UI's ajax API, GraphQL with
inline literals, variable defaults, aliases, fragments, over POST and GET) and gets 404/403 and
none of the data; ann gets it all. Bad input gets a JSON 4xx in MLflow's error shape.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time

import pytest
import requests

from jupyter_mlops.core.db import Database
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.core.roles import ADMIN, MANAGE, USE, Caller

MLFLOW = "services/mlflow"
API = f"{MLFLOW}/api/2.0/mlflow"
PROJECT = "vision12"


@contextlib.contextmanager
def as_user(platform, token):
    """MLflow's own client, acting through the gateway with ``token``."""
    from mlflow import MlflowClient

    old = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_URI")}
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    os.environ["MLFLOW_TRACKING_URI"] = f"{platform.url}/{MLFLOW}"
    try:
        yield MlflowClient(tracking_uri=f"{platform.url}/{MLFLOW}",
                           registry_uri=f"{platform.url}/{MLFLOW}")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def call(platform, token, method, path, **kw):
    return requests.request(method, f"{platform.url}/{path}", timeout=120,
                            headers={"Authorization": f"token {token}", **kw.pop("headers", {})},
                            **kw)


def assert_mlflow_error(r, *statuses):
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["error_code"] and body["message"], body
    return body


def ann_in_the_private_project(platform) -> None:
    """ann12 a member of PROJECT, bob12 a lab member outside it (set up once per platform)."""
    for name in ("ann12", "bob12"):
        platform.add_user(name, "password-" + name)
    projects = Projects(Database(f"sqlite:///{platform.data_dir / 'control' / 'mlops.sqlite'}"))
    admin = Caller("admin", scopes=frozenset({ADMIN, MANAGE, USE}))
    if projects.get(PROJECT) is None:
        projects.create(admin, PROJECT, description="private project of the gateway tests")
    projects.add_member(admin, PROJECT, "ann12")


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    import mlflow

    ann_in_the_private_project(platform)
    ann, bob = platform.token("ann12"), platform.token("bob12")
    tmp = tmp_path_factory.mktemp("ann-artifacts")
    (tmp / "notes.txt").write_text("cells detected: 42\n")
    (tmp / "model").mkdir()
    (tmp / "model" / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    with as_user(platform, ann) as client:
        exp = client.create_experiment(f"{PROJECT}-cells-{time.time_ns()}",
                                       tags={"mlops.project": PROJECT})
        run = client.create_run(exp).info.run_id
        client.log_metric(run, "loss", 0.25, step=1)
        client.log_param(run, "lr", "0.001")
        client.log_artifact(run, str(tmp / "notes.txt"))
        logged = mlflow.initialize_logged_model(name="detector", source_run_id=run,
                                                experiment_id=exp)
        client.log_model_artifacts(logged.model_id, str(tmp / "model"))
        client.finalize_logged_model(logged.model_id, "READY")
        model = f"{PROJECT}-detector-{time.time_ns()}"
        client.create_registered_model(model)  # no project tag: its first version places it
        version = client.create_model_version(model, f"models:/{logged.model_id}", run_id=run,
                                              model_id=logged.model_id).version
    return {"ann": ann, "bob": bob, "admin": platform.admin_token(), "exp": exp, "run": run,
            "logged": logged.model_id, "model": model, "version": str(version)}


def valid_requests(w):
    """(name, method, path, kwargs): each valid, each about ann's private objects."""
    exp, run, logged, model, version = w["exp"], w["run"], w["logged"], w["model"], w["version"]
    art = f"{MLFLOW}/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/notes.txt"
    gql = f"{MLFLOW}/graphql"
    get_run = "{ run { info { runId } data { metrics { key value } params { key value } } } }"
    return [
        ("run", "GET", f"{API}/runs/get", {"params": {"run_id": run}}),
        ("run (ajax, as the UI)", "GET", f"{MLFLOW}/ajax-api/2.0/mlflow/runs/get",
         {"params": {"run_id": run}}),
        ("run (GET with a JSON body)", "GET", f"{API}/runs/get", {"json": {"run_id": run}}),
        ("run (camelCase)", "GET", f"{API}/runs/get", {"json": {"runId": run}}),
        ("run (double-encoded body)", "POST", f"{API}/runs/search",
         {"data": json.dumps(json.dumps({"experiment_ids": [exp]})),
          "headers": {"Content-Type": "application/json"}}),
        ("runs search", "POST", f"{API}/runs/search", {"json": {"experiment_ids": [exp]}}),
        ("metrics", "GET", f"{API}/metrics/get-history",
         {"params": {"run_id": run, "metric_key": "loss"}}),
        ("metrics (bulk, as the UI)", "GET",
         f"{MLFLOW}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
         {"params": {"run_ids": run, "metric_key": "loss"}}),
        ("params (via the run's data)", "POST", f"{API}/runs/log-parameter",
         {"json": {"run_id": run, "key": "lr", "value": "0.001"}}),
        ("artifact list", "GET", f"{API}/artifacts/list", {"params": {"run_id": run}}),
        ("artifact (UI download)", "GET", f"{MLFLOW}/get-artifact",
         {"params": {"run_uuid": run, "path": "notes.txt"}}),
        ("artifact (proxied)", "GET", art, {}),
        ("artifact listing (proxied)", "GET", f"{MLFLOW}/api/2.0/mlflow-artifacts/artifacts",
         {"params": {"path": f"{exp}/{run}/artifacts"}}),
        ("artifact upload into the run", "PUT",
         f"{MLFLOW}/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/bob.txt",
         {"data": b"bob was here"}),
        ("logged model", "GET", f"{API}/logged-models/{logged}", {}),
        ("logged model search", "POST", f"{API}/logged-models/search",
         {"json": {"experiment_ids": [exp]}}),
        ("logged model files", "GET",
         f"{MLFLOW}/ajax-api/2.0/mlflow/logged-models/{logged}/artifacts/files",
         {"params": {"artifact_file_path": "MLmodel"}}),
        ("logged model tag", "PATCH", f"{API}/logged-models/{logged}/tags",
         {"json": {"tags": [{"key": "owner", "value": "bob"}]}}),
        ("registered model", "GET", f"{API}/registered-models/get", {"params": {"name": model}}),
        ("model version", "GET", f"{API}/model-versions/get",
         {"params": {"name": model, "version": version}}),
        ("model version download URI", "GET", f"{API}/model-versions/get-download-uri",
         {"params": {"name": model, "version": version}}),
        ("model version artifact", "GET", f"{MLFLOW}/model-versions/get-artifact",
         {"params": {"name": model, "version": version, "path": "MLmodel"}}),
        ("alias on the model", "POST", f"{API}/registered-models/alias",
         {"json": {"name": model, "alias": "champion", "version": version}}),
        ("graphql, inline literal", "POST", gql,
         {"json": {"query": '{ mlflowGetRun(input: {runId: "%s"}) %s }' % (run, get_run)}}),
        ("graphql, variable default", "POST", gql,
         {"json": {"query": 'query Q($r: String = "%s") { mlflowGetRun(input: {runId: $r}) '
                            '%s }' % (run, get_run)}}),
        ("graphql, alias and fragment", "POST", gql,
         {"json": {"query": '{ mine: test(inputString: "x") { output } ...F } fragment F on Query { '
                            'x: mlflowGetRun(input: {runId: "%s"}) %s }' % (run, get_run)}}),
        ("graphql over GET", "GET", gql,
         {"json": {"query": '{ mlflowGetRun(input: {runId: "%s"}) %s }' % (run, get_run)}}),
        ("graphql search mutation", "POST", gql,
         {"json": {"query": 'mutation { mlflowSearchRuns(input: {experimentIds: ["%s"]}) '
                            '{ runs { info { runId } } } }' % exp}}),
        ("graphql metric history", "POST", gql,
         {"json": {"query": '{ mlflowGetMetricHistoryBulkInterval(input: {runIds: ["%s"], '
                            'metricKey: "loss"}) { metrics { value } } }' % run}}),
    ]


def test_a_non_member_gets_nothing_of_a_private_project(platform, world):
    secrets = ["0.001", "cells detected", "python_function", "loss"]
    for name, method, path, kw in valid_requests(world):
        r = call(platform, world["bob"], method, path, **kw)
        body = assert_mlflow_error(r, 403, 404)
        for secret in secrets:
            assert secret not in r.text, (name, r.text[:300])
        assert "data" not in body, name
    # searches are filtered: the registered model and its version are not listed
    r = call(platform, world["bob"], "GET", f"{API}/registered-models/search",
             params={"max_results": 1000})
    assert r.ok and world["model"] not in r.text
    r = call(platform, world["bob"], "GET", f"{API}/model-versions/search",
             params={"max_results": 1000})
    assert r.ok and world["model"] not in r.text
    # bob cannot put ann's run into a model of his own (the run is hidden from him)
    own = f"bob12-model-{time.time_ns()}"
    assert call(platform, world["bob"], "POST", f"{API}/registered-models/create",
                json={"name": own}).ok
    r = call(platform, world["bob"], "POST", f"{API}/model-versions/create",
             json={"name": own, "source": f"runs:/{world['run']}/model", "run_id": world["run"]})
    assert_mlflow_error(r, 404)
    r = call(platform, world["bob"], "POST", f"{API}/model-versions/create",
             json={"name": own, "source": f"models:/{world['logged']}"})
    assert_mlflow_error(r, 404)
    # and nothing bob sent landed: the upload, the tag, the alias
    r = call(platform, world["ann"], "GET", f"{API}/artifacts/list",
             params={"run_id": world["run"]})
    assert "bob.txt" not in r.text
    r = call(platform, world["ann"], "GET", f"{API}/logged-models/{world['logged']}")
    assert "bob" not in r.text
    r = call(platform, world["ann"], "GET", f"{API}/registered-models/get",
             params={"name": world["model"]})
    assert "champion" not in r.text


def test_the_owner_gets_everything(platform, world):
    ann = world["ann"]
    writes = {"artifact upload into the run", "logged model tag", "alias on the model",
              "params (via the run's data)",
              "run (camelCase)"}  # MLflow itself wants run_id there (400); checked for bob
    for name, method, path, kw in valid_requests(world):
        if name in writes:
            continue
        r = call(platform, ann, method, path, **kw)
        assert r.status_code == 200, (name, r.status_code, r.text[:300])
        if "graphql" in name:
            assert not r.json().get("errors"), (name, r.text[:300])
    # who ran it is the platform's to say, also after the run was created
    r = call(platform, ann, "POST", f"{API}/runs/set-tag",
             json={"run_id": world["run"], "key": "mlops.user", "value": "bob12"})
    assert_mlflow_error(r, 403)
    r = call(platform, ann, "POST", f"{API}/runs/log-batch", json={
        "run_id": world["run"], "tags": [{"key": "mlops.user", "value": "bob12"}]})
    assert_mlflow_error(r, 403)
    r = call(platform, ann, "POST", f"{MLFLOW}/graphql", json={
        "query": 'query Q($r: String = "%s") { mlflowGetRun(input: {runId: $r}) '
                 '{ run { data { params { key value } } } } }' % world["run"]})
    assert r.json()["data"]["mlflowGetRun"]["run"]["data"]["params"] == [
        {"key": "lr", "value": "0.001"}]
    r = call(platform, ann, "GET", f"{MLFLOW}/get-artifact",
             params={"run_uuid": world["run"], "path": "notes.txt"})
    assert r.text == "cells detected: 42\n"
    # the registered model took the project of its first version's source
    r = call(platform, ann, "GET", f"{API}/registered-models/get", params={"name": world["model"]})
    assert {"key": "mlops.project", "value": PROJECT} in r.json()["registered_model"]["tags"]
    r = call(platform, ann, "GET", f"{API}/registered-models/search",
             params={"max_results": 1000})
    assert world["model"] in r.text


def test_sharing_a_model_is_explicit(platform, world):
    ann, bob = world["ann"], world["bob"]
    # a private run's version cannot slip into a lab-wide model
    shared = f"lab-model-{time.time_ns()}"
    assert call(platform, ann, "POST", f"{API}/registered-models/create", json={
        "name": shared, "tags": [{"key": "mlops.project", "value": "default"}]}).ok
    r = call(platform, ann, "POST", f"{API}/model-versions/create", json={
        "name": shared, "source": f"models:/{world['logged']}", "model_id": world["logged"]})
    body = assert_mlflow_error(r, 403)
    assert PROJECT in body["message"]
    # removing the project tag (which would share the model) is refused; setting it shares it
    r = call(platform, ann, "DELETE", f"{API}/registered-models/delete-tag",
             json={"name": world["model"], "key": "mlops.project"})
    assert_mlflow_error(r, 403)
    assert_mlflow_error(call(platform, bob, "GET", f"{API}/registered-models/get",
                             params={"name": world["model"]}), 404)


@pytest.mark.parametrize("name,method,path,kw,status", [
    ("nested JSON", "POST", f"{API}/runs/search",
     {"data": "[" * 10000 + "]" * 10000, "headers": {"Content-Type": "application/json"}}, 400),
    ("nested JSON object", "POST", f"{API}/experiments/search",
     {"data": '{"a":' * 10000 + "1" + "}" * 10000,
      "headers": {"Content-Type": "application/json"}}, 400),
    ("invalid UTF-8", "POST", f"{API}/runs/search",
     {"data": b'{"experiment_ids": ["\xff\xfe"]}',
      "headers": {"Content-Type": "application/json"}}, 400),
    ("not JSON", "POST", f"{API}/runs/search",
     {"data": "experiment_ids=1", "headers": {"Content-Type": "application/json"}}, 400),
    ("wrong type of an id", "POST", f"{API}/runs/search", {"json": {"experiment_ids": [None]}},
     400),
    ("wrong type of a run id", "POST", f"{API}/runs/log-metric",
     {"json": {"run_id": ["x"], "key": "a", "value": 1, "timestamp": 1}}, 400),
    ("wrong type of tags", "POST", f"{API}/experiments/create",
     {"json": {"name": "x", "tags": [None]}}, 400),
    ("GraphQL nested", "POST", f"{MLFLOW}/graphql", {"json": {"query": "{a" * 10000}}, 400),
    ("GraphQL not a document", "POST", f"{MLFLOW}/graphql", {"json": {"query": 5}}, 400),
    ("GraphQL over GET without a body", "GET", f"{MLFLOW}/graphql",
     {"params": {"query": "{ test }"}}, 400),
    ("search without experiments", "POST", f"{API}/runs/search", {"json": {}}, 400),
    ("method not offered", "OPTIONS", f"{API}/runs/get", {}, 405),
    ("route not offered", "GET", f"{API}/webhooks", {}, 403),
    ("body too large", "POST", f"{API}/runs/log-batch",
     {"data": (b" " * 1024 * 1024 for _ in range(33)),
      "headers": {"Content-Type": "application/json"}}, 413),
    ("artifact location of another experiment", "POST", f"{API}/experiments/create",
     {"json": {"name": "bob-steals", "artifact_location": "mlflow-artifacts:/1"}}, 403),
    ("artifact path with ..", "GET", f"{API}/artifacts/list",
     {"params": {"run_id": "0" * 32, "path": "../../1"}}, 400),
    ("model version source with ..", "POST", f"{API}/model-versions/create",
     {"json": {"name": "x", "source": "mlflow-artifacts:/0/../1/r/artifacts"}}, 403),
    ("artifact outside an experiment", "GET",
     f"{MLFLOW}/api/2.0/mlflow-artifacts/artifacts", {"params": {"path": ""}}, 403),
    ("artifact path escaping", "GET",
     f"{MLFLOW}/api/2.0/mlflow-artifacts/artifacts/0%2F%2e%2e%2F1/x", {}, 400),
])
def test_bad_input_gets_a_json_4xx(platform, world, name, method, path, kw, status):
    r = call(platform, world["bob"], method, path, **kw)
    body = assert_mlflow_error(r, status)
    assert "Traceback" not in body["message"], name


def test_administrators_reach_routes_outside_the_allow_list(platform, world):
    r = call(platform, world["admin"], "GET", f"{API}/webhooks")
    assert r.status_code == 200, r.text


def gateway_peak_rss_kb(platform) -> int:
    """VmHWM (peak resident set) of this platform's gateway process."""
    sock = str(platform.data_dir / "mlflow" / "run" / "mlflow.sock")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            status = open(f"/proc/{pid}/status").read()
        except OSError:
            continue
        if b"jupyter_mlops.service.mlflow_gateway" in cmd and any(
                sock.encode() in c for c in cmd):
            return int(status.split("VmHWM:")[1].split()[0])
    raise AssertionError("gateway process not found")


def test_an_artifact_above_100_mb_streams_through(platform, world, tmp_path):
    # Given a 160 MB file (random bytes: nothing compresses it on the way)
    big = tmp_path / "weights.bin"
    digest = hashlib.sha256()
    with open(big, "wb") as f:
        for _ in range(160):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            f.write(chunk)
    before = gateway_peak_rss_kb(platform)
    # When ann logs it to her run and downloads it again, with MLflow's client
    with as_user(platform, world["ann"]) as client:
        client.log_artifact(world["run"], str(big), "big")
        got = client.download_artifacts(world["run"], "big/weights.bin",
                                        str(tmp_path / "down"))
    # Then the bytes are the same and the gateway never held the file in memory
    h = hashlib.sha256()
    with open(got, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    assert h.hexdigest() == digest.hexdigest()
    after = gateway_peak_rss_kb(platform)
    print(f"gateway peak RSS: {before / 1024:.0f} MB before, {after / 1024:.0f} MB after "
          "a 160 MB upload and download")
    assert after - before < 64 * 1024, (before, after)


def test_mlflow_down_gives_json_503(platform, world):
    from concurrent.futures import ThreadPoolExecutor

    sock = platform.data_dir / "mlflow" / "run" / "mlflow.sock"
    moved = sock.with_name("mlflow.sock.away")
    os.rename(sock, moved)  # MLflow keeps listening; no new connection can reach it
    try:
        # More requests at once than the gateway has pooled connections: some need a new one
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: call(
                platform, world["ann"], "GET", f"{API}/runs/get",
                params={"run_id": world["run"]}), range(32)))
    finally:
        os.rename(moved, sock)
    down = [r for r in answers if r.status_code != 200]
    assert down, "every request found a pooled connection"
    for r in down:
        body = assert_mlflow_error(r, 503)
        assert body["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert call(platform, world["ann"], "GET", f"{API}/runs/get",
                params={"run_id": world["run"]}).status_code == 200
