"""The Kubernetes backend: its objects validated offline, its lifecycle against the API stand-in.

Kubernetes is simulated (tests/kube_fake.py, no cluster runs here): nothing starts containers,
so the test plays the Deployment controller by setting ``status`` as a cluster would.
"""
from __future__ import annotations

import asyncio

import kubernetes_validate
import pytest

from jupyter_mlops.backends.deploy_kube import KubeDeployBackend
from jupyter_mlops.backends.deploy_kube_objects import (make_model_deployment, make_model_hpa,
                                                        make_model_service)
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.deployments import Deployments
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.core.roles import ADMIN, Caller
from tests.kube_fake import kube_fake  # noqa: F401 (a fixture)

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


class RegistryStandIn:
    """Versions 1-3 of ``lr`` exist (the MLflow side is tested against a real registry)."""

    async def resolve(self, model_name, version):
        from jupyter_mlops.core.errors import NotFound

        if model_name != "lr" or version not in ("1", "2", "3"):
            raise NotFound(f"no model version {model_name}/{version}")
        return f"models:/{model_name}/{version}"


async def _until(check, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        result = check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


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
