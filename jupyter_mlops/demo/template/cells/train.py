"""Step 2: train the detector; reports per-epoch loss and validation mAP@0.5 (a sweep prunes on
``val_map50``). Runs on the GPU when the job got one, else on the CPU.

Parameters (a job, sweep or pipeline step may set any of them):
"""
dataset = "cells"
version = "latest"  # in a pipeline, the version the prepare step pinned is used
data_dir = ""
val_fraction = 0.25
split_seed = 0
epochs = 20
lr = 0.005
batch_size = 8
width = 16  # channels of the first layer (the network has 4x that at the end)
seed = 0
score_threshold = 0.3  # a detection counts from this score on (precision, recall, counts)
threads = 1  # CPU threads for torch (jobs share the machine)

import tempfile
import time
from pathlib import Path

import mlflow

from jupyter_mlops.job_runtime import progress, report
from jupyter_mlops.demo import detector, project, training

with project.run("train") as run:
    if project.pipeline_id(run.info.run_id):  # the version prepare pinned: same images
        prepared = project.find_run("prepare", current_run_id=run.info.run_id)
        version = mlflow.get_run(prepared).data.tags.get("cells.dataset_version", version)
    train, val, info = project.load(dataset, version, data_dir, val_fraction, split_seed)
    mlflow.log_dict({**info, "data_dir": data_dir, "train": [s.name for s in train],
                     "val": [s.name for s in val]}, "data/split.json")
    mlflow.set_tags({"cells.dataset": dataset, "cells.dataset_version": info["dataset_version"],
                     "cells.device": str(detector.device())})
    t0 = time.monotonic()

    def on_epoch(epoch, logs):
        report("train_loss", logs["train_loss"], step=epoch)
        report("val_map50", logs["val_map50"], step=epoch)
        progress(epoch + 1, epochs, f"epoch {epoch + 1} of {epochs}")
        print(f"epoch {epoch + 1}/{epochs}: loss {logs['train_loss']:.3f}, "
              f"val mAP@0.5 {logs['val_map50']:.3f} ({logs['seconds']:.1f} s)", flush=True)

    det = training.fit(train, val, epochs=epochs, lr=lr, batch_size=batch_size, width=width,
                       seed=seed, score_threshold=score_threshold, on_epoch=on_epoch,
                       threads=threads)
    mlflow.log_metric("seconds_per_epoch", (time.monotonic() - t0) / max(epochs, 1))
    with tempfile.TemporaryDirectory() as tmp:
        det.save(Path(tmp) / "model.pt")
        mlflow.log_artifact(str(Path(tmp) / "model.pt"), "checkpoint")
