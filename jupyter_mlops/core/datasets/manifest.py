"""The manifest of a dataset version: what files it holds, by content, and what they are.

A manifest is an immutable list of :class:`FileEntry` sorted by path. Its id is the blake3 hash
of its canonical JSON, so two publishes of the same content under the same split have the same
id. Versions never change; only names and tags pointing at them move.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Iterable

import blake3

from ..errors import InvalidInput
from .splits import Split, assign, moves, resolve_overrides

HASH_RE = re.compile(r"^[0-9a-f]{64}$")
# Dataset names (and tags), also as URL route patterns of the server extension and the control
# plane, so a name the catalog accepts is always routable.
NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,62}"
NAME_RE = re.compile(rf"^{NAME_PATTERN}$")
# A version (``vN``) or tag in a URL; the catalog resolves it or answers 404.
REF_PATTERN = r"[A-Za-z0-9._-]{1,63}"
VERSION_RE = re.compile(r"^v[0-9]+$")
IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"}
MAX_PATH = 1024
BAD_CHARS = re.compile(r"[\x00-\x1f\\]")  # control characters and backslashes


def check_name(name: str, what: str = "dataset name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInput(
            f"{what} {name!r} is invalid: use 1-63 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return name


def check_hash(h: str) -> str:
    if not isinstance(h, str) or not HASH_RE.match(h):
        raise InvalidInput(f"{h!r} is not a blake3 content hash (64 lowercase hex digits)")
    return h


def safe_relpath(path: str) -> str:
    """``path`` if it is a clean relative POSIX path inside a dataset, else :class:`InvalidInput`.

    Refused: absolute paths, ``..`` or ``.`` parts, empty parts, backslashes, NUL and control
    characters. (Symlinks are checked against the real root when a folder is scanned.)
    """
    if not isinstance(path, str) or not path:
        raise InvalidInput("a file path is empty")
    if len(path) > MAX_PATH:
        raise InvalidInput(f"file path longer than {MAX_PATH} characters: {path[:80]}...")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise InvalidInput(f"absolute paths are refused: {path!r}")
    if BAD_CHARS.search(path):
        raise InvalidInput(f"file path {path!r} contains a backslash or a control character")
    parts = path.split("/")
    for p in parts:
        if p in ("", ".", ".."):
            raise InvalidInput(f"file path {path!r} leaves the dataset root or is not normalised")
    return path


def is_image(path: str) -> bool:
    dot = path.rfind(".")
    return dot >= 0 and path[dot:].lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class FileEntry:
    """One file of a version. Images carry their shape; annotated images their object count."""

    path: str
    size: int
    hash: str
    kind: str = "file"  # "image" | "annotation" | "file"
    width: int | None = None
    height: int | None = None
    channels: int | None = None
    dtype: str | None = None
    annotation: str | None = None  # path of the file holding this image's annotations
    objects: int | None = None  # annotated objects (boxes or mask instances)
    split: str | None = None  # "train" | "val" | "test" for images when a split was asked

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> "FileEntry":
        if not isinstance(d, dict):
            raise InvalidInput("each file of a manifest must be an object")
        try:
            entry = cls(**{k: d.get(k) for k in cls.__dataclass_fields__ if k in d})
        except TypeError as e:
            raise InvalidInput(f"bad file entry: {e}") from None
        safe_relpath(entry.path)
        check_hash(entry.hash)
        if not isinstance(entry.size, int) or entry.size < 0:
            raise InvalidInput(f"bad size for {entry.path!r}")
        if entry.kind not in ("image", "annotation", "file"):
            raise InvalidInput(f"bad kind {entry.kind!r} for {entry.path!r}")
        if entry.split not in (None, "train", "val", "test"):
            raise InvalidInput(f"bad split {entry.split!r} for {entry.path!r}")
        return entry


@dataclass(frozen=True)
class Manifest:
    entries: tuple[FileEntry, ...]
    split: Split | None = None
    id: str = field(default="")

    @classmethod
    def build(cls, entries: Iterable[FileEntry], split: Split | None = None) -> "Manifest":
        by_path: dict[str, FileEntry] = {}
        for e in entries:
            if e.path in by_path:
                raise InvalidInput(f"file {e.path!r} appears twice")
            by_path[e.path] = e
        if split is not None and split.overrides:
            split = resolve_overrides(split, {p: e.hash for p, e in by_path.items()
                                              if e.kind == "image"})
        ordered = assign([by_path[p] for p in sorted(by_path)], split)
        body = json.dumps({"files": [e.to_dict() for e in ordered],
                           "split": split.to_dict() if split else None},
                          sort_keys=True, separators=(",", ":"))
        return cls(tuple(ordered), split, blake3.blake3(body.encode()).hexdigest())

    @classmethod
    def from_dict(cls, d: dict, stored: bool = False) -> "Manifest":
        """``stored``: read from the catalog, where a split without ``method`` was made by the
        shuffle of versions recorded before splits were stable (kept as they were made)."""
        files = d.get("files")
        if not isinstance(files, list):
            raise InvalidInput("a manifest needs a list 'files'")
        raw = d.get("split")
        legacy = stored and isinstance(raw, dict) and "method" not in raw
        return cls.build((FileEntry.from_dict(f) for f in files), Split.from_dict(raw, legacy))

    def to_dict(self) -> dict:
        return {"id": self.id, "files": [e.to_dict() for e in self.entries],
                "split": self.split.to_dict() if self.split else None}

    def by_path(self) -> dict[str, FileEntry]:
        return {e.path: e for e in self.entries}

    def index(self) -> dict[str, str]:
        """``{path: hash}``: all a folder status needs."""
        return {e.path: e.hash for e in self.entries}

    def summary(self) -> dict:
        images = [e for e in self.entries if e.kind == "image"]
        sizes = Counter(f"{e.width}x{e.height}" for e in images if e.width)
        splits = Counter(e.split for e in images if e.split)
        annotated = [e for e in images if e.objects is not None]
        return {
            "files": len(self.entries),
            "bytes": sum(e.size for e in self.entries),
            "images": len(images),
            "image_sizes": dict(sizes.most_common(10)),
            "annotated_images": len(annotated),
            "objects": sum(e.objects or 0 for e in annotated),
            "annotation_files": sum(1 for e in self.entries if e.kind == "annotation"),
            "splits": dict(splits),
            "split": self.split.to_dict() if self.split else None,
        }


def diff(old: Manifest, new: Manifest) -> dict:
    """Per-file differences from ``old`` to ``new``: added, removed, changed (content differs)."""
    a, b = old.by_path(), new.by_path()
    added = [b[p].to_dict() for p in sorted(b.keys() - a.keys())]
    removed = [a[p].to_dict() for p in sorted(a.keys() - b.keys())]
    changed = [{"path": p, "old": a[p].to_dict(), "new": b[p].to_dict()}
               for p in sorted(a.keys() & b.keys()) if a[p].hash != b[p].hash]
    unchanged = sum(1 for p in a.keys() & b.keys() if a[p].hash == b[p].hash)
    out = {"added": added, "removed": removed, "changed": changed, "unchanged": unchanged}
    if old.split and new.split:  # a version without a split has nothing to move from
        out["split_moves"] = moves(old.entries, new.entries)
    return out
