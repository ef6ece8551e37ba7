"""Pure builders of the pod-template parts that training Jobs and model-server Deployments share.

Both run code of a user (a training script, a logged model) in a pod the control plane creates
with its own ServiceAccount, so both get the same hardening: no Kubernetes API token mounted in
the pod, no privilege escalation, no Linux capabilities.
Resources and GPUs are spelt the same way (GPUs as a ``nvidia.com/gpu`` limit, which the device
plugin also takes as the request), and GPU pods are placed the same way as user pods
(:func:`gpu_placement`: the GPU taint tolerated, the GPU type as a node selector, an optional
RuntimeClass, a memory-backed ``/dev/shm``). :func:`pod_waiting_reason` reads why such a pod
is not running yet, for the job's or the deployment's status.

No I/O, keyword-only arguments, plain dicts out: ``tests/test_kube_pods.py``
compares them with literal dicts. The objects around them (``jobs_kube.make_job``,
``deploy_kube_objects.make_model_deployment``) stay with their backends.
"""
from __future__ import annotations

import re

GPU_RESOURCE = "nvidia.com/gpu"
# Label the NVIDIA GPU feature discovery puts on nodes, e.g. "NVIDIA-A100-SXM4-40GB".
# ref: https://github.com/NVIDIA/k8s-device-plugin#catalog-of-labels
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# Extended resources a GPU count may be asked as: the whole GPU or one MIG slice of it
# ("nvidia.com/mig-1g.10gb", the device plugin's "mixed" strategy).
# ref: https://docs.nvidia.com/datacenter/cloud-native/kubernetes/latest/index.html
GPU_RESOURCE_RE = re.compile(r"^nvidia\.com/(gpu|mig-\d+g\.\d+gb)$")
SHM_VOLUME = "dshm"


def container_resources(*, cpu_request: str, memory_request: str, memory_limit: str,
                        cpu_limit: str = "", gpus: int = 0,
                        gpu_resource: str = GPU_RESOURCE) -> dict:
    """``resources`` of a container; a CPU limit only when ``cpu_limit`` is given; GPUs as
    ``gpu_resource`` (a MIG slice's resource name, or whole GPUs)."""
    limits = {}
    if cpu_limit:
        limits["cpu"] = cpu_limit
    limits["memory"] = memory_limit
    if gpus:
        # Extended resources are whole numbers given as strings; a limit alone is enough.
        # ref: https://kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus/
        limits[gpu_resource] = str(gpus)
    return {"requests": {"cpu": cpu_request, "memory": memory_request}, "limits": limits}


def container_security_context(*, read_only_root: bool = False) -> dict:
    """No privilege escalation and no capabilities; optionally a read-only root filesystem."""
    ctx: dict = {"allowPrivilegeEscalation": False}
    if read_only_root:
        ctx["readOnlyRootFilesystem"] = True
    ctx["capabilities"] = {"drop": ["ALL"]}
    return ctx


def env_vars(values: dict, *, secrets: dict | None = None) -> list[dict]:
    """A container's ``env``: ``values`` in the order given (as strings), then ``secrets``.

    ``secrets`` maps a variable to ``(secret name, key)``, read by the kubelet so the value
    never appears in the object itself.
    """
    env = [{"name": k, "value": str(v)} for k, v in values.items()]
    for var, (secret, key) in (secrets or {}).items():
        env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    return env


def claim_volume(*, name: str, claim: str, mount_path: str, sub_path: str = "",
                 read_only: bool = False) -> tuple[dict, dict]:
    """A PersistentVolumeClaim volume and its mount, as ``(volume, volume_mount)``; with
    ``sub_path`` only that directory of the claim is mounted; ``read_only`` on both the volume
    and the mount (the kubelet then mounts it read-only whatever the claim allows)."""
    mount = {"name": name, "mountPath": mount_path}
    if sub_path:
        mount["subPath"] = sub_path
    source = {"claimName": claim}
    if read_only:
        mount["readOnly"] = True
        source["readOnly"] = True
    return {"name": name, "persistentVolumeClaim": source}, mount


# A pinned dataset version as jobs carry it: ``name@vN`` (core.datasets.manifest's names).
DATASET_VERSION_RE = re.compile(r"^([a-z0-9][a-z0-9._-]{0,62})@(v[0-9]+)$")


def dataset_version_volume(*, claim: str, root: str, dataset_version: str) -> tuple[dict, dict]:
    """One dataset version of the shared dataset claim, read-only, as ``(volume, mount)``.

    The claim holds versions as the control plane places them (``<name>/vN/``, hard links to
    the store); the pod mounts only ``<name>/vN`` (a ``subPath``) at ``<root>/<name>/vN``,
    where ``datasets.get`` looks first (``$JUPYTER_MLOPS_DATASETS`` = ``root``). No byte is
    copied; the pod sees no other version or dataset.
    ref: https://kubernetes.io/docs/concepts/storage/volumes/#using-subpath
    """
    m = DATASET_VERSION_RE.match(dataset_version)
    if not m:
        raise ValueError(f"not a pinned dataset version (name@vN): {dataset_version!r}")
    rel = f"{m.group(1)}/{m.group(2)}"
    return claim_volume(name="dataset", claim=claim, mount_path=f"{root.rstrip('/')}/{rel}",
                        sub_path=rel, read_only=True)


