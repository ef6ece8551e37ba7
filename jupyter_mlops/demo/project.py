"""Glue the cell-detection template's steps share: where the data is, which run came before.

Steps hand each other work through MLflow, not through files in the workspace: ``train``
logs its checkpoint, ``evaluate`` and ``register`` download it from the train run of the same
pipeline (runs of one pipeline carry the tag ``mlops.pipeline_id``), so concurrent sweep trials
and pipelines never overwrite each other, and a step can run again on its own with
``train_run=<run id>``.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

EXPERIMENT = "cell-detection"
ROLE_TAG = "cells.role"  # train | evaluate | register: how steps find each other's runs


# --- data -------------------------------------------------------------------------------------

def _shared_roots() -> list[Path]:
    out = []
    if os.environ.get("JUPYTER_MLOPS_DATASETS"):
        out.append(Path(os.environ["JUPYTER_MLOPS_DATASETS"]))
    out.append(Path.home() / "datasets")  # the local spawner links the shared root there
    return out


def _from_shared_root(name: str, version: str) -> tuple[Path, str] | None:
    for root in _shared_roots():
        folder = root / name
        if not folder.is_dir():
            continue
        versions = sorted((int(m.group(1)), p) for p in folder.iterdir()
                          if (m := re.fullmatch(r"v(\d+)", p.name))
                          and (p / ".mlops-version.json").exists())
        if version == "latest" and versions:
            return versions[-1][1], versions[-1][1].name
        if (folder / version / ".mlops-version.json").exists():
            return folder / version, version
    return None


def resolve_dataset(name: str = "cells", version: str = "latest",
                    data_dir: str = "") -> tuple[Path, str]:
    """``(folder, version)`` of the dataset to use, read-only.

    ``data_dir`` (a local folder) wins; otherwise the catalog through
    :func:`jupyter_mlops.datasets.get` (which also logs the version as the run's input; jobs
    reach it with their user's token too); with no control plane at all (a plain Python
    session), the shared dataset root (``$JUPYTER_MLOPS_DATASETS`` or ``~/datasets``), where
    "latest" is the highest version.
    """
    if data_dir:
        return Path(data_dir).expanduser().resolve(), "local"
    if os.environ.get("JUPYTER_MLOPS_CONTROL_PLANE_URL") and os.environ.get(
            "JUPYTERHUB_API_TOKEN"):
        from jupyter_mlops import datasets

        path = datasets.get(name, version)
        marker = _marker(path)
        return path, marker.get("version") or version
    found = _from_shared_root(name, version)
    if found is None:
        roots = ", ".join(str(r) for r in _shared_roots())
        raise FileNotFoundError(
            f"dataset {name}@{version} is neither reachable through the catalog nor in the "
            f"shared dataset root ({roots}); publish it first (python -m "
            f"jupyter_mlops.demo.publish) or pass data_dir")
    return found


def _marker(path: Path) -> dict:
    try:
        info = json.loads((Path(path) / ".mlops-version.json").read_text())
    except (OSError, ValueError):
        return {}
    m = re.fullmatch(r"v\d+", Path(path).name)
    return {**info, "version": m.group(0) if m else info.get("version")}


def load(name: str, version: str, data_dir: str, val_fraction: float, split_seed: int):
    """``(train, val, info)``: the samples of the dataset split by name, and what was used."""
    from . import loaders

    folder, resolved = resolve_dataset(name, version, data_dir)
    samples = loaders.load_folder(folder)
    train, val = loaders.split(samples, val_fraction, split_seed)
    info = {"dataset": name, "dataset_version": resolved, "val_fraction": val_fraction,
            "split_seed": split_seed, "train_images": len(train), "val_images": len(val)}
    return train, val, info


# --- runs -------------------------------------------------------------------------------------

@contextlib.contextmanager
def run(role: str, experiment: str = EXPERIMENT):
    """The step's MLflow run: the job's own (``$MLFLOW_RUN_ID``) or, run by hand, a new one."""
    import mlflow

    active = mlflow.active_run()
    if active is not None:
        mlflow.set_tag(ROLE_TAG, role)
        yield active
        return
    if not os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_experiment(experiment)
    with mlflow.start_run() as r:  # resumes $MLFLOW_RUN_ID inside a job
        mlflow.set_tag(ROLE_TAG, role)
        yield r


def pipeline_id(run_id: str) -> str:
    from mlflow import MlflowClient

    return MlflowClient().get_run(run_id).data.tags.get("mlops.pipeline_id", "")


def find_run(role: str, run_id: str = "", current_run_id: str = "") -> str:
    """The run of step ``role`` to build on: ``run_id`` if given, else the one of the same
    pipeline as the current run, else the newest finished one of this user."""
    if run_id:
        return run_id
    import mlflow

    pid = pipeline_id(current_run_id) if current_run_id else ""
    query = f"tags.`{ROLE_TAG}` = '{role}'"
    if pid:
        query += f" and tags.`mlops.pipeline_id` = '{pid}'"
    else:
        query += " and attributes.status = 'FINISHED'"
    found = mlflow.search_runs(search_all_experiments=True, filter_string=query,
                               order_by=["attributes.start_time DESC"], max_results=1,
                               output_format="list")
    if not found:
        where = f"in pipeline {pid}" if pid else "among your finished runs"
        raise LookupError(f"no {role} run {where}; run that step first or pass its run id")
    return found[0].info.run_id


def download_checkpoint(train_run_id: str, dest: str | Path) -> Path:
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(run_id=train_run_id,
                                                    artifact_path="checkpoint/model.pt",
                                                    dst_path=str(dest)))
