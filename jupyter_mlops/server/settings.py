"""Settings of the server extension. The spawner passes them in the server's environment."""
from __future__ import annotations

import asyncio
import os
import weakref

from traitlets import Any, Float, Unicode, default
from traitlets.config import Configurable

from ..backends.gpu_inventory import inventory_from_config
from ..client import AsyncControlPlane, AsyncMlflowGateway
from ..core.gpus import GpuInventory


class MlopsSettings(Configurable):
    control_plane_url = Unicode(
        help="""Control plane URL, with the service prefix. Defaults to
        $JUPYTER_MLOPS_CONTROL_PLANE_URL, which the spawner sets.""",
    ).tag(config=True)

    @default("control_plane_url")
    def _default_control_plane_url(self):
        return os.environ.get("JUPYTER_MLOPS_CONTROL_PLANE_URL", "")

    mlflow_url = Unicode(
        help="""MLflow tracking URL (the hub-authenticated gateway). Defaults to
        $MLFLOW_TRACKING_URI, which the spawner sets.""",
    ).tag(config=True)

    @default("mlflow_url")
    def _default_mlflow_url(self):
        return os.environ.get("MLFLOW_TRACKING_URI", "")

    mlflow_ui_url = Unicode(
        help="""Browser URL of the MLflow UI. Defaults to ``services/mlflow/`` under the hub's
        base URL ($JUPYTERHUB_BASE_URL).""",
    ).tag(config=True)

    @default("mlflow_ui_url")
    def _default_mlflow_ui_url(self):
        return os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/services/mlflow/"

    api_token = Unicode(
        help="""Hub API token the extension calls the platform with: the server's own token
        ($JUPYTERHUB_API_TOKEN), which carries only this user's scopes.""",
    ).tag(config=True)

    @default("api_token")
    def _default_api_token(self):
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    datasets_dir = Unicode(
        help="""Where the shared dataset is mounted read-only ($JUPYTER_MLOPS_DATASETS).""",
    ).tag(config=True)

    @default("datasets_dir")
    def _default_datasets_dir(self):
        return os.environ.get("JUPYTER_MLOPS_DATASETS", "")

    mlflow_timeout = Float(
        30.0, help="""Seconds a call of the experiments and models routes may wait for MLflow
        (a search over 10,000+ runs takes a while) before answering 503.""",
    ).tag(config=True)

    control_plane_timeout = Float(
        60.0, help="""Seconds a call forwarded to the control plane may take before answering
        503: a deployment's first prediction may load its model lazily.""",
    ).tag(config=True)

    check_timeout = Float(
        3.0, help="Seconds a live status check may take before it reports the service down."
    ).tag(config=True)

    gpu_devices = Any(
        None,
        allow_none=True,
        help="""The GPU inventory the status check reads: ``None`` discovers GPUs with NVML; a
        list of dicts (as ``MlopsService.gpu_devices``) or the name of a JSON file of them
        configures simulated devices. Which of them this server holds comes from its allocation
        (``$CUDA_VISIBLE_DEVICES``/``$NVIDIA_VISIBLE_DEVICES``, set by the spawner): a held
        device the inventory does not see (a simulated GPU) is shown without utilisation data.""",
    ).tag(config=True)

    def gpu_inventory(self) -> GpuInventory:
        return inventory_from_config(self.gpu_devices)

    # One long-lived client per event loop and settings: a new httpx client per request costs a
    # TLS context and a fresh connection (~tens of ms), which showed up in the benchmark's ratio.
    def _client(self, kind, url: str, timeout: float):
        if not hasattr(self, "_clients_by_loop"):
            self._clients_by_loop = weakref.WeakKeyDictionary()
        clients = self._clients_by_loop.setdefault(asyncio.get_running_loop(), {})
        key = (kind, url, self.api_token, timeout)
        if key not in clients:
            clients[key] = kind(url, self.api_token, timeout=timeout)
        return clients[key]

    def control_plane(self, timeout: float | None = None) -> AsyncControlPlane:
        """The control plane with this user's token (``timeout``: ``control_plane_timeout``)."""
        return self._client(AsyncControlPlane, self.control_plane_url,
                            timeout or self.control_plane_timeout)

    def tracking(self, timeout: float | None = None) -> AsyncMlflowGateway:
        """MLflow through the gateway with this user's token (``timeout``: ``mlflow_timeout``)."""
        return self._client(AsyncMlflowGateway, self.mlflow_url, timeout or self.mlflow_timeout)
