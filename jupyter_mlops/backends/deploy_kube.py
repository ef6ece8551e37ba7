"""Model servers on Kubernetes: one Deployment + Service (+ HPA) per deployment version.

The control plane creates them with its own ServiceAccount (see ``deploy_kube_objects`` for the
objects). ``start`` returns once the version's Deployment reports a ready replica, and raises
:class:`LoadFailed` when it cannot get there (progress deadline exceeded, crash-looping or
unpullable containers, a pod left Pending longer than ``pending_timeout``: no node it
tolerates with a free GPU), with what Kubernetes says about it as the log. GPU servers are
placed as user pods and jobs are (``kube_gpu``: GPU taint tolerated, ``gpu_type`` as node
selector, optional RuntimeClass and memory-backed ``/dev/shm``). Switching and draining
are the control plane's (``core.deployments``), exactly as with local processes.

Given a token issuer and ``owner_of``, every version reads its model with a hub token of the
deployment's creator (``MODEL_SERVER_SCOPES``: the MLflow gateway only), held in a Secret of the
version's own and revoked when the version stops; the gateway then serves exactly the runs of
that user's projects. Without an issuer the servers share ``token_secret``.

Tested against tests/kube_fake.py (no cluster can run on the build machines).
"""
from __future__ import annotations

import asyncio
import time

from traitlets import Bool, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from ..core import clock
from ..core.deployments import LoadFailed
from ..core.errors import MlopsError
from ..core.jobs.tracking import MODEL_SERVER_SCOPES
from .deploy_kube_objects import (SERVER_PORT, make_model_deployment, make_model_hpa,
                                  make_model_service, make_model_token_secret, object_name,
                                  token_secret_name)
from .kube_api import api_client
from .kube_gpu import GpuPodSettings, list_pods, pending_pods

_BAD_WAITING = {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff",
                "CreateContainerConfigError", "InvalidImageName"}


