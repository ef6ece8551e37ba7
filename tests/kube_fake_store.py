"""The object store of tests/kube_fake.py and the controllers it simulates (no HTTP here).

Objects keyed by (plural, namespace, name) with uid, one cluster-wide resourceVersion counter,
the history watches resume from, watch fan-out (an object leaving a selector is DELETED),
optimistic concurrency, merge patches, cascading deletes, ResourceQuota enforcement and a
pretend scheduler + kubelet (nodes, the scheduler's filters and the Job and Deployment
controllers: tests/kube_fake_cluster.py). What it does is listed in tests/kube_fake.py's
docstring.
"""
from __future__ import annotations

import asyncio
import base64
import copy
import threading
import uuid
from datetime import datetime, timezone
from typing import Callable

from tests.kube_fake_cluster import Controllers, make_node, schedule
from tests.kube_fake_semantics import merge_patch, quantity

# (group, version, plural) -> (Kind, namespaced)
RESOURCES = {
    ("", "v1", "pods"): ("Pod", True),
    ("", "v1", "services"): ("Service", True),
    ("", "v1", "persistentvolumeclaims"): ("PersistentVolumeClaim", True),
    ("", "v1", "events"): ("Event", True),
    ("", "v1", "resourcequotas"): ("ResourceQuota", True),
    ("", "v1", "secrets"): ("Secret", True),
    ("", "v1", "configmaps"): ("ConfigMap", True),
    ("", "v1", "serviceaccounts"): ("ServiceAccount", True),
    ("", "v1", "namespaces"): ("Namespace", False),
    ("", "v1", "persistentvolumes"): ("PersistentVolume", False),
    ("", "v1", "nodes"): ("Node", False),
    ("batch", "v1", "jobs"): ("Job", True),
    ("apps", "v1", "deployments"): ("Deployment", True),
    ("networking.k8s.io", "v1", "networkpolicies"): ("NetworkPolicy", True),
    ("autoscaling", "v2", "horizontalpodautoscalers"): ("HorizontalPodAutoscaler", True),
    ("rbac.authorization.k8s.io", "v1", "roles"): ("Role", True),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"): ("RoleBinding", True),
}
PLURALS = {plural: (g, v) for (g, v, plural) in RESOURCES}
GPU = "nvidia.com/gpu"


class Missing(Exception):
    """No such object (404). Not KeyError: a bug in the fake must not look like a 404."""


class Gone(Exception):
    """The namespace to create in does not exist (404)."""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod_gpus(pod: dict) -> float:
    total = 0.0
    for c in pod.get("spec", {}).get("containers", []):
        res = c.get("resources") or {}
        ask = (res.get("limits") or {}).get(GPU) or (res.get("requests") or {}).get(GPU) or 0
        total += quantity(ask)
    return total


