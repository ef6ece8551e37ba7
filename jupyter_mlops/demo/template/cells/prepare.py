"""Step 1 of the pipeline: pin the dataset version, check its annotations, split it.

Parameters (a job or pipeline step may set any of them):
"""
dataset = "cells"  # name in the shared catalog
version = "latest"  # a version (v3) or a tag; pinned to the real version below
data_dir = ""  # or a local folder (TIFF/PNG + COCO JSON, label masks or CSV boxes)
val_fraction = 0.25  # share of images kept for validation (by a hash of the name)
split_seed = 0  # the split; keep it fixed so runs compare on the same images

import mlflow

from jupyter_mlops.demo import loaders, project

with project.run("prepare"):
    train, val, info = project.load(dataset, version, data_dir, val_fraction, split_seed)
    if not train or not val:
        raise SystemExit(f"{dataset}@{info['dataset_version']} has too few annotated images "
                         f"({len(train)} train, {len(val)} validation)")
    mlflow.set_tags({"cells.dataset": dataset, "cells.dataset_version": info["dataset_version"]})
    mlflow.log_dict({**info, "train": [s.name for s in train], "val": [s.name for s in val]},
                    "data/split.json")
    for part, samples in (("train", train), ("val", val)):
        mlflow.log_metrics({f"{part}_{k}": v for k, v in loaders.stats(samples).items()})
    print(f"{dataset}@{info['dataset_version']}: {len(train)} training and {len(val)} "
          f"validation images, {loaders.stats(train + val)['cells']} cells")
