"""Model servers on Kubernetes: one Deployment + Service (+ HPA) per deployment version.

The control plane creates them with its own ServiceAccount (see ``deploy_kube_objects`` for the
objects). ``start`` returns once the version's Deployment reports a ready replica, and raises
:class:`LoadFailed` when it cannot get there (progress deadline exceeded, crash-looping or
unpullable containers), with what Kubernetes says about it as the log. Switching and draining
are the control plane's (``core.deployments``), exactly as with local processes.

Tested against tests/kube_fake.py (no cluster can run on the build machines).
"""
from __future__ import annotations

import asyncio
import time

from traitlets import Bool, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from ..core.deployments import LoadFailed
from .deploy_kube_objects import (SERVER_PORT, make_model_deployment, make_model_hpa,
                                  make_model_service, object_name)
from .kube_api import api_client

_BAD_WAITING = {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff",
                "CreateContainerConfigError", "InvalidImageName"}


class KubeDeployBackend(LoggingConfigurable):
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
        help="""Secret (key ``token``) holding a hub API token allowed to read MLflow; given to
        the servers as $MLFLOW_TRACKING_TOKEN.""",
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

    start_timeout = Float(
        900.0, help="Seconds a version may take to report a ready replica.").tag(config=True)

    poll_interval = Float(1.0, help="Seconds between status reads while starting.").tag(
        config=True)

    def __init__(self, **kw):
        super().__init__(**kw)
        self._api = None

    async def api(self):
        if self._api is None:
            self._api = await api_client(self.kubeconfig)
        return self._api

    async def _clients(self):
        from kubernetes_asyncio import client

        api = await self.api()
        return client.AppsV1Api(api), client.CoreV1Api(api), client.AutoscalingV2Api(api)

    def objects(self, deployment: str, version: str, model_uri: str) -> list[dict]:
        ns = self.namespace
        objs = [
            make_model_deployment(
                deployment=deployment, version=version, model_uri=model_uri, image=self.image,
                namespace=ns, replicas=self.min_replicas, tracking_uri=self.tracking_uri,
                token_secret=self.token_secret, cpu_request=self.cpu_request,
                cpu_limit=self.cpu_limit, memory_request=self.memory_request,
                memory_limit=self.memory_limit, gpus=self.gpus),
            make_model_service(deployment=deployment, version=version, namespace=ns),
        ]
        if self.autoscale:
            objs.append(make_model_hpa(deployment=deployment, version=version, namespace=ns,
                                       min_replicas=self.min_replicas,
                                       max_replicas=self.max_replicas,
                                       cpu_utilization=self.cpu_target))
        return objs

    async def start(self, deployment: str, version: str, model_uri: str) -> dict:
        from kubernetes_asyncio.client.rest import ApiException

        apps, core, autoscaling = await self._clients()
        ns = self.namespace
        name = object_name(deployment, version)
        create = {"Deployment": apps.create_namespaced_deployment,
                  "Service": core.create_namespaced_service,
                  "HorizontalPodAutoscaler":
                      autoscaling.create_namespaced_horizontal_pod_autoscaler}
        inst = {"name": name, "namespace": ns, "version": version, "model_uri": model_uri,
                "autoscale": self.autoscale}
        try:
            for obj in self.objects(deployment, version, model_uri):
                try:
                    # The answer is not needed; not parsing it also spares a client-side
                    # model check of fields only the cluster fills in (an HPA's status).
                    resp = await create[obj["kind"]](ns, obj, _preload_content=False)
                    resp.release()
                except ApiException as e:
                    if e.status != 409:  # left over from an interrupted rollout: reuse it
                        raise LoadFailed(f"Kubernetes refused the {obj['kind']} {name}: "
                                         f"{e.reason}", (e.body or "")[:2000]) from None
            await self._wait_ready(inst)
        except BaseException:
            await self.stop(inst)
            raise
        return inst

    async def _wait_ready(self, inst: dict) -> None:
        apps, core, _ = await self._clients()
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
            pods = await core.list_namespaced_pod(
                inst["namespace"], label_selector=f"app.kubernetes.io/instance={inst['name']}")
            for pod in pods.items:
                for cs in (pod.status.container_statuses or []) if pod.status else []:
                    waiting = cs.state.waiting if cs.state else None
                    if waiting and waiting.reason in _BAD_WAITING:
                        raise LoadFailed(f"pod {pod.metadata.name}: {waiting.reason}",
                                         await self._pod_log(core, pod, waiting.message))
            await asyncio.sleep(self.poll_interval)
        raise LoadFailed(f"no replica of {inst['name']} became ready within "
                         f"{self.start_timeout:.0f} s")

    async def _pod_log(self, core, pod, fallback: str | None) -> str:
        try:
            return await core.read_namespaced_pod_log(pod.metadata.name, pod.metadata.namespace,
                                                      tail_lines=60, previous=True)
        except Exception:  # no previous container, or logs not served: say what we know
            return fallback or ""

    async def stop(self, instance: dict) -> None:
        from kubernetes_asyncio.client.rest import ApiException

        apps, core, autoscaling = await self._clients()
        name, ns = instance["name"], instance["namespace"]
        for delete in (autoscaling.delete_namespaced_horizontal_pod_autoscaler,
                       core.delete_namespaced_service, apps.delete_namespaced_deployment):
            try:
                await delete(name, ns)
            except ApiException as e:
                if e.status != 404:
                    raise

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
