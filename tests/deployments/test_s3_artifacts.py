"""A deployment of a model whose MLflow artifacts live in S3 (a real SeaweedFS server).

The session platform's MLflow keeps artifacts in a local directory, so this module starts an
MLflow server of its own the way the platform starts its one (SQLite, a unix socket, the
``/services/mlflow`` prefix) but with ``--default-artifact-root s3://...``: the registry then
hands out ``s3://`` download URIs. The real resolver, the real local backend and the real model
server take it from there; the model server reads the model from S3 with MLflow itself.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from jupyter_mlops.backends.deploy_local import LocalDeployBackend, MlflowArtifactResolver
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.deployments import Deployments
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.core.roles import ADMIN, Caller
from tests.datasets.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedS3
from tests.deployments.conftest import environment, training_data
from tests.fixtures import until, until_async

BUCKET = "mlflow-artifacts"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    s = SeaweedS3(tmp_path_factory.mktemp("seaweed-mlflow")).start()
    s.client().create_bucket(Bucket=BUCKET)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def s3_env(s3):
    """What MLflow (server, client, model server) needs to reach the bucket: the endpoint and
    the keys, in the environment, as boto3 reads them."""
    with environment({"MLFLOW_S3_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                      "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                      "AWS_DEFAULT_REGION": "us-east-1"}) as env:
        yield env


def start_mlflow(d: Path, artifacts: list[str], env: dict):
    """An MLflow server as the platform runs it (SQLite, unix socket, /services/mlflow)."""
    (d / "run").mkdir(mode=0o700)
    sock, db = d / "run" / "mlflow.sock", d / "mlflow.db"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server",
           "--backend-store-uri", f"sqlite:///{db}", *artifacts,
           "--workers", "1", "--static-prefix", "/services/mlflow",
           "--uvicorn-opts", f"--uds {sock}"]
    env = {**os.environ, **env, "MLFLOW_DISABLE_TELEMETRY": "true",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(d / "mlflow.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)

    def stop():  # the whole group: `mlflow server` runs its uvicorn as a child
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        log.close()

    def answers() -> bool:
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=2) as c:
                if c.get("http://localhost/services/mlflow/health").status_code == 200:
                    return True
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            stop()
            raise AssertionError((d / "mlflow.log").read_text()[-3000:])
        return False

    try:
        until(answers, 90, "MLflow's health answer")
    except AssertionError as e:
        stop()
        raise AssertionError(f"{e}\n" + (d / "mlflow.log").read_text()[-3000:]) from None
    return {"socket": str(sock), "db": f"sqlite:///{db}", "dir": d}, stop


@pytest.fixture(scope="module")
def s3_mlflow(tmp_path_factory, s3_env):
    """Artifacts written and read in S3 by the clients themselves (``s3://`` URIs)."""
    info, stop = start_mlflow(tmp_path_factory.mktemp("mlflow-s3"), [
        "--default-artifact-root", f"s3://{BUCKET}/artifacts", "--no-serve-artifacts"], s3_env)
    yield info
    stop()


@pytest.fixture(scope="module")
def proxied_mlflow(tmp_path_factory, s3_env):
    """MLflow proxying S3 (``mlflow-artifacts:`` URIs): only the server holds the keys."""
    info, stop = start_mlflow(tmp_path_factory.mktemp("mlflow-proxy"), [
        "--artifacts-destination", f"s3://{BUCKET}/proxied", "--serve-artifacts"], s3_env)
    yield info
    stop()


def register_in_s3(db_uri: str) -> list[int]:
    """Log and register ``lr-s3`` v1; its files go straight to the bucket. Returns the
    predictions of the probe rows."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    client = mlflow.MlflowClient(tracking_uri=db_uri, registry_uri=db_uri)
    found = client.get_experiment_by_name("s3-models")  # a second call adds a version
    exp = found.experiment_id if found else client.create_experiment(
        "s3-models", artifact_location=f"s3://{BUCKET}/artifacts/s3-models")
    x, y = training_data()
    model = LogisticRegression().fit(x, y)
    try:
        mlflow.set_tracking_uri(db_uri)
        mlflow.set_registry_uri(db_uri)
        with mlflow.start_run(experiment_id=exp):
            mlflow.sklearn.log_model(model, name="model", registered_model_name="lr-s3",
                                     signature=infer_signature(x, model.predict(x)),
                                     serialization_format="cloudpickle",
                                     pip_requirements=["mlflow", "scikit-learn"])
    finally:
        # process-wide: leave the next test's MLflow alone
        tracking_utils._tracking_uri = None
        registry_utils._registry_uri = None
    return model.predict(x.iloc[:4]).tolist()


async def wait_ready(deployments, caller, name, timeout=120):
    return await until_async(lambda: (d := deployments.get(caller, name))["status"]
                             in ("ready", "failed") and d, timeout, f"{name} ready or failed",
                             every=0.3)


@pytest.mark.asyncio
async def test_deploy_a_model_stored_in_s3(s3, s3_mlflow, tmp_path):
    expected = register_in_s3(s3_mlflow["db"])
    # The model's files are in the bucket, not on this machine
    keys = [o["Key"] for o in s3.client().list_objects_v2(
        Bucket=BUCKET, Prefix="artifacts/s3-models/").get("Contents", [])]
    assert any(k.endswith("/MLmodel") for k in keys), keys
    resolver = MlflowArtifactResolver(s3_mlflow["socket"], str(tmp_path / "no-local-artifacts"))
    uri = await resolver.resolve("lr-s3", "1")
    assert uri.startswith(f"s3://{BUCKET}/artifacts/s3-models/"), uri
    db = Database(f"sqlite:///{tmp_path / 'control.sqlite'}")
    deployments = Deployments(db, Projects(db),
                              LocalDeployBackend(run_dir=str(tmp_path / "deployments")),
                              resolver)
    admin = Caller("admin", scopes=frozenset({ADMIN}))
    try:
        # When it is deployed, the model server loads it from S3 and serves it
        await deployments.create(admin, "s3-lr", "lr-s3", "1")
        dep = await wait_ready(deployments, admin, "s3-lr")
        assert dep["status"] == "ready", dep["log"]
        route = deployments.authorize("s3-lr", caller=admin)
        x, _ = training_data()
        probe = x.iloc[:4]
        async with httpx.AsyncClient(timeout=30, transport=httpx.AsyncHTTPTransport(
                uds=route.socket)) as http:
            r = await http.post(f"{route.url}/invocations", json={"dataframe_split": {
                "columns": list(probe.columns), "data": probe.to_numpy().tolist()}})
            health = (await http.get(f"{route.url}/health")).json()
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": expected}
        assert health["model_uri"] == uri and health["flavor"] == "mlflow.sklearn"
    finally:
        if deployments._row("s3-lr"):
            await deployments.delete(admin, "s3-lr")
        await deployments.close()


def test_model_server_reads_proxied_s3_artifacts_through_the_mlflow_socket(
        s3, proxied_mlflow, tmp_path):
    """The model server's half of MLflow proxying S3: given ``mlflow-artifacts:/<path>`` and the
    socket, it copies the model through MLflow and serves it, holding no S3 keys itself."""
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from tests.fixtures import free_port

    x, y = training_data()
    model = LogisticRegression().fit(x, 1 - y)
    mlflow.sklearn.save_model(model, str(tmp_path / "m"), serialization_format="cloudpickle")
    bucket = s3.client()
    for f in (tmp_path / "m").rglob("*"):
        if f.is_file():
            bucket.upload_file(str(f), BUCKET,
                               f"proxied/7/models/m-1/artifacts/{f.relative_to(tmp_path / 'm')}")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "MLFLOW_S3", "MLFLOW_TRACKING"))}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_mlops.serving",
         "--model-uri=mlflow-artifacts:/7/models/m-1/artifacts",
         f"--mlflow-socket={proxied_mlflow['socket']}", f"--port={port}",
         f"--model-cache-dir={tmp_path / 'cache'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def pings() -> bool:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                return httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        until(pings, 120, "the model server's ping")
        probe = x.iloc[:4]
        r = httpx.post(f"http://127.0.0.1:{port}/invocations", timeout=30, json={
            "dataframe_split": {"columns": list(probe.columns),
                                "data": probe.to_numpy().tolist()}})
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": model.predict(probe).tolist()}
        copied = tmp_path / "cache" / "7__models__m-1__artifacts"
        assert (copied / "MLmodel").exists() and (copied / "model.pkl").exists()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.mark.asyncio
async def test_the_control_plane_copies_s3_models_for_servers_that_hold_no_keys(
        s3, s3_mlflow, proxied_mlflow, tmp_path):
    """As the platform builds it (a cache directory), the resolver copies a version stored in
    S3, directly (``s3://``) or behind MLflow's proxy (``mlflow-artifacts:``), to a local
    directory once; a model server started with no S3 keys and no MLflow socket serves it."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    from jupyter_mlops.serving import fetch

    # the proxied server's copy of a model: logged through the proxy by a client on its socket
    x, y = training_data()
    model = LogisticRegression().fit(x, 1 - y)
    mlflow.sklearn.save_model(model, str(tmp_path / "m"), serialization_format="cloudpickle",
                              signature=infer_signature(x, model.predict(x)))
    transport = httpx.HTTPTransport(uds=proxied_mlflow["socket"])
    base = "http://localhost/services/mlflow"
    with httpx.Client(transport=transport, timeout=30) as http:
        run = http.post(f"{base}/api/2.0/mlflow/runs/create",
                        json={"experiment_id": "0"}).json()["run"]["info"]
        source = f"{run['artifact_uri']}/m"  # mlflow-artifacts:/0/<run>/artifacts/m
        for f in (tmp_path / "m").rglob("*"):
            if f.is_file():
                rel = f.relative_to(tmp_path / "m").as_posix()
                r = http.put(f"{base}/api/2.0/mlflow-artifacts/artifacts/"
                             f"{fetch.artifact_path(source)}/{rel}", content=f.read_bytes())
                assert r.status_code == 200, r.text
        assert http.post(f"{base}/api/2.0/mlflow/registered-models/create",
                         json={"name": "lr-proxied"}).status_code == 200
        r = http.post(f"{base}/api/2.0/mlflow/model-versions/create", json={
            "name": "lr-proxied", "source": source, "run_id": run["run_id"]})
        assert r.status_code == 200, r.text
    expected_direct = register_in_s3(s3_mlflow["db"])
    expected_proxied = model.predict(x.iloc[:4]).tolist()

    for mlflow_info, name, expected in ((s3_mlflow, "lr-s3", expected_direct),
                                        (proxied_mlflow, "lr-proxied", expected_proxied)):
        cache = tmp_path / f"cache-{name}"
        resolver = MlflowArtifactResolver(mlflow_info["socket"], str(tmp_path / "none"),
                                          cache_dir=str(cache))
        path = await resolver.resolve(name, "1")
        assert Path(path) == cache / name / "1" and (Path(path) / "MLmodel").exists()
        assert await resolver.resolve(name, "1") == path  # copied once
        # the model server gets neither keys nor socket: only the local copy
        keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL")
        saved = {k: os.environ.pop(k) for k in keys}
        db = Database(f"sqlite:///{tmp_path / f'{name}.sqlite'}")
        deployments = Deployments(db, Projects(db), LocalDeployBackend(
            run_dir=str(tmp_path / f"deployments-{name}")), resolver)
        admin = Caller("admin", scopes=frozenset({ADMIN}))
        try:
            await deployments.create(admin, f"{name}-dep", name, "1")
            dep = await wait_ready(deployments, admin, f"{name}-dep")
            assert dep["status"] == "ready", dep["log"]
            route = deployments.authorize(f"{name}-dep", caller=admin)
            probe = x.iloc[:4]
            async with httpx.AsyncClient(timeout=30, transport=httpx.AsyncHTTPTransport(
                    uds=route.socket)) as http:
                r = await http.post(f"{route.url}/invocations", json={"dataframe_split": {
                    "columns": list(probe.columns), "data": probe.to_numpy().tolist()}})
            assert r.status_code == 200 and r.json() == {"predictions": expected}, r.text
        finally:
            os.environ.update(saved)
            if deployments._row(f"{name}-dep"):
                await deployments.delete(admin, f"{name}-dep")
            await deployments.close()
    # a version whose files are gone from the store is a clear 404, not a crash
    with httpx.Client(transport=transport, timeout=30) as http:
        r = http.post(f"{base}/api/2.0/mlflow/model-versions/create", json={
            "name": "lr-proxied", "source": f"{run['artifact_uri']}/nowhere",
            "run_id": run["run_id"]})
        assert r.status_code == 200, r.text
    resolver = MlflowArtifactResolver(proxied_mlflow["socket"], str(tmp_path / "none"),
                                      cache_dir=str(tmp_path / "cache-missing"))
    from jupyter_mlops.core.errors import NotFound

    with pytest.raises(NotFound, match="could not be copied"):
        await resolver.resolve("lr-proxied", "2")
