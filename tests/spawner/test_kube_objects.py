"""Every Kubernetes object the spawner would create: literal dicts, and valid for the cluster."""
import kubernetes_validate
import pytest
from kubernetes_asyncio.client import ApiClient
from traitlets.config import Config

from jupyter_mlops_spawner import objects
from jupyter_mlops_spawner.profiles import Profile
from tests.kube_fake import use_kubeconfig, write_kubeconfig
from tests.spawner.kube_helpers import make_spawner

VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
LABELS = {"app.kubernetes.io/part-of": "jupyter-mlops"}


def validate(obj):
    for v in VERSIONS:
        kubernetes_validate.validate(obj, v, strict=True)


def test_profile_overrides_for_a_gpu_profile():
    p = Profile.from_dict({"slug": "a100", "display_name": "A100", "gpus": 2,
                           "gpu_type": "NVIDIA-A100-SXM4-40GB", "cpu_limit": 8,
                           "mem_limit": "64G", "node_selector": {"pool": "gpu"},
                           "image": "lab/torch:1"})
    assert objects.profile_overrides(profile=p, default_image="lab/base:1",
                                     dataset_claim="cells", environment={"A": "1"}) == {
        "image": "lab/torch:1",
        "cpu_limit": 8.0, "cpu_guarantee": None, "mem_limit": "64G", "mem_guarantee": None,
        "extra_resource_limits": {"nvidia.com/gpu": "2"},
        "node_selector": {"pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                         "effect": "NoSchedule"}],
        "volumes": [{"name": "datasets", "persistentVolumeClaim": {"claimName": "cells",
                                                                   "readOnly": True}}],
        "volume_mounts": [{"name": "datasets", "mountPath": "/mnt/datasets", "readOnly": True}],
        "environment": {"A": "1", "JUPYTER_MLOPS_PROFILE": "a100",
                        "JUPYTER_MLOPS_DATASETS": "/mnt/datasets"},
        "extra_pod_config": {},
    }


def test_profile_overrides_for_a_mig_slice_with_shared_memory_and_a_runtime_class():
    p = Profile.from_dict({"slug": "mig", "gpus": 1, "gpu_resource": "nvidia.com/mig-1g.10gb",
                           "shm_size": "4G", "runtime_class": "nvidia",
                           "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                            "effect": "NoSchedule"}]})
    o = objects.profile_overrides(profile=p, default_image="lab/base:1", dataset_claim=None)
    assert o["extra_resource_limits"] == {"nvidia.com/mig-1g.10gb": "1"}
    # the GPU taint's toleration is not doubled when the profile already names it
    assert o["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                 "effect": "NoSchedule"}]
    assert o["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory",
                                                          "sizeLimit": "4G"}}]
    assert o["volume_mounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
    assert o["extra_pod_config"] == {"runtimeClassName": "nvidia"}
    for bad, why in (({"gpu_resource": "amd.com/gpu"}, "gpu_resource"),
                     ({"runtime_class": "Not A Name"}, "runtime_class"),
                     ({"shm_size": "lots"}, "shm_size")):
        with pytest.raises(ValueError, match=why):
            Profile.from_dict({"slug": "x", "gpus": 1, **bad})


def test_profile_overrides_cpu_profile_no_dataset():
    p = Profile.from_dict({"slug": "cpu"})
    o = objects.profile_overrides(profile=p, default_image="lab/base:1", dataset_claim=None)
    assert o["image"] == "lab/base:1" and o["extra_resource_limits"] == {}
    assert o["tolerations"] == [] and o["volumes"] == [] and o["node_selector"] == {}
    # a CUDA image's NVIDIA_VISIBLE_DEVICES=all must not hand a CPU pod the node's GPUs
    assert o["environment"] == {"JUPYTER_MLOPS_PROFILE": "cpu", "NVIDIA_VISIBLE_DEVICES": "void"}


def test_namespace_objects():
    ns = objects.make_user_namespace(name="jupyter-alice", username="alice@lab")
    assert ns == {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "jupyter-alice", "labels": LABELS,
        "annotations": {"hub.jupyter.org/username": "alice@lab"}}}
    quota = objects.make_gpu_resource_quota(namespace="jupyter-alice", gpus=2)
    assert quota == {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {
        "name": "jupyter-mlops-gpus", "namespace": "jupyter-alice", "labels": LABELS},
        "spec": {"hard": {"requests.nvidia.com/gpu": "2"}}}
    pol = objects.make_user_network_policy(namespace="jupyter-alice", hub_namespace="jhub")
    assert pol == {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "jupyter-mlops-isolation", "namespace": "jupyter-alice",
                     "labels": LABELS},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
            {"from": [{"podSelector": {}}]},
            {"from": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "jhub"}},
                "podSelector": {"matchExpressions": [
                    {"key": "component", "operator": "In", "values": ["hub", "proxy"]}]}}]},
        ]}}
    for obj in (ns, quota, pol):
        validate(obj)


