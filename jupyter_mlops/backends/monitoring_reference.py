"""The reference data of a registered model version, for drift: the CSV its run logged as
``monitoring/reference.csv`` (``jupyter_mlops.tracking.log_monitoring_reference``), read
through the platform's MLflow server on its unix socket like the model files."""
from __future__ import annotations

import asyncio
import csv
import io
import math
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..client.platform_clients import AsyncMlflowGateway
from ..core.errors import NotFound
from ..tracking import REFERENCE_ARTIFACT
from .model_resolvers import MlflowArtifactResolver

MAX_BYTES = 64 * 1024 * 1024


def numeric_columns(text: str) -> dict[str, list[float]]:
    """Every column of a CSV whose cells are all numbers (empty cells skipped)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    out: dict[str, list[float]] = {}
    for col in (rows[0].keys() if rows else ()):
        try:
            values = [float(r[col]) for r in rows if r[col] not in ("", None)]
        except (TypeError, ValueError):
            continue
        if values and all(math.isfinite(v) for v in values):
            out[col] = values
    return out


class MlflowReferenceData:
    def __init__(self, resolver: MlflowArtifactResolver):
        self.resolver = resolver

    async def columns(self, model_name: str, version: str) -> tuple[str, dict[str, list]]:
        async with self.resolver.mlflow() as mlflow:
            mv = await mlflow.get_model_version(model_name, version)
            run_id = mv.get("run_id")
            if not run_id:
                raise NotFound(f"{model_name} version {version} has no run to take training "
                               "data from")
            run = await mlflow.get_run(run_id)
            uri = run["info"]["artifact_uri"].rstrip("/") + "/" + REFERENCE_ARTIFACT
            text = await self._read(mlflow, uri)
        if text is None:
            raise NotFound(f"run {run_id} of {model_name} version {version} logged no "
                           f"{REFERENCE_ARTIFACT} (jupyter_mlops.tracking."
                           "log_monitoring_reference logs it)")
        cols = numeric_columns(text)
        if not cols:
            raise NotFound(f"{REFERENCE_ARTIFACT} of run {run_id} has no numeric column")
        return f"run {run_id}: {REFERENCE_ARTIFACT}", cols

    async def _read(self, mlflow: AsyncMlflowGateway, uri: str) -> str | None:
        parsed = urlparse(uri)
        if parsed.scheme in ("file", ""):
            path = Path(unquote(parsed.path))
            return path.read_text() if path.is_file() else None
        if parsed.scheme != "mlflow-artifacts":
            return None
        resp = await mlflow.download_artifact(parsed.path)
        if resp.status_code != 200 or len(resp.content) > MAX_BYTES:
            return None
        return await asyncio.to_thread(resp.content.decode, "utf-8", "replace")
