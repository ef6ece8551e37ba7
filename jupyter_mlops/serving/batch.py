"""Batch prediction: one registered model version over one dataset version, run as a job.

The control plane (``core.batch_predictions``) checks the request and submits an ordinary job
whose script calls :func:`run`. Here, inside that job:

* the model is loaded with ``mlflow.pyfunc.load_model("models:/<name>/<version>")`` through the
  MLflow gateway with the job's MLflow token;
* the dataset version is materialised with :func:`jupyter_mlops.datasets.get`, which records it
  as an input of the job's MLflow run (lineage), with the job's own token of its user;
* every image is given to the model the way the model server's image "Try it" does (an array of
  shape ``(1, height, width[, channels])``), every CSV file as a DataFrame of its rows;
* ``predictions.csv`` and ``predictions.json`` are written to ``~/mlops-jobs/<job id>/`` (next
  to what notebook jobs leave there) and logged as artifacts ``predictions/`` of the job's run.

Runnable outside a job too: ``python -m jupyter_mlops.serving.batch --help``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

from ..core.batch_predictions import ARTIFACT_PATH, TABULAR_SUFFIXES, predictable

CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                 ".tif": "image/tiff", ".tiff": "image/tiff", ".bmp": "image/bmp"}
TABULAR = TABULAR_SUFFIXES


# --- predicting -------------------------------------------------------------------------------

def _jsonable(value):
    from .inputs import _default, to_jsonable

    return json.loads(json.dumps(to_jsonable(value), default=_default))


def _rows_of(prediction, n: int) -> list:
    """One prediction per input row (a frame's rows, an array's first axis, a list's items)."""
    value = _jsonable(prediction)
    if isinstance(value, dict) and n == 1:
        return [value]
    if isinstance(value, list) and len(value) == n:
        return value
    if n == 1:
        return [value]
    raise ValueError(f"the model answered {type(value).__name__} of length "
                     f"{len(value) if hasattr(value, '__len__') else '?'} for {n} rows")


def predict_file(model, path: Path, rel: str) -> list[dict]:
    """The predictions of one file, as rows ``{file, row, prediction, error}``."""
    suffix = path.suffix.lower()
    try:
        if suffix in TABULAR:
            import pandas as pd

            frame = pd.read_csv(path)
            preds = _rows_of(model.predict(frame), len(frame))
            return [{"file": rel, "row": i, "prediction": p, "error": ""}
                    for i, p in enumerate(preds)]
        from .inputs import parse

        image = parse(CONTENT_TYPES[suffix], path.read_bytes()).value  # (1, H, W[, C])
        return [{"file": rel, "row": None, "prediction": _rows_of(model.predict(image), 1)[0],
                 "error": ""}]
    except Exception as e:  # one unreadable file must not lose the others' predictions
        message = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        return [{"file": rel, "row": None, "prediction": None, "error": message}]


def _columns(rows: list[dict]) -> list[str]:
    """``prediction`` for scalar answers; the keys of dict answers (a detector's ``boxes``,
    ``scores``, ``labels``) as columns of their own."""
    keys: list[str] = []
    scalar = False
    for r in rows:
        p = r["prediction"]
        if isinstance(p, dict):
            keys += [k for k in p if k not in keys]
        elif p is not None:
            scalar = True
    cols = ["file", "row"]
    if scalar or not keys:
        cols.append("prediction")
    return cols + [k for k in keys if k not in cols] + ["error"]


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def write_outputs(rows: list[dict], out_dir: Path, meta: dict) -> tuple[Path, Path]:
    """``predictions.csv`` (one line per prediction) and ``predictions.json`` (with ``meta``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = _columns(rows)
    csv_path, json_path = out_dir / "predictions.csv", out_dir / "predictions.json"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            p = r["prediction"]
            line = {"file": r["file"], "row": r["row"], "error": r["error"]}
            if isinstance(p, dict):
                line.update(p)
            else:
                line["prediction"] = p
            w.writerow([_cell(line.get(c)) for c in cols])
    json_path.write_text(json.dumps({**meta, "predictions": rows}, indent=1))
    return csv_path, json_path


def output_dir(explicit: str = "") -> Path:
    """``~/mlops-jobs/<job id>/`` inside a job, where the Jobs panel's files live."""
    if explicit:
        return Path(explicit)
    job = os.environ.get("MLOPS_JOB_ID")
    if not job:
        return Path.cwd() / "predictions"
    return Path(os.environ.get("HOME") or Path.home()) / "mlops-jobs" / job


def _active_run():
    """The job's MLflow run (the wrapper opened it; this process joins it), or None."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    import mlflow

    run = mlflow.active_run()
    if run is None and os.environ.get("MLFLOW_RUN_ID"):
        run = mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"])
    return run


def run(model_name: str, model_version: str, dataset: str, dataset_version: str,
        output: str = "") -> dict:
    """Predict every image and CSV file of ``dataset@dataset_version`` with the model version;
    returns a summary (also the ``meta`` of ``predictions.json``)."""
    import mlflow.pyfunc

    from .. import datasets
    from ..job_runtime import progress, report

    t0 = time.monotonic()
    uri = f"models:/{model_name}/{model_version}"
    run_ = _active_run()
    print(f"[batch] materialising {dataset}@{dataset_version}", flush=True)
    folder = datasets.get(dataset, dataset_version, context="inference")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and not p.name.startswith(".")
                   and predictable(p.relative_to(folder).as_posix()))
    if not files:
        raise SystemExit(f"{dataset}@{dataset_version} has no image or CSV file to predict")
    print(f"[batch] loading {uri}", flush=True)
    model = mlflow.pyfunc.load_model(uri)
    rows: list[dict] = []
    for i, rel in enumerate(files):
        progress(i, len(files), f"{i} of {len(files)} files")
        rows += predict_file(model, folder / rel, rel)
    failed = sorted({r["file"] for r in rows if r["error"]})
    progress(len(files), len(files), f"{len(files)} files predicted")
    meta = {"model": model_name, "model_version": str(model_version), "dataset": dataset,
            "dataset_version": dataset_version, "files": len(files),
            "predictions": len(rows), "failed_files": len(failed),
            "seconds": round(time.monotonic() - t0, 3)}
    out = output_dir(output)
    csv_path, json_path = write_outputs(rows, out, meta)
    print(f"[batch] {len(rows)} predictions of {len(files)} files -> {csv_path}", flush=True)
    for f in failed[:20]:
        print(f"[batch] failed: {f}: {next(r['error'] for r in rows if r['file'] == f)}",
              flush=True)
    report("predicted_files", len(files) - len(failed))
    report("failed_files", len(failed))
    if run_ is not None:
        mlflow.set_tags({"mlops.batch.model": f"{model_name}/{model_version}",
                         "mlops.batch.dataset": f"{dataset}@{dataset_version}"})
        mlflow.log_artifact(str(csv_path), ARTIFACT_PATH)
        mlflow.log_artifact(str(json_path), ARTIFACT_PATH)
    if len(failed) == len(files):
        raise SystemExit(f"no file could be predicted; first error: {rows[0]['error']}")
    return {**meta, "output": str(out)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m jupyter_mlops.serving.batch",
                                description="Predict a dataset version with a model version.")
    p.add_argument("model", help="registered model NAME@VERSION")
    p.add_argument("dataset", help="dataset NAME@VERSION (a version name or a tag)")
    p.add_argument("--output", default="", help="directory of predictions.csv/.json")
    a = p.parse_args(argv)
    (model, _, mv), (ds, _, dv) = a.model.partition("@"), a.dataset.partition("@")
    if not mv or not dv:
        p.error("give MODEL@VERSION and DATASET@VERSION")
    print(json.dumps(run(model, mv, ds, dv, a.output), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
