"""Annotations beside the images: COCO JSON, per-image CSV boxes, per-image label masks.

Recognised layouts (all relative to the dataset root):

- any ``*.json`` holding COCO keys ``images`` and ``annotations``: ``file_name`` of each image
  is a path relative to the JSON file's folder (or to the root);
- ``<stem>.csv`` next to ``<stem>.png|tif``: one box per row, columns ``x,y,w,h`` (or
  ``xmin,ymin,xmax,ymax``), optional ``label``;
- ``<stem>_mask.png|tif`` next to the image, or ``masks/<stem>.png|tif`` in the image's folder
  or its parent: a label mask, each non-zero value one instance.
"""
from __future__ import annotations

import csv
import io
import json
import posixpath
from typing import Callable

from ..errors import InvalidInput
from .images import mask_boxes, mask_instances

MASK_SUFFIXES = (".png", ".tif", ".tiff")


def parse_coco(data: bytes) -> dict | None:
    """``{file_name: [box, ...]}`` of a COCO document, or None when it is not one."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) \
            or not isinstance(doc.get("annotations"), list):
        return None
    cats = {c.get("id"): c.get("name", str(c.get("id")))
            for c in doc.get("categories", []) if isinstance(c, dict)}
    names = {im.get("id"): im.get("file_name") for im in doc["images"] if isinstance(im, dict)}
    boxes: dict[str, list] = {n: [] for n in names.values() if isinstance(n, str)}
    for a in doc["annotations"]:
        if not isinstance(a, dict):
            continue
        name = names.get(a.get("image_id"))
        bbox = a.get("bbox")
        if not isinstance(name, str) or not (isinstance(bbox, list) and len(bbox) == 4):
            continue
        box = {"x": bbox[0], "y": bbox[1], "w": bbox[2], "h": bbox[3],
               "label": cats.get(a.get("category_id"), "object")}
        seg = a.get("segmentation")
        if isinstance(seg, list) and seg and isinstance(seg[0], list):
            box["polygon"] = seg[0]
        boxes[name].append(box)
    return boxes


def parse_csv(data: bytes) -> list[dict]:
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise InvalidInput(f"unreadable CSV annotation: {e}") from None
    boxes = []
    for r in rows:
        r = {k.strip().lower(): v for k, v in r.items() if k}
        try:
            if {"x", "y", "w", "h"} <= r.keys():
                x, y, w, h = (float(r[k]) for k in ("x", "y", "w", "h"))
            elif {"xmin", "ymin", "xmax", "ymax"} <= r.keys():
                x, y = float(r["xmin"]), float(r["ymin"])
                w, h = float(r["xmax"]) - x, float(r["ymax"]) - y
            else:
                continue
        except (TypeError, ValueError):
            continue
        boxes.append({"x": x, "y": y, "w": w, "h": h, "label": r.get("label") or "object"})
    return boxes


def _stem(path: str) -> tuple[str, str]:
    d, base = posixpath.split(path)
    return d, base.rsplit(".", 1)[0]


def sidecars(image: str) -> list[tuple[str, str]]:
    """Candidate annotation files of one image, as ``(path, kind)`` in order of preference."""
    d, stem = _stem(image)
    join = (lambda *p: posixpath.join(d, *p)) if d else posixpath.join
    out = [(join(stem + ".csv"), "csv")]
    out += [(join(stem + "_mask" + s), "mask") for s in MASK_SUFFIXES]
    out += [(join("masks", stem + s), "mask") for s in MASK_SUFFIXES]
    parent = posixpath.dirname(d)
    if d:
        out += [(posixpath.join(parent, "masks", stem + s) if parent else
                 posixpath.join("masks", stem + s), "mask") for s in MASK_SUFFIXES]
    return out


def link(paths: list[str], images: list[str], read: Callable[[str], bytes]) -> dict[str, dict]:
    """Which annotation file describes each image, and how many objects it holds.

    ``read(path)`` returns a file's bytes. Returns ``{image: {"annotation": path, "objects": n,
    "kind": ...}}`` and, under the key ``None``, the set of paths that are annotation files.
    """
    present = set(paths)
    found: dict = {}
    annotation_files: set[str] = set()
    side: dict[str, tuple[str, str]] = {}
    for img in images:  # sidecars first: a mask is an annotation even when it looks an image
        for cand, kind in sidecars(img):
            if cand in present and cand != img:
                side[img] = (cand, kind)
                annotation_files.add(cand)
                break
    for p in paths:
        if p.lower().endswith(".json"):
            coco = parse_coco(read(p))
            if coco is None:
                continue
            annotation_files.add(p)
            base = posixpath.dirname(p)
            for name, boxes in coco.items():
                for cand in (posixpath.join(base, name) if base else name, name):
                    if cand in present:
                        found.setdefault(cand, {"annotation": p, "objects": len(boxes),
                                                "kind": "coco"})
                        break
    for img in images:
        if img in found or img in annotation_files or img not in side:
            continue
        cand, kind = side[img]
        n = len(parse_csv(read(cand))) if kind == "csv" else mask_instances(read(cand))
        found[img] = {"annotation": cand, "objects": n, "kind": kind}
    found[None] = annotation_files
    return found


def boxes_for(image: str, annotation: str, data: bytes) -> list[dict]:
    """The boxes of ``image`` in the annotation file ``annotation`` (its bytes ``data``)."""
    if annotation.lower().endswith(".json"):
        coco = parse_coco(data) or {}
        base = posixpath.dirname(annotation)
        rel = posixpath.relpath(image, base) if base else image
        return coco.get(rel) or coco.get(image) or []
    if annotation.lower().endswith(".csv"):
        return parse_csv(data)
    return mask_boxes(data)
