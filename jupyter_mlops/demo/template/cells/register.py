"""Step 4: register the evaluated detector in the model registry (when it is good enough).

Logs the checkpoint as an MLflow pyfunc model (``jupyter_mlops.demo.pyfunc``: an image in,
``{"boxes": [[x0, y0, x1, y1], ...], "scores", "labels", "count"}`` out, as the deployment
panel's Try-it draws) and registers it as a new version of ``model_name``, tagged with its
evaluation metrics and runs.
"""
model_name = "cell-detector"
min_map50 = 0.5  # refuse to register a model below this validation mAP@0.5
evaluate_run = ""  # an MLflow run id of evaluate.py; default: this pipeline's

import tempfile

import mlflow
from mlflow import MlflowClient

from jupyter_mlops.demo import project, pyfunc

with project.run("register") as run:
    evaluated = project.find_run("evaluate", evaluate_run, run.info.run_id)
    ev = mlflow.get_run(evaluated).data
    map50 = ev.metrics.get("map50", 0.0)
    if map50 < min_map50:
        raise SystemExit(f"validation mAP@0.5 is {map50:.3f}, below min_map50 {min_map50}: "
                         "not registered")
    source = ev.tags["cells.train_run"]
    mlflow.log_metrics({k: v for k, v in ev.metrics.items()})
    with tempfile.TemporaryDirectory() as tmp:
        info = pyfunc.log_model(project.download_checkpoint(source, tmp),
                                registered_model_name=model_name)
    version = info.registered_model_version
    client = MlflowClient()
    for key, value in {"map50": f"{map50:.4f}",
                       "map50_95": f"{ev.metrics.get('map50_95', 0.0):.4f}",
                       "train_run": source, "evaluate_run": evaluated,
                       "dataset": ev.tags.get("cells.dataset", ""),
                       "dataset_version": ev.tags.get("cells.dataset_version", "")}.items():
        client.set_model_version_tag(model_name, str(version), key, value)
    mlflow.set_tag("cells.model_version", f"{model_name}/{version}")
    print(f"registered {model_name} version {version} (mAP@0.5 {map50:.3f})")
