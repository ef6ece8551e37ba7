"""Registered model versions -> what a model server loads: a local directory of the version's
files (:class:`MlflowArtifactResolver`, local model servers) or a ``models:/`` URI
(:class:`MlflowRegistryUriResolver`, Kubernetes pods that load through MLflow themselves)."""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from ..client.platform_clients import AsyncMlflowGateway, mlflow_socket_config
from ..core.errors import InvalidInput, NotFound
from ..serving import fetch


class MlflowArtifactResolver:
    """Registered model version -> a local directory holding it.

    Asks the MLflow server on its unix socket (the control plane runs as the platform's user)
    for the version's download URI. ``mlflow-artifacts:/<path>`` lives at
    ``<artifacts_dir>/<path>`` when MLflow keeps artifacts on this machine. With ``cache_dir``
    set, a version stored elsewhere (MLflow proxying S3, or ``s3://`` and the like) is copied
    once into ``<cache_dir>/<name>/<version>`` by the control plane itself, so model servers
    running as a user's account need neither the MLflow socket nor the store's keys. Without
    it, such URIs are handed to the model server as they are.
    """

    def __init__(self, socket_path: str, artifacts_dir: str, prefix: str = "/services/mlflow",
                 cache_dir: str = ""):
        self.socket_path = socket_path
        self.artifacts_dir = Path(artifacts_dir).resolve()
        self.prefix = prefix.rstrip("/")
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def mlflow(self) -> AsyncMlflowGateway:
        """The MLflow server on its unix socket (``async with``)."""
        return AsyncMlflowGateway(config=mlflow_socket_config(self.socket_path, self.prefix))

    async def resolve(self, model_name: str, version: str) -> str:
        async with self.mlflow() as mlflow:
            await mlflow.get_model_version(model_name, version)
            uri = await mlflow.model_version_download_uri(model_name, version)
        parsed = urlparse(uri)
        if parsed.scheme in ("mlflow-artifacts", "file", ""):
            rel = unquote(parsed.path).lstrip("/")
            path = (self.artifacts_dir / rel).resolve() if parsed.scheme == "mlflow-artifacts" \
                else Path(unquote(parsed.path)).resolve()
            if parsed.scheme == "mlflow-artifacts" and not path.is_relative_to(self.artifacts_dir):
                raise InvalidInput(f"model version {model_name}/{version} points outside the "
                                   "artifact store")
            if (path / "MLmodel").exists():
                return str(path)
            if parsed.scheme != "mlflow-artifacts" or self.cache_dir is None:
                raise NotFound(f"model version {model_name}/{version} has no MLmodel at {uri}")
        elif self.cache_dir is None:
            return uri  # s3://... and the like: the model server loads it with MLflow itself
        return await asyncio.to_thread(self._copy, model_name, version, uri)

    def _copy(self, model_name: str, version: str, uri: str) -> str:
        """The version's files in the cache (versions never change: one copy serves all)."""
        dest = self.cache_dir / quote(model_name, safe="") / str(version)
        if (dest / "MLmodel").exists():
            return str(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            if uri.startswith(f"{fetch.SCHEME}:"):
                fetch.download(uri, self.socket_path, dest, prefix=self.prefix)
            else:
                import mlflow.artifacts

                tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=dest.parent))
                got = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                               dst_path=str(tmp)))
                if not (got / "MLmodel").exists():
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise FileNotFoundError("no MLmodel in it")
                os.replace(got, dest)  # the copy appears whole, or not at all
                shutil.rmtree(tmp, ignore_errors=True)
        except Exception as e:  # the store's own errors vary (botocore, httpx, OSError)
            raise NotFound(f"model version {model_name}/{version} could not be copied from "
                           f"{uri}: {e}") from None
        return str(dest)


class MlflowRegistryUriResolver(MlflowArtifactResolver):
    """Registered model version -> ``models:/<name>/<version>`` (checked to exist), for model
    servers that load through MLflow themselves (Kubernetes pods with a reader token)."""

    async def resolve(self, model_name: str, version: str) -> str:
        async with self.mlflow() as mlflow:
            await mlflow.get_model_version(model_name, version)
        return f"models:/{model_name}/{version}"
