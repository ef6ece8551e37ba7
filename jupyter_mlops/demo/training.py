"""Training the cell detector: seeded, CPU-friendly, GPU when there is one.

    det = training.fit(train_samples, val_samples, epochs=30, lr=2e-3, seed=0,
                       on_epoch=lambda epoch, logs: report("val_map50", logs["val_map50"], epoch))

``on_epoch`` receives ``{"train_loss", "val_map50", "seconds"}`` after every epoch: the template's
``train.py`` hands them to ``runtime.report`` so a sweep's pruner can stop a bad trial early.
"""
from __future__ import annotations

import random
import time
from collections import defaultdict

import numpy as np
import torch

from . import detector, metrics
from .loaders import Sample


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _batches(items: list, batch_size: int, rng: np.random.Generator):
    """Mini-batches of equally sized images (sizes may differ across a dataset)."""
    by_size = defaultdict(list)
    for it in items:
        by_size[it[0].shape].append(it)
    out = []
    for group in by_size.values():
        order = rng.permutation(len(group))
        out += [[group[i] for i in order[k:k + batch_size]]
                for k in range(0, len(group), batch_size)]
    rng.shuffle(out)
    return out


def val_map50(det: detector.Detector, val: list[Sample]) -> float:
    if not val:
        return float("nan")
    preds = det.predict([s.image for s in val], min_score=0.05)
    return metrics.mean_average_precision(preds, [s.boxes for s in val])["map50"]


def fit(train: list[Sample], val: list[Sample] | None = None, epochs: int = 30,
        lr: float = 2e-3, batch_size: int = 8, width: int = 16, seed: int = 0,
        score_threshold: float = 0.3, weight_decay: float = 1e-4, on_epoch=None,
        threads: int | None = None) -> detector.Detector:
    """A trained :class:`~jupyter_mlops.demo.detector.Detector`.

    ``threads`` caps torch's CPU threads (jobs share the machine); None keeps torch's default.
    """
    if threads:
        torch.set_num_threads(threads)
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    dev = detector.device()
    det = detector.Detector(width=width, score_threshold=score_threshold, dev=dev)
    opt = torch.optim.AdamW(det.net.parameters(), lr=lr, weight_decay=weight_decay)
    steps = max(1, epochs * max(1, -(-len(train) // batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.15)
    data = [(s.image, s.boxes) for s in train]
    val = val or []
    for epoch in range(epochs):
        t0 = time.monotonic()
        det.net.train()
        total, n = 0.0, 0
        for batch in _batches(data, batch_size, rng):
            imgs, tgts = [], []
            for img, boxes in batch:
                img, boxes = detector.augment(img, boxes, rng)
                img = detector._pad(img)
                imgs.append(img)
                tgts.append(detector.targets(boxes, *img.shape))
            x = torch.from_numpy(np.stack(imgs))[:, None].to(dev)
            y = torch.from_numpy(np.stack(tgts)).to(dev)
            loss = detector.loss(det.net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched.last_epoch + 1 < steps:
                sched.step()
            total += loss.item() * len(batch)
            n += len(batch)
        logs = {"train_loss": total / max(n, 1), "val_map50": val_map50(det, val),
                "seconds": time.monotonic() - t0}
        if on_epoch is not None:
            on_epoch(epoch, logs)
    return det
