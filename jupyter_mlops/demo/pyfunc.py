"""The cell detector as an MLflow pyfunc model: what the registry holds and endpoints serve.

``predict`` takes what the model server gives an image model: an array ``(N, H, W[, C])`` (one
uploaded PNG/TIFF arrives as ``(1, H, W[, C])``), a single ``(H, W)`` image, or a list of
images, of any bit depth. It answers one dict per image, the format the deployment panel's
Try-it draws::

    {"boxes": [[x0, y0, x1, y1], ...], "scores": [...], "labels": ["cell", ...], "count": n}

(corners in input pixels; only detections at or above the model's score threshold, which the
caller may override with ``params={"score_threshold": 0.5}``).
"""
from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

PIP_REQUIREMENTS = ["mlflow", "torch==2.13.0", "numpy", "pillow", "tifffile"]


def _images(model_input) -> list[np.ndarray]:
    if isinstance(model_input, (list, tuple)):
        return [np.asarray(x) for x in model_input]
    if hasattr(model_input, "to_numpy"):  # a DataFrame of one column of arrays
        model_input = model_input.to_numpy()
        if model_input.dtype == object:
            return [np.asarray(x) for x in model_input.ravel()]
    a = np.asarray(model_input)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4) and a.shape[0] != 1):
        return [a]
    return list(a)


class CellDetectorModel(PythonModel):
    """Loads the checkpoint artifact ``weights``; CPU or GPU as the server has."""

    def load_context(self, context):
        from .detector import Detector

        self.detector = Detector.load(context.artifacts["weights"])

    def predict(self, context, model_input, params=None):
        from .loaders import normalize

        thr = float((params or {}).get("score_threshold", self.detector.score_threshold))
        out = []
        for img in _images(model_input):
            rows = self.detector.predict([normalize(img)], min_score=thr)[0]
            out.append({"boxes": [[x, y, round(x + w, 2), round(y + h, 2)]
                                  for x, y, w, h, _ in rows],
                        "scores": [r[4] for r in rows], "labels": ["cell"] * len(rows),
                        "count": len(rows)})
        return out


def log_model(checkpoint: str | Path, name: str = "model",
              registered_model_name: str | None = None):
    """Log the checkpoint as a pyfunc model in the active run (and register it if named)."""
    return mlflow.pyfunc.log_model(
        name=name, python_model=str(Path(__file__).with_name("pyfunc_model.py")),
        artifacts={"weights": str(checkpoint)},
        pip_requirements=PIP_REQUIREMENTS,
        registered_model_name=registered_model_name)
