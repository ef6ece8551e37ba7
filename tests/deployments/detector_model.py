"""A tiny image model for the deployment tests: bright blobs are "cells".

Logged as an MLflow "model from code" (this file travels with the model), so the model server
loads it without the tests on its path. Input: images as an array (N, H, W[, C]); output: one
``{"boxes": [[x0, y0, x1, y1], ...], "scores": [...], "labels": [...]}`` per image.
"""
import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel
from scipy import ndimage


class BrightSpotDetector(PythonModel):
    def predict(self, context, model_input, params=None):
        images = np.asarray(model_input)
        if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (3, 4)):
            images = images[None, ...]  # one image without the batch axis
        out = []
        for img in images:
            gray = img[..., :3].mean(axis=-1) if img.ndim == 3 else img.astype(float)
            labels, n = ndimage.label(gray > 128)
            boxes = [[int(s[1].start), int(s[0].start), int(s[1].stop), int(s[0].stop)]
                     for s in ndimage.find_objects(labels)]
            out.append({"boxes": boxes, "scores": [1.0] * n, "labels": ["cell"] * n})
        return out


mlflow.models.set_model(BrightSpotDetector())
