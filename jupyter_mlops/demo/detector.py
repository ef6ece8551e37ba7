"""A compact cell detector in plain torch: a CenterNet-style heatmap of cell centres with a
box-size and a centre-offset head on a small convolutional backbone.

Why this model: nuclei are compact, roughly convex blobs of one class, so "where are the
centres, and how big is each" is the whole problem. A keypoint heatmap needs no anchors and no
box NMS (a 3x3 max-pool keeps the local peaks), trains from scratch in seconds on a CPU on a few
dozen 128-256 px grey images, and runs on any image size (fully convolutional; sizes are padded
to the stride).

Output at stride 4, five channels: centre heatmap (sigmoid), log width and log height of the
box in input pixels, x and y offset of the centre inside its output cell. Loss: CenterNet's
penalty-reduced focal loss on the heatmap, L1 on size and offset at the centres.

torch is imported here only: the platform imports :mod:`jupyter_mlops.demo` modules that need it
only when a detector is built, trained or served.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

STRIDE = 4


def device() -> torch.device:
    """The GPU when the job or server got one (``CUDA_VISIBLE_DEVICES``), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CellNet(nn.Module):
    """Backbone to stride 4, dilated context (receptive field ~60 px), one 5-channel head."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.backbone = nn.Sequential(
            _block(1, w), _block(w, w),
            _block(w, 2 * w, stride=2), _block(2 * w, 2 * w),
            _block(2 * w, 4 * w, stride=2), _block(4 * w, 4 * w),
            _block(4 * w, 4 * w, dilation=2), _block(4 * w, 4 * w, dilation=4))
        self.head = nn.Sequential(nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(4 * w, 5, 1))
        # A heatmap starting near 0.1 everywhere, as CenterNet does: the focal loss starts
        # small and the first steps are not spent unlearning "cell everywhere".
        nn.init.constant_(self.head[-1].bias[:1], -2.19)
        nn.init.constant_(self.head[-1].bias[1:3], math.log(12.0))
        nn.init.constant_(self.head[-1].bias[3:], 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


# --- targets and loss -------------------------------------------------------------------------

def targets(boxes: list, height: int, width: int) -> np.ndarray:
    """(5, H/4, W/4) float32: Gaussian centre heatmap, log w, log h, offset x, offset y.

    Size and offset are only meaningful where the heatmap is exactly 1 (the centres).
    """
    oh, ow = height // STRIDE, width // STRIDE
    t = np.zeros((5, oh, ow), np.float32)
    yy, xx = np.mgrid[0:oh, 0:ow].astype(np.float32)
    for x, y, w, h in boxes:
        cx, cy = (x + w / 2) / STRIDE, (y + h / 2) / STRIDE
        ix, iy = min(int(cx), ow - 1), min(int(cy), oh - 1)
        sigma = max(0.7, min(w, h) / STRIDE / 4)
        g = np.exp(-((xx - ix) ** 2 + (yy - iy) ** 2) / (2 * sigma ** 2))
        np.maximum(t[0], g, out=t[0])
        t[0, iy, ix] = 1.0
        t[1:, iy, ix] = (math.log(max(w, 1.0)), math.log(max(h, 1.0)), cx - ix, cy - iy)
    return t


def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    heat = torch.sigmoid(out[:, 0]).clamp(1e-4, 1 - 1e-4)
    gt = target[:, 0]
    pos = gt.eq(1).float()
    n = pos.sum().clamp(min=1.0)
    focal = -(pos * (1 - heat) ** 2 * torch.log(heat)
              + (1 - pos) * (1 - gt) ** 4 * heat ** 2 * torch.log(1 - heat)).sum() / n
    reg = (F.l1_loss(out[:, 1:], target[:, 1:], reduction="none") * pos[:, None]).sum() / n
    return focal + reg


# --- augmentation -----------------------------------------------------------------------------

def augment(img: np.ndarray, boxes: list, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """Random flips, quarter turns and a mild contrast change (boxes follow the pixels)."""
    h, w = img.shape
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if rng.random() < 0.5:
        img = img[:, ::-1]
        b[:, 0] = w - b[:, 0] - b[:, 2]
    if rng.random() < 0.5:
        img = img[::-1, :]
        b[:, 1] = h - b[:, 1] - b[:, 3]
    if rng.random() < 0.5 and h == w:  # transpose: a quarter turn with the flips above
        img = img.T
        b = b[:, [1, 0, 3, 2]]
    gain = rng.uniform(0.8, 1.2)
    img = np.clip(img * gain + rng.uniform(-0.05, 0.05), 0, 1)
    return np.ascontiguousarray(img, dtype=np.float32), b.tolist()


# --- decoding ---------------------------------------------------------------------------------

def _pad(img: np.ndarray) -> np.ndarray:
    h, w = img.shape
    ph, pw = (-h) % STRIDE, (-w) % STRIDE
    return np.pad(img, ((0, ph), (0, pw))) if ph or pw else img


def decode(out: torch.Tensor, height: int, width: int, min_score: float = 0.05,
           max_cells: int = 500) -> list[list[float]]:
    """``[[x, y, w, h, score], ...]`` (best first) of one image's head output (5, h, w)."""
    heat = torch.sigmoid(out[0])
    peaks = heat * (F.max_pool2d(heat[None, None], 3, 1, 1)[0, 0] == heat).float()
    scores, idx = peaks.flatten().topk(min(max_cells, peaks.numel()))
    keep = scores >= min_score
    scores, idx = scores[keep], idx[keep]
    ow = heat.shape[1]
    iy, ix = (idx // ow).float(), (idx % ow).float()
    cx = (ix + out[3].flatten()[idx]) * STRIDE
    cy = (iy + out[4].flatten()[idx]) * STRIDE
    bw, bh = out[1].flatten()[idx].exp(), out[2].flatten()[idx].exp()
    x0 = (cx - bw / 2).clamp(0, width)
    y0 = (cy - bh / 2).clamp(0, height)
    x1 = (cx + bw / 2).clamp(0, width)
    y1 = (cy + bh / 2).clamp(0, height)
    rows = torch.stack([x0, y0, x1 - x0, y1 - y0, scores], 1).tolist()
    return [[round(v, 2) for v in r[:4]] + [round(r[4], 4)] for r in rows]


class Detector:
    """A :class:`CellNet` with what predicting needs: device, score threshold, save/load."""

    def __init__(self, net: CellNet | None = None, width: int = 16,
                 score_threshold: float = 0.3, dev: torch.device | None = None):
        self.width = width
        self.net = net or CellNet(width)
        self.score_threshold = score_threshold
        self.device = dev or device()
        self.net.to(self.device)

    @torch.no_grad()
    def predict(self, images: list[np.ndarray], min_score: float | None = None) -> list[list]:
        """Boxes ``[x, y, w, h, score]`` of normalised grey images (0..1); with the default
        ``min_score`` only those at or above the detector's score threshold."""
        from .loaders import normalize

        self.net.eval()
        thr = self.score_threshold if min_score is None else min_score
        out = []
        for img in images:
            img = np.asarray(img, np.float32)
            if img.ndim != 2 or img.max() > 1.0 or img.min() < 0.0:
                img = normalize(img)
            h, w = img.shape
            x = torch.from_numpy(_pad(img))[None, None].to(self.device)
            out.append(decode(self.net(x)[0].float().cpu(), h, w, min_score=thr))
        return out

    def save(self, path) -> None:
        torch.save({"format": "jupyter-mlops-cellnet-1", "width": self.width,
                    "score_threshold": self.score_threshold,
                    "state_dict": {k: v.cpu() for k, v in self.net.state_dict().items()}}, path)

    @classmethod
    def load(cls, path, dev: torch.device | None = None) -> "Detector":
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        net = CellNet(ckpt["width"])
        net.load_state_dict(ckpt["state_dict"])
        return cls(net, ckpt["width"], float(ckpt["score_threshold"]), dev)