class KubeStore(Controllers):
    """The objects, their history and watchers, and the simulated controllers (thread-safe).

    ``loop`` is the event loop watchers' queues and the pretend kubelet run on; the HTTP
    server (:class:`tests.kube_fake.KubeFake`) sets it when it starts.
    """

    def __init__(self, *, node_gpus: int = 0, node_labels: dict | None = None,
                 pod_start_delay: float = 0.05, pod_ip: str = "127.0.0.1",
                 bad_images: set[str] | None = None, token: str | None = None,
                 nodes: list[dict] | None = None, controllers: bool = False):
        """``nodes``: Node objects (``kube_fake_cluster.make_node``); by default one untainted
        node ``fake-node`` with ``node_labels`` and ``node_gpus``. ``controllers``: run the Job
        and Deployment controllers (off: a test sets those objects' status itself)."""
        self.pod_start_delay = pod_start_delay
        self.pod_ip = pod_ip
        self.bad_images = set(bad_images or ())
        self.token = token  # when set, requests need "Authorization: Bearer <token>"
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for asserts
        self._lock = threading.RLock()
        self._objects: dict[tuple, dict] = {}  # (plural, namespace, name) -> object
        self._history: list[tuple[int, str, tuple, dict]] = []  # (rv, type, key, object)
        self._watchers: list[tuple[str, str | None, Callable, asyncio.Queue]] = []
        self._rules: list[tuple[Callable[[dict], bool], str]] = []
        self._rv = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.controllers = controllers
        for ns in ("default", "kube-system"):
            self.create("namespaces", None, {"metadata": {"name": ns}})
        for node in nodes if nodes is not None else [
                make_node("fake-node", labels=node_labels, gpus=node_gpus)]:
            self.create("nodes", None, node)

    # --- the store (any thread) -----------------------------------------------------------------

    def _emit(self, typ: str, key: tuple, obj: dict, old: dict | None = None) -> None:
        self._history.append((self._rv, typ, key, obj))
        for plural, ns, match, q in list(self._watchers):
            if plural != key[0] or (ns is not None and ns != key[1]):
                continue
            now, before = match(obj), old is not None and match(old)
            if typ == "MODIFIED" and before and not now:
                ev = ("DELETED", obj)
            elif typ == "MODIFIED" and now and not before:
                ev = ("ADDED", obj)
            elif now:
                ev = (typ, obj)
            else:
                continue
            if self.loop:
                self.loop.call_soon_threadsafe(q.put_nowait, copy.deepcopy(ev))

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def get(self, plural: str, namespace: str | None, name: str) -> dict | None:
        with self._lock:
            obj = self._objects.get((plural, namespace or "", name))
            return copy.deepcopy(obj) if obj else None

    def list(self, plural: str, namespace: str | None = None) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(o) for (p, ns, _), o in sorted(self._objects.items())
                    if p == plural and (namespace is None or ns == namespace)]

    def create(self, plural: str, namespace: str | None, body: dict) -> dict:
        """Store a new object as the API would (raises ``Gone``/``FileExistsError``)."""
        group, version = PLURALS[plural]
        kind, namespaced = RESOURCES[(group, version, plural)]
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        with self._lock:
            if namespaced:
                if ("namespaces", "", namespace) not in self._objects:
                    raise Gone(f'namespaces "{namespace}" not found')
                meta["namespace"] = namespace
            key = (plural, namespace or "", meta["name"])
            if key in self._objects:
                raise FileExistsError(f'{plural} "{meta["name"]}" already exists')
            if plural == "pods":
                self._check_quota(namespace, obj)
            if plural == "secrets":
                # The API server folds write-only stringData into data and never returns it.
                # ref: https://kubernetes.io/docs/concepts/configuration/secret/#restriction-names-data
                for k, v in (obj.pop("stringData", None) or {}).items():
                    obj.setdefault("data", {})[k] = base64.b64encode(v.encode()).decode()
            obj["apiVersion"] = f"{group}/{version}" if group else version
            obj["kind"] = kind
            meta.update(uid=str(uuid.uuid4()), resourceVersion=self._next_rv(),
                        creationTimestamp=_now(), generation=1)
            self._initial_status(plural, obj)
            self._objects[key] = obj
            self._emit("ADDED", key, copy.deepcopy(obj))
            if plural == "pods":
                self._update_quota_usage(namespace)
            if plural in ("jobs", "deployments"):
                self._controlled_created(plural, obj)
        if plural == "pods" and self.loop:
            self.loop.call_soon_threadsafe(
                self.loop.call_later, self.pod_start_delay, self._run_pod, key)
        return copy.deepcopy(obj)

    def replace(self, plural: str, namespace: str | None, name: str, body: dict,
                status_only: bool = False) -> dict:
        key = (plural, namespace or "", name)
        with self._lock:
            old = self._objects.get(key)
            if old is None:
                raise Missing(name)
            want_rv = (body.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise ValueError("the object has been modified; please apply your changes "
                                 "to the latest version and try again")
            new = copy.deepcopy(old)
            if status_only:
                new["status"] = copy.deepcopy(body.get("status", {}))
            else:
                new = copy.deepcopy(body)
                new["status"] = copy.deepcopy(body.get("status", old.get("status", {})))
                for k in ("uid", "creationTimestamp", "namespace", "name"):
                    if k in old["metadata"]:
                        new.setdefault("metadata", {})[k] = old["metadata"][k]
                new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
                if new.get("spec") != old.get("spec"):
                    new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._objects[key] = new
            self._emit("MODIFIED", key, copy.deepcopy(new), old)
            if plural == "pods":
                self._controlled_pod_changed(new)
            return copy.deepcopy(new)

    def patch(self, plural: str, namespace: str | None, name: str, patch: dict,
              status_only: bool = False) -> dict:
        with self._lock:
            old = self.get(plural, namespace, name)
            if old is None:
                raise Missing(name)
            if status_only:
                patch = {"status": patch.get("status", {})}
            new = merge_patch(old, patch)
            new["metadata"]["resourceVersion"] = ""  # a patch never conflicts
            return self.replace(plural, namespace, name, new)

    def set_status(self, plural: str, namespace: str | None, name: str, status: dict) -> dict:
        """Merge ``status`` into an object's status (what a controller would do)."""
        return self.patch(plural, namespace, name, {"status": status})

    def delete(self, plural: str, namespace: str | None, name: str) -> dict:
        key = (plural, namespace or "", name)
        with self._lock:
            obj = self._objects.pop(key, None)
            if obj is None:
                raise Missing(name)
            obj["metadata"]["resourceVersion"] = self._next_rv()
            obj["metadata"]["deletionTimestamp"] = _now()
            self._emit("DELETED", key, copy.deepcopy(obj))
            uid = obj["metadata"]["uid"]
            # Garbage collection: dependents (ownerReferences) and a namespace's contents.
            for k, o in list(self._objects.items()):
                owned = any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences", []))
                if owned or (plural == "namespaces" and k[1] == name):
                    self.delete(*k)
            if plural == "pods":
                self._update_quota_usage(namespace)
                self._controlled_pod_changed(obj, deleted=True)
                self._retry_pending()  # what it held may let a waiting pod fit
            return obj

    # --- test controls --------------------------------------------------------------------------

    def add_node(self, node: dict) -> dict:
        """Add a Node (``kube_fake_cluster.make_node``); Pending pods are scheduled again."""
        with self._lock:
            created = self.create("nodes", None, node)
            self._retry_pending()
            return created

    def _retry_pending(self) -> None:
        """The scheduler retries unscheduled pods when the cluster changes."""
        if not self.loop:
            return
        for (p, ns, name), o in list(self._objects.items()):
            if p == "pods" and o["status"].get("phase") == "Pending" \
                    and not o["spec"].get("nodeName"):
                self.loop.call_soon_threadsafe(self._run_pod, (p, ns, name))

    def mark_unschedulable(self, match: Callable[[dict], bool], message: str) -> None:
        """Pods for which ``match(pod)`` is true stay Pending with a FailedScheduling event."""
        with self._lock:
            self._rules.append((match, message))

    def add_event(self, obj: dict, reason: str, message: str, type_: str = "Normal") -> dict:
        """Record a core/v1 Event about ``obj`` (as a controller or the kubelet would)."""
        meta = obj["metadata"]
        # Fixed-width increasing suffix: lists (sorted by name, as etcd keys) keep event order.
        return self.create("events", meta.get("namespace") or "default", {
            "metadata": {"name": f"{meta['name']}.{self._rv + 1:016x}"},
            "involvedObject": {"kind": obj.get("kind"), "name": meta["name"],
                               "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                               "apiVersion": obj.get("apiVersion")},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": _now(), "lastTimestamp": _now(), "eventTime": None,
            "source": {"component": "kube-fake"}, "reportingComponent": "kube-fake",
        })

    # --- simulated controllers ------------------------------------------------------------------

    def _initial_status(self, plural: str, obj: dict) -> None:
        if plural == "pods":
            obj["status"] = {"phase": "Pending", "conditions": []}
        elif plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        elif plural == "persistentvolumeclaims":
            obj["status"] = {"phase": "Bound",
                             "accessModes": obj.get("spec", {}).get("accessModes", [])}
        elif plural == "services":
            obj.setdefault("spec", {}).setdefault("clusterIP", f"10.96.0.{self._rv % 250 + 1}")
            obj["status"] = {"loadBalancer": {}}
        else:
            obj.setdefault("status", {})

    def _check_quota(self, namespace: str, pod: dict) -> None:
        for q in self.list("resourcequotas", namespace):
            hard = q.get("spec", {}).get("hard", {})
            pods = [p for p in self.list("pods", namespace)
                    if p["status"].get("phase") not in ("Succeeded", "Failed")]
            asks = {"pods": (len(pods), 1),
                    f"requests.{GPU}": (sum(map(_pod_gpus, pods)), _pod_gpus(pod)),
                    f"limits.{GPU}": (sum(map(_pod_gpus, pods)), _pod_gpus(pod))}
            for res, (used, ask) in asks.items():
                if res in hard and ask and used + ask > quantity(hard[res]):
                    raise PermissionError(
                        f'pods "{pod["metadata"]["name"]}" is forbidden: exceeded quota: '
                        f'{q["metadata"]["name"]}, requested: {res}={ask:g}, '
                        f'used: {res}={used:g}, limited: {res}={hard[res]}')

    def _update_quota_usage(self, namespace: str) -> None:
        pods = [p for p in self.list("pods", namespace)
                if p["status"].get("phase") not in ("Succeeded", "Failed")]
        for q in self.list("resourcequotas", namespace):
            hard = q.get("spec", {}).get("hard", {})
            used = {"pods": str(len(pods)), f"requests.{GPU}": f"{sum(map(_pod_gpus, pods)):g}",
                    f"limits.{GPU}": f"{sum(map(_pod_gpus, pods)):g}"}
            self.patch("resourcequotas", namespace, q["metadata"]["name"],
                       {"status": {"hard": hard, "used": {k: v for k, v in used.items()
                                                          if k in hard}}})

    def _run_pod(self, key: tuple) -> None:
        """The scheduler and kubelet, in one step."""
        with self._lock:
            pod = self.get("pods", key[1], key[2])
            if pod is None or pod["status"].get("phase") != "Pending":
                return
            node, reason = self._schedule(pod)
            if reason:
                self.patch("pods", key[1], key[2], {"status": {"conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": reason, "lastTransitionTime": _now()}]}})
                self.add_event(pod, "FailedScheduling", reason, "Warning")
                return
            self.patch("pods", key[1], key[2], {"spec": {"nodeName": node}})
            self.add_event(pod, "Scheduled",
                           f"Successfully assigned {key[1]}/{key[2]} to {node}")
            containers = pod["spec"].get("containers", [])
            bad = [c["image"] for c in containers if c.get("image") in self.bad_images]
            if bad:
                msg = (f'Failed to pull image "{bad[0]}": rpc error: code = NotFound desc = '
                       f'failed to pull and unpack image "{bad[0]}": not found')
                self.set_status("pods", key[1], key[2], {"containerStatuses": [{
                    "name": c["name"], "image": c.get("image"), "ready": False,
                    "restartCount": 0, "imageID": "",
                    "state": {"waiting": {"reason": "ErrImagePull", "message": msg}}}
                    for c in containers]})
                self.add_event(pod, "Failed", msg, "Warning")
                return
            for c in containers:
                self.add_event(pod, "Pulled", f'Container image "{c.get("image")}" already '
                                              "present on machine")
                self.add_event(pod, "Created", f"Created container {c['name']}")
                self.add_event(pod, "Started", f"Started container {c['name']}")
            now = _now()
            self.set_status("pods", key[1], key[2], {
                "phase": "Running", "podIP": self.pod_ip, "podIPs": [{"ip": self.pod_ip}],
                "hostIP": "10.0.0.1", "startTime": now,
                "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                               for t in ("PodScheduled", "Initialized", "ContainersReady",
                                         "Ready")],
                "containerStatuses": [{
                    "name": c["name"], "image": c.get("image"), "imageID": "", "ready": True,
                    "started": True, "restartCount": 0,
                    "state": {"running": {"startedAt": now}}} for c in containers]})

    def _schedule(self, pod: dict) -> tuple[str | None, str]:
        """``(node, "")``, or ``(None, why)`` from a test rule or the scheduler's filters."""
        for match, message in self._rules:
            if match(pod):
                return None, message
        return schedule(pod, self.list("nodes"), self.list("pods"))
