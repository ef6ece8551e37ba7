"""The cluster side of tests/kube_fake.py: nodes, the scheduler's filters and the Job and
Deployment controllers (the store, ``tests/kube_fake_store.py``, calls into these).

Nodes are ``v1`` Node objects in the store, with labels, taints and extended-resource capacity
(``nvidia.com/gpu``, MIG slices). The scheduler runs the filters a real one runs first, in its
order, and words a refusal as kube-scheduler does:

- taints with effect NoSchedule or NoExecute the pod does not tolerate
  ("node(s) had untolerated taint {nvidia.com/gpu: present}");
- ``nodeSelector`` ("node(s) didn't match Pod's node affinity/selector");
- extended resources asked for (``nvidia.com/*`` limits or requests) beyond the node's
  allocatable minus what pods bound to it hold ("Insufficient nvidia.com/gpu").

The controllers are minimal: a Job gets one pod from its template (no retries: the platform's
Jobs have ``backoffLimit: 0``) and its status follows the pod (active, then succeeded or failed
with the conditions a Job gets); a Deployment gets ``spec.replicas`` pods (owned by the
Deployment itself: there is no ReplicaSet in between), a pod of it that is deleted is replaced,
and its status counts ready replicas as the real controller does. A scale or template change of
an existing Deployment is not rolled out.
"""
from __future__ import annotations

import copy
import hashlib
import json
import uuid

from tests.kube_fake_semantics import quantity

EXTENDED_PREFIX = "nvidia.com/"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def make_node(name: str, *, labels: dict | None = None, taints=(), gpus: int = 0,
              resources: dict | None = None) -> dict:
    """A Node as the API serves it; ``resources`` adds extended resources (MIG slices)."""
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    capacity.update({k: str(v) for k, v in (resources or {}).items()})
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                              **(labels or {})}},
        "spec": {"taints": [dict(t) for t in taints]} if taints else {},
        "status": {"capacity": capacity, "allocatable": dict(capacity),
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
    }


def pod_asks(pod: dict) -> dict[str, float]:
    """Extended resources a pod asks for (a limit alone counts as the request)."""
    asks: dict[str, float] = {}
    for c in (pod.get("spec") or {}).get("containers", []):
        res = c.get("resources") or {}
        for k, v in {**(res.get("requests") or {}), **(res.get("limits") or {})}.items():
            if k.startswith(EXTENDED_PREFIX):
                asks[k] = asks.get(k, 0.0) + quantity(v)
    return asks


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    """ref: https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/"""
    for t in tolerations or []:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t["key"] == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (
                taint.get("value") or ""):
            return True
    return False


def _why_not(pod: dict, node: dict, bound: list[dict]) -> tuple[str, bool] | None:
    """``(reason, preemption could help)`` of the first filter ``node`` fails, or None."""
    spec = pod.get("spec") or {}
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
                spec.get("tolerations"), taint):
            return (f"node(s) had untolerated taint {{{taint['key']}: "
                    f"{taint.get('value', '')}}}", False)
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return "node(s) didn't match Pod's node affinity/selector", False
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    for res, ask in sorted(pod_asks(pod).items()):
        used = sum(pod_asks(p).get(res, 0.0) for p in bound)
        if used + ask > quantity(allocatable.get(res, 0)):
            return f"Insufficient {res}", True
    return None


def schedule(pod: dict, nodes: list[dict], pods: list[dict]) -> tuple[str | None, str]:
    """``(node name, "")`` for the first node that fits, else ``(None, the scheduler's
    message)`` (the FailedScheduling event's and the PodScheduled condition's)."""
    counts: dict[str, int] = {}
    helpless = victims = 0
    for node in nodes:
        name = node["metadata"]["name"]
        bound = [p for p in pods if (p.get("spec") or {}).get("nodeName") == name
                 and (p.get("status") or {}).get("phase") in ("Pending", "Running")]
        why = _why_not(pod, node, bound)
        if why is None:
            return name, ""
        counts[why[0]] = counts.get(why[0], 0) + 1
        victims += why[1]
        helpless += not why[1]
    n = len(nodes)
    reasons = ", ".join(f"{c} {r}" for r, c in sorted(counts.items()))
    preemption = ", ".join(part for part in (
        f"{victims} No preemption victims found for incoming pod" if victims else "",
        f"{helpless} Preemption is not helpful for scheduling" if helpless else "") if part)
    return None, (f"0/{n} nodes are available: {reasons}. preemption: 0/{n} nodes are "
                  f"available: {preemption}.")


