"""The embedded default: one process tree per user on this machine."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode, default

# Fixed path at which every user server (local or Kubernetes) finds the shared dataset.
DATASETS_ENV = "JUPYTER_MLOPS_DATASETS"


class MlopsLocalSpawner(LocalProcessSpawner):
    """Starts each user's JupyterLab as a local process with the platform's environment.

    The server gets its workspace under ``workspace_root``, the shared dataset path in
    ``$JUPYTER_MLOPS_DATASETS``, and MLflow settings so ``mlflow.start_run()`` works unchanged.
    """

    workspace_root = Unicode(
        help="""Directory holding one workspace (home) per user: ``<workspace_root>/<username>``.""",
    ).tag(config=True)

    shared_dataset_dir = Unicode(
        help="""The shared cell-image dataset root, visible to every server read-only and
        announced in ``$JUPYTER_MLOPS_DATASETS``.""",
    ).tag(config=True)

    control_plane_url = Unicode(
        help="""URL at which user servers reach the control plane service (internal address,
        including the service prefix), passed as ``$JUPYTER_MLOPS_CONTROL_PLANE_URL``.""",
    ).tag(config=True)

    mlflow_url = Unicode(
        help="""URL at which user servers reach MLflow through the hub-authenticated gateway,
        passed as ``$MLFLOW_TRACKING_URI`` (the server's hub token becomes
        ``$MLFLOW_TRACKING_TOKEN``).""",
    ).tag(config=True)

    @default("cmd")
    def _default_cmd(self):
        # The single-user server of the same environment as the hub, whatever PATH says.
        return [str(Path(sys.executable).parent / "jupyterhub-singleuser")]

    def _workspace(self) -> Path:
        return Path(self.workspace_root or "/tmp") / self.user.name

    def make_preexec_fn(self, name):
        # The skeleton runs servers as the hub's own user; per-user system accounts come with
        # the isolation work of the spawner.
        return None

    def user_env(self, env):
        env["USER"] = self.user.name
        env["HOME"] = str(self._workspace())
        env["SHELL"] = "/bin/bash"
        return env

    def get_args(self):
        args = super().get_args()
        if os.geteuid() == 0:
            # jupyter_server refuses to start as root without it (CI runs as root).
            args.append("--allow-root")
        return args

    def get_env(self):
        env = super().get_env()
        if self.shared_dataset_dir:
            env[DATASETS_ENV] = self.shared_dataset_dir
        if self.control_plane_url:
            env["JUPYTER_MLOPS_CONTROL_PLANE_URL"] = self.control_plane_url
        if self.mlflow_url:
            env["MLFLOW_TRACKING_URI"] = self.mlflow_url
            env["MLFLOW_TRACKING_TOKEN"] = self.api_token
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
        return env

    async def start(self):
        ws = self._workspace()
        ws.mkdir(parents=True, exist_ok=True)
        self.notebook_dir = str(ws)
        return await super().start()
