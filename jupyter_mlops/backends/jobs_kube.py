"""Jobs as Kubernetes batch/v1 Jobs (the scale-out backend).

The pod runs the same wrapper as a local job (``python -m jupyter_mlops.backends.job_wrapper
JOB_DIR``), with the job directory and the user's workspace on shared volumes mounted at the
same paths as in the control plane, so the control plane reads logs, progress and the outcome
exactly as for local jobs. GPUs are a ``nvidia.com/gpu`` (or MIG) limit (the device plugin
picks them; the queue still counts them against the shared inventory and quotas), placed as user
pods are (``kube_gpu``: the GPU taint tolerated, the job's GPU type as a node selector). While
the Job's pod is Pending the job's reason says why (the scheduler's or the kubelet's words); past
``pending_timeout`` the job fails with it. Cancel deletes the Job
with a grace period (the kubelet sends SIGTERM, then SIGKILL), foreground propagation so the
pod goes with it. A restarted control plane finds the Job again by name.

:func:`make_job` is a pure builder (keyword-only, no cluster needed); tests compare its output
with a literal dict and validate it with kubernetes-validate in strict mode.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from traitlets import Float, Integer, Unicode
from traitlets.config import Configurable

from ..core import clock
from .jobs_local import Exit, read_exit
from .kube_api import api_client
from .kube_gpu import GpuPodSettings, pending_pods
from .kube_pods import (DATASET_VERSION_RE, GPU_RESOURCE, claim_volume, container_resources,
                        container_security_context, dataset_version_volume, env_vars,
                        gpu_placement, gpu_visibility_env, pod_spec,
                        shm_volume)


def job_name(job_id: int) -> str:
    return f"mlops-job-{int(job_id)}"


def _label(value: str) -> str:
    # ref: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
    v = re.sub(r"[^A-Za-z0-9._-]", "-", value)[:63].strip("-._")
    return v or "unknown"


def make_job(*, job_id: int, user: str, namespace: str, image: str, job_dir: str, cwd: str,
             env: dict, gpus: int = 0, cpu_request: str = "1", memory_request: str = "2Gi",
             memory_limit: str = "8Gi", workspace_claim: str = "", workspace_path: str = "",
             jobs_claim: str = "", jobs_path: str = "", service_account: str = "",
             grace_seconds: int = 10, active_deadline_seconds: int | None = None,
             placement: dict | None = None, gpu_resource: str = GPU_RESOURCE,
             shm_size: str = "", datasets_claim: str = "", datasets_path: str = "",
             dataset_version: str = "") -> dict:
    """The batch/v1 Job of one jupyter-mlops job.

    Parameters
    ----------
    job_dir, cwd
        Paths inside the pod (the same as in the control plane: shared volumes).
    workspace_claim, workspace_path
        PersistentVolumeClaim of the users' workspaces and where the control plane mounts it;
        the pod gets only ``<workspace_path>/<user>`` (a ``subPath``).
    jobs_claim, jobs_path
        PersistentVolumeClaim of the control plane's job directories and where it is mounted;
        the pod gets only its own ``job_dir``.
    env
        Environment of the job (the MLflow URI and the job's token of its user among it).
    placement
        Node selector, tolerations and RuntimeClass (``kube_pods.gpu_placement``); by default
        the GPU taint is tolerated when ``gpus`` are asked for.
    gpu_resource, shm_size
        The resource GPUs are asked as (a MIG slice's name, or whole GPUs) and the size of a
        memory-backed ``/dev/shm`` ("": the runtime's default).
    datasets_claim, datasets_path, dataset_version
        With all three, the job's pinned dataset version (``name@vN``) is mounted read-only
        from the shared dataset claim at ``<datasets_path>/<name>/vN`` (a ``subPath``) and
        ``$JUPYTER_MLOPS_DATASETS`` is ``datasets_path``, so ``datasets.get`` reads it in
        place; otherwise ``datasets.get`` downloads the version through the control plane.
    """
    volumes, mounts = [], []
    # Only the user's own workspace and the job's own directory: the claims hold every user's
    # and every job's, and pods of all users may run with the same uid.
    job = Path(job_dir)
    for name, claim, path, sub in (
            ("workspace", workspace_claim, f"{workspace_path.rstrip('/')}/{user}", user),
            ("job", jobs_claim, job_dir, str(job.relative_to(jobs_path)) if jobs_path
             else job.name)):
        if claim:
            volume, mount = claim_volume(name=name, claim=claim, mount_path=path, sub_path=sub)
            volumes.append(volume)
            mounts.append(mount)
    if datasets_claim and datasets_path and dataset_version:
        volume, mount = dataset_version_volume(claim=datasets_claim, root=datasets_path,
                                               dataset_version=dataset_version)
        volumes.append(volume)
        mounts.append(mount)
        env = {**env, "JUPYTER_MLOPS_DATASETS": datasets_path}
    if shm_size:
        volume, mount = shm_volume(size=shm_size)
        volumes.append(volume)
        mounts.append(mount)
    labels = {"app.kubernetes.io/managed-by": "jupyter-mlops",
              "app.kubernetes.io/component": "job",
              "mlops.jupyter.org/job-id": str(job_id), "mlops.jupyter.org/user": _label(user)}
    container = {
        "name": "job",
        "image": image,
        # stdout into the job directory, so logs read the same on every backend
        "command": ["sh", "-c", 'exec python -m jupyter_mlops.backends.job_wrapper "$0" '
                                '>>"$0/output.log" 2>&1', job_dir],
        "workingDir": cwd,
        "env": env_vars(dict(sorted({**env, **gpu_visibility_env(gpus=gpus)}.items()))),
        "resources": container_resources(cpu_request=cpu_request, memory_request=memory_request,
                                         memory_limit=memory_limit, gpus=gpus,
                                         gpu_resource=gpu_resource),
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
    }
    pod = pod_spec(containers=[container], volumes=volumes, grace_seconds=grace_seconds,
                   service_account=service_account, restartPolicy="Never",
                   **(placement if placement is not None else gpu_placement(gpus=gpus)))
    spec = {
        # A failed training run is reported, not retried behind the user's back.
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 7 * 24 * 3600,
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    if active_deadline_seconds:
        spec["activeDeadlineSeconds"] = int(active_deadline_seconds)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job_name(job_id), "namespace": namespace, "labels": labels},
            "spec": spec}


class KubeJobBackend(GpuPodSettings, Configurable):
    """Start, watch and stop jobs as batch/v1 Jobs (``c.KubeJobBackend.*``)."""

    name = "kubernetes"

    namespace = Unicode("default", help="Namespace the Jobs are created in.").tag(config=True)
    image = Unicode(
        "jupyter-mlops-singleuser:latest",
        help="Image of job pods: the users' environment with jupyter_mlops installed.",
    ).tag(config=True)
    gpu_image = Unicode(
        "",
        help="""Image of job pods with GPUs: the users' environment with CUDA builds of their
        libraries (the single-user image's CUDA variant, hub_config/images/). Empty: ``image``.""",
    ).tag(config=True)
    kubeconfig = Unicode(
        "", help="Kubeconfig file; empty: in-cluster config, else the default kubeconfig.",
    ).tag(config=True)
    workspace_claim = Unicode("", help="PVC of the users' workspaces.").tag(config=True)
    jobs_claim = Unicode("", help="PVC of the control plane's job directories.").tag(
        config=True)
    service_account = Unicode("", help="ServiceAccount of job pods (none by default).").tag(
        config=True)
    datasets_claim = Unicode(
        "",
        help="""PVC holding the shared dataset versions as the control plane places them
        (``<name>/vN/``, the claim user pods mount read-only, e.g.
        ``jupyter-mlops-datasets``). With it and ``datasets_root``, a job whose dataset version
        is pinned (``dataset_version``) gets that one version mounted read-only by ``subPath``
        at ``<datasets_path>/<name>/vN``: nothing is copied. Empty: jobs download their
        version through the control plane (``datasets.get``), as they do for versions that are
        not on the claim (other projects' versions, an S3 store).""",
    ).tag(config=True)
    datasets_root = Unicode(
        "",
        help="""Where the control plane sees ``datasets_claim``: its shared root
        ``<data_dir>/datasets``, where it places the versions every lab member may read when
        the store is a local directory (an S3 store places none: jobs then download). A
        version is mounted only once its marker file
        ``<name>/vN/.mlops-version.json`` is there: a ``subPath`` the claim lacks would make
        the kubelet create it, or fail the pod on a read-only claim.""",
    ).tag(config=True)
    datasets_path = Unicode(
        "/mnt/datasets",
        help="""Where job pods see the shared dataset (``$JUPYTER_MLOPS_DATASETS`` in the pod),
        as user pods do (``MlopsKubeSpawner``: ``/mnt/datasets``).""",
    ).tag(config=True)
    memory_limit = Unicode("8Gi", help="Memory limit of a job pod.").tag(config=True)
    grace_seconds = Float(10.0, help="terminationGracePeriodSeconds of job pods.").tag(
        config=True)
    active_deadline = Integer(0, help="Seconds a job may run before Kubernetes stops it "
                                      "(0: no limit).").tag(config=True)
    workspace_root = Unicode("", help="Where workspaces are mounted (as in the control "
                                      "plane).").tag(config=True)

    def __init__(self, **kw):
        super().__init__(**kw)
        self._api = None
        self.on_exit = None
        self._waiting: dict[str, str] = {}  # Job name -> why its pod is not running

    async def _batch(self):
        from kubernetes_asyncio import client

        if self._api is None:
            self._api = await api_client(self.kubeconfig)
        return client.BatchV1Api(self._api)

    async def start(self, job_dir: Path, cwd: str, env: dict, gpu_indices: list[int]) -> dict:
        launch = json.loads((Path(job_dir) / "launch.json").read_text())
        job_id = launch["job_id"]
        body = make_job(job_id=job_id, user=env.get("USER", ""), namespace=self.namespace,
                        image=self.gpu_image if gpu_indices and self.gpu_image else self.image,
                        job_dir=str(job_dir), cwd=cwd, env=env,
                        gpus=len(gpu_indices), workspace_claim=self.workspace_claim,
                        workspace_path=self.workspace_root, jobs_claim=self.jobs_claim,
                        jobs_path=str(Path(job_dir).parent), memory_limit=self.memory_limit,
                        service_account=self.service_account,
                        grace_seconds=int(self.grace_seconds),
                        active_deadline_seconds=self.active_deadline or None,
                        placement=self.pod_placement(len(gpu_indices),
                                                     launch.get("gpu_type") or ""),
                        gpu_resource=self.gpu_resource, shm_size=self.shm_size,
                        datasets_claim=self.datasets_claim, datasets_path=self.datasets_path,
                        dataset_version=self.mountable_version(launch.get("dataset_version")))
        batch = await self._batch()
        await batch.create_namespaced_job(self.namespace, body, _preload_content=False)
        self._waiting.pop(job_name(job_id), None)
        return {"backend": self.name, "namespace": self.namespace, "job": job_name(job_id)}

    def mountable_version(self, dataset_version: str | None) -> str:
        """``name@vN`` when that version can be mounted from ``datasets_claim`` (configured,
        pinned, placed on the claim), else ``""`` (the job downloads it)."""
        m = DATASET_VERSION_RE.match(dataset_version or "")
        if not (m and self.datasets_claim and self.datasets_root and self.datasets_path):
            return ""
        marker = Path(self.datasets_root) / m.group(1) / m.group(2) / ".mlops-version.json"
        return dataset_version if marker.is_file() else ""

    async def poll(self, job_dir: Path, handle: dict) -> Exit | None:
        from kubernetes_asyncio.client.rest import ApiException

        batch = await self._batch()
        try:
            resp = await batch.read_namespaced_job(handle["job"], handle["namespace"],
                                                   _preload_content=False)
            obj = json.loads(await resp.read())
            if obj.get("kind") == "Status":  # an error answer the client did not raise
                raise ApiException(status=obj.get("code") or 500, reason=obj.get("message"))
            status = obj.get("status") or {}
        except ApiException as e:
            if e.status != 404:
                raise
            return read_exit(Path(job_dir)) or Exit("failed", "the Kubernetes Job was deleted")
        if not (status.get("succeeded") or status.get("failed")):
            return await self._check_pending(handle)
        self._waiting.pop(handle["job"], None)
        ex = read_exit(Path(job_dir))
        if ex is not None:
            return ex
        reason = next((c.get("message") or c.get("reason") for c in status.get("conditions", [])
                       if c.get("type") == "Failed"), "")
        if status.get("succeeded"):
            return Exit("failed", "the pod ended without recording an outcome")
        return Exit("failed", f"the pod failed: {reason or 'see its log'}")

    async def _check_pending(self, handle: dict) -> Exit | None:
        """None while the pod may still start; records why it waits (:meth:`waiting_reason`)
        and ends the job once it has waited ``pending_timeout``."""
        from kubernetes_asyncio import client

        reason, since = await pending_pods(client.CoreV1Api(self._api), handle["namespace"],
                                           f"job-name={handle['job']}")
        self._waiting[handle["job"]] = reason
        if reason and since and self.pending_timeout and \
                clock.now() - since >= self.pending_timeout:
            await self.stop(handle)
            self._waiting.pop(handle["job"], None)
            return Exit("failed", f"not started within {self.pending_timeout:g} s: {reason}")
        return None

    def waiting_reason(self, handle: dict) -> str:
        """Why the job's pod is not running yet, as of the last poll ("" if it runs)."""
        return self._waiting.get(handle.get("job", ""), "")

    async def stop(self, handle: dict) -> None:
        from kubernetes_asyncio.client.rest import ApiException

        batch = await self._batch()
        try:
            await batch.delete_namespaced_job(
                handle["job"], handle["namespace"], propagation_policy="Foreground",
                grace_period_seconds=int(self.grace_seconds), _preload_content=False)
        except ApiException as e:
            if e.status != 404:
                raise

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None

    def progress(self, job_dir: Path) -> dict:
        try:
            return json.loads((Path(job_dir) / "progress.json").read_text())
        except (OSError, ValueError):
            return {}

    def run_info(self, job_dir: Path) -> dict:
        try:
            return json.loads((Path(job_dir) / "run.json").read_text())
        except (OSError, ValueError):
            return {}
