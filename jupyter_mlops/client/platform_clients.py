"""The four clients: the control plane and the MLflow gateway, each synchronous and async.

They differ only in their transport; every capability is written once (``*_calls.py``).
"""
from __future__ import annotations

from .catalog_calls import CatalogCalls, DatasetObjects, publish_socket_from_env
from .deployment_calls import DeploymentCalls
from .job_calls import JobCalls
from .mlflow_calls import MlflowCalls
from .platform_calls import GpuCalls, ProjectCalls
from .transport import MLFLOW_URL_ENV, AsyncTransport, ClientConfig, SyncTransport


def _config(config, base_url, token, **options) -> ClientConfig:
    if config is not None:
        return config
    return ClientConfig.from_env(base_url, token, **options)


class _ControlPlaneCalls(CatalogCalls, JobCalls, DeploymentCalls, ProjectCalls, GpuCalls):
    pass


class ControlPlane(_ControlPlaneCalls, DatasetObjects, SyncTransport):
    """The control plane, blocking: notebooks, scripts, jobs, the CLI, worker threads.

    ``ControlPlane()`` inside a user server uses the URL and token the spawner set; elsewhere
    pass ``base_url`` and ``token`` (or a :class:`ClientConfig`). ``publish_socket``: the
    control plane's same-machine publish socket (``None``: as announced in the environment,
    ``""``: HTTP only).
    """

    def __init__(self, base_url: str | None = None, token: str | None = None, *,
                 config: ClientConfig | None = None, publish_socket: str | None = None,
                 **options):
        options.setdefault("timeout", 60.0)
        super().__init__(_config(config, base_url, token, **options))
        self.publish_socket = (publish_socket if publish_socket is not None
                               else publish_socket_from_env())


class AsyncControlPlane(_ControlPlaneCalls, AsyncTransport):
    """The control plane on the event loop: the server extension, the hub's spawner."""

    def __init__(self, base_url: str | None = None, token: str | None = None, *,
                 config: ClientConfig | None = None, **options):
        super().__init__(_config(config, base_url, token, **options))


class MlflowGateway(MlflowCalls, SyncTransport):
    """MLflow's REST API through the gateway, blocking."""

    def __init__(self, base_url: str | None = None, token: str | None = None, *,
                 config: ClientConfig | None = None, **options):
        options.setdefault("name", "tracking server")
        super().__init__(_config(config, base_url, token, url_env=MLFLOW_URL_ENV, **options))


def mlflow_socket_config(socket_path: str, prefix: str = "/services/mlflow",
                         timeout: float = 30.0) -> ClientConfig:
    """The platform's MLflow server itself on its unix socket (the control plane's view: no
    gateway, no token; the control plane does the scoping)."""
    return ClientConfig(f"http://localhost{prefix.rstrip('/')}", timeout=timeout,
                        uds=socket_path, name="MLflow server")


class AsyncMlflowGateway(MlflowCalls, AsyncTransport):
    """MLflow's REST API through the gateway, on the event loop (the lab's experiments,
    runs and models views)."""

    def __init__(self, base_url: str | None = None, token: str | None = None, *,
                 config: ClientConfig | None = None, **options):
        options.setdefault("name", "tracking server")
        super().__init__(_config(config, base_url, token, url_env=MLFLOW_URL_ENV, **options))