def _owner(obj: dict) -> dict:
    return next((r for r in obj["metadata"].get("ownerReferences") or []
                 if r.get("controller")), {})


def _owner_ref(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


class Controllers:
    """The Job and Deployment controllers, mixed into the store (``controllers=True``)."""

    controllers = False

    def _pod_from_template(self, owner: dict, name: str, labels: dict) -> dict | None:
        template = owner.get("spec", {}).get("template") or {}
        pod = {"metadata": {"name": name,
                            "labels": {**(template.get("metadata") or {}).get("labels", {}),
                                       **labels},
                            "ownerReferences": [_owner_ref(owner)]},
               "spec": copy.deepcopy(template.get("spec") or {})}
        ns = owner["metadata"]["namespace"]
        try:
            return self.create("pods", ns, pod)
        except PermissionError as e:  # a ResourceQuota refused it: the controller says so
            self.add_event(owner, "FailedCreate", f"Error creating: {e}", "Warning")
            return None

    def _controlled_created(self, plural: str, obj: dict) -> None:
        if not self.controllers:
            return
        meta = obj["metadata"]
        if plural == "jobs":
            uid = meta["uid"]
            self.set_status("jobs", meta["namespace"], meta["name"],
                            {"active": 1, "startTime": obj["metadata"]["creationTimestamp"]})
            pod = self._pod_from_template(obj, f"{meta['name']}-{uuid.uuid4().hex[:5]}", {
                "batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                "batch.kubernetes.io/job-name": meta["name"], "job-name": meta["name"]})
            if pod:
                self.add_event(obj, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        elif plural == "deployments":
            for _ in range(int(obj.get("spec", {}).get("replicas", 1))):
                self._new_replica(obj)
            self._deployment_status(meta["namespace"], meta["name"])

    def _new_replica(self, dep: dict) -> None:
        template = json.dumps(dep["spec"].get("template"), sort_keys=True)
        h = hashlib.sha256(template.encode()).hexdigest()[:10]
        self._pod_from_template(dep, f"{dep['metadata']['name']}-{h}-{uuid.uuid4().hex[:5]}",
                                {"pod-template-hash": h})

    def _controlled_pod_changed(self, pod: dict, deleted: bool = False) -> None:
        """A pod of a Job or Deployment changed (or went): bring the owner's status along."""
        if not self.controllers:
            return
        owner, ns = _owner(pod), pod["metadata"].get("namespace")
        if owner.get("kind") == "Deployment":
            dep = self.get("deployments", ns, owner["name"])
            if dep is None or dep["metadata"]["uid"] != owner.get("uid"):
                return  # the Deployment itself is being deleted
            if deleted:
                self._new_replica(dep)  # its ReplicaSet would replace the pod
            self._deployment_status(ns, owner["name"])
        elif owner.get("kind") == "Job" and not deleted:
            phase = (pod.get("status") or {}).get("phase")
            job = self.get("jobs", ns, owner["name"])
            done = job is None or (job.get("status") or {}).get("active") == 0
            if done or phase not in ("Succeeded", "Failed"):
                return
            now = pod["status"].get("startTime") or job["metadata"]["creationTimestamp"]
            if phase == "Succeeded":
                status = {"active": 0, "succeeded": 1, "completionTime": now, "conditions": [
                    {"type": "Complete", "status": "True", "lastTransitionTime": now}]}
            else:
                status = {"active": 0, "failed": 1, "conditions": [{
                    "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastTransitionTime": now}]}
            self.set_status("jobs", ns, owner["name"], status)

    def _deployment_status(self, ns: str, name: str) -> None:
        dep = self.get("deployments", ns, name)
        uid = dep["metadata"]["uid"]
        pods = [p for p in self.list("pods", ns) if _owner(p).get("uid") == uid]
        ready = sum(1 for p in pods if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or []))
        want = int(dep["spec"].get("replicas", 1))
        status = {"observedGeneration": dep["metadata"].get("generation", 1),
                  "replicas": len(pods), "updatedReplicas": len(pods),
                  "readyReplicas": ready or None, "availableReplicas": ready or None,
                  "unavailableReplicas": (want - ready) if want > ready else None,
                  "conditions": [{"type": "Available", "status": "True" if ready >= want
                                  else "False",
                                  "reason": "MinimumReplicasAvailable" if ready >= want
                                  else "MinimumReplicasUnavailable"}]}
        if (dep.get("status") or {}).get("replicas") != status["replicas"] or (
                dep.get("status") or {}).get("readyReplicas") != status["readyReplicas"]:
            self.set_status("deployments", ns, name, status)
