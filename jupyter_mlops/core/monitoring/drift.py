"""Drift of what a deployed model sees, feature by feature: the Population Stability Index.

For each numeric feature, ten bins are cut at the deciles of the reference (the training or
evaluation data of the served version); the score compares the share of reference values and
of recent inputs in each bin::

    PSI = sum over bins of (recent% - reference%) * ln(recent% / reference%)

with shares floored at 0.1 % so an empty bin scores finitely. The usual reading: below 0.1 the
feature is stable, 0.1-0.25 it moved, above 0.25 it shifted; the default threshold of a
deployment is 0.2. PSI needs no assumption about the distribution and is the same number for
tabular features and for image statistics (size, mean intensity, predicted count).

No I/O here: values in, scores out.
"""
from __future__ import annotations

import math

import numpy as np

BINS = 10
FLOOR = 0.001
# Features of an image request: what the cell detector sees and what it answers.
IMAGE_FEATURES = ("image_height", "image_width", "image_mean_intensity", "predicted_count")


def edges(reference) -> list[float]:
    """Inner bin edges: the reference's deciles (ties merged)."""
    ref = np.asarray(reference, dtype=float)
    ref = ref[np.isfinite(ref)]
    if not ref.size:
        return []
    qs = np.quantile(ref, np.linspace(0, 1, BINS + 1)[1:-1])
    return sorted(set(float(q) for q in qs))


def shares(values, cut: list[float]) -> list[float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    counts = np.bincount(np.searchsorted(cut, v, side="right"), minlength=len(cut) + 1)
    return (counts / max(1, v.size)).tolist()


def psi(reference, recent) -> float:
    cut = edges(reference)
    ref, now = shares(reference, cut), shares(recent, cut)
    return float(sum((max(b, FLOOR) - max(a, FLOOR)) * math.log(max(b, FLOOR) / max(a, FLOOR))
                     for a, b in zip(ref, now)))


def feature_report(name: str, reference, recent, threshold: float) -> dict:
    """Score and the two histograms (shares per reference bin) of one feature."""
    cut = edges(reference)
    score = round(psi(reference, recent), 4)
    return {"feature": name, "psi": score, "drifted": score > threshold, "edges": cut,
            "reference": [round(s, 4) for s in shares(reference, cut)],
            "recent": [round(s, 4) for s in shares(recent, cut)],
            "reference_mean": _mean(reference), "recent_mean": _mean(recent)}


def _mean(values) -> float | None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return round(float(v.mean()), 4) if v.size else None


def image_features(image, predictions=None) -> dict:
    """The monitored statistics of one image (a numpy array ``(h, w[, c])``) and the count of
    objects the model found in it (the length of its prediction, when a list)."""
    arr = np.asarray(image)
    out = {"image_height": float(arr.shape[0]), "image_width": float(arr.shape[1]),
           "image_mean_intensity": float(arr.mean())}
    count = predicted_count(predictions)
    if count is not None:
        out["predicted_count"] = float(count)
    return out


def predicted_count(prediction) -> int | None:
    """Objects found in one image: a detector's ``{"boxes": [...]}`` or a plain list."""
    if isinstance(prediction, dict) and isinstance(prediction.get("boxes"), list):
        return len(prediction["boxes"])
    if isinstance(prediction, list):
        return len(prediction)
    return None
