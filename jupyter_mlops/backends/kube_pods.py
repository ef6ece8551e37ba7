"""Pure builders of the pod-template parts that training Jobs and model-server Deployments share.

Both run code of a user (a training script, a logged model) in a pod the control plane creates
with its own ServiceAccount, so both get the same hardening: no Kubernetes API token mounted in
the pod, no privilege escalation, no Linux capabilities.
Resources and GPUs are spelt the same way (GPUs as a ``nvidia.com/gpu`` limit, which the device
plugin also takes as the request).

No I/O, keyword-only arguments, plain dicts out: ``tests/test_kube_pods.py``
compares them with literal dicts. The objects around them (``jobs_kube.make_job``,
``deploy_kube_objects.make_model_deployment``) stay with their backends.
"""
from __future__ import annotations

GPU_RESOURCE = "nvidia.com/gpu"


def container_resources(*, cpu_request: str, memory_request: str, memory_limit: str,
                        cpu_limit: str = "", gpus: int = 0) -> dict:
    """``resources`` of a container; a CPU limit only when ``cpu_limit`` is given."""
    limits = {}
    if cpu_limit:
        limits["cpu"] = cpu_limit
    limits["memory"] = memory_limit
    if gpus:
        # Extended resources are whole numbers given as strings; a limit alone is enough.
        # ref: https://kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus/
        limits[GPU_RESOURCE] = str(gpus)
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


def claim_volume(*, name: str, claim: str, mount_path: str,
                 sub_path: str = "") -> tuple[dict, dict]:
    """A PersistentVolumeClaim volume and its mount, as ``(volume, volume_mount)``; with
    ``sub_path`` only that directory of the claim is mounted."""
    mount = {"name": name, "mountPath": mount_path}
    if sub_path:
        mount["subPath"] = sub_path
    return {"name": name, "persistentVolumeClaim": {"claimName": claim}}, mount


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
