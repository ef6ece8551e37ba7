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
- a Secret's ``stringData`` is stored base64-encoded in ``data``, as the real server does;
- a ResourceQuota's ``hard`` ``pods`` and ``requests.nvidia.com/gpu``/``limits.nvidia.com/gpu``
  are enforced at pod creation (403 "exceeded quota"), ``status.used`` is kept up to date;
- nodes (``v1`` Node objects: labels, taints, ``nvidia.com/*`` capacity; ``nodes=[make_node(...)]``
  or, by default, one untainted ``fake-node`` with ``node_labels`` and ``node_gpus``);
- a pretend scheduler + kubelet: a new pod is bound to the first node whose taints it
  tolerates, whose labels match its nodeSelector and which has the extended resources it asks
  for (minus what pods bound there hold), and becomes Running (podIP ``pod_ip``, Ready) after
  ``pod_start_delay`` seconds, with Scheduled/Pulled/Created/Started events. When no node fits
  it stays Pending with ``PodScheduled=False/Unschedulable`` and a FailedScheduling event worded
  as kube-scheduler words it ("0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s)
  had untolerated taint {nvidia.com/gpu: present}. ..."), and is tried again when a pod goes or
  a node comes (``add_node``). A test rule (``mark_unschedulable``) overrides the scheduler; an
  image in ``bad_images`` fails with ErrImagePull, as a kubelet reports it;
- with ``controllers=True``, minimal Job and Deployment controllers: pods from the template,
  owned by the Job/Deployment; a Job's status follows its pod (set a pod's phase to Succeeded
  or Failed to end it), a Deployment's counts ready replicas and a deleted replica is replaced
  (tests/kube_fake_cluster.py says what they leave out).

Usage::

    from tests.kube_fake import KubeFake, kube_fake  # kube_fake is a pytest fixture

    with KubeFake(node_gpus=2) as fake:          # or the ``kube_fake`` fixture
    # or a cluster: KubeFake(controllers=True, nodes=[make_node("cpu-1"), make_node(
    #     "gpu-1", gpus=2, taints=[GPU_TAINT], labels={"nvidia.com/gpu.product": "A100"})])
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        use_kubeconfig(monkeypatch, kubeconfig)  # for clients reading the default location
        fake.url                                  # http://127.0.0.1:PORT
        fake.mark_unschedulable(lambda pod: True, "0/3 nodes are available: ...")
        fake.get("pods", "default", "jupyter-alice")    # the stored dict, or None
        fake.list("jobs", "default")                     # plural names, any kind above
        fake.set_status("jobs", "default", "train-1", {"succeeded": 1})  # drive other kinds

Everything here is simulated: there are no containers; Running pods serve nothing unless a
test starts a server at ``pod_ip`` itself.

This module is the HTTP side (routing, discovery, Status answers, watch streams) and the
kubeconfig helpers; the objects and the pretend kubelet are ``tests/kube_fake_store.py``, nodes,
the scheduler and the controllers ``tests/kube_fake_cluster.py``, selectors, merge patches and
quantities ``tests/kube_fake_semantics.py``.
"""
from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from aiohttp import web

from tests.kube_fake_semantics import field_matcher, label_matcher  # noqa: F401 (re-exported)
from tests.kube_fake_store import RESOURCES, Gone, KubeStore, Missing


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


class KubeFake(KubeStore):
    """The fake API server: the store's thread-safe helpers, served over HTTP from a thread
    and event loop of its own."""

    url = ""  # http://127.0.0.1:PORT once started

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
