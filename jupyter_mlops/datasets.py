"""Datasets from code: the shared catalog in a notebook, a script or a job.

    from jupyter_mlops import datasets
    path = datasets.get("cells", version="v3")   # read-only local folder, logged to MLflow
    datasets.publish("data/cells", "cells", message="relabelled 12 images")
    datasets.status("data/cells", "cells")        # what changed against "latest"
    datasets.list()

Inside a user server the control plane URL and the hub token come from the environment the
spawner sets (``$JUPYTER_MLOPS_CONTROL_PLANE_URL``, ``$JUPYTERHUB_API_TOKEN``); elsewhere pass
``client=jupyter_mlops.client.ControlPlane(url, token)``. Calls are synchronous (they run fine
inside a kernel's event loop).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .client import ControlPlane
from .core import errors
from .core.datasets import folder
from .core.datasets.manifest import Manifest, Split, check_name

__all__ = ["get", "publish", "status", "list", "diff", "cache_dir",
           "collect_garbage"]

def cache_dir() -> Path:
    """Where materialised versions and stat caches live: ``~/.cache/jupyter-mlops``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jupyter-mlops"


def _client(client: ControlPlane | None) -> ControlPlane:
    return client or ControlPlane()


def list(client: ControlPlane | None = None) -> list[dict]:  # noqa: A001 (datasets.list())
    """The catalog: every dataset with its tags and latest version."""
    return _client(client).datasets()


def diff(name: str, a: str, b: str, client: ControlPlane | None = None) -> dict:
    """Per-file differences between two versions (added, removed, changed)."""
    return _client(client).diff(name, a, b)


def publish(folder_path: str | Path, name: str, message: str = "",
            split: dict | Split | None = None, tags=(), project: str | None = None,
            client: ControlPlane | None = None, progress=None,
            tool: str = "jupyter_mlops.datasets.publish") -> dict:
    """Publish ``folder_path`` as a new version of ``name``; only new content is sent.

    ``split``: ``{"seed": 0, "train": 0.8, "val": 0.1, "test": 0.1, "overrides": {"img.tif":
    "test"}}`` stores a split drawn per image from its content and the seed (stable as images
    come and go); without one, the new version keeps the previous version's split, and
    overrides given are merged over the previous ones. ``tool``: what made the annotations
    (recorded with each image whose annotated objects changed, e.g. ``"napari 0.5"``).
    """
    check_name(name)
    c = _client(client)
    if isinstance(split, dict):
        split = Split.from_dict(split)
    check = c.check_publish(name, project)  # a refusal costs nothing yet
    cache = folder.StatCache(folder_path, cache_dir() / "stat")
    previous = None
    if check.get("exists"):
        try:  # files at the same path and size as in the latest version: likely unchanged
            _, latest = c.manifest(name, "latest")
            previous = {e.path: e.size for e in latest.entries}
        except errors.NotFound:
            previous = None
    sink = c.object_sink(name, project)
    try:
        manifest, counts = folder.prepare(folder_path, sink, split, cache, progress=progress,
                                          previous=previous)
        if progress:
            progress("recording", 0, 1, 0)
        try:
            version = c.record(name, manifest, message, tags, project, tool)
        except errors.Conflict:
            # an object found stored was collected as garbage meanwhile (core.datasets.gc):
            # send what is missing now and record once more
            files = folder.scan(folder_path)
            hashed = folder.hash_folder(files, cache)
            folder.upload(files, hashed, sink, progress=progress)
            version = c.record(name, manifest, message, tags, project, tool)
    finally:
        if sink is not c:
            sink.close()
    if progress:
        progress("recorded", 1, 1, 0)
    return {**version, "transfer": {**counts, "path": "socket" if sink is not c else "http"}}


def _manifest_index(c: ControlPlane, name: str, version: str) -> tuple[dict, dict[str, str]]:
    """The version (one small request) and its ``{path: hash}``, cached by manifest id.

    Manifests never change, so the index of one is fetched once; a status then costs a version
    lookup, a folder walk and the hashing of changed files only.
    """
    info = c.dataset_version(name, version, limit=1)
    mid = info["manifest_id"]
    path = cache_dir() / "manifests" / f"{mid}.json"
    try:
        return info, json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    _, manifest = c.manifest(name, info["version"])
    index = manifest.index()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(index, separators=(",", ":")))
    os.replace(tmp, path)
    return info, index


