"""Evaluating a detector on the validation images and what the evaluate step logs.

The artifact contract the Experiments panel reads (detection comparison and error gallery)::

    eval/detections.json   {"iou_threshold": 0.5, "score_threshold": s, "images": [
                              {"name": "img_0003", "image": "eval/images/img_0003.png",
                               "overlay": "eval/overlays/img_0003.png", "width": W, "height": H,
                               "gt": [[x, y, w, h], ...],
                               "pred": [[x, y, w, h, score], ...],   # score >= s, best first
                               "matched": [[pred_idx, gt_idx], ...],  # at IoU >= 0.5
                               "missed": [gt_idx, ...], "false": [pred_idx, ...]}, ...]}
    eval/images/<name>.png    the validation image, 8-bit, contrast-stretched
    eval/overlays/<name>.png  the same with ground truth and predictions drawn

plus the run metrics ``map50``, ``map50_95``, ``precision``, ``recall``, ``count_mae``,
``count_rel_error`` (definitions in :mod:`jupyter_mlops.demo.metrics`). Image names are the
dataset's file stems, and the split is a hash of the name, so two runs compare image by image.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import metrics
from .loaders import Sample, to_uint8

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
    """Predict ``val``, write the artifact tree under ``out_dir/eval`` and return the metrics.

    ``det`` is a :class:`~jupyter_mlops.demo.detector.Detector`; its own score threshold is
    used unless one is given.
    """
    from PIL import Image

    thr = det.score_threshold if score_threshold is None else float(score_threshold)
    out = Path(out_dir) / "eval"
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    preds = det.predict([s.image for s in val], min_score=0.05)  # low: mAP needs the ranking
    gts = [s.boxes for s in val]
    m = metrics.evaluate(preds, gts, thr)
    images = []
    for s, per in zip(val, m.pop("images")):
        img8 = to_uint8(s.pixels)
        Image.fromarray(img8).save(out / "images" / f"{s.name}.png")
        pred = [[round(float(v), 2) for v in p[:4]] + [round(float(p[4]), 4)]
                for p in per["pred"]]
        overlay(img8, s.boxes, pred, per["matched"], per["missed"], per["false"]).save(
            out / "overlays" / f"{s.name}.png")
        images.append({"name": s.name, "image": f"eval/images/{s.name}.png",
                       "overlay": f"eval/overlays/{s.name}.png",
                       "width": int(img8.shape[1]), "height": int(img8.shape[0]),
                       "gt": [[round(float(v), 2) for v in b] for b in s.boxes], "pred": pred,
                       "matched": per["matched"], "missed": per["missed"],
                       "false": per["false"]})
    (out / "detections.json").write_text(json.dumps(
        {"iou_threshold": 0.5, "score_threshold": thr, "images": images}))
    return {k: float(m[k]) for k in METRICS} | {"tp": m["tp"], "fp": m["fp"], "fn": m["fn"]}
