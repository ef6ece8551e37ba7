"""``%mlops predict``: batch prediction from a notebook cell.

    %mlops predict cells@3 --dataset cells@v3            # submit, print the job
    df = %mlops predict cells@3 --dataset cells@v3 --wait  # ... and return predictions.csv

The job is the same as the Models panel's "Batch predict…" (``POST api/batch-predictions``):
it shows in the Jobs panel and writes ``~/mlops-jobs/<job id>/predictions.csv``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from ..core import errors
from ..client import ControlPlane

DONE = ("succeeded", "failed", "cancelled")


def _pair(text: str, what: str) -> tuple[str, str]:
    name, sep, ref = text.rpartition("@")
    if not sep or not name or not ref:
        raise errors.InvalidInput(f"{what} is NAME@VERSION, not {text!r}")
    return name, ref


def predict(args: list[str], shell=None, client: ControlPlane | None = None,
            poll_seconds: float = 1.0):
    from ..magics import parser

    p = parser("predict", "run a registered model version over a dataset version, as a job")
    p.add_argument("model", help="MODEL@VERSION, e.g. cells@3")
    p.add_argument("--dataset", required=True, help="DATASET@VERSION (a version or a tag)")
    p.add_argument("--project", default=None, help="project of the job (default: default)")
    p.add_argument("--wait", action="store_true",
                   help="wait for the job and return its predictions as a DataFrame")
    p.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits at most")
    a = p.parse_args(args)
    model, version = _pair(a.model, "the model")
    dataset, ref = _pair(a.dataset, "--dataset")
    body = {"model_name": model, "version": version, "dataset": dataset, "dataset_version": ref}
    if a.project:
        body["project"] = a.project
    client = client or ControlPlane()
    out = client.create_batch_prediction(body)
    job = out["job"]
    print(f"job {job['id']} {job['state']}: {model} v{version} over {dataset}@"
          f"{out['dataset_version']} ({out['files']} files); predictions in "
          f"~/{out['outputs']['csv']}")
    if not a.wait:
        return out
    deadline = time.monotonic() + a.timeout
    while job["state"] not in DONE:
        if time.monotonic() > deadline:
            raise errors.Unavailable(f"job {job['id']} still {job['state']} after "
                                     f"{a.timeout:.0f} s; see the Jobs panel")
        time.sleep(poll_seconds)
        job = client.job(job["id"])
    if job["state"] != "succeeded":
        raise errors.Conflict(f"job {job['id']} {job['state']}: {job.get('reason') or 'see its log'}")
    import pandas as pd

    home = Path(os.environ.get("HOME") or Path.home())
    return pd.read_csv(home / out["outputs"]["csv"])


def _run(args, shell):
    from IPython.core.error import UsageError

    try:
        return predict(args, shell)
    except errors.MlopsError as e:
        raise UsageError(f"%mlops predict: {e.message}") from None


try:  # the %mlops registry (IPython present: always inside a lab)
    from ..magics import subcommand as _subcommand
except ImportError:  # pragma: no cover
    pass
else:
    _subcommand("predict", "batch prediction as a job: MODEL@VERSION --dataset DATASET@VERSION "
                           "[--wait]")(_run)