class KubeDeployBackend(GpuPodSettings, LoggingConfigurable):
    namespace = Unicode("default", help="Namespace the model servers run in.").tag(config=True)

    image = Unicode(
        help="""Container image with Python, MLflow, the model's libraries and jupyter-mlops
        (it runs ``python -m jupyter_mlops.serving``), e.g. ``registry.lab/mlops-serve:1.0``.""",
    ).tag(config=True)

    tracking_uri = Unicode(
        help="""MLflow tracking URI as seen from the cluster (the hub's ``/services/mlflow``),
        from which servers load ``models:/<name>/<version>``.""",
    ).tag(config=True)

    token_secret = Unicode(
        "mlops-model-reader",
        help="""Fallback only, when the control plane cannot issue tokens (no
        $JUPYTERHUB_API_URL / $JUPYTERHUB_API_TOKEN, i.e. not run as a hub service): a Secret
        (key ``token``) you create, holding one hub API token that every model server gets as
        $MLFLOW_TRACKING_TOKEN. The MLflow gateway scopes runs by project membership, so that
        token's user must be in every project whose models are deployed. Run as a hub service,
        each version instead gets a token of the deployment's creator in a Secret
        ``mlops-<deployment>-v<version>-mlflow-token`` the control plane creates and deletes,
        and this setting is not used. Empty: no token at all (MLflow without authentication).""",
    ).tag(config=True)

    token_lifetime = Integer(
        0,
        help="""Seconds a model server's MLflow token is valid. 0 (default): until the version
        stops and the token is revoked, or the hub's ``token_expires_in_max_seconds`` if it sets
        one. Every replica that starts (a restart, a scale-up by the autoscaler) downloads the
        model again with it, so a limit shorter than a version's life breaks those.""",
    ).tag(config=True)

    kubeconfig = Unicode(
        "", help="Kubeconfig file; empty uses the in-cluster ServiceAccount, else ~/.kube/config.",
    ).tag(config=True)

    min_replicas = Integer(1, help="Replicas of each model server (the HPA's minimum).").tag(
        config=True)

    autoscale = Bool(False, help="Add a HorizontalPodAutoscaler on CPU to every version.").tag(
        config=True)

    max_replicas = Integer(4, help="Most replicas the autoscaler may start.").tag(config=True)

    cpu_target = Integer(70, help="CPU utilisation (%) the autoscaler aims for.").tag(config=True)

    cpu_request = Unicode("500m", help="CPU request of a model server.").tag(config=True)
    cpu_limit = Unicode("2", help="CPU limit of a model server.").tag(config=True)
    memory_request = Unicode("1Gi", help="Memory request of a model server.").tag(config=True)
    memory_limit = Unicode("4Gi", help="Memory limit of a model server.").tag(config=True)
    gpus = Integer(0, help="``nvidia.com/gpu`` limit of each model server.").tag(config=True)

    gpu_type = Unicode(
        "",
        help="""GPU type model servers with ``gpus`` run on, matched against the nodes'
        ``gpu_product_label`` as a profile's ``gpu_type`` is for user pods, e.g.
        ``NVIDIA-A100-SXM4-40GB``. Empty: any GPU node.""",
    ).tag(config=True)

    start_timeout = Float(
        900.0, help="Seconds a version may take to report a ready replica.").tag(config=True)

    poll_interval = Float(1.0, help="Seconds between status reads while starting.").tag(
        config=True)

    def __init__(self, tokens=None, owner_of=None, **kw):
        super().__init__(**kw)
        self._api = None
        # ``tokens``: a core.jobs.tracking.TokenIssuer (``None``: use ``token_secret``);
        # ``owner_of(deployment)``: the hub user who created it, whose token the servers use.
        self.tokens = tokens
        self.owner_of = owner_of
        # ``on_waiting(deployment, version, reason)``: why a starting version's pods wait ("":
        # no longer), set by ``core.deployments`` to show it as the deployment's message.
        self.on_waiting = None

    async def api(self):
        if self._api is None:
            self._api = await api_client(self.kubeconfig)
        return self._api

    async def _clients(self):
        from kubernetes_asyncio import client

        api = await self.api()
        return client.AppsV1Api(api), client.CoreV1Api(api), client.AutoscalingV2Api(api)

    def objects(self, deployment: str, version: str, model_uri: str,
                token: str | None = None) -> list[dict]:
        """The version's objects in creation order; ``token``: the version's own MLflow token
        (its Secret comes first, so no pod ever waits for it), ``None``: ``token_secret``."""
        ns = self.namespace
        objs = []
        secret = self.token_secret
        if token is not None:
            objs.append(make_model_token_secret(deployment=deployment, version=version,
                                                namespace=ns, token=token))
            secret = token_secret_name(deployment, version)
        objs += [
            make_model_deployment(
                deployment=deployment, version=version, model_uri=model_uri, image=self.image,
                namespace=ns, replicas=self.min_replicas, tracking_uri=self.tracking_uri,
                token_secret=secret, cpu_request=self.cpu_request,
                cpu_limit=self.cpu_limit, memory_request=self.memory_request,
                memory_limit=self.memory_limit, gpus=self.gpus,
                placement=self.pod_placement(self.gpus, self.gpu_type),
                gpu_resource=self.gpu_resource, shm_size=self.shm_size),
            make_model_service(deployment=deployment, version=version, namespace=ns),
        ]
        if self.autoscale:
            objs.append(make_model_hpa(deployment=deployment, version=version, namespace=ns,
                                       min_replicas=self.min_replicas,
                                       max_replicas=self.max_replicas,
                                       cpu_utilization=self.cpu_target))
        return objs

    async def _mint(self, deployment: str, name: str) -> tuple[str, str, str]:
        """``(user, token, token_id)``: a new MLflow token of the deployment's creator."""
        owner = self.owner_of(deployment) if self.owner_of else None
        if not owner:
            raise LoadFailed(f"deployment {deployment} has no creator whose MLflow token its "
                             "model servers could use")
        try:
            token, token_id = await self.tokens.mint(
                owner, self.token_lifetime, f"mlops model server {name}",
                scopes=MODEL_SERVER_SCOPES)
        except MlopsError as e:
            raise LoadFailed(f"no MLflow token for {owner}, the creator of {deployment}: "
                             f"{e}") from None
        if not token:
            raise LoadFailed(f"the hub issued no MLflow token for {owner}, the creator of "
                             f"{deployment}")
        return owner, token, token_id

    async def start(self, deployment: str, version: str, model_uri: str) -> dict:
        from kubernetes_asyncio.client.rest import ApiException

        apps, core, autoscaling = await self._clients()
        ns = self.namespace
        name = object_name(deployment, version)
        create = {"Secret": core.create_namespaced_secret,
                  "Deployment": apps.create_namespaced_deployment,
                  "Service": core.create_namespaced_service,
                  "HorizontalPodAutoscaler":
                      autoscaling.create_namespaced_horizontal_pod_autoscaler}
        inst = {"name": name, "namespace": ns, "version": version, "model_uri": model_uri,
                "autoscale": self.autoscale}
        token = None
        if self.tokens is not None:
            user, token, token_id = await self._mint(deployment, name)
            # Kept with the instance (the control plane stores it), so whoever stops the
            # version, even after a control plane restart, deletes the Secret and revokes.
            inst.update(token_secret=token_secret_name(deployment, version), token_user=user,
                        token_id=token_id)
        try:
            for obj in self.objects(deployment, version, model_uri, token):
                try:
                    await self._create(create[obj["kind"]], core, obj)
                except ApiException as e:
                    raise LoadFailed(f"Kubernetes refused the {obj['kind']} "
                                     f"{obj['metadata']['name']}: {e.reason}",
                                     (e.body or "")[:2000]) from None
            await self._wait_ready(inst, deployment)
        except BaseException:
            await self.stop(inst)
            raise
        return inst

    @staticmethod
    async def _create(create, core, obj: dict) -> None:
        from kubernetes_asyncio.client.rest import ApiException

        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        for attempt in range(2):
            try:
                # The answer is not needed; not parsing it also spares a client-side model
                # check of fields only the cluster fills in (an HPA's status).
                resp = await create(ns, obj, _preload_content=False)
                resp.release()
                return
            except ApiException as e:
                if e.status != 409:
                    raise
                if obj["kind"] != "Secret" or attempt:
                    return  # left over from an interrupted rollout: reuse it
                # A left-over Secret holds a token this start did not issue (and may not
                # revoke): replace it with the one it did.
                await core.delete_namespaced_secret(name, ns)

    async def _wait_ready(self, inst: dict, deployment: str = "") -> None:
        apps, core, _ = await self._clients()
        said = ""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            dep = await apps.read_namespaced_deployment(inst["name"], inst["namespace"])
            status = dep.status
            if status and (status.ready_replicas or 0) >= 1:
                return
            for cond in (status.conditions or []) if status else []:
                if cond.type == "Progressing" and cond.status == "False":
                    raise LoadFailed(f"the Deployment stopped progressing: {cond.reason}",
                                     cond.message or "")
            pods = await list_pods(core, inst["namespace"],
                                   f"app.kubernetes.io/instance={inst['name']}")
            for pod in pods:
                for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                    waiting = (cs.get("state") or {}).get("waiting") or {}
                    if waiting.get("reason") in _BAD_WAITING:
                        name = pod["metadata"]["name"]
                        raise LoadFailed(f"pod {name}: {waiting['reason']}", await self._pod_log(
                            core, name, inst["namespace"], waiting.get("message")))
            reason, since = await pending_pods(core, inst["namespace"], pods=pods)
            if reason != said and self.on_waiting and deployment:
                self.on_waiting(deployment, inst["version"], reason)
                said = reason
            if reason and since and self.pending_timeout and \
                    clock.now() - since >= self.pending_timeout:
                raise LoadFailed(f"no replica started within {self.pending_timeout:g} s: "
                                 f"{reason}", reason)
            await asyncio.sleep(self.poll_interval)
        raise LoadFailed(f"no replica of {inst['name']} became ready within "
                         f"{self.start_timeout:.0f} s")

    async def _pod_log(self, core, name: str, namespace: str, fallback: str | None) -> str:
        try:
            return await core.read_namespaced_pod_log(name, namespace, tail_lines=60,
                                                      previous=True)
        except Exception:  # no previous container, or logs not served: say what we know
            return fallback or ""

    async def stop(self, instance: dict) -> None:
        from kubernetes_asyncio.client.rest import ApiException

        apps, core, autoscaling = await self._clients()
        name, ns = instance["name"], instance["namespace"]
        deletes = [(autoscaling.delete_namespaced_horizontal_pod_autoscaler, name),
                   (core.delete_namespaced_service, name),
                   (apps.delete_namespaced_deployment, name)]
        if instance.get("token_secret"):  # after the Deployment: no new pod may need it
            deletes.append((core.delete_namespaced_secret, instance["token_secret"]))
        for delete, obj_name in deletes:
            try:
                await delete(obj_name, ns)
            except ApiException as e:
                if e.status != 404:
                    raise
        if instance.get("token_id") and self.tokens is not None:
            try:
                await self.tokens.revoke(instance["token_user"], instance["token_id"])
            except MlopsError as e:  # it still dies with its lifetime, if any: say so
                self.log.warning("could not revoke the MLflow token of %s: %s", name, e)

    async def alive(self, instance: dict) -> bool:
        from kubernetes_asyncio.client.rest import ApiException

        apps, _, _ = await self._clients()
        try:
            dep = await apps.read_namespaced_deployment(instance["name"], instance["namespace"])
        except ApiException:
            return False
        return bool(dep.status and (dep.status.ready_replicas or 0) >= 1)

    def url(self, instance: dict) -> str:
        return f"http://{instance['name']}.{instance['namespace']}.svc:{SERVER_PORT}"

    def replicas(self, instance: dict) -> int:
        return instance.get("replicas", self.min_replicas)

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None
