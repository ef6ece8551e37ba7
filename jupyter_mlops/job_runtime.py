"""What a job's own code may call (inside a notebook or script run as a job): its parameters,
metrics, progress and seed. Runs in the job's process, beside MLflow's client, not in the control
plane.

    from jupyter_mlops.job_runtime import params, report, progress, seed
    lr = params().get("lr", 0.01)
    for epoch in range(10):
        ...
        report("val_loss", loss, step=epoch)   # MLflow metric + what a sweep prunes on

Outside a job these still work: ``params()`` is empty, ``report`` only logs to MLflow if a run
is active.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path


def params() -> dict:
    """The job's parameters (also given to scripts as ``--name=value`` arguments)."""
    return json.loads(os.environ.get("MLOPS_PARAMS") or "{}")


def _job_dir() -> Path | None:
    d = os.environ.get("MLOPS_JOB_DIR")
    return Path(d) if d else None


def report(name: str, value: float, step: int = 0) -> None:
    """An intermediate (or final) metric: logged to MLflow and to the job's report file.

    A sweep's pruner reads the report file, so pruning needs no round trip through MLflow.
    """
    value = float(value)
    d = _job_dir()
    if d is not None:
        with open(d / "report.jsonl", "a") as f:
            f.write(json.dumps({"name": name, "value": value, "step": int(step),
                                "t": time.time()}) + "\n")
    if os.environ.get("MLFLOW_RUN_ID") or os.environ.get("MLFLOW_TRACKING_URI"):
        import mlflow

        mlflow.log_metric(name, value, step=int(step))


def progress(done: int, total: int, label: str = "") -> None:
    """Tell the Jobs panel how far the job is (scripts; notebooks report cells by themselves)."""
    d = _job_dir()
    if d is None:
        return
    tmp = d / "progress.tmp"
    tmp.write_text(json.dumps({"done": done, "total": total,
                               "label": label or f"{done} of {total}"}))
    os.replace(tmp, d / "progress.json")


def seed() -> int | None:
    """The job's seed (``$MLOPS_SEED``: the ``seed`` parameter, or one the platform chose and
    recorded), after seeding ``random`` and, where installed, numpy and torch with it.
    ``None`` outside a job."""
    raw = os.environ.get("MLOPS_SEED")
    if not raw:
        return None
    value = int(raw)
    import random

    random.seed(value)
    try:
        import numpy

        numpy.random.seed(value % 2**32)
    except ImportError:
        pass
    try:
        import torch

        torch.manual_seed(value)
    except ImportError:
        pass
    return value
