"""The Kubernetes backend: its objects validated offline, its lifecycle against the API stand-in.

Kubernetes is simulated (tests/kube_fake.py, no cluster runs here): nothing starts containers,
so most tests play the Deployment controller by setting ``status`` as a cluster would; the GPU
test runs the stand-in's own scheduler and Deployment controller on a cluster whose GPU node is
tainted.
"""
from __future__ import annotations

import asyncio
import base64

import kubernetes_validate
import pytest

from jupyter_mlops.backends.deploy_kube import KubeDeployBackend
from jupyter_mlops.backends.deploy_kube_objects import (labels, make_model_deployment,
                                                        make_model_hpa, make_model_service,
                                                        make_model_token_secret)
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.deployments import Deployments, LoadFailed
from jupyter_mlops.core.errors import Unavailable
from jupyter_mlops.core.jobs.tracking import MLFLOW_SCOPE
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.core.roles import ADMIN, USE, Caller
from tests.fixtures import until_async
from tests.kube_fake import KubeFake, kube_fake, use_kubeconfig  # noqa: F401 (a fixture)
from tests.kube_fake_cluster import GPU_TAINT, make_node

VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def test_objects_are_valid_kubernetes():
    objs = [
        make_model_deployment(deployment="cells", version="3", model_uri="models:/cells/3",
                              image="registry.lab/mlops-serve:1", namespace="mlops",
                              tracking_uri="http://hub/services/mlflow",
                              token_secret="reader", gpus=1),
        make_model_service(deployment="cells", version="3", namespace="mlops"),
        make_model_hpa(deployment="cells", version="3", namespace="mlops", max_replicas=3),
    ]
    for obj in objs:
        for v in VERSIONS:
            kubernetes_validate.validate(obj, v, strict=True)
    dep, svc, hpa = objs
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert dep["metadata"]["name"] == svc["metadata"]["name"] == "mlops-cells-v3"
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert dep["spec"]["template"]["metadata"]["labels"].items() >= \
        dep["spec"]["selector"]["matchLabels"].items()
    assert "--model-uri=models:/cells/3" in container["args"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ping"
    assert {"name": "MLFLOW_TRACKING_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "reader", "key": "token"}}} in container["env"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "mlops-cells-v3"
    broken = make_model_service(deployment="cells", version="3", namespace="mlops")
    broken["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_each_version_reads_mlflow_with_a_token_secret_of_its_own():
    secret = make_model_token_secret(deployment="cells", version="3", namespace="mlops",
                                     token="tok-dana")
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "mlops-cells-v3-mlflow-token", "namespace": "mlops", "labels": {
            "app.kubernetes.io/name": "mlops-model-server",
            "app.kubernetes.io/instance": "mlops-cells-v3",
            "app.kubernetes.io/managed-by": "jupyter-mlops",
            "mlops.jupyter.org/deployment": "cells",
            "mlops.jupyter.org/model-version": "3"}},
        "type": "Opaque",
        "immutable": True,
        "stringData": {"token": "tok-dana"},
    }
    for v in VERSIONS:
        kubernetes_validate.validate(secret, v, strict=True)

    # With a token the Secret comes first and the Deployment reads the token from it ...
    backend = KubeDeployBackend(namespace="mlops", image="registry.lab/mlops-serve:1",
                                tracking_uri="http://hub/services/mlflow")
    objs = backend.objects("cells", "3", "models:/cells/3", token="tok-dana")
    assert [o["kind"] for o in objs] == ["Secret", "Deployment", "Service"]
    assert objs[0] == secret
    assert objs[1]["metadata"]["labels"] == secret["metadata"]["labels"]
    assert objs[1]["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "MLFLOW_TRACKING_URI", "value": "http://hub/services/mlflow"},
        # a CPU replica sees no GPU of its node, whatever its image sets
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"},
        {"name": "MLFLOW_TRACKING_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": "mlops-cells-v3-mlflow-token", "key": "token"}}},
    ]
    # ... without one (no issuer), the shared token_secret someone else created.
    objs = backend.objects("cells", "3", "models:/cells/3")
    assert [o["kind"] for o in objs] == ["Deployment", "Service"]
    assert objs[0]["spec"]["template"]["spec"]["containers"][0]["env"][-1] == {
        "name": "MLFLOW_TRACKING_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": "mlops-model-reader", "key": "token"}}}


