"""The scale-out spawner: a KubeSpawner over the same profile model as the local one.

On top of kubespawner it adds: profiles limited to groups/roles (also when posted directly),
``nvidia.com/gpu`` limits, GPU node selectors and tolerations, an image per profile, the shared
dataset claim mounted read-only at ``/mnt/datasets`` (``$JUPYTER_MLOPS_DATASETS``), optional
namespace per user with a NetworkPolicy and a GPU ResourceQuota, and, most of all, a spawn that
cannot be scheduled fails within seconds with the reason the cluster gives (pod events and
container states: insufficient GPUs, no matching node, image pull errors, quota refusals)
instead of waiting out ``start_timeout``.
"""
from __future__ import annotations

import asyncio
import copy
import json
import os
import time

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from traitlets import Bool, Dict, Float, Unicode, default

from jupyter_mlops.backends.kube_pods import FATAL_WAITING
from jupyter_mlops.core.errors import MlopsError

from . import objects
from .profiles import ProfileSpawnerMixin, spawn_error

MERGED = ("volumes", "volume_mounts", "tolerations", "environment", "node_selector",
          "extra_resource_limits", "image", "cpu_limit", "cpu_guarantee", "mem_limit",
          "mem_guarantee", "extra_pod_config")


class MlopsKubeSpawner(ProfileSpawnerMixin, KubeSpawner):
    """KubeSpawner with jupyter-mlops profiles, GPU accounting and fail-fast scheduling."""

    dataset_claim = Unicode(
        "jupyter-mlops-datasets",
        help="""Name of the ReadOnlyMany PersistentVolumeClaim holding the shared dataset
        (e.g. NFS), mounted read-only into every user pod. Empty: no dataset volume.
        With ``enable_user_namespaces`` the claim must exist in each user namespace: set
        ``dataset_nfs`` and the spawner creates a volume and claim per namespace.""",
    ).tag(config=True)

    dataset_mount_path = Unicode(
        objects.DATASETS_MOUNT,
        help="""Where user pods see the dataset (also ``$JUPYTER_MLOPS_DATASETS``).""",
    ).tag(config=True)

    dataset_nfs = Dict(
        {},
        help="""``{"server": "nfs.lab", "path": "/exports/cells", "capacity": "500Gi"}``: with
        ``enable_user_namespaces``, create a read-only NFS PersistentVolume and a bound claim
        named ``dataset_claim`` in each user's namespace.""",
    ).tag(config=True)

    control_plane_url = Unicode(
        "",
        help="""URL at which user pods reach the control plane (in-cluster service address
        with the service prefix), passed as ``$JUPYTER_MLOPS_CONTROL_PLANE_URL``.""",
    ).tag(config=True)

    mlflow_url = Unicode(
        "",
        help="""URL at which user pods reach MLflow through the hub-authenticated gateway,
        passed as ``$MLFLOW_TRACKING_URI`` (the server's token becomes
        ``$MLFLOW_TRACKING_TOKEN``).""",
    ).tag(config=True)

    hub_namespace = Unicode(
        help="""Namespace of the hub and proxy pods, allowed into user namespaces by their
        NetworkPolicy. Defaults to ``$POD_NAMESPACE`` (set by Zero-to-JupyterHub).""",
    ).tag(config=True)

    @default("hub_namespace")
    def _default_hub_namespace(self):
        return os.environ.get("POD_NAMESPACE", "default")

    user_namespace_policies = Bool(
        True,
        help="""With ``enable_user_namespaces``: create a NetworkPolicy admitting only the
        namespace itself and the hub/proxy, and a ResourceQuota capping GPU requests at the
        user's GPU quota (or the largest GPU profile the user may use).""",
    ).tag(config=True)

    unschedulable_grace_seconds = Float(
        0,
        help="""How long a pod may stay unschedulable before the spawn fails with the
        scheduler's reason. 0 fails at the first FailedScheduling event; raise it when a
        cluster autoscaler adds GPU nodes on demand. Claims still binding never count.""",
    ).tag(config=True)

    _configured: dict | None = None
    _unschedulable_since: float | None = None

    # --- profile -> pod: kubespawner's profile_list -------------------------------------------

    @default("profile_list")
    def _default_profile_list(self):
        # kubespawner's own profile mechanism: its load_user_options calls this at each start
        # and applies the chosen entry's kubespawner_override to the spawner.
        return self.kube_profile_list

    def kube_profile_list(self, spawner=None) -> list[dict]:
        """The ``profiles`` the user may use, as kubespawner's ``profile_list``. Each
        ``kubespawner_override`` sets the profile's image, CPU and memory (where it has them)
        and adds its GPU limit, GPU placement, dataset volume and platform environment to the
        administrator's values (kubespawner merges dict values, replaces lists)."""
        base = self._admin_values()
        env = {"MLFLOW_DISABLE_TELEMETRY": "true"}
        if self.control_plane_url:
            env["JUPYTER_MLOPS_CONTROL_PLANE_URL"] = self.control_plane_url
        if self.mlflow_url:
            env["MLFLOW_TRACKING_URI"] = self.mlflow_url
        out = []
        for profile in self.allowed_profiles():
            o = objects.profile_overrides(profile=profile, default_image=base["image"],
                                          dataset_claim=self.dataset_claim or None,
                                          dataset_mount=self.dataset_mount_path,
                                          environment=env)
            override = {key: o[key] for key in ("image", "environment", "node_selector",
                                                "extra_resource_limits", "extra_pod_config")}
            override.update({key: _as_list(base[key]) + o[key]
                             for key in ("volumes", "volume_mounts", "tolerations")})
            override.update({key: o[key] for key in ("cpu_limit", "cpu_guarantee", "mem_limit",
                                                     "mem_guarantee") if o[key] is not None})
            out.append({"slug": profile.slug, "display_name": profile.display_name,
                        "description": profile.description, "default": profile.default,
                        "kubespawner_override": override})
        return out

    def _admin_values(self) -> dict:
        """The administrator's values of what profiles change, as before any profile."""
        if self._configured is None:
            self._configured = {k: copy.deepcopy(getattr(self, k)) for k in MERGED}
        return copy.deepcopy(self._configured)

    def get_env(self):
        env = super().get_env()
        if self.mlflow_url:
            env["MLFLOW_TRACKING_TOKEN"] = self.api_token
        return env

    # --- per-user namespace ----------------------------------------------------------------------

    async def get_pod_manifest(self):
        """The pod kubespawner creates next. kubespawner calls this once the user's namespace
        exists and before ``modify_pod_hook``: the namespace's NetworkPolicy, GPU
        ResourceQuota and dataset claim go in first, so no pod ever runs in a user namespace
        without them (a failure here fails the spawn before the pod exists)."""
        if self.enable_user_namespaces and self.user_namespace_policies:
            await self._secure_user_namespace()
        return await super().get_pod_manifest()

    async def _secure_user_namespace(self):
        ns = self.namespace
        await self._apply("NetworkingV1Api", "network_policy", objects.make_user_network_policy(
            namespace=ns, hub_namespace=self.hub_namespace))
        await self._apply("CoreV1Api", "resource_quota", objects.make_gpu_resource_quota(
            namespace=ns, gpus=await self._namespace_gpu_cap()))
        if self.dataset_nfs and self.dataset_claim:
            nfs = self.dataset_nfs
            pv_name = f"{self.dataset_claim}-{ns}"
            await self._apply("CoreV1Api", "persistent_volume", objects.make_dataset_pv(
                name=pv_name, nfs_server=nfs["server"], nfs_path=nfs["path"],
                capacity=nfs.get("capacity", "100Gi")), namespaced=False)
            await self._apply("CoreV1Api", "persistent_volume_claim", objects.make_dataset_pvc(
                name=self.dataset_claim, namespace=ns, capacity=nfs.get("capacity", "100Gi"),
                volume_name=pv_name))

    async def _namespace_gpu_cap(self) -> int:
        """The user's GPU quota (from the control plane), else the largest GPU profile the user
        may use."""
        quota = None
        if self.gpu_accounting is not None:
            try:
                quota = await self.gpu_accounting.user_quota(self.user.name)
            except MlopsError as e:
                raise spawn_error(e.status, f"Cannot start: {e.message}") from None
        if quota is None:
            quota = max([p.gpus for p in self.allowed_profiles()] or [0])
        return quota

    async def _apply(self, api_name: str, kind: str, manifest: dict, namespaced=True):
        """Create, or patch to the desired spec when it exists (idempotent across spawns)."""
        api = shared_client(api_name)
        name, ns = manifest["metadata"]["name"], manifest["metadata"].get("namespace")
        args = (ns,) if namespaced else ()
        ns_part = "namespaced_" if namespaced else ""
        try:
            await getattr(api, f"create_{ns_part}{kind}")(*args, manifest)
        except ApiException as e:
            if e.status != 409:
                raise
            await getattr(api, f"patch_{ns_part}{kind}")(name, *args, manifest)

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self):
        """Profile check and GPUs first (refusals happen before any Kubernetes object exists),
        then kubespawner's own ``start``, watched so that a pod that cannot start fails the
        spawn with the cluster's reason instead of waiting out ``start_timeout``."""
        profile = self.chosen_profile()
        await self.allocate_gpus(profile)
        # A previous start's profile must not linger: kubespawner merges the dict values of
        # the next profile's override into the current ones.
        for key, value in self._admin_values().items():
            setattr(self, key, value)
        self._unschedulable_since = None
        # kubespawner's start keeps the future it returns: its progress() streams the pod's
        # events until that future is done (also when it is cancelled below).
        inner = super().start()
        try:
            try:
                while True:
                    done, _ = await asyncio.wait([inner], timeout=0.25)
                    if done:
                        return inner.result()
                    reason = self.cannot_start_reason()
                    if reason:
                        inner.cancel()
                        await self._delete_failed_pod()
                        raise spawn_error(409, f"Cannot start {profile.display_name}: {reason}")
            except ApiException as e:
                raise spawn_error(e.status if 400 <= e.status < 500 else 503,
                                  f"Cannot start {profile.display_name}: Kubernetes answered "
                                  f"{e.status}: {_api_message(e)}") from None
        except BaseException:
            if not inner.done():
                inner.cancel()
            await self.release_gpus()
            raise

    async def _delete_failed_pod(self):
        try:
            await self.stop(now=True)
        except Exception:  # the reason to show is the scheduling one, not a cleanup hiccup
            self.log.exception("Could not delete the unschedulable pod of %s", self.user.name)

    def cannot_start_reason(self) -> str | None:
        """Why this spawn's pod will not start by waiting longer, or None."""
        pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}") \
            if self.pod_reflector else None
        if pod:
            for c in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (c.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in FATAL_WAITING:
                    return f"{waiting['reason']}: {waiting.get('message', '')}".strip(": ")
        for event in self.events if pod else []:
            msg = event.get("message") or ""
            if event.get("reason") == "FailedScheduling" and "PersistentVolumeClaim" not in msg:
                self._unschedulable_since = self._unschedulable_since or time.monotonic()
                if time.monotonic() - self._unschedulable_since >= \
                        self.unschedulable_grace_seconds:
                    return f"the cluster cannot schedule it: {msg}"
            if event.get("reason") in ("Failed", "FailedCreate") and event.get("type") == \
                    "Warning":
                return msg
        return None

    async def stop(self, now=False):
        try:
            await super().stop(now=now)
        finally:
            await self.release_gpus()


def _as_list(value) -> list:
    # kubespawner also accepts dicts keyed by name for these traits
    if isinstance(value, dict):
        return list(value.values())
    return list(value or [])


def _api_message(e: ApiException) -> str:
    try:
        return json.loads(e.body)["message"]
    except (TypeError, ValueError, KeyError):
        return e.reason or str(e)
