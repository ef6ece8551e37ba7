"""Detection metrics for one class (nuclei), computed the way COCO does, in numpy only.

Boxes are ``[x, y, w, h]`` in pixels (COCO's order); predictions add a score.

* **IoU** of two boxes: area of the intersection over area of the union (continuous
  coordinates, no "+1").
* **Matching** at an IoU threshold ``t`` (per image): predictions in descending score order each
  take the not-yet-matched ground-truth box they overlap most, if that IoU is >= ``t``; a
  prediction left without one is a false positive, a ground-truth box nobody took is missed.
* **AP at t**: predictions of all images ranked by score; precision and recall after each;
  precision made non-increasing from the right (the envelope); averaged over the 101 recall
  levels 0, 0.01, ..., 1 (precision at the first rank reaching that recall, 0 if never
  reached). This is COCO's 101-point interpolation (``pycocotools`` ``recThrs``).
* **mAP@0.5** = AP at 0.5; **mAP@0.5:0.95** = mean of AP over t = 0.50, 0.55, ..., 0.95.
  With one class there is nothing to average over classes. No ground truth at all: NaN.
* **Precision / recall at a score threshold** (IoU 0.5): only predictions with
  ``score >= score_threshold``, matched as above, summed over images.
  precision = TP / (TP + FP) (with no predictions: 1 if there was nothing to find, else 0);
  recall = TP / (TP + FN) (1 with no ground truth).
* **Cell-count error** (same predictions): ``count_mae`` = mean over images of
  ``|predicted - true|``; ``count_rel_error`` = mean over images of
  ``|predicted - true| / max(true, 1)``.
"""
from __future__ import annotations

import math

import numpy as np

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
RECALL_LEVELS = np.linspace(0.0, 1.0, 101)


def _arr(boxes, width: int = 4) -> np.ndarray:
    """Boxes as an (n, >= width) float array (extra columns, such as a score, are kept)."""
    if not len(boxes):
        return np.zeros((0, width))
    a = np.asarray(boxes, dtype=np.float64)
    a = a.reshape(len(a), -1)
    if a.shape[1] < width:
        raise ValueError(f"boxes need {width} numbers each, got {a.shape[1]}")
    return a


def iou_matrix(a, b) -> np.ndarray:
    """IoU of every box of ``a`` (rows) with every box of ``b`` (columns); xywh boxes."""
    a, b = _arr(a)[:, :4], _arr(b)[:, :4]
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    ax0, ay0, ax1, ay1 = a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(ax0[:, None], bx0[None]),
                 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(ay0[:, None], by0[None]),
                 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match(pred, gt, iou_threshold: float = 0.5) -> tuple[list, list, list]:
    """Greedy COCO matching of one image. ``pred`` rows are ``[x, y, w, h, score]``.

    Returns ``(matched, missed, false)``: ``[[pred_idx, gt_idx], ...]``, unmatched ground-truth
    indices and unmatched prediction indices (indices into the lists as given).
    """
    pred, gt = _arr(pred, 5), _arr(gt)
    ious = iou_matrix(pred, gt)
    order = np.argsort(-pred[:, 4], kind="stable")
    taken = np.zeros(len(gt), bool)
    matched, false = [], []
    for p in order:
        best, best_iou = -1, iou_threshold
        for g in range(len(gt)):
            # >= at the threshold itself; ties keep the first box (COCO's order)
            if not taken[g] and ious[p, g] >= best_iou and (best < 0 or ious[p, g] > best_iou):
                best, best_iou = g, ious[p, g]
        if best >= 0:
            taken[best] = True
            matched.append([int(p), int(best)])
        else:
            false.append(int(p))
    missed = [int(g) for g in range(len(gt)) if not taken[g]]
    return sorted(matched), missed, sorted(false)


def average_precision(preds: list, gts: list, iou_threshold: float) -> float:
    """AP of one class over images (``preds[i]``, ``gts[i]`` belong to image i)."""
    n_gt = sum(len(g) for g in gts)
    if n_gt == 0:
        return math.nan
    scores, hits = [], []
    for p, g in zip(preds, gts):
        p = _arr(p, 5)
        matched, _, _ = match(p, g, iou_threshold)
        tp = np.zeros(len(p), bool)
        for pi, _gi in matched:
            tp[pi] = True
        scores.extend(p[:, 4].tolist())
        hits.extend(tp.tolist())
    if not scores:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="mergesort")  # stable, as pycocotools
    hits = np.asarray(hits)[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_LEVELS, side="left")
    sampled = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0)
    return float(sampled.mean())


def mean_average_precision(preds: list, gts: list) -> dict:
    """``{"map50": AP@0.5, "map50_95": mean AP over 0.50:0.05:0.95}``."""
    aps = [average_precision(preds, gts, float(t)) for t in IOU_THRESHOLDS]
    return {"map50": aps[0], "map50_95": float(np.mean(aps)) if not math.isnan(aps[0])
            else math.nan}


def at_threshold(preds: list, gts: list, score_threshold: float,
                 iou_threshold: float = 0.5) -> dict:
    """Precision, recall and cell-count errors of the predictions scoring at least the
    threshold, plus the per-image matches (what ``eval/detections.json`` lists)."""
    tp = fp = fn = 0
    abs_err, rel_err, per_image = [], [], []
    for p, g in zip(preds, gts):
        p = _arr(p, 5)
        kept = p[p[:, 4] >= score_threshold]
        matched, missed, false = match(kept, g, iou_threshold)
        tp, fp, fn = tp + len(matched), fp + len(false), fn + len(missed)
        err = abs(len(kept) - len(g))
        abs_err.append(err)
        rel_err.append(err / max(len(g), 1))
        per_image.append({"pred": kept, "matched": matched, "missed": missed, "false": false})
    precision = tp / (tp + fp) if tp + fp else (1.0 if tp + fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": precision, "recall": recall,
            "count_mae": float(np.mean(abs_err)) if abs_err else 0.0,
            "count_rel_error": float(np.mean(rel_err)) if rel_err else 0.0,
            "tp": tp, "fp": fp, "fn": fn, "images": per_image}


def evaluate(preds: list, gts: list, score_threshold: float) -> dict:
    """Every metric the evaluate step logs (see the module's docstring for definitions)."""
    out = mean_average_precision(preds, gts)
    out.update(at_threshold(preds, gts, score_threshold))
    return out
