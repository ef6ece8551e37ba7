"""Batch prediction requests: one model version over one dataset version, as an ordinary job.

Everything that can be refused is refused here, before a job exists (unknown model version or
dataset version: 404; nothing to predict, bad names: 400; not a member of the project: 404 as
for any project). Then the job is submitted through :class:`~.jobs.Jobs` like any other, so it
queues, shows progress and logs in the Jobs panel, can be cancelled and rerun, and is one MLflow
run of its user. What it runs is ``jupyter_mlops.serving.batch`` (see there for the outputs).

A job runs a file of its user's workspace, and its token opens MLflow only. So this module
writes, into ``<workspace>/mlops-batch/``, a small launcher script (the same for every batch
prediction; the job's parameters say what to predict) and a handoff file with the dataset
version's manifest, and puts the version into the shared dataset root the job reads from.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

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
handoff = ""

from jupyter_mlops.serving.batch import run  # noqa: E402

run(model_name, model_version, dataset, dataset_version, handoff=handoff)
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
    materialize
        ``materialize(name, version, manifest) -> Path``: the version in the shared dataset
        root (blocking; called in a thread).
    shared_root
        The shared dataset root as jobs see it.
    """

    def __init__(self, jobs, catalog, resolver, materialize: Callable, shared_root: str):
        self.jobs = jobs
        self.catalog = catalog
        self.resolver = resolver
        self.materialize = materialize
        self.shared_root = shared_root

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

    async def submit(self, caller: Caller, body: dict, catalog_url: str = "") -> dict:
        import asyncio

        req = self.check(body)
        self.jobs.projects.require_member(caller, req["project"])
        version, manifest = self.catalog.manifest(req["dataset"], req["dataset_version"])
        files = [e for e in manifest.entries if predictable(e.path)]
        if not files:
            raise InvalidInput(f"{req['dataset']}@{version.version} has no image or CSV file "
                               "to predict")
        await self.resolver.resolve(req["model_name"], req["version"])  # NotFound if absent
        await asyncio.to_thread(self.materialize, req["dataset"], version.version, manifest)
        handoff = self._write_inputs(caller.name, req, version, manifest, catalog_url)
        job = self.jobs.submit(caller, {
            "path": LAUNCHER, "project": req["project"], "experiment": EXPERIMENT,
            "name": _safe(f"predict {req['model_name']}@{req['version']} "
                          f"on {req['dataset']}@{version.version}"),
            "dataset_version": _safe(f"{req['dataset']}@{version.version}"),
            "params": {"model_name": req["model_name"], "model_version": req["version"],
                       "dataset": req["dataset"], "dataset_version": version.version,
                       "handoff": handoff}})
        out = f"mlops-jobs/{job.id}"
        return {"job": self.jobs.view(job), "model_name": req["model_name"],
                "version": req["version"], "dataset": req["dataset"],
                "dataset_version": version.version, "files": len(files),
                "outputs": {"csv": f"{out}/predictions.csv", "json": f"{out}/predictions.json",
                            "artifact_path": ARTIFACT_PATH}}

    def _write_inputs(self, user: str, req: dict, version, manifest, catalog_url: str) -> str:
        """The launcher and the handoff file in the user's workspace; returns the handoff's
        workspace-relative path."""
        ws = self.jobs.workspace(user)
        d = ws / LAUNCHER_DIR
        d.mkdir(parents=True, exist_ok=True)
        launcher = ws / LAUNCHER
        if not launcher.exists() or launcher.read_text() != LAUNCHER_SOURCE:
            launcher.write_text(LAUNCHER_SOURCE)
        rel = f"{LAUNCHER_DIR}/inputs/{req['dataset']}@{version.version}-{manifest.id[:12]}.json"
        handoff = ws / rel
        handoff.parent.mkdir(exist_ok=True)
        if not handoff.exists():
            tmp = handoff.with_suffix(".tmp")
            tmp.write_text(json.dumps({
                "ref": req["dataset_version"], "version": version.to_dict(),
                "manifest": manifest.to_dict(), "shared_root": self.shared_root,
                "catalog_url": catalog_url}))
            os.replace(tmp, handoff)
        _own_like(ws, [d, launcher, handoff.parent, handoff])
        return rel


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
