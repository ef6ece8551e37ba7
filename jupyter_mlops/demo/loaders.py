"""Cell images and their boxes from the formats labs keep them in.

    samples = loaders.load_folder("data/cells")    # finds the annotations by itself

* images: TIFF (8/16-bit, any page count: the first page) or PNG/JPEG, grey or colour;
* boxes from, in this order: a COCO JSON file (``annotations.json`` or any ``*.json`` with
  ``images`` and ``annotations``), per-image label masks (``masks/<stem>.png|tif``, value k =
  object k, 0 = background: one box per label), or a CSV with columns
  ``image,x,y,w,h`` (one row per box, pixels).

Images are normalised one by one (:func:`normalize`): a percentile stretch to 0..1, so a 16-bit
TIFF from the microscope and the 8-bit PNG someone uploads to the Try-it box look alike to the
model.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


@dataclass
class Sample:
    """One image: ``name`` (file stem), the raw pixels, boxes ``[[x, y, w, h], ...]``."""

    name: str
    path: Path
    boxes: list = field(default_factory=list)
    _pixels: np.ndarray | None = None

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:
            self._pixels = read_image(self.path)
        return self._pixels

    @property
    def image(self) -> np.ndarray:
        """Normalised float32 grey image, 0..1."""
        return normalize(self.pixels)


def read_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        img = tifffile.imread(path, key=0)
    else:
        from PIL import Image

        with Image.open(path) as im:
            img = np.asarray(im)
    return np.asarray(img)


def to_gray(img: np.ndarray) -> np.ndarray:
    """(H, W) float32 from (H, W), (H, W, C) or (1, H, W[, C])."""
    img = np.asarray(img)
    while img.ndim > 2 and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 3:
        img = img[..., :3].astype(np.float32).mean(axis=-1)
    if img.ndim != 2:
        raise ValueError(f"expected a grey or colour image, got an array of shape {img.shape}")
    return img.astype(np.float32)


def normalize(img: np.ndarray, low: float = 0.5, high: float = 99.8) -> np.ndarray:
    """Stretch the ``low``..``high`` percentiles to 0..1 (clipped); float32 grey."""
    g = to_gray(img)
    lo, hi = np.percentile(g, [low, high])
    if hi <= lo:
        return np.zeros_like(g)
    return np.clip((g - lo) / (hi - lo), 0, 1).astype(np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """An 8-bit contrast-stretched copy, for PNGs people look at."""
    return (normalize(img) * 255 + 0.5).astype(np.uint8)


# --- annotations ------------------------------------------------------------------------------

def _coco_file(folder: Path) -> Path | None:
    first = folder / "annotations.json"
    candidates = [first] if first.exists() else sorted(folder.glob("*.json"))
    for c in candidates:
        try:
            doc = json.loads(c.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and "images" in doc and "annotations" in doc:
            return c
    return None


def load_coco(path: str | Path, images_dir: str | Path | None = None) -> list[Sample]:
    """Samples of a COCO detection file (every category counts as a cell)."""
    path = Path(path)
    root = Path(images_dir) if images_dir else path.parent
    doc = json.loads(path.read_text())
    by_id = {im["id"]: Sample(Path(im["file_name"]).stem, root / im["file_name"])
             for im in doc["images"]}
    for a in doc["annotations"]:
        if a.get("iscrowd"):
            continue
        s = by_id.get(a["image_id"])
        if s is not None:
            s.boxes.append([float(v) for v in a["bbox"]])
    return sorted(by_id.values(), key=lambda s: s.name)


def boxes_from_mask(path: str | Path) -> list[list[float]]:
    """One ``[x, y, w, h]`` per label value > 0 of a label mask file (its pixels' extent);
    the dataset catalog's own reading of masks, so the panel and the loaders agree."""
    from ..core.datasets.images import mask_boxes

    return [[float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"])]
            for b in mask_boxes(Path(path).read_bytes())]


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_masks(folder: str | Path, masks_dir: str = "masks") -> list[Sample]:
    """Images of ``folder`` with boxes from ``folder/masks/<stem>.*`` label masks."""
    folder = Path(folder)
    masks = {p.stem: p for p in _images(folder / masks_dir)}
    out = []
    for p in _images(folder):
        if p.stem in masks:
            out.append(Sample(p.stem, p, boxes_from_mask(masks[p.stem])))
    return out


def load_csv(path: str | Path, images_dir: str | Path | None = None) -> list[Sample]:
    """Images named in a CSV ``image,x,y,w,h`` (an image without boxes: empty x)."""
    path = Path(path)
    root = Path(images_dir) if images_dir else path.parent
    samples: dict[str, Sample] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            name = row["image"]
            s = samples.setdefault(name, Sample(Path(name).stem, root / name))
            if (row.get("x") or "").strip():
                s.boxes.append([float(row[k]) for k in ("x", "y", "w", "h")])
    return sorted(samples.values(), key=lambda s: s.name)


def load_folder(folder: str | Path) -> list[Sample]:
    """Samples of a dataset folder, annotations found as the module docstring says."""
    folder = Path(folder)
    coco = _coco_file(folder)
    if coco is not None:
        return load_coco(coco)
    if (folder / "masks").is_dir():
        return load_masks(folder)
    csvs = sorted(folder.glob("*.csv"))
    if csvs:
        return load_csv(csvs[0])
    raise FileNotFoundError(f"{folder} has no annotations: expected a COCO JSON file, a masks/ "
                            "folder of label masks, or a CSV image,x,y,w,h")


# --- split ------------------------------------------------------------------------------------

def is_validation(name: str, val_fraction: float, split_seed: int = 0) -> bool:
    """Whether image ``name`` belongs to the validation set.

    A hash of (seed, name), not a shuffle: an image keeps its side when the dataset grows or
    another run trains with another seed, so runs compare on the same validation images.
    """
    h = hashlib.blake2b(f"{split_seed}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2 ** 64 < val_fraction


def split(samples: list[Sample], val_fraction: float = 0.25,
          split_seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """``(train, val)``; both non-empty when there are at least two samples."""
    val = [s for s in samples if is_validation(s.name, val_fraction, split_seed)]
    train = [s for s in samples if not is_validation(s.name, val_fraction, split_seed)]
    if len(samples) >= 2 and not val:  # tiny sets: the hash may pick none
        val, train = train[-1:], train[:-1]
    if len(samples) >= 2 and not train:
        train, val = val[:1], val[1:]
    return train, val


def stats(samples: list[Sample]) -> dict:
    """What the explore notebook and the prepare step report about a set."""
    counts = [len(s.boxes) for s in samples]
    sizes = [max(b[2], b[3]) for s in samples for b in s.boxes]
    return {"images": len(samples), "cells": int(sum(counts)),
            "cells_per_image_mean": float(np.mean(counts)) if counts else 0.0,
            "cells_per_image_max": int(max(counts)) if counts else 0,
            "cell_size_px_median": float(np.median(sizes)) if sizes else 0.0}