def pod_spec(*, containers: list[dict], volumes: list[dict], grace_seconds: int,
             service_account: str = "", **fields) -> dict:
    """A pod ``spec`` with no API token mounted, even when ``service_account`` is named.

    ``fields`` are further pod-spec fields (``restartPolicy``, ``securityContext``...).
    """
    spec = {
        # The code in these pods is the users': it must not talk to the cluster API. A named
        # ServiceAccount still lends its identity (image pull secrets, cloud workload identity).
        "automountServiceAccountToken": False,
        **fields,
        "containers": containers,
        "volumes": volumes,
        "terminationGracePeriodSeconds": int(grace_seconds),
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return spec


def gpu_toleration() -> dict:
    # GPU node pools are usually tainted so CPU pods stay off them.
    # ref: https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/
    return {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def gpu_placement(*, gpus: int, gpu_type: str = "", node_selector: dict | None = None,
                  tolerations=(), runtime_class: str = "",
                  gpu_product_label: str = GPU_PRODUCT_LABEL) -> dict:
    """Where a pod may run: ``{"nodeSelector", "tolerations"[, "runtimeClassName"]}``.

    The one placement rule of user pods, training Jobs and model servers: ``node_selector``
    and ``tolerations`` as configured; a pod with GPUs also tolerates the usual GPU taint
    (``nvidia.com/gpu``, NoSchedule) and, with a ``gpu_type``, selects nodes whose
    ``gpu_product_label`` is that type. A GPU type or taint without GPUs would only keep a
    CPU pod off CPU nodes, so neither is added then. ``runtime_class``: the pod's RuntimeClass
    (the NVIDIA runtime where it is not the nodes' default, or a sandbox).
    ref: https://kubernetes.io/docs/concepts/containers/runtime-class/
    """
    selector = dict(node_selector or {})
    tols = [dict(t) for t in tolerations]
    if gpus:
        if gpu_toleration() not in tols:
            tols.append(gpu_toleration())
        if gpu_type:
            selector[gpu_product_label] = gpu_type
    out = {"nodeSelector": selector, "tolerations": tols}
    if runtime_class:
        out["runtimeClassName"] = runtime_class
    return out


def gpu_visibility_env(*, gpus: int) -> dict:
    """The environment that keeps a pod which asked for no GPU from seeing the node's GPUs.

    CUDA base images set ``NVIDIA_VISIBLE_DEVICES=all``; where the NVIDIA runtime is the nodes'
    default, a container of such an image that requested no ``nvidia.com/gpu`` would be given
    every GPU of its node, outside the scheduler's and the platform's accounting. ``void``
    makes the runtime hand it none. GPU pods get theirs from the device plugin.
    ref: https://github.com/NVIDIA/nvidia-container-toolkit (NVIDIA_VISIBLE_DEVICES)
    """
    return {} if gpus else {"NVIDIA_VISIBLE_DEVICES": "void"}


def shm_volume(*, size: str) -> tuple[dict, dict]:
    """A memory-backed ``/dev/shm`` of ``size`` (counted against the pod's memory limit), as
    ``(volume, volume_mount)``. The container runtime's 64 MB default makes PyTorch data loaders
    with workers fail ("bus error").
    ref: https://kubernetes.io/docs/concepts/storage/volumes/#emptydir
    """
    return ({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": size}},
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"})


# Container states a kubelet reports for a container that will not start by waiting longer.
FATAL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                           "CreateContainerConfigError", "CreateContainerError"})


def pod_waiting_reason(pod: dict, events: list[dict] = ()) -> str:
    """Why ``pod`` (a dict as the API serves it) is not running, or ``""`` if it runs or ended.

    From the ``PodScheduled=False`` condition (the scheduler's message: untolerated taints,
    insufficient GPUs, no matching node), a waiting container (image pull errors) and, when
    the pod says no more, its latest warning event (``events``, oldest first).
    """
    status = pod.get("status") or {}
    if status.get("phase", "Pending") != "Pending":
        return ""
    name = (pod.get("metadata") or {}).get("name", "")
    for c in status.get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            return f"pod {name}: {waiting['reason']}: {waiting.get('message') or ''}".rstrip(": ")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return (f"pod {name} cannot be scheduled: "
                    f"{cond.get('message') or cond.get('reason') or 'no node fits'}")
    warnings = [e for e in events if e.get("type") == "Warning"]
    if warnings:
        return f"pod {name}: {warnings[-1].get('reason')}: {warnings[-1].get('message') or ''}"
    return f"pod {name} is Pending"