def test_dataset_volume_objects():
    pv = objects.make_dataset_pv(name="cells-u1", nfs_server="nfs.lab", nfs_path="/x",
                                 capacity="500Gi")
    assert pv == {"apiVersion": "v1", "kind": "PersistentVolume",
                  "metadata": {"name": "cells-u1", "labels": LABELS},
                  "spec": {"capacity": {"storage": "500Gi"}, "accessModes": ["ReadOnlyMany"],
                           "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                           "nfs": {"server": "nfs.lab", "path": "/x", "readOnly": True}}}
    pvc = objects.make_dataset_pvc(name="cells", namespace="u1", capacity="500Gi",
                                   volume_name="cells-u1")
    assert pvc == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "cells", "namespace": "u1", "labels": LABELS},
                   "spec": {"accessModes": ["ReadOnlyMany"],
                            "resources": {"requests": {"storage": "500Gi"}},
                            "storageClassName": "", "volumeName": "cells-u1"}}
    validate(pv)
    validate(pvc)


def test_bad_object_is_caught_by_the_validator():
    bad = objects.make_gpu_resource_quota(namespace="x", gpus=1)
    bad["spec"]["hardd"] = bad["spec"].pop("hard")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(bad)


@pytest.mark.asyncio
@pytest.mark.parametrize("profile", ["cpu", "gpu-1", "mig"])
async def test_full_user_pod_and_home_pvc_validate(profile, tmp_path, monkeypatch):
    # kubespawner loads a kubeconfig when built; nothing is contacted while building manifests
    use_kubeconfig(monkeypatch, write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:9"))
    c = Config()
    c.MlopsKubeSpawner.storage_pvc_ensure = True
    c.MlopsKubeSpawner.storage_capacity = "10Gi"
    c.MlopsKubeSpawner.volumes = [{"name": "home",
                                   "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    c.MlopsKubeSpawner.volume_mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
    if profile == "mig":
        c.MlopsKubeSpawner.profiles = [{"slug": "mig", "gpus": 1, "shm_size": "2G",
                                        "gpu_resource": "nvidia.com/mig-1g.10gb",
                                        "runtime_class": "nvidia"}]
    sp = make_spawner("alice", c, profile=profile)
    await sp.load_user_options()
    async with ApiClient() as api:
        pod = api.sanitize_for_serialization(await sp.get_pod_manifest())
        pvc = api.sanitize_for_serialization(sp.get_pvc_manifest())
    validate(pod)
    validate(pvc)
    nb = pod["spec"]["containers"][0]
    assert {"name": "datasets", "mountPath": "/mnt/datasets", "readOnly": True} in \
        nb["volumeMounts"]
    assert {"name": "home", "mountPath": "/home/jovyan"} in nb["volumeMounts"]
    env = {e["name"]: e.get("value") for e in nb["env"]}
    assert env["JUPYTER_MLOPS_DATASETS"] == "/mnt/datasets"
    gpu_taint = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    if profile == "mig":
        assert nb["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
        assert "nvidia.com/gpu" not in nb["resources"]["limits"]
        assert pod["spec"]["runtimeClassName"] == "nvidia"
        assert gpu_taint in pod["spec"]["tolerations"]
        assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2G"}} in \
            pod["spec"]["volumes"]
        assert {"name": "dshm", "mountPath": "/dev/shm"} in nb["volumeMounts"]
    elif profile == "gpu-1":
        assert gpu_taint in pod["spec"]["tolerations"]
        assert nb["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "A100"}
        assert nb["image"] == "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06"
    else:
        assert "nvidia.com/gpu" not in nb["resources"].get("limits", {})
        assert gpu_taint not in pod["spec"].get("tolerations", [])
        assert "runtimeClassName" not in pod["spec"]
        assert nb["resources"]["limits"]["memory"] == 4 * 1024**3
        assert nb["image"] == "quay.io/jupyter/scipy-notebook:2025-01-06"
