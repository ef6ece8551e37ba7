"""Step 3: evaluate the trained detector on the validation images.

Logs mAP@0.5, mAP@0.5:0.95, precision and recall at the score threshold, the cell-count error,
and ``eval/`` (detections.json, the images and overlays) which the Experiments panel compares
run against run. Without ``train_run``: the train step of the same pipeline, else your newest
finished training run.
"""
train_run = ""  # an MLflow run id of train.py
score_threshold = -1.0  # below 0: the threshold the model was trained with

import tempfile
from pathlib import Path

import mlflow

from jupyter_mlops.job_runtime import report
from jupyter_mlops.demo import detector, evaluation, project

with project.run("evaluate") as run:
    source = project.find_run("train", train_run, run.info.run_id)
    split = mlflow.artifacts.load_dict(f"runs:/{source}/data/split.json")
    with tempfile.TemporaryDirectory() as tmp:
        det = detector.Detector.load(project.download_checkpoint(source, tmp))
        _, val, _ = project.load(split["dataset"], split["dataset_version"],
                                 split.get("data_dir", ""), split["val_fraction"],
                                 split["split_seed"])
        if [s.name for s in val] != split["val"]:
            print("note: the validation images differ from those of training", flush=True)
        results = evaluation.evaluate(det, val, tmp,
                                      None if score_threshold < 0 else score_threshold)
        mlflow.log_artifacts(str(Path(tmp) / "eval"), "eval")
    mlflow.set_tags({"cells.train_run": source, "cells.dataset": split["dataset"],
                     "cells.dataset_version": split["dataset_version"]})
    for name in evaluation.METRICS:
        report(name, results[name])
    mlflow.log_metrics({"tp": results["tp"], "fp": results["fp"], "fn": results["fn"]})
    print({k: round(v, 3) for k, v in results.items()})
