"""The one Python client of the platform's REST surface.

    from jupyter_mlops.client import ControlPlane
    cp = ControlPlane()                    # inside a user server: URL and token from the spawner
    cp.jobs()["jobs"]
    cp.datasets()

Four clients over one transport (:mod:`.transport`): :class:`ControlPlane` and
:class:`AsyncControlPlane` (datasets, jobs, deployments, projects, notifications, GPUs),
:class:`MlflowGateway` and :class:`AsyncMlflowGateway` (MLflow's REST API through the
hub-authenticated gateway). Both flavours of a server share one :class:`ClientConfig` (base
URL, token header, timeout, TLS verification or CA bundle, unix socket). Every error answer
becomes the core's error of the same meaning with the server's message
(:func:`error_for`); no answer at all is :class:`~jupyter_mlops.core.errors.Unavailable`.

Used by the ``%mlops`` magics, :mod:`jupyter_mlops.datasets`, the server extension, the CLI
and the hub's spawner. Platform code that needs the control plane or MLflow over HTTP (an
adapter in ``jupyter_mlops.backends``) builds one of these rather than its own httpx client:
``AsyncMlflowGateway(config=ClientConfig(url, token, name="tracking server", uds=...))``, or
for the MLflow server itself on its unix socket ``mlflow_socket_config(socket_path)``.
:class:`AsyncHub` is the JupyterHub REST API with the control plane's service token.
"""
from .error_mapping import error_for, raise_for_response
from .hub_calls import AsyncHub
from .platform_clients import (AsyncControlPlane, AsyncMlflowGateway, ControlPlane,
                               MlflowGateway, mlflow_socket_config)
from .transport import AsyncTransport, ClientConfig, SyncTransport

__all__ = ["AsyncControlPlane", "AsyncHub", "AsyncMlflowGateway", "AsyncTransport",
           "ClientConfig", "ControlPlane", "MlflowGateway", "SyncTransport", "error_for",
           "mlflow_socket_config", "raise_for_response"]
