"""Pure builders of every Kubernetes object (or pod fragment) the Kubernetes spawner adds.

No I/O, keyword-only arguments, plain dicts out: tests compare them with literal dicts and
validate them against the Kubernetes schemas, no cluster needed. The pod itself is built by
kubespawner's ``make_pod`` from the traits :func:`profile_overrides` returns, placed by the same
rule as training Jobs and model servers (``jupyter_mlops.backends.kube_pods.gpu_placement``).
"""
from __future__ import annotations

from jupyter_mlops.backends.kube_pods import (GPU_PRODUCT_LABEL, GPU_RESOURCE,  # noqa: F401
                                              gpu_placement, gpu_toleration, gpu_visibility_env,
                                              shm_volume)

from .profiles import Profile

DATASETS_MOUNT = "/mnt/datasets"
DATASETS_VOLUME = "datasets"
LABELS = {"app.kubernetes.io/part-of": "jupyter-mlops"}


def dataset_volume(*, claim_name: str) -> dict:
    """The shared dataset claim, mounted read-only whatever the claim allows."""
    return {"name": DATASETS_VOLUME,
            "persistentVolumeClaim": {"claimName": claim_name, "readOnly": True}}


def dataset_volume_mount(*, mount_path: str = DATASETS_MOUNT) -> dict:
    return {"name": DATASETS_VOLUME, "mountPath": mount_path, "readOnly": True}


def profile_overrides(*, profile: Profile, default_image: str, dataset_claim: str | None,
                      dataset_mount: str = DATASETS_MOUNT, environment: dict | None = None,
                      gpu_product_label: str = GPU_PRODUCT_LABEL) -> dict:
    """KubeSpawner trait values for one profile (merged onto the configured ones by the caller).

    GPUs become a limit of ``nvidia.com/gpu`` or of the profile's ``gpu_resource`` (a MIG
    slice; the device plugin also treats the limit as the request), ``gpu_type`` a node
    selector on ``gpu_product_label``, and GPU profiles tolerate the usual GPU taint;
    ``runtime_class`` becomes the pod's ``runtimeClassName`` (``extra_pod_config``) and
    ``shm_size`` a memory-backed ``/dev/shm``.
    """
    placement = gpu_placement(gpus=profile.gpus, gpu_type=profile.gpu_type or "",
                              node_selector=profile.node_selector,
                              tolerations=profile.tolerations,
                              runtime_class=profile.runtime_class or "",
                              gpu_product_label=gpu_product_label)
    extra_limits = {}
    if profile.gpus:
        extra_limits[profile.gpu_resource or GPU_RESOURCE] = str(profile.gpus)
    env = dict(environment or {})
    env["JUPYTER_MLOPS_PROFILE"] = profile.slug
    env.update(gpu_visibility_env(gpus=profile.gpus))
    volumes, mounts = [], []
    if dataset_claim:
        volumes.append(dataset_volume(claim_name=dataset_claim))
        mounts.append(dataset_volume_mount(mount_path=dataset_mount))
        env["JUPYTER_MLOPS_DATASETS"] = dataset_mount
    if profile.shm_size:
        volume, mount = shm_volume(size=profile.shm_size)
        volumes.append(volume)
        mounts.append(mount)
    pod_config = {}
    if "runtimeClassName" in placement:
        pod_config["runtimeClassName"] = placement["runtimeClassName"]
    return {
        "image": profile.image or default_image,
        "cpu_limit": profile.cpu_limit,
        "cpu_guarantee": profile.cpu_guarantee,
        "mem_limit": profile.mem_limit,
        "mem_guarantee": profile.mem_guarantee,
        "extra_resource_limits": extra_limits,
        "node_selector": placement["nodeSelector"],
        "tolerations": placement["tolerations"],
        "volumes": volumes,
        "volume_mounts": mounts,
        "environment": env,
        "extra_pod_config": pod_config,
    }


def make_dataset_pv(*, name: str, nfs_server: str, nfs_path: str, capacity: str) -> dict:
    """A statically provisioned NFS volume holding the dataset, for :func:`make_dataset_pvc`."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": dict(LABELS)},
        "spec": {
            "capacity": {"storage": capacity},
            "accessModes": ["ReadOnlyMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "nfs": {"server": nfs_server, "path": nfs_path, "readOnly": True},
        },
    }


def make_dataset_pvc(*, name: str, namespace: str, capacity: str,
                     volume_name: str | None = None, storage_class: str = "") -> dict:
    """The ReadOnlyMany claim every user pod mounts (bound to ``volume_name`` if given)."""
    spec = {
        "accessModes": ["ReadOnlyMany"],
        "resources": {"requests": {"storage": capacity}},
        # "" disables dynamic provisioning: bind to the pre-made dataset volume.
        "storageClassName": storage_class,
    }
    if volume_name:
        spec["volumeName"] = volume_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(LABELS)},
        "spec": spec,
    }


def make_gpu_resource_quota(*, namespace: str, gpus: int,
                            name: str = "jupyter-mlops-gpus") -> dict:
    """Caps GPUs requested in a user's namespace (extended resources take ``requests.`` only).

    ref: https://kubernetes.io/docs/concepts/policy/resource-quotas/#resource-quota-for-extended-resources
    """
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(LABELS)},
        "spec": {"hard": {f"requests.{GPU_RESOURCE}": str(gpus)}},
    }


def make_user_network_policy(*, namespace: str, hub_namespace: str,
                             name: str = "jupyter-mlops-isolation") -> dict:
    """Ingress to a user's namespace only from itself and the hub's proxy and hub pods.

    Other users' pods (in their own namespaces) are denied; egress stays open so servers reach
    MLflow, the control plane and package mirrors.
    """
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(LABELS)},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {}}]},
                {"from": [{
                    "namespaceSelector": {"matchLabels": {
                        "kubernetes.io/metadata.name": hub_namespace}},
                    "podSelector": {"matchExpressions": [{
                        "key": "component", "operator": "In", "values": ["hub", "proxy"]}]},
                }]},
            ],
        },
    }


def make_user_namespace(*, name: str, username: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        # An annotation: hub user names ("a.b@lab") need not be valid label values.
        "metadata": {"name": name, "labels": dict(LABELS),
                     "annotations": {"hub.jupyter.org/username": username}},
    }
