"""Annotation provenance: which objects of which image changed, by whom, when, with what tool.

Two versions' annotations are compared per image, object by object: the boxes of an image
(COCO, CSV or mask, see ``annotations``) in the old version are matched to those in the new one
greedily by overlap (intersection over union, best pairs first). A pair that overlaps almost
entirely (IoU >= ``SAME``) with the same label is unchanged; a pair that still overlaps
(IoU >= ``MOVED``) was moved or resized (or relabelled); what is left unmatched was removed
(old) or added (new). Only images whose annotation file changed are read, and each annotation
file is parsed once, so a diff of 2,000 images with one COCO file parses two documents.

Every version records, per image whose objects changed against its parent, who published the
change, when, with what tool (as the publisher names it) and from which parent version: the
table ``dataset_annotation_changes``, written in the version's own transaction.
"""
from __future__ import annotations

import posixpath
from typing import Callable

import sqlalchemy as sa

from ..errors import InvalidInput
from . import annotations as ann
from .images import mask_boxes

SAME = 0.9
MOVED = 0.1
MAX_DETAILED = 200  # images whose boxes a diff carries; beyond that, counts only

SCHEMA = [
    """CREATE TABLE dataset_annotation_changes (
        dataset VARCHAR(63) NOT NULL,
        number INTEGER NOT NULL,
        path VARCHAR(1024) NOT NULL,
        annotation VARCHAR(1024),
        parent INTEGER,
        author VARCHAR(255) NOT NULL,
        at FLOAT NOT NULL,
        tool VARCHAR(255) NOT NULL DEFAULT '',
        added INTEGER NOT NULL,
        removed INTEGER NOT NULL,
        moved INTEGER NOT NULL,
        PRIMARY KEY (dataset, number, path)
    )""",
]


def iou(a: dict, b: dict) -> float:
    ax2, ay2, bx2, by2 = a["x"] + a["w"], a["y"] + a["h"], b["x"] + b["w"], b["y"] + b["h"]
    iw = max(0.0, min(ax2, bx2) - max(a["x"], b["x"]))
    ih = max(0.0, min(ay2, by2) - max(a["y"], b["y"]))
    inter = iw * ih
    union = a["w"] * a["h"] + b["w"] * b["h"] - inter
    return inter / union if union > 0 else 0.0


def _label(box: dict) -> str | None:
    label = str(box.get("label", ""))
    return None if label.startswith("instance ") else label  # mask ids carry no meaning


def match(old: list[dict], new: list[dict]) -> dict:
    """``{"added", "removed", "moved": [{"old", "new", "iou"}], "unchanged": n}``."""
    pairs = sorted(((iou(a, b), i, j) for i, a in enumerate(old) for j, b in enumerate(new)),
                   reverse=True)
    used_old, used_new = set(), set()
    moved, unchanged = [], 0
    for score, i, j in pairs:
        if score < MOVED:
            break
        if i in used_old or j in used_new:
            continue
        used_old.add(i)
        used_new.add(j)
        if score >= SAME and _label(old[i]) == _label(new[j]):
            unchanged += 1
        else:
            moved.append({"old": old[i], "new": new[j], "iou": round(score, 3)})
    return {"added": [b for j, b in enumerate(new) if j not in used_new],
            "removed": [a for i, a in enumerate(old) if i not in used_old],
            "moved": moved, "unchanged": unchanged}


class _Boxes:
    """The boxes of images in one manifest, each annotation file read and parsed once."""

    def __init__(self, manifest, read: Callable[[str], bytes]):
        self.entries = manifest.by_path()
        self.read = read
        self.parsed: dict[str, object] = {}

    def annotation_hash(self, image: str) -> tuple[str | None, str | None]:
        e = self.entries.get(image)
        if e is None or not e.annotation or e.annotation not in self.entries:
            return None, None
        return e.annotation, self.entries[e.annotation].hash

    def __call__(self, image: str) -> list[dict]:
        path, h = self.annotation_hash(image)
        if path is None:
            return []
        if h not in self.parsed:
            data = self.read(h)
            low = path.lower()
            self.parsed[h] = (ann.parse_coco(data) or {}) if low.endswith(".json") else \
                ann.parse_csv(data) if low.endswith(".csv") else mask_boxes(data)
        doc = self.parsed[h]
        if isinstance(doc, dict):  # COCO: file names relative to the document's folder
            base = posixpath.dirname(path)
            rel = posixpath.relpath(image, base) if base else image
            return doc.get(rel) or doc.get(image) or []
        return doc