class RecordingIssuer:
    """A hub that hands out numbered tokens and remembers what was minted and revoked."""

    def __init__(self, refuse: bool = False):
        self.minted, self.revoked, self.refuse = [], [], refuse

    async def mint(self, user, lifetime, note, scopes=None):
        if self.refuse:
            raise Unavailable(f"the hub refused a token for {user}: 403 Forbidden")
        self.minted.append((user, lifetime, note, scopes))
        n = len(self.minted)
        return f"tok-{user}-{n}", f"id{n}"

    async def revoke(self, user, token_id):
        self.revoked.append((user, token_id))


class RegistryStandIn:
    """Versions 1-3 of ``lr`` exist (the MLflow side is tested against a real registry)."""

    async def resolve(self, model_name, version):
        from jupyter_mlops.core.errors import NotFound

        if model_name != "lr" or version not in ("1", "2", "3"):
            raise NotFound(f"no model version {model_name}/{version}")
        return f"models:/{model_name}/{version}"


async def _until(check, timeout=10.0):
    """:func:`~tests.fixtures.until_async` polling often (the fake cluster answers at once)."""
    return await until_async(check, timeout, "the condition", every=0.05)


@pytest.mark.asyncio
async def test_rollout_switch_failure_and_undeploy_on_kubernetes(kube_fake, tmp_path):
    kube_fake.create("namespaces", None, {"metadata": {"name": "mlops"}})
    backend = KubeDeployBackend(namespace="mlops", image="registry.lab/mlops-serve:1",
                                tracking_uri="http://hub/services/mlflow", autoscale=True,
                                poll_interval=0.05, start_timeout=20)
    db = Database(f"sqlite:///{tmp_path / 'cp.sqlite'}")
    deployments = Deployments(db, Projects(db), backend, RegistryStandIn(), drain_timeout=2)
    admin = Caller("admin", scopes=frozenset({ADMIN}))
    names = lambda plural: sorted(o["metadata"]["name"]  # noqa: E731
                                  for o in kube_fake.list(plural, "mlops"))
    try:
        dep = await deployments.create(admin, "lr", "lr", "1")
        assert dep["status"] == "starting"
        await _until(lambda: names("horizontalpodautoscalers") == ["mlops-lr-v1"])
        assert names("deployments") == names("horizontalpodautoscalers") == ["mlops-lr-v1"]
        kube_fake.set_status("deployments", "mlops", "mlops-lr-v1",
                             {"replicas": 1, "readyReplicas": 1})
        await _until(lambda: deployments.get(admin, "lr")["status"] == "ready")
        assert deployments.routes["lr"].url == "http://mlops-lr-v1.mlops.svc:8080"

        # Switch: the new version's objects come up, the old ones go once it is ready.
        await deployments.switch(admin, "lr", "2")
        await _until(lambda: "mlops-lr-v2" in names("horizontalpodautoscalers"))
        assert names("deployments") == ["mlops-lr-v1", "mlops-lr-v2"]
        assert deployments.routes["lr"].version == "1"  # still serving until v2 is ready
        kube_fake.set_status("deployments", "mlops", "mlops-lr-v2",
                             {"replicas": 1, "readyReplicas": 1})
        await _until(lambda: names("deployments") == ["mlops-lr-v2"])  # deleted last
        assert deployments.routes["lr"].url == "http://mlops-lr-v2.mlops.svc:8080"
        assert names("services") == names("horizontalpodautoscalers") == ["mlops-lr-v2"]

        # A version that never gets ready: failed with Kubernetes' reason, v2 keeps serving.
        await deployments.switch(admin, "lr", "3")
        await _until(lambda: "mlops-lr-v3" in names("horizontalpodautoscalers"))
        kube_fake.set_status("deployments", "mlops", "mlops-lr-v3", {"conditions": [{
            "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "mlops-lr-v3-5d8f" has timed out progressing.'}]})
        failed = await _until(lambda: (d := deployments.get(admin, "lr"))["status"] == "failed"
                              and d)
        assert "ProgressDeadlineExceeded" in failed["message"]
        assert "timed out progressing" in failed["log"]
        assert failed["serving_version"] == "2" and deployments.routes["lr"].version == "2"
        # the failed version was cleaned up
        await _until(lambda: names("deployments") == ["mlops-lr-v2"])

        # A control plane restart takes the running version over.
        again = Deployments(db, Projects(db), backend, RegistryStandIn())
        await again.recover()
        assert again.routes["lr"].url == "http://mlops-lr-v2.mlops.svc:8080"

        await deployments.delete(admin, "lr")
        assert names("deployments") == names("services") == []
        assert names("horizontalpodautoscalers") == []
        actions = [e["action"] for e in db.query(
            "SELECT action FROM deployment_events WHERE deployment = 'lr' ORDER BY at")]
        assert actions == ["created", "serving", "switched", "serving", "switched", "failed",
                           "deleted"]
    finally:
        await deployments.close()
        await backend.close()


@pytest.mark.asyncio
async def test_a_project_can_require_its_managers_approval(kube_fake, tmp_path):
    from jupyter_mlops.core.errors import Forbidden
    from jupyter_mlops.core.roles import MANAGE, USE

    kube_fake.create("namespaces", None, {"metadata": {"name": "mlops"}})
    backend = KubeDeployBackend(namespace="mlops", image="registry.lab/mlops-serve:1",
                                poll_interval=0.05, start_timeout=20)
    db = Database(f"sqlite:///{tmp_path / 'cp.sqlite'}")
    projects = Projects(db)
    deployments = Deployments(db, projects, backend, RegistryStandIn(), drain_timeout=2)
    admin = Caller("admin", scopes=frozenset({ADMIN}))
    pat = Caller("pat", scopes=frozenset({USE, MANAGE}))  # the project manager
    dana = Caller("dana", scopes=frozenset({USE}))  # a data scientist
    projects.create(admin, "cells")
    projects.add_member(admin, "cells", "pat", role="manager")
    projects.add_member(admin, "cells", "dana")
    names = lambda: sorted(o["metadata"]["name"]  # noqa: E731
                           for o in kube_fake.list("deployments", "mlops"))
    try:
        with pytest.raises(Forbidden):
            deployments.set_policy(dana, "cells", True)
        assert deployments.set_policy(pat, "cells", True)["require_approval"] is True

        dep = await deployments.create(dana, "cells-lr", "lr", "1", project="cells")
        assert dep["status"] == "pending_approval" and not dep["can_approve"]
        await asyncio.sleep(0.3)
        assert names() == []  # nothing runs before the approval
        with pytest.raises(Forbidden):
            deployments.approve(dana, "cells-lr")
        assert deployments.get(pat, "cells-lr")["can_approve"] is True
        assert deployments.approve(pat, "cells-lr")["status"] == "starting"
        await _until(lambda: names() == ["mlops-cells-lr-v1"])
        kube_fake.set_status("deployments", "mlops", "mlops-cells-lr-v1",
                             {"replicas": 1, "readyReplicas": 1})
        await _until(lambda: deployments.get(dana, "cells-lr")["status"] == "ready")

        # Dana's switch waits too; version 1 keeps serving; the manager rejects it.
        dep = await deployments.switch(dana, "cells-lr", "2")
        assert dep["status"] == "pending_approval" and dep["serving_version"] == "1"
        dep = deployments.reject(pat, "cells-lr", "not validated on the reference set")
        assert dep["status"] == "ready" and dep["model_version"] == "1"
        assert "rejected by pat: not validated" in dep["message"]
        assert names() == ["mlops-cells-lr-v1"]

        # A manager's own switch needs nobody's approval.
        assert (await deployments.switch(pat, "cells-lr", "2"))["status"] == "updating"
        story = [(e["action"], e["actor"], e["model_version"])
                 for e in deployments.events(pat, "cells-lr")]
        assert story == [("created", "dana", "1"), ("requested", "dana", "1"),
                         ("approved", "pat", "1"), ("serving", "pat", "1"),
                         ("requested", "dana", "2"), ("rejected", "pat", "2"),
                         ("switched", "pat", "2")]
    finally:
        await deployments.close()
        await backend.close()


def _token_in(kube_fake, name: str) -> str:
    secret = kube_fake.get("secrets", "mlops", name)
    return base64.b64decode(secret["data"]["token"]).decode()


@pytest.mark.asyncio
async def test_model_servers_read_mlflow_as_the_deployments_creator(kube_fake, tmp_path):
    kube_fake.create("namespaces", None, {"metadata": {"name": "mlops"}})
    db = Database(f"sqlite:///{tmp_path / 'cp.sqlite'}")
    issuer = RecordingIssuer()
    owner_of = lambda d: (db.query("SELECT created_by FROM deployments "  # noqa: E731
                                   "WHERE name = :n", n=d) or [{}])[0].get("created_by")
    backend = KubeDeployBackend(namespace="mlops", image="registry.lab/mlops-serve:1",
                                tracking_uri="http://hub/services/mlflow", poll_interval=0.05,
                                start_timeout=20, tokens=issuer, owner_of=owner_of)
    deployments = Deployments(db, Projects(db), backend, RegistryStandIn(), drain_timeout=2)
    dana = Caller("dana", scopes=frozenset({USE}))
    admin = Caller("admin", scopes=frozenset({ADMIN}))
    names = lambda plural: sorted(o["metadata"]["name"]  # noqa: E731
                                  for o in kube_fake.list(plural, "mlops"))
    try:
        await deployments.create(dana, "lr", "lr", "1")
        await _until(lambda: names("services") == ["mlops-lr-v1"])
        assert names("secrets") == ["mlops-lr-v1-mlflow-token"]
        assert issuer.minted == [("dana", 0, "mlops model server mlops-lr-v1", [MLFLOW_SCOPE])]
        assert _token_in(kube_fake, "mlops-lr-v1-mlflow-token") == "tok-dana-1"
        secret = kube_fake.get("secrets", "mlops", "mlops-lr-v1-mlflow-token")
        dep = kube_fake.get("deployments", "mlops", "mlops-lr-v1")
        assert secret["metadata"]["labels"] == dep["metadata"]["labels"] == labels("lr", "1")
        # created before the Deployment, so no pod starts without its token
        assert int(secret["metadata"]["resourceVersion"]) < \
            int(dep["metadata"]["resourceVersion"])
        env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "MLFLOW_TRACKING_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": "mlops-lr-v1-mlflow-token", "key": "token"}}} in env
        kube_fake.set_status("deployments", "mlops", "mlops-lr-v1",
                             {"replicas": 1, "readyReplicas": 1})
        await _until(lambda: deployments.get(dana, "lr")["status"] == "ready")

        # An administrator's switch: the new version still reads as dana, the creator; the
        # old version's Secret goes and its token is revoked once the new one serves.
        await deployments.switch(admin, "lr", "2")
        await _until(lambda: "mlops-lr-v2" in names("services"))
        assert names("secrets") == ["mlops-lr-v1-mlflow-token", "mlops-lr-v2-mlflow-token"]
        assert _token_in(kube_fake, "mlops-lr-v2-mlflow-token") == "tok-dana-2"
        assert issuer.minted[1][0] == "dana" and issuer.revoked == []
        kube_fake.set_status("deployments", "mlops", "mlops-lr-v2",
                             {"replicas": 1, "readyReplicas": 1})
        await _until(lambda: names("deployments") == ["mlops-lr-v2"])
        # the old version's Secret goes after its Deployment, then its token is revoked
        await _until(lambda: issuer.revoked == [("dana", "id1")])
        assert names("secrets") == ["mlops-lr-v2-mlflow-token"]

        # A version that fails takes its Secret and token with it.
        await deployments.switch(admin, "lr", "3")
        await _until(lambda: "mlops-lr-v3" in names("services"))
        kube_fake.set_status("deployments", "mlops", "mlops-lr-v3", {"conditions": [{
            "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]})
        await _until(lambda: deployments.get(admin, "lr")["status"] == "failed")
        await _until(lambda: names("secrets") == ["mlops-lr-v2-mlflow-token"])
        assert issuer.revoked == [("dana", "id1"), ("dana", "id3")]

        await deployments.delete(dana, "lr")
        assert names("secrets") == names("deployments") == names("services") == []
        assert issuer.revoked == [("dana", "id1"), ("dana", "id3"), ("dana", "id2")]
    finally:
        await deployments.close()
        await backend.close()


@pytest.mark.asyncio
async def test_a_version_without_its_creators_token_fails_and_creates_nothing(kube_fake):
    kube_fake.create("namespaces", None, {"metadata": {"name": "mlops"}})
    issuer = RecordingIssuer()
    backend = KubeDeployBackend(namespace="mlops", image="registry.lab/mlops-serve:1",
                                tokens=issuer, owner_of=lambda d: None)
    try:
        with pytest.raises(LoadFailed, match="lr has no creator whose MLflow token"):
            await backend.start("lr", "1", "models:/lr/1")
        backend.owner_of, backend.tokens = (lambda d: "dana"), RecordingIssuer(refuse=True)
        with pytest.raises(LoadFailed, match="no MLflow token for dana, the creator of lr: "
                                             "the hub refused"):
            await backend.start("lr", "1", "models:/lr/1")
        assert issuer.minted == []
        for plural in ("secrets", "deployments", "services"):
            assert kube_fake.list(plural, "mlops") == []
    finally:
        await backend.close()


@pytest.mark.asyncio
async def test_a_gpu_model_server_runs_on_the_tainted_gpu_node_or_says_why_not(
        tmp_path, monkeypatch):
    a100 = "NVIDIA-A100-SXM4-40GB"
    nodes = [make_node("cpu-1"), make_node("gpu-1", gpus=1, taints=[GPU_TAINT],
                                           labels={"nvidia.com/gpu.product": a100})]
    with KubeFake(nodes=nodes, controllers=True) as fake:
        use_kubeconfig(monkeypatch, fake.write_kubeconfig(tmp_path / "kubeconfig"))
        fake.create("namespaces", None, {"metadata": {"name": "mlops"}})
        backend = KubeDeployBackend(namespace="mlops", image="registry.lab/mlops-serve:1",
                                    gpus=1, gpu_type=a100, shm_size="1Gi", pending_timeout=3,
                                    poll_interval=0.05, start_timeout=20)
        db = Database(f"sqlite:///{tmp_path / 'cp.sqlite'}")
        deployments = Deployments(db, Projects(db), backend, RegistryStandIn(), drain_timeout=2)
        admin = Caller("admin", scopes=frozenset({ADMIN}))
        try:
            await deployments.create(admin, "lr", "lr", "1")
            # the controller's replica lands on the tainted GPU node and becomes ready
            ready = await until_async(lambda: (d := deployments.get(admin, "lr"))["status"]
                                      == "ready" and d, 20, "lr ready")
            assert ready["serving_version"] == "1"
            (pod,) = fake.list("pods", "mlops")
            assert pod["spec"]["nodeName"] == "gpu-1"
            assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": a100}
            assert {"name": "dshm", "mountPath": "/dev/shm"} in \
                pod["spec"]["containers"][0]["volumeMounts"]
            assert fake.get("deployments", "mlops", "mlops-lr-v1")["status"][
                "readyReplicas"] == 1

            # a second GPU server finds no free GPU: the version fails with the scheduler's
            # reason once it has been Pending for pending_timeout, and nothing is left behind
            await deployments.create(admin, "cells", "lr", "2")
            waiting = await until_async(lambda: "cannot be scheduled" in (
                d := deployments.get(admin, "cells"))["message"] and d, 10, "cells waits")
            assert waiting["status"] == "starting"
            assert waiting["message"].startswith("version 2 waits: pod mlops-cells-v2-")
            failed = await until_async(lambda: (d := deployments.get(admin, "cells"))[
                "status"] == "failed" and d, 20, "cells failed")
            assert failed["message"].startswith(
                "version 2 failed to start: no replica started within 3 s: pod mlops-cells-v2-")
            # the A100 node is full; the CPU node is not an A100 one
            assert failed["message"].endswith(
                " cannot be scheduled: 0/2 nodes are available: 1 Insufficient nvidia.com/gpu, "
                "1 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are "
                "available: 1 No preemption victims found for incoming pod, 1 Preemption is not "
                "helpful for scheduling.")
            await until_async(lambda: [d["metadata"]["name"] for d in fake.list(
                "deployments", "mlops")] == ["mlops-lr-v1"], 10, "the failed version removed")
            assert [p["metadata"]["name"].startswith("mlops-lr-v1-")
                    for p in fake.list("pods", "mlops")] == [True]

            # a CPU server whose image cannot be pulled: on the CPU node, failed with the
            # kubelet's reason at once
            backend.gpus, backend.image = 0, "registry.lab/mlops-serve:missing"
            fake.bad_images.add(backend.image)
            await deployments.create(admin, "broken", "lr", "3")
            failed = await until_async(lambda: (d := deployments.get(admin, "broken"))[
                "status"] == "failed" and d, 20, "broken failed")
            assert failed["message"].startswith("version 3 failed to start: pod mlops-broken-v3-")
            assert failed["message"].endswith(": ErrImagePull")
            assert "registry.lab/mlops-serve:missing" in failed["log"]
            events = [e for e in fake.list("events", "mlops") if e["reason"] == "Scheduled"
                      and "mlops-broken-v3-" in e["message"]]
            assert events and events[0]["message"].endswith(" to cpu-1")
        finally:
            await deployments.close()
            await backend.close()
