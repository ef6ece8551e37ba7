"""Evaluating a detector on the validation images and what the evaluate step logs.

The artifact contract the Experiments panel reads (detection comparison and error gallery)::

    eval/detections.json   {"iou_threshold": 0.5, "score_threshold": s, "images": [
                              {"name": "img_0003", "image": "eval/images/img_0003.png",
                               "overlay": "eval/overlays/img_0003.png", "width": W, "height": H,
                               "gt": [[x, y, w, h], ...],
                               "pred": [[x, y, w, h, score], ...],   # score >= s, best first
                               "matched": [[pred_idx, gt_idx], ...],  # at IoU >= 0.5
                               "missed": [gt_idx, ...], "false": [pred_idx, ...],
                               "ap50": AP at IoU 0.5 of this image alone (null: no cells),
                               "count_error": detections - true cells}, ...]}
    eval/images/<name>.png    the validation image, 8-bit, contrast-stretched
    eval/overlays/<name>.png  the same with ground truth and predictions drawn

plus the run metrics ``map50``, ``map50_95``, ``precision``, ``recall``, ``count_mae``,
``count_rel_error`` (definitions in :mod:`jupyter_mlops.demo.metrics`). Image names are the
dataset's file stems, and the split is a hash of the name, so runs compare image by image.
Any detector's code produces it through :func:`write_detections` (or :func:`log_detections`).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from . import metrics
from .loaders import Sample, to_uint8

NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}$")
METRICS = ("map50", "map50_95", "precision", "recall", "count_mae", "count_rel_error")
# Colour-blind-safe pair (Okabe-Ito): ground truth blue, matched prediction green-ish, errors
# orange/vermillion; the panel draws its own layers, the overlay PNG is for MLflow's UI.
GT_COLOUR = (0, 114, 178)
MATCH_COLOUR = (0, 158, 115)
FALSE_COLOUR = (213, 94, 0)
MISSED_COLOUR = (230, 159, 0)


def overlay(image8: np.ndarray, gt: list, pred: list, matched: list, missed: list,
            false: list, scale: int = 2):
    """An RGB PIL image: ground truth thin blue (missed ones orange), predictions green when
    matched, vermillion when false. Upscaled ``scale`` times so thin lines stay visible."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(image8).convert("RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    d = ImageDraw.Draw(img)
    missed_set, false_set = set(missed), set(false)

    def rect(b, colour, width):
        x, y, w, h = (v * scale for v in b[:4])
        d.rectangle([x, y, x + w - 1, y + h - 1], outline=colour, width=width)

    for i, b in enumerate(gt):
        rect(b, MISSED_COLOUR if i in missed_set else GT_COLOUR, 1)
    for i, b in enumerate(pred):
        rect(b, FALSE_COLOUR if i in false_set else MATCH_COLOUR, 2)
    return img


def evaluate(det, val: list[Sample], out_dir: str | Path,
             score_threshold: float | None = None) -> dict:
    """Predict ``val`` and write the artifact tree under ``out_dir/eval``
    (:func:`write_detections`); return the metrics.

    ``det`` is a :class:`~jupyter_mlops.demo.detector.Detector`; its own score threshold is
    used unless one is given.
    """
    thr = det.score_threshold if score_threshold is None else float(score_threshold)
    preds = det.predict([s.image for s in val], min_score=0.05)  # low: mAP needs the ranking
    return write_detections(out_dir, [s.name for s in val], [s.pixels for s in val],
                            [s.boxes for s in val], preds, thr)


def write_detections(out_dir: str | Path, names: list[str], images: list, gts: list,
                     preds: list, score_threshold: float) -> dict:
    """The detection artifacts of a run, from any detector: the one way to produce them.

    Parameters
    ----------
    out_dir
        Where ``eval/`` is written; log it with ``mlflow.log_artifacts(out_dir/"eval",
        "eval")`` (or use :func:`log_detections`, which does both).
    names
        One name per image, the same in every run evaluated on it (the file stem).
    images
        The images (2-D or 3-D arrays, any dtype: saved contrast-stretched, 8-bit).
    gts
        Per image, the true boxes ``[x, y, w, h]`` in pixels.
    preds
        Per image, the predicted boxes ``[x, y, w, h, score]``, every score (mAP needs the
        low ones too); ``score_threshold`` decides which count as detections.

    Returns the run metrics (:data:`METRICS` and ``tp``, ``fp``, ``fn``).
    """
    from PIL import Image

    if not (len(names) == len(images) == len(gts) == len(preds)):
        raise ValueError("names, images, gts and preds must have one entry per image")
    if len(set(names)) != len(names):
        raise ValueError("image names must be unique: runs are compared image by image")
    bad = [n for n in names if not NAME_RE.match(str(n))]
    if bad:
        raise ValueError(f"image names become file names: letters, digits, _.- only: {bad[:3]}")
    thr = float(score_threshold)
    out = Path(out_dir) / "eval"
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    m = metrics.evaluate(preds, gts, thr)
    entries = []
    for name, pixels, gt, all_pred, per in zip(names, images, gts, preds, m.pop("images")):
        img8 = to_uint8(np.asarray(pixels))
        Image.fromarray(img8).save(out / "images" / f"{name}.png")
        pred = [[round(float(v), 2) for v in p[:4]] + [round(float(p[4]), 4)]
                for p in per["pred"]]
        overlay(img8, gt, pred, per["matched"], per["missed"], per["false"]).save(
            out / "overlays" / f"{name}.png")
        ap50 = metrics.average_precision([all_pred], [gt], 0.5)
        entries.append({"name": name, "image": f"eval/images/{name}.png",
                        "overlay": f"eval/overlays/{name}.png",
                        "width": int(img8.shape[1]), "height": int(img8.shape[0]),
                        "gt": [[round(float(v), 2) for v in b] for b in gt], "pred": pred,
                        "matched": per["matched"], "missed": per["missed"],
                        "false": per["false"],
                        "ap50": None if math.isnan(ap50) else round(ap50, 4),
                        "count_error": len(pred) - len(gt)})
    (out / "detections.json").write_text(json.dumps(
        {"iou_threshold": 0.5, "score_threshold": thr, "images": entries}))
    return {k: float(m[k]) for k in METRICS} | {"tp": m["tp"], "fp": m["fp"], "fn": m["fn"]}


def log_detections(names: list[str], images: list, gts: list, preds: list,
                   score_threshold: float) -> dict:
    """:func:`write_detections` into a temporary folder, logged to the active MLflow run as
    ``eval/`` with the metrics; returns the metrics."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        results = write_detections(tmp, names, images, gts, preds, score_threshold)
        mlflow.log_artifacts(str(Path(tmp) / "eval"), "eval")
    mlflow.log_metrics(results)
    return results