def object_diff(old, new, read: Callable[[str], bytes], detailed: int = MAX_DETAILED) -> dict:
    """Per image present in both manifests (by path), the objects added, removed and moved.

    ``read(hash)`` returns an object's bytes. Images whose annotation file (and its content)
    is the same in both are not read. Returns ``{"images": [...], "totals": {...},
    "truncated": bool}``; the first ``detailed`` images carry their boxes, the rest counts.
    """
    a, b = _Boxes(old, read), _Boxes(new, read)
    out, totals = [], {"images": 0, "added": 0, "removed": 0, "moved": 0}
    for e in new.entries:
        if e.kind != "image" or e.path not in a.entries:
            continue
        if a.annotation_hash(e.path) == b.annotation_hash(e.path):
            continue
        m = match(a(e.path), b(e.path))
        if not (m["added"] or m["removed"] or m["moved"]):
            continue
        counts = {k: len(m[k]) for k in ("added", "removed", "moved")}
        totals["images"] += 1
        for k, n in counts.items():
            totals[k] += n
        item = {"path": e.path, "hash": e.hash, "annotation": b.annotation_hash(e.path)[0]
                or a.annotation_hash(e.path)[0], "width": e.width, "height": e.height,
                **counts, "unchanged": m["unchanged"]}
        if len(out) < detailed:
            item["objects"] = {k: m[k] for k in ("added", "removed", "moved")}
        out.append(item)
    return {"images": out, "totals": totals, "truncated": len(out) > detailed}


def record(conn, dataset: str, number: int, parent: int | None, author: str, at: float,
           tool: str, changes: dict) -> None:
    """Write one version's per-image changes (inside the version's transaction)."""
    for item in changes["images"]:
        conn.execute(sa.text(
            "INSERT INTO dataset_annotation_changes (dataset, number, path, annotation, parent,"
            " author, at, tool, added, removed, moved) VALUES (:d, :n, :p, :a, :par, :au, :t,"
            " :tool, :ad, :rm, :mv)"),
            {"d": dataset, "n": number, "p": item["path"], "a": item["annotation"],
             "par": parent, "au": author, "t": at, "tool": tool, "ad": item["added"],
             "rm": item["removed"], "mv": item["moved"]})


def history(db, dataset: str, upto: int, path: str | None = None,
            after: int = 0) -> list[dict]:
    """Recorded changes of versions ``after < number <= upto`` (of one image when ``path``),
    oldest first."""
    sql = ("SELECT number, path, annotation, parent, author, at, tool, added, removed, moved"
           " FROM dataset_annotation_changes WHERE dataset = :d AND number > :a"
           " AND number <= :u")
    params = {"d": dataset, "a": after, "u": upto}
    if path is not None:
        sql += " AND path = :p"
        params["p"] = path
    rows = db.query(sql + " ORDER BY number, path", **params)
    for r in rows:
        r["version"] = f"v{r.pop('number')}"
        r["parent"] = f"v{r['parent']}" if r["parent"] else None
    return rows


def forget(conn, dataset: str) -> None:
    conn.execute(sa.text("DELETE FROM dataset_annotation_changes WHERE dataset = :d"),
                 {"d": dataset})


def check_tool(tool) -> str:
    """The annotation tool as the publisher names it: one short line of text."""
    if tool is None:
        return ""
    if not isinstance(tool, str) or len(tool) > 200 or any(ord(c) < 32 for c in tool):
        raise InvalidInput("tool must be one line of text of at most 200 characters "
                           "(the annotation tool, e.g. 'napari 0.5')")
    return tool.strip()
