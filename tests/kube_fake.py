"""A small, faithful stand-in for the Kubernetes API server, for tests (no cluster runs here).

It is a real HTTP server (aiohttp, on 127.0.0.1, in a thread of its own) that real clients talk
to: kubernetes_asyncio, kubespawner (its watch-based reflectors included) and ``kubectl``.

What it does, generically over the resource kinds in ``RESOURCES`` (core/v1 pods, services,
persistentvolumeclaims, namespaces, events, resourcequotas, secrets, configmaps,
serviceaccounts, nodes, persistentvolumes; batch/v1 jobs; apps/v1 deployments; networking.k8s.io/v1
networkpolicies; autoscaling/v2 horizontalpodautoscalers; rbac roles and rolebindings):

- create (POST, ``generateName`` too), get, list, replace (PUT, optimistic concurrency on
  ``metadata.resourceVersion``), patch (merge patch; strategic merge patch is treated as a
  merge patch), delete (cascading to objects whose ``ownerReferences`` name the deleted uid,
  and to everything in a deleted namespace); ``/status`` subresources;
- ``metadata.uid``, ``resourceVersion`` (one cluster-wide counter), ``creationTimestamp``;
- label selectors (``=``, ``==``, ``!=``, ``in``, ``notin``, ``k``, ``!k``) and field selectors
  (any dotted path, ``=``/``==``/``!=``) on list and watch;
- watch (``watch=true|True|1``) from a ``resourceVersion`` (history is kept), with server-side
  ``timeoutSeconds``; an object leaving a selector is sent as DELETED, as the real server does;
- creating in a missing namespace is 404; Status bodies as the real server sends them;
- a ResourceQuota's ``hard`` ``pods`` and ``requests.nvidia.com/gpu``/``limits.nvidia.com/gpu``
  are enforced at pod creation (403 "exceeded quota"), ``status.used`` is kept up to date;
- a pretend scheduler + kubelet: a new pod becomes Running (podIP ``pod_ip``, Ready) after
  ``pod_start_delay`` seconds, with Scheduled/Pulled/Created/Started events, unless it asks for
  more ``nvidia.com/gpu`` than ``node_gpus`` minus what running pods hold, its nodeSelector does
  not match ``node_labels``, a test rule marks it unschedulable (``mark_unschedulable``), or its
  image is in ``bad_images`` (then ErrImagePull, as a kubelet reports it).

Usage::

    from tests.kube_fake import KubeFake, kube_fake  # kube_fake is a pytest fixture

    with KubeFake(node_gpus=2) as fake:          # or the ``kube_fake`` fixture
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        use_kubeconfig(monkeypatch, kubeconfig)  # for clients reading the default location
        fake.url                                  # http://127.0.0.1:PORT
        fake.mark_unschedulable(lambda pod: True, "0/3 nodes are available: ...")
        fake.get("pods", "default", "jupyter-alice")    # the stored dict, or None
        fake.list("jobs", "default")                     # plural names, any kind above
        fake.set_status("jobs", "default", "train-1", {"succeeded": 1})  # drive other kinds

Everything here is simulated: there are no containers; Running pods serve nothing unless a
test starts a server at ``pod_ip`` itself.
"""
from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest
from aiohttp import web

from tests.kube_fake_semantics import (field_matcher, label_matcher, merge_patch,  # noqa: F401
                                      quantity)

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


def _status(code: int, reason: str, message: str, **details) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details, "code": code}
    return web.json_response(body, status=code)


def write_kubeconfig(path, server: str, token: str = "fake-token",
                     namespace: str = "default") -> Path:
    """A kubeconfig (JSON is valid YAML) whose current context is ``server``."""
    path = Path(path)
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "fake", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                  "namespace": namespace}}],
    }))
    return path


def use_kubeconfig(monkeypatch, path) -> None:
    """Make clients that load "the default kubeconfig" (kubespawner does) load ``path``.

    kubernetes_asyncio reads $KUBECONFIG once, at import, so the module default is set too, and
    kubespawner's cached ``load_config`` is cleared.
    """
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    try:  # kubespawner loads the kubeconfig once per process (lru_cache): make it load again
        from kubespawner.clients import load_config
    except ImportError:
        return
    load_config.cache_clear()


