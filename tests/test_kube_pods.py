"""The pod-template parts training Jobs and model-server Deployments share: literal dicts, and a
pod made of them is valid for the cluster (strict schema, no cluster needed)."""
import kubernetes_validate

import pytest

from jupyter_mlops.backends.kube_pods import (claim_volume, container_resources,
                                              container_security_context,
                                              dataset_version_volume, env_vars,
                                              gpu_placement, pod_spec, pod_waiting_reason,
                                              shm_volume)

VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def test_a_pod_built_from_the_shared_parts():
    volume, mount = claim_volume(name="jobs", claim="mlops-jobs", mount_path="/srv/jobs")
    container = {
        "name": "work",
        "image": "lab:1",
        "env": env_vars({"B": 2, "A": "x"}, secrets={"TOKEN": ("reader", "token")}),
        "resources": container_resources(cpu_request="1", memory_request="2Gi",
                                         memory_limit="8Gi", cpu_limit="4", gpus=2),
        "securityContext": container_security_context(read_only_root=True),
        "volumeMounts": [mount],
    }
    spec = pod_spec(containers=[container], volumes=[volume], grace_seconds=15.0,
                    service_account="trainer", restartPolicy="Never")
    assert spec == {
        "automountServiceAccountToken": False,
        "restartPolicy": "Never",
        "containers": [{
            "name": "work",
            "image": "lab:1",
            # in the order given, values as strings, secrets last and by reference only
            "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "x"},
                    {"name": "TOKEN",
                     "valueFrom": {"secretKeyRef": {"name": "reader", "key": "token"}}}],
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                          "limits": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "2"}},
            "securityContext": {"allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "jobs", "mountPath": "/srv/jobs"}],
        }],
        "volumes": [{"name": "jobs", "persistentVolumeClaim": {"claimName": "mlops-jobs"}}],
        "terminationGracePeriodSeconds": 15,
        "serviceAccountName": "trainer",
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}
    for v in VERSIONS:
        kubernetes_validate.validate(pod, v, strict=True)


def test_the_defaults_leave_out_what_was_not_asked_for():
    # Jobs give no CPU limit and most pods no GPUs: nothing is added for them.
    assert container_resources(cpu_request="500m", memory_request="1Gi",
                               memory_limit="4Gi") == {
        "requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}
    assert container_security_context() == {"allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}}
    assert env_vars({}) == []
    # No ServiceAccount named: none in the spec, and still no token mounted.
    assert pod_spec(containers=[], volumes=[], grace_seconds=40) == {
        "automountServiceAccountToken": False, "containers": [], "volumes": [],
        "terminationGracePeriodSeconds": 40}


def test_a_gpu_pod_is_placed_as_user_pods_are():
    # GPUs: the GPU taint tolerated (once), the type as a node selector, the RuntimeClass.
    spare = {"key": "spot", "operator": "Exists", "effect": "NoSchedule"}
    placement = gpu_placement(gpus=1, gpu_type="NVIDIA-A100-SXM4-40GB",
                              node_selector={"pool": "train"}, tolerations=[spare],
                              runtime_class="nvidia")
    assert placement == {
        "nodeSelector": {"pool": "train", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"},
        "tolerations": [spare, {"key": "nvidia.com/gpu", "operator": "Exists",
                                "effect": "NoSchedule"}],
        "runtimeClassName": "nvidia",
    }
    # No GPUs: neither the GPU taint nor the type, which would only keep it off CPU nodes.
    assert gpu_placement(gpus=0, gpu_type="A100") == {"nodeSelector": {}, "tolerations": []}
    volume, mount = shm_volume(size="8Gi")
    assert (volume, mount) == (
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
        {"name": "dshm", "mountPath": "/dev/shm"})
    # A MIG slice asked for as its own resource; the whole pod valid for the cluster.
    container = {"name": "work", "image": "lab:1", "volumeMounts": [mount],
                 "resources": container_resources(cpu_request="1", memory_request="2Gi",
                                                  memory_limit="8Gi", gpus=1,
                                                  gpu_resource="nvidia.com/mig-1g.10gb")}
    assert container["resources"]["limits"] == {"memory": "8Gi", "nvidia.com/mig-1g.10gb": "1"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": pod_spec(containers=[container], volumes=[volume], grace_seconds=5,
                            **placement)}
    for v in VERSIONS:
        kubernetes_validate.validate(pod, v, strict=True)


def test_why_a_pod_is_not_running():
    pod = {"metadata": {"name": "mlops-job-3-x7k2p"}, "status": {"phase": "Pending"}}
    assert pod_waiting_reason(pod) == "pod mlops-job-3-x7k2p is Pending"
    events = [{"type": "Normal", "reason": "Scheduled", "message": "assigned"},
              {"type": "Warning", "reason": "FailedMount", "message": "claim not bound"}]
    assert pod_waiting_reason(pod, events) == "pod mlops-job-3-x7k2p: FailedMount: claim not bound"
    unschedulable = {**pod, "status": {"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/2 nodes are available: 1 Insufficient nvidia.com/gpu."}]}}
    assert pod_waiting_reason(unschedulable, events) == (
        "pod mlops-job-3-x7k2p cannot be scheduled: 0/2 nodes are available: "
        "1 Insufficient nvidia.com/gpu.")
    pulling = {**pod, "status": {"phase": "Pending", "containerStatuses": [{"state": {
        "waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling "lab:9"'}}}]}}
    assert pod_waiting_reason(pulling) == \
        'pod mlops-job-3-x7k2p: ImagePullBackOff: Back-off pulling "lab:9"'
    # Still creating its container is not a reason to report; a running pod has none.
    creating = {**pod, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "True"}], "containerStatuses": [{"state": {
            "waiting": {"reason": "ContainerCreating"}}}]}}
    assert pod_waiting_reason(creating) == "pod mlops-job-3-x7k2p is Pending"
    assert pod_waiting_reason({**pod, "status": {"phase": "Running"}}, events) == ""


def test_one_dataset_version_is_mounted_read_only_by_subpath():
    volume, mount = dataset_version_volume(claim="jupyter-mlops-datasets", root="/mnt/datasets/",
                                           dataset_version="cells@v3")
    assert volume == {"name": "dataset", "persistentVolumeClaim": {
        "claimName": "jupyter-mlops-datasets", "readOnly": True}}
    assert mount == {"name": "dataset", "mountPath": "/mnt/datasets/cells/v3",
                     "subPath": "cells/v3", "readOnly": True}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": pod_spec(containers=[{"name": "c", "image": "lab:1", "volumeMounts": [mount]}],
                            volumes=[volume], grace_seconds=1)}
    for v in VERSIONS:
        kubernetes_validate.validate(pod, v, strict=True)
    # only a pinned version names a subPath: never a tag, a path or a parent directory
    for bad in ("cells@latest", "cells", "../x@v1", "cells@v1/..", "Cells@v1"):
        with pytest.raises(ValueError, match="name@vN"):
            dataset_version_volume(claim="c", root="/mnt/datasets", dataset_version=bad)
