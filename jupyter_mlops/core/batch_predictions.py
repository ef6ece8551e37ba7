"""Batch prediction requests: one model version over one dataset version, as an ordinary job.

Everything that can be refused is refused here, before a job exists (unknown model version or
dataset version: 404; nothing to predict, bad names: 400; not a member of the project: 404 as
for any project). Then the job is submitted through :class:`~.jobs.Jobs` like any other, so it
queues, shows progress and logs in the Jobs panel, can be cancelled and rerun, and is one MLflow
run of its user. What it runs is ``jupyter_mlops.serving.batch`` (see there for the outputs).

A job runs a file of its user's workspace, so this module writes a small launcher script into
``<workspace>/mlops-batch/`` (the same for every batch prediction; the job's parameters say
what to predict). The job reads the dataset version through the catalog with its own token.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import InvalidInput
from .roles import Caller

LAUNCHER_DIR = "mlops-batch"
LAUNCHER = f"{LAUNCHER_DIR}/batch_predict.py"
EXPERIMENT = "batch-predictions"
MODEL_NAME_RE = re.compile(r"^[^/\x00-\x1f]{1,255}$")
ARTIFACT_PATH = "predictions"  # the job run's artifact directory of predictions.csv/.json
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
TABULAR_SUFFIXES = (".csv",)
LAUNCHER_SOURCE = '''"""Batch prediction (written by jupyter-mlops for the Models panel, ``%mlops predict`` and
``POST api/batch-predictions``). The job's parameters replace the values below."""
model_name = ""
model_version = ""
dataset = ""
dataset_version = ""

from jupyter_mlops.serving.batch import run  # noqa: E402

run(model_name, model_version, dataset, dataset_version)
'''


def predictable(path: str) -> bool:
    """Whether batch prediction reads this file of a dataset version (images and CSV)."""
    suffix = Path(path).suffix.lower()
    return suffix in IMAGE_SUFFIXES or suffix in TABULAR_SUFFIXES


def _safe(text: str) -> str:
    """A job name / experiment-safe rendering (1-100 of letters, digits, space, ``_.@-``)."""
    return re.sub(r"[^A-Za-z0-9_.@ -]", "_", text)[:100]


class BatchPredictions:
    """Submits batch prediction jobs.

    Parameters
    ----------
    jobs
        The jobs domain object (``core.jobs.Jobs``): only its public methods are used.
    catalog
        The dataset catalog (``core.datasets.catalog.DatasetCatalog``).
    resolver
        A ``core.deployments.ModelResolver``: says whether the model version exists.
    """

    def __init__(self, jobs, catalog, resolver):
        self.jobs = jobs
        self.catalog = catalog
        self.resolver = resolver

    @staticmethod
    def check(body: dict) -> dict:
        if not isinstance(body, dict):
            raise InvalidInput("a batch prediction is a JSON object")
        unknown = set(body) - {"model_name", "version", "dataset", "dataset_version",
                               "project"}
        if unknown:
            raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
        model = body.get("model_name")
        if not isinstance(model, str) or not MODEL_NAME_RE.match(model):
            raise InvalidInput("model_name is required: a registered model's name")
        version = str(body.get("version") if body.get("version") is not None else "").strip()
        if not version.isdigit():
            raise InvalidInput("version must be a registered model version number")
        dataset = body.get("dataset")
        if not isinstance(dataset, str) or not dataset:
            raise InvalidInput("dataset is required: a dataset of the catalog")
        ref = body.get("dataset_version") or "latest"
        if not isinstance(ref, str):
            raise InvalidInput("dataset_version is a version name (v3) or a tag")
        project = body.get("project") or "default"
        if not isinstance(project, str):
            raise InvalidInput("project is a project name")
        return {"model_name": model, "version": version, "dataset": dataset,
                "dataset_version": ref, "project": project}

    async def submit(self, caller: Caller, body: dict) -> dict:
        req = self.check(body)
        self.jobs.projects.require_member(caller, req["project"])
        version, manifest = self.catalog.manifest(caller, req["dataset"],
                                                req["dataset_version"])
        files = [e for e in manifest.entries if predictable(e.path)]
        if not files:
            raise InvalidInput(f"{req['dataset']}@{version.version} has no image or CSV file "
                               "to predict")
        await self.resolver.resolve(req["model_name"], req["version"])  # NotFound if absent
        self._write_launcher(caller.name)
        job = self.jobs.submit(caller, {
            "path": LAUNCHER, "project": req["project"], "experiment": EXPERIMENT,
            "name": _safe(f"predict {req['model_name']}@{req['version']} "
                          f"on {req['dataset']}@{version.version}"),
            "dataset_version": _safe(f"{req['dataset']}@{version.version}"),
            "params": {"model_name": req["model_name"], "model_version": req["version"],
                       "dataset": req["dataset"], "dataset_version": version.version}})
        out = f"mlops-jobs/{job.id}"
        return {"job": self.jobs.view(job), "model_name": req["model_name"],
                "version": req["version"], "dataset": req["dataset"],
                "dataset_version": version.version, "files": len(files),
                "outputs": {"csv": f"{out}/predictions.csv", "json": f"{out}/predictions.json",
                            "artifact_path": ARTIFACT_PATH}}

    def _write_launcher(self, user: str) -> None:
        ws = self.jobs.workspace(user)
        d = ws / LAUNCHER_DIR
        d.mkdir(parents=True, exist_ok=True)
        launcher = ws / LAUNCHER
        if not launcher.exists() or launcher.read_text() != LAUNCHER_SOURCE:
            launcher.write_text(LAUNCHER_SOURCE)
        _own_like(ws, [d, launcher])


def _own_like(ws: Path, paths: list[Path]) -> None:
    """Files the control plane writes into a workspace belong to the workspace's owner, so the
    user can delete them (the control plane may run as root, the user's server does not)."""
    try:
        st = ws.stat()
        if os.geteuid() != 0 or st.st_uid == 0:
            return
        for p in paths:
            os.chown(p, st.st_uid, st.st_gid)
    except OSError:
        pass