def _pod_gpus(pod: dict) -> float:
    total = 0.0
    for c in pod.get("spec", {}).get("containers", []):
        res = c.get("resources") or {}
        ask = (res.get("limits") or {}).get(GPU) or (res.get("requests") or {}).get(GPU) or 0
        total += quantity(ask)
    return total


class KubeFake:
    """The fake API server. Thread-safe helpers; the HTTP side runs on its own event loop."""

    def __init__(self, *, node_gpus: int = 0, node_labels: dict | None = None,
                 pod_start_delay: float = 0.05, pod_ip: str = "127.0.0.1",
                 bad_images: set[str] | None = None, token: str | None = None):
        self.node_gpus = node_gpus
        self.node_labels = {"kubernetes.io/hostname": "fake-node", **(node_labels or {})}
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
        self.url = ""
        for ns in ("default", "kube-system"):
            self.create("namespaces", None, {"metadata": {"name": ns}})

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "KubeFake":
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            app = web.Application()
            app.router.add_route("*", "/{path:.*}", self._handle)
            self._runner = web.AppRunner(app, handle_signals=False)
            self.loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self._runner.cleanup())
            self.loop.close()

        self._thread = threading.Thread(target=run, name="kube-fake", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self.loop:
            with self._lock:
                for *_, q in self._watchers:
                    self.loop.call_soon_threadsafe(q.put_nowait, None)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def write_kubeconfig(self, path, namespace: str = "default") -> Path:
        """A kubeconfig whose current context points at this server (``KUBECONFIG=path``)."""
        return write_kubeconfig(path, self.url, token=self.token or "fake-token",
                                namespace=namespace)

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
            obj["apiVersion"] = f"{group}/{version}" if group else version
            obj["kind"] = kind
            meta.update(uid=str(uuid.uuid4()), resourceVersion=self._next_rv(),
                        creationTimestamp=_now(), generation=1)
            self._initial_status(plural, obj)
            self._objects[key] = obj
            self._emit("ADDED", key, copy.deepcopy(obj))
            if plural == "pods":
                self._update_quota_usage(namespace)
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
            return obj

    # --- test controls --------------------------------------------------------------------------

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
            reason = self._unschedulable_reason(pod)
            if reason:
                self.patch("pods", key[1], key[2], {"status": {"conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": reason, "lastTransitionTime": _now()}]}})
                self.add_event(pod, "FailedScheduling", reason, "Warning")
                return
            self.patch("pods", key[1], key[2], {"spec": {"nodeName": "fake-node"}})
            self.add_event(pod, "Scheduled",
                           f"Successfully assigned {key[1]}/{key[2]} to fake-node")
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

    def _unschedulable_reason(self, pod: dict) -> str | None:
        for match, message in self._rules:
            if match(pod):
                return message
        selector = pod["spec"].get("nodeSelector") or {}
        if any(self.node_labels.get(k) != v for k, v in selector.items()):
            return ("0/1 nodes are available: 1 node(s) didn't match Pod's node "
                    "affinity/selector. preemption: 0/1 nodes are available: "
                    "1 Preemption is not helpful for scheduling.")
        ask = _pod_gpus(pod)
        if ask:
            running = [p for p in self.list("pods") if p["spec"].get("nodeName")
                       and p["status"].get("phase") in ("Pending", "Running")]
            if sum(map(_pod_gpus, running)) + ask > self.node_gpus:
                return (f"0/1 nodes are available: 1 Insufficient {GPU}. preemption: 0/1 nodes "
                        "are available: 1 No preemption victims found for incoming pod.")
        return None

    # --- HTTP ------------------------------------------------------------------------------------

    def _route(self, path: str):
        """``(plural, namespace, name, subresource, namespaced-kind)`` or None."""
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in RESOURCES:
            ns, rest = rest[1], rest[2:]
        if not rest or (group, version, rest[0]) not in RESOURCES:
            return None
        plural, name, sub = rest[0], (rest[1:2] or [None])[0], (rest[2:3] or [None])[0]
        return plural, ns, name, sub, RESOURCES[(group, version, plural)]

    def _discovery(self, path: str) -> dict | None:
        """Just enough discovery for ``kubectl`` (it asks before anything else)."""
        path = path.rstrip("/")
        if path == "/version":
            return {"major": "1", "minor": "30", "gitVersion": "v1.30.0-kube-fake"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.url[len("http://"):]}]}
        groups = sorted({(g, v) for g, v, _ in RESOURCES if g})
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                 "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
                for g, v in groups]}
        for g, v in [("", "v1"), *groups]:
            if path == (f"/apis/{g}/{v}" if g else "/api/v1"):
                verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
                return {"kind": "APIResourceList", "apiVersion": "v1",
                        "groupVersion": f"{g}/{v}" if g else v, "resources": [
                            {"name": pl, "singularName": kind.lower(), "namespaced": nsd,
                             "kind": kind, "verbs": verbs}
                            for (g2, v2, pl), (kind, nsd) in RESOURCES.items()
                            if (g2, v2) == (g, v)]}
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        discovery = self._discovery(request.path)
        if discovery is not None:
            return web.json_response(discovery)
        route = self._route(request.path)
        if route is None:
            return _status(404, "NotFound", f"the server could not find the requested resource "
                                            f"({request.path})")
        plural, ns, name, sub, (kind, namespaced) = route
        q = request.query
        try:
            if request.method == "GET" and name is None:
                labels, fields = label_matcher(q.get("labelSelector")), field_matcher(
                    q.get("fieldSelector"))
                match = lambda o: labels(o) and fields(o)  # noqa: E731
                if q.get("watch") in ("true", "True", "1"):
                    return await self._watch(request, plural, ns, match)
                with self._lock:
                    items = [o for o in self.list(plural, ns) if match(o)]
                    rv = str(self._rv)
                return web.json_response({"kind": f"{kind}List", "apiVersion": "v1",
                                          "metadata": {"resourceVersion": rv}, "items": items})
            if request.method == "GET":
                obj = self.get(plural, ns, name)
                if obj is None:
                    return _status(404, "NotFound", f'{plural} "{name}" not found', name=name,
                                   kind=plural)
                return web.json_response(obj)
            if request.method == "POST" and name is None:
                body = await request.json()
                obj = self.create(plural, ns, body)
                return web.json_response(obj, status=201)
            if request.method == "PUT" and name:
                body = await request.json()
                return web.json_response(self.replace(plural, ns, name, body,
                                                      status_only=sub == "status"))
            if request.method == "PATCH" and name:
                if "json-patch" in request.content_type:
                    return _status(415, "UnsupportedMediaType",
                                   "kube-fake supports merge patches only")
                body = await request.json()
                return web.json_response(self.patch(plural, ns, name, body,
                                                    status_only=sub == "status"))
            if request.method == "DELETE" and name:
                return web.json_response(self.delete(plural, ns, name))
        except ValueError as e:
            code, reason = (409, "Conflict") if "modified" in str(e) else (400, "BadRequest")
            return _status(code, reason, str(e))
        except Missing as e:
            return _status(404, "NotFound", f'{plural} "{e.args[0]}" not found',
                           name=str(e.args[0]), kind=plural)
        except Gone as e:
            return _status(404, "NotFound", str(e), kind="namespaces")
        except FileExistsError as e:
            return _status(409, "AlreadyExists", str(e), kind=plural)
        except PermissionError as e:
            return _status(403, "Forbidden", str(e), kind=plural)
        return _status(405, "MethodNotAllowed", f"{request.method} is not supported here")

    async def _watch(self, request, plural, ns, match) -> web.StreamResponse:
        queue: asyncio.Queue = asyncio.Queue()
        since = request.query.get("resourceVersion") or "0"
        with self._lock:
            if since == "0":
                backlog = [("ADDED", o) for o in self.list(plural, ns) if match(o)]
            else:
                backlog = [(t, o) for rv, t, k, o in self._history
                           if rv > int(since) and k[0] == plural
                           and (ns is None or k[1] == ns) and match(o)]
            entry = (plural, ns, match, queue)
            self._watchers.append(entry)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            for ev in backlog:
                await resp.write(json.dumps({"type": ev[0], "object": ev[1]}).encode() + b"\n")
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(queue.get(), left)
                except asyncio.TimeoutError:
                    break
                if ev is None:
                    break
                await resp.write(json.dumps({"type": ev[0], "object": ev[1]}).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            with self._lock:
                self._watchers.remove(entry)
        return resp


@pytest.fixture
def kube_fake(tmp_path, monkeypatch):
    """A running :class:`KubeFake` with ``KUBECONFIG`` pointing at it (2 simulated GPUs)."""
    with KubeFake(node_gpus=2) as fake:
        use_kubeconfig(monkeypatch, fake.write_kubeconfig(tmp_path / "kubeconfig"))
        yield fake
