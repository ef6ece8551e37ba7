"""The Kubernetes stand-in answers real clients the way an API server does, and schedules
pods and runs Jobs and Deployments the way a cluster does."""
import asyncio
import json
import subprocess

import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.fixtures import until
from tests.kube_fake import KubeFake, kube_fake, label_matcher  # noqa: F401 (fixture)
from tests.kube_fake_cluster import GPU_TAINT, make_node, schedule, tolerates


@pytest_asyncio.fixture
async def api(kube_fake, tmp_path):
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kube_fake.write_kubeconfig(tmp_path / "kc")),
                                  client_configuration=cfg)
    async with client.ApiClient(cfg) as c:
        yield c


def test_label_selectors():
    obj = {"metadata": {"labels": {"app": "a", "tier": "x"}}}
    assert label_matcher("app=a,tier in (x, y)")(obj)
    assert label_matcher("app==a,!missing,tier")(obj)
    assert not label_matcher("app!=a")(obj)
    assert not label_matcher("tier notin (x)")(obj)
    with pytest.raises(ValueError):
        label_matcher("a b c")


@pytest.mark.asyncio
async def test_pod_lifecycle_watch_and_selectors(api, kube_fake):
    core = client.CoreV1Api(api)
    pod = {"metadata": {"name": "p1", "labels": {"component": "singleuser-server"}},
           "spec": {"containers": [{"name": "notebook", "image": "img",
                                    "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    created = await core.create_namespaced_pod("default", pod)
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
    lst = await core.list_namespaced_pod("default", label_selector="component=singleuser-server")
    assert [p.metadata.name for p in lst.items] == ["p1"]
    assert (await core.list_namespaced_pod("default", label_selector="component=x")).items == []
    w = watch.Watch()
    phases = []
    async with w.stream(core.list_namespaced_pod, namespace="default",
                        resource_version=lst.metadata.resource_version,
                        field_selector="metadata.name=p1", timeout_seconds=2) as stream:
        async for ev in stream:
            phases.append((ev["type"], ev["raw_object"]["status"]["phase"]))
            if phases[-1][1] == "Running":
                break
    assert phases[-1] == ("MODIFIED", "Running")
    running = await core.read_namespaced_pod("p1", "default")
    assert running.status.pod_ip == "127.0.0.1"
    events = await core.list_namespaced_event("default", field_selector="involvedObject.name=p1")
    assert [e.reason for e in events.items][:1] == ["Scheduled"]
    # a second pod asking for 2 GPUs does not fit on the node's 2 (1 is held)
    pod2 = json.loads(json.dumps(pod))
    pod2["metadata"]["name"] = "p2"
    pod2["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "2"
    await core.create_namespaced_pod("default", pod2)
    await asyncio.sleep(0.3)
    p2 = await core.read_namespaced_pod("p2", "default")
    assert p2.status.phase == "Pending"
    evs = await core.list_namespaced_event("default", field_selector="involvedObject.name=p2")
    assert "Insufficient nvidia.com/gpu" in evs.items[-1].message
    assert evs.items[-1].reason == "FailedScheduling"


@pytest.mark.asyncio
async def test_errors_replace_quota_and_gc(api, kube_fake):
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_pod("nope", {"metadata": {"name": "x"}, "spec": {}})
    assert e.value.status == 404
    await core.create_namespace({"metadata": {"name": "u1"}})
    with pytest.raises(ApiException) as e:
        await core.create_namespace({"metadata": {"name": "u1"}})
    assert e.value.status == 409
    await core.create_namespaced_resource_quota(
        "u1", {"metadata": {"name": "gpus"}, "spec": {"hard": {"requests.nvidia.com/gpu": "0"}}})
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_pod("u1", {"metadata": {"name": "g"}, "spec": {
            "containers": [{"name": "c", "image": "i",
                            "resources": {"limits": {"nvidia.com/gpu": 1}}}]}})
    assert e.value.status == 403 and "exceeded quota: gpus" in json.loads(e.value.body)["message"]
    cm = await core.create_namespaced_config_map("u1", {"metadata": {"name": "c"},
                                                      "data": {"a": "1"}})
    cm.data = {"a": "2"}
    await core.replace_namespaced_config_map("c", "u1", cm)
    with pytest.raises(ApiException) as e:  # stale resourceVersion
        await core.replace_namespaced_config_map("c", "u1", cm)
    assert e.value.status == 409
    apps = client.AppsV1Api(api)
    dep = await apps.create_namespaced_deployment("u1", {
        "metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                                            "template": {"metadata": {"labels": {"a": "b"}},
                                                         "spec": {"containers": []}}}})
    await core.create_namespaced_service("u1", {"metadata": {"name": "s", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": dep.metadata.uid}]},
        "spec": {"ports": [{"port": 80}]}})
    kube_fake.set_status("deployments", "u1", "d", {"readyReplicas": 1})
    assert (await apps.read_namespaced_deployment("d", "u1")).status.ready_replicas == 1
    await apps.delete_namespaced_deployment("d", "u1")
    assert kube_fake.get("services", "u1", "s") is None  # garbage-collected
    await core.delete_namespace("u1")
    assert kube_fake.list("configmaps", "u1") == []


def test_kubectl_talks_to_it(kube_fake, tmp_path):
    kc = kube_fake.write_kubeconfig(tmp_path / "kc")
    out = subprocess.run(["kubectl", "--kubeconfig", str(kc), "get", "namespaces", "-o",
                          "name"], capture_output=True, text=True, timeout=30)
    assert "namespace/default" in out.stdout, out.stderr


def _gpu_pod(name: str, gpus: int = 1, tolerations=(), selector=None, resource="nvidia.com/gpu"):
    return {"metadata": {"name": name}, "spec": {
        "nodeSelector": selector or {}, "tolerations": list(tolerations),
        "containers": [{"name": "c", "image": "i",
                        "resources": {"limits": {resource: str(gpus)} if gpus else {}}}]}}


def test_the_scheduler_honours_taints_selectors_and_capacity():
    tol = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    nodes = [make_node("cpu-1"),
             make_node("gpu-1", gpus=1, taints=[GPU_TAINT], labels={"gpu": "a100"},
                       resources={"nvidia.com/mig-1g.10gb": 2})]
    # no toleration: the GPU node's taint keeps it off, the CPU node has no GPU
    assert schedule(_gpu_pod("p"), nodes, []) == (None, (
        "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) had untolerated "
        "taint {nvidia.com/gpu: present}. preemption: 0/2 nodes are available: 1 No preemption "
        "victims found for incoming pod, 1 Preemption is not helpful for scheduling."))
    assert schedule(_gpu_pod("p", tolerations=[tol]), nodes, []) == ("gpu-1", "")
    # a CPU pod without the toleration stays on CPU nodes
    assert schedule(_gpu_pod("c", gpus=0), nodes, []) == ("cpu-1", "")
    assert schedule(_gpu_pod("c", gpus=0), nodes[1:], [])[1].startswith(
        "0/1 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}.")
    # an Equal toleration needs the taint's value; one of another effect does not count
    assert tolerates([{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present"}],
                     GPU_TAINT)
    assert not tolerates([{"key": "nvidia.com/gpu", "value": "absent"}], GPU_TAINT)
    assert not tolerates([{**tol, "effect": "NoExecute"}], GPU_TAINT)
    # capacity counts what pods bound to the node hold, per resource (MIG slices apart)
    held = {**_gpu_pod("h", tolerations=[tol]), "status": {"phase": "Running"}}
    held["spec"]["nodeName"] = "gpu-1"
    assert schedule(_gpu_pod("p", tolerations=[tol]), nodes, [held])[0] is None
    mig = _gpu_pod("m", gpus=2, tolerations=[tol], resource="nvidia.com/mig-1g.10gb")
    assert schedule(mig, nodes, [held]) == ("gpu-1", "")
    assert schedule(_gpu_pod("p", tolerations=[tol], selector={"gpu": "h100"}), nodes, [])[
        1].startswith("0/2 nodes are available: 2 node(s) didn't match Pod's node "
                      "affinity/selector.")  # selectors are filtered before resources


def test_controllers_create_replace_and_report_pods():
    tol = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    template = {"metadata": {"labels": {"app": "srv"}},
                "spec": {**_gpu_pod("x", tolerations=[tol])["spec"]}}
    with KubeFake(nodes=[make_node("gpu-1", gpus=1, taints=[GPU_TAINT])],
                  controllers=True) as fake:
        fake.create("deployments", "default", {"metadata": {"name": "srv"}, "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": "srv"}}, "template": template}})
        # one replica fits the node's one GPU, the other waits with the scheduler's reason
        status = until(lambda: (s := fake.get("deployments", "default", "srv")["status"]).get(
            "readyReplicas") == 1 and s, 10, "one replica ready")
        assert (status["replicas"], status["unavailableReplicas"]) == (2, 1)
        pods = fake.list("pods", "default")
        running = [p for p in pods if p["status"]["phase"] == "Running"]
        (waiting,) = [p for p in pods if p["status"]["phase"] == "Pending"]
        assert [p["metadata"]["labels"]["app"] for p in pods] == ["srv", "srv"]
        assert waiting["status"]["conditions"][0]["reason"] == "Unschedulable"
        # the running replica is deleted: the waiting one gets its GPU, a new one is made
        fake.delete("pods", "default", running[0]["metadata"]["name"])
        until(lambda: fake.get("pods", "default", waiting["metadata"]["name"])["status"][
            "phase"] == "Running", 10, "the waiting replica scheduled")
        assert len(fake.list("pods", "default")) == 2
        # deleting the Deployment takes its pods, and none is replaced
        fake.delete("deployments", "default", "srv")
        assert fake.list("pods", "default") == []

        fake.create("jobs", "default", {"metadata": {"name": "train"}, "spec": {
            "template": {"metadata": {}, "spec": {**template["spec"], "restartPolicy": "Never"}}}})
        (pod,) = fake.list("pods", "default")
        assert pod["metadata"]["labels"]["job-name"] == "train"
        assert fake.get("jobs", "default", "train")["status"]["active"] == 1
        fake.set_status("pods", "default", pod["metadata"]["name"], {"phase": "Failed"})
        job = fake.get("jobs", "default", "train")["status"]
        assert (job["active"], job["failed"], job["conditions"][0]["type"]) == (0, 1, "Failed")