def status(folder_path: str | Path, name: str, version: str = "latest",
           client: ControlPlane | None = None) -> dict:
    """What changed in ``folder_path`` against a version; unchanged files are not re-hashed."""
    info, index = _manifest_index(_client(client), name, version)
    cache = folder.StatCache(folder_path, cache_dir() / "stat")
    return {"dataset": name, "version": info["version"],
            **folder.status(folder_path, index, cache)}


def collect_garbage(delete: bool = False, grace_hours: float = 24,
                    client: ControlPlane | None = None) -> dict:
    """Store objects no version references (administrators only): counted, or with ``delete``
    removed. Objects younger than ``grace_hours`` are kept: they may belong to a publish still
    running (see ``core.datasets.gc``)."""
    return _client(client).collect_garbage(dry_run=not delete,
                                           grace_seconds=grace_hours * 3600)


def gc_main(url: str, token: str, delete: bool, grace_hours: float) -> int:
    """``jupyter-mlops gc``: print what garbage collection found (or removed)."""
    try:
        c = ControlPlane(url, token)
        r = collect_garbage(delete, grace_hours, c)
    except errors.MlopsError as e:
        print(f"jupyter-mlops gc: {e.message}")
        return 1
    verb = "deleted" if delete else "would delete (dry run; --delete to remove)"
    print(f"{r['objects']} objects ({r['bytes'] / 2**20:.1f} MiB) in the store, "
          f"{r['referenced']} referenced by versions, {r['unreferenced']} unreferenced\n"
          f"{verb}: {r['deletable']} objects, {r['deletable_bytes'] / 2**20:.1f} MiB "
          f"(kept {r['kept_recent']} younger than {grace_hours:g} h)")
    return 0


def _log_input(name: str, info: dict, url: str, context: str) -> bool:
    """Record the version as an MLflow dataset input of the active run (lineage): the run
    started in this process, or else the job's run ($MLFLOW_RUN_ID, set by the job wrapper,
    which user code need not resume)."""
    import mlflow

    run = mlflow.active_run()
    run_id = run.info.run_id if run else os.environ.get("MLFLOW_RUN_ID", "")
    if not run_id:
        return False
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    ds = MetaDataset(HTTPDatasetSource(url), name=f"{name}@{info['version']}",
                     digest=info["manifest_id"][:32])
    tags = {"mlflow.data.context": context, "mlops.dataset": name,
            "mlops.version": info["version"], "mlops.manifest": info["manifest_id"]}
    mlflow.MlflowClient().log_inputs(run_id, [DatasetInput(
        ds._to_mlflow_entity(), [InputTag(k, v) for k, v in tags.items()])])
    return True


def get(name: str, version: str = "latest", context: str = "training",
        client: ControlPlane | None = None, shared_root: str | None = None) -> Path:
    """A read-only local folder holding ``name`` at ``version`` (a version name or a tag).

    Served straight from the mounted shared root when the version is there, else downloaded
    once (every object checked against its hash) into ``~/.cache/jupyter-mlops/datasets``.
    When an MLflow run is active, the version is logged as a dataset input of that run.
    """
    check_name(name)
    c = _client(client)
    info, manifest = c.manifest(name, version)
    shared = shared_root if shared_root is not None else os.environ.get(
        "JUPYTER_MLOPS_DATASETS", "")
    path = None
    if shared:
        candidate = Path(shared) / name / info["version"]
        marker = candidate / ".mlops-version.json"
        try:
            if json.loads(marker.read_text()).get("manifest_id") == manifest.id:
                path = candidate
        except (OSError, ValueError):
            pass
    if path is None:
        dest = cache_dir() / "datasets" / name / f"{info['version']}-{manifest.id[:12]}"
        path = folder.materialize(manifest, dest, c.fetch)
    _log_input(name, info, f"{c.base_url}api/datasets/{name}/versions/{info['version']}",
               context)
    return path
