"""Pure builders of the Kubernetes objects of one deployment version (no cluster needed).

One version = one ``apps/v1`` Deployment running ``python -m jupyter_mlops.serving``, one
``v1`` Service in front of it, optionally an ``autoscaling/v2`` HorizontalPodAutoscaler and,
when the control plane issues tokens, a ``v1`` Secret with the MLflow token of the deployment's
creator. The objects of a version are named ``mlops-<deployment>-v<version>`` (the Secret
``...-mlflow-token``): a switch creates the new
version's objects, waits until they are ready, moves the control plane's traffic and deletes the
old ones (the same rollout as the local backend, so no request fails during it).
"""
from __future__ import annotations

from .kube_pods import (GPU_RESOURCE, container_resources, container_security_context, env_vars,
                        gpu_placement, gpu_visibility_env, pod_spec,
                        shm_volume)

SERVER_PORT = 8080
MANAGED_BY = "jupyter-mlops"


def object_name(deployment: str, version: str) -> str:
    """``mlops-<deployment>-v<version>``: a DNS label (deployment names are at most 40)."""
    return f"mlops-{deployment}-v{version}"


def labels(deployment: str, version: str) -> dict:
    return {
        "app.kubernetes.io/name": "mlops-model-server",
        "app.kubernetes.io/instance": object_name(deployment, version),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "mlops.jupyter.org/deployment": deployment,
        "mlops.jupyter.org/model-version": str(version),
    }


def token_secret_name(deployment: str, version: str) -> str:
    """The Secret of one version's MLflow token (a DNS subdomain: at most 63 + 13 characters)."""
    return f"{object_name(deployment, version)}-mlflow-token"


def make_model_token_secret(*, deployment: str, version: str, namespace: str,
                            token: str) -> dict:
    """The v1 Secret (key ``token``) the version's servers read $MLFLOW_TRACKING_TOKEN from.

    One Secret per version, not per deployment: during a switch the old and the new version
    run side by side, each with a token of its own that is revoked when that version stops.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": token_secret_name(deployment, version), "namespace": namespace,
                     "labels": labels(deployment, version)},
        "type": "Opaque",
        # The token never changes while the version runs (a new one means a new version), and
        # the kubelet does not watch immutable Secrets.
        # ref: https://kubernetes.io/docs/concepts/configuration/secret/#secret-immutable
        "immutable": True,
        "stringData": {"token": token},
    }


def make_model_deployment(
    *,
    deployment: str,
    version: str,
    model_uri: str,
    image: str,
    namespace: str,
    replicas: int = 1,
    tracking_uri: str = "",
    token_secret: str = "",
    cpu_request: str = "500m",
    cpu_limit: str = "2",
    memory_request: str = "1Gi",
    memory_limit: str = "4Gi",
    gpus: int = 0,
    max_batch_size: int = 64,
    service_account: str = "",
    placement: dict | None = None,
    gpu_resource: str = GPU_RESOURCE,
    shm_size: str = "",
) -> dict:
    """The apps/v1 Deployment of one model version.

    Parameters
    ----------
    model_uri
        What the server loads, e.g. ``models:/cells/3`` (read through the MLflow gateway with
        ``tracking_uri`` and the hub token in the Secret ``token_secret``, key ``token``).
    gpus
        ``nvidia.com/gpu`` limit of each replica (0: none), or of ``gpu_resource`` (a MIG slice).
    placement
        Node selector, tolerations and RuntimeClass (``kube_pods.gpu_placement``, as for user
        pods and jobs); by default the GPU taint is tolerated when ``gpus`` are asked for.
    shm_size
        Size of a memory-backed ``/dev/shm`` ("": the runtime's default).
    """
    name = object_name(deployment, version)
    lab = labels(deployment, version)
    env = {"MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    env.update(gpu_visibility_env(gpus=gpus))
    secrets = {"MLFLOW_TRACKING_TOKEN": (token_secret, "token")} if token_secret else {}
    probe = {"httpGet": {"path": "/ping", "port": "http"}, "periodSeconds": 5,
             "timeoutSeconds": 3}
    container = {
        "name": "model-server",
        "image": image,
        "command": ["python", "-m", "jupyter_mlops.serving"],
        "args": [f"--model-uri={model_uri}", "--host=0.0.0.0", f"--port={SERVER_PORT}",
                 f"--deployment={deployment}", f"--model-version={version}",
                 f"--max-batch-size={max_batch_size}"],
        "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "env": env_vars(env, secrets=secrets),
        "resources": container_resources(cpu_request=cpu_request, cpu_limit=cpu_limit,
                                         memory_request=memory_request,
                                         memory_limit=memory_limit, gpus=gpus,
                                         gpu_resource=gpu_resource),
        # Loading a model can take minutes: the startup probe allows for it, readiness
        # keeps traffic away until /ping answers.
        "startupProbe": {**probe, "failureThreshold": 60},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6},
        "securityContext": container_security_context(read_only_root=True),
        # MLflow downloads the model to a temporary directory.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes = [{"name": "tmp", "emptyDir": {}}]
    if shm_size:
        volume, mount = shm_volume(size=shm_size)
        volumes.append(volume)
        container["volumeMounts"].append(mount)
    pod = pod_spec(
        containers=[container], volumes=volumes,
        # SIGTERM makes the server drain; give it the time its drain_timeout allows.
        grace_seconds=40, service_account=service_account,
        securityContext={"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000,
                         "seccompProfile": {"type": "RuntimeDefault"}},
        **(placement if placement is not None else gpu_placement(gpus=gpus)))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": lab},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": name}},
            "progressDeadlineSeconds": 600,
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": lab}, "spec": pod},
        },
    }


def make_model_service(*, deployment: str, version: str, namespace: str) -> dict:
    """The ClusterIP Service the control plane sends this version's requests to."""
    name = object_name(deployment, version)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(deployment, version)},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/instance": name},
            "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": "http",
                       "protocol": "TCP"}],
        },
    }


def make_model_hpa(*, deployment: str, version: str, namespace: str, min_replicas: int = 1,
                   max_replicas: int = 4, cpu_utilization: int = 70) -> dict:
    """An autoscaling/v2 HorizontalPodAutoscaler on CPU utilisation."""
    name = object_name(deployment, version)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(deployment, version)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization",
                                          "averageUtilization": cpu_utilization}}}],
        },
    }
