"""What training Jobs and model servers share on Kubernetes: where their GPU pods may run and
why a pod of theirs is not running.

:class:`GpuPodSettings` holds the placement settings of both backends (``c.KubeJobBackend.*``
and ``c.KubeDeployBackend.*``: the same trait names, each backend configured on its own) and
turns them into pod-spec fields with the pure builders of ``kube_pods``, the rules user pods
follow too. :func:`pending_pods` asks the cluster why a workload's pods wait (the pod's
status, then its events) and since when, so a job or a deployment reports the scheduler's or
the kubelet's reason instead of "running" and gives up after ``pending_timeout``.
"""
from __future__ import annotations

import json
from datetime import datetime

from traitlets import Dict, Float, List, TraitError, Unicode, validate
from traitlets.config import Configurable

from .kube_pods import (GPU_PRODUCT_LABEL, GPU_RESOURCE, GPU_RESOURCE_RE, gpu_placement,
                        pod_waiting_reason, shm_volume)


class GpuPodSettings(Configurable):
    """Placement of a backend's GPU pods (a mixin of the Kubernetes job and deploy backends)."""

    gpu_resource = Unicode(
        GPU_RESOURCE,
        help="""Extended resource a pod's GPUs are asked as: ``nvidia.com/gpu`` (whole GPUs) or a
        MIG slice such as ``nvidia.com/mig-1g.10gb`` (the NVIDIA device plugin's mixed
        strategy), so that one A100 serves several small jobs.""",
    ).tag(config=True)

    @validate("gpu_resource")
    def _validate_gpu_resource(self, proposal):
        if not GPU_RESOURCE_RE.match(proposal["value"]):
            raise TraitError(f"gpu_resource {proposal['value']!r}: nvidia.com/gpu or a MIG "
                             "resource like nvidia.com/mig-1g.10gb")
        return proposal["value"]

    gpu_product_label = Unicode(
        GPU_PRODUCT_LABEL,
        help="""Node label a GPU type is matched against (GPU feature discovery's, as for user
        pods): a pod asking for GPUs of a type gets ``{label: type}`` as node selector.""",
    ).tag(config=True)

    node_selector = Dict(
        {},
        help="""Node selector of every pod (GPU or not), e.g. ``{"pool": "training"}``.""",
    ).tag(config=True)

    tolerations = List(
        [],
        help="""Tolerations of every pod. Pods with GPUs also tolerate the usual
        ``nvidia.com/gpu`` NoSchedule taint of GPU nodes, as user pods do.""",
    ).tag(config=True)

    runtime_class = Unicode(
        "",
        help="""``runtimeClassName`` of the pods, e.g. ``nvidia`` where the NVIDIA container
        runtime is not the nodes' default (GPU Operator installs without a default runtime),
        or a sandboxed runtime (gVisor, Kata) for users' code. Empty: the nodes' default.""",
    ).tag(config=True)

    shm_size = Unicode(
        "",
        help="""Size of a memory-backed ``/dev/shm`` (e.g. ``8Gi``), counted against the pod's
        memory limit. PyTorch data loaders with workers pass batches through it and fail with a
        "bus error" in the runtime's 64 MB default. Empty: the runtime's default.""",
    ).tag(config=True)

    pending_timeout = Float(
        600.0,
        help="""Seconds a pod may stay Pending (not schedulable, image not pulled) before its
        job fails or its deployment version gives up, with the cluster's reason. Until then
        the reason is shown as the job's. Raise it when a cluster autoscaler adds GPU nodes
        on demand (several minutes). 0: no limit.""",
    ).tag(config=True)

    def pod_placement(self, gpus: int, gpu_type: str = "") -> dict:
        """Pod-spec fields (node selector, tolerations, RuntimeClass) for ``gpus`` GPUs."""
        return gpu_placement(gpus=gpus, gpu_type=gpu_type, node_selector=self.node_selector,
                             tolerations=self.tolerations,
                             runtime_class=self.runtime_class,
                             gpu_product_label=self.gpu_product_label)

    def shm(self) -> tuple[dict, dict] | None:
        """``(volume, mount)`` of ``/dev/shm``, or None without ``shm_size``."""
        return shm_volume(size=self.shm_size) if self.shm_size else None


def _created(pod: dict) -> float | None:
    ts = (pod.get("metadata") or {}).get("creationTimestamp")
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


async def list_pods(core, namespace: str, label_selector: str) -> list[dict]:
    """The pods matching ``label_selector``, as the API serves them (``core``: CoreV1Api)."""
    resp = await core.list_namespaced_pod(namespace, label_selector=label_selector,
                                          _preload_content=False)
    return json.loads(await resp.read()).get("items") or []


async def pending_pods(core, namespace: str, label_selector: str = "",
                       pods: list[dict] | None = None) -> tuple[str, float | None]:
    """``(reason, pending since)`` of the first Pending pod matching ``label_selector`` (or of
    ``pods``, already listed), or ``("", None)`` when none is Pending."""
    if pods is None:
        pods = await list_pods(core, namespace, label_selector)
    pending = sorted((p for p in pods if (p.get("status") or {}).get("phase") == "Pending"),
                     key=lambda p: _created(p) or 0)
    if not pending:
        return "", None
    pod = pending[0]
    name = pod["metadata"]["name"]
    reason = pod_waiting_reason(pod)
    if reason.endswith("is Pending"):  # nothing in its status yet: what the events say
        resp = await core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}", _preload_content=False)
        events = json.loads(await resp.read()).get("items") or []
        reason = pod_waiting_reason(pod, events)
    return reason, _created(pod)
