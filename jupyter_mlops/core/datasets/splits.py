"""Train/val/test splits that stay put as a dataset changes.

An image's split is a pure function of its content hash and the split's seed: blake3 of
``"<seed>:<content hash>"`` read as a number in [0, 1), compared with the cumulative fractions
(train, then val, then test). Nothing about the other images enters, so adding, removing or
renaming images never moves an image that stays. Why the content hash and not the path:

- a renamed or moved image keeps its split (a path identity would re-draw it);
- two copies of the same image under different names always land in the same split, so a
  duplicate can never put a test image into training;
- the manifest holds the hash already; nothing else has to be kept stable.

The cost: an image whose pixels change (re-exported, re-encoded) is a new image and is drawn
again. Annotations live in their own files, so correcting them never moves an image.

Explicit overrides (``{"<content hash>": "test"}``) win over the draw. They are keyed by
content too, so they follow an image across renames, and the catalog carries a version's split
(seed, fractions and overrides) to the next version unless the publisher gives another.

Versions recorded before this rule used a seeded shuffle of the sorted paths; their manifests
carry no ``method`` and keep exactly the splits they were published with (``"shuffle"``).
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace

import blake3

from ..errors import InvalidInput

SPLITS = ("train", "val", "test")
METHODS = ("hash", "shuffle")


def split_point(seed: int, content_hash: str) -> float:
    """Where an image falls in [0, 1) for ``seed``: the same inputs, the same number."""
    digest = blake3.blake3(f"{seed}:{content_hash}".encode(), max_threads=1).digest(8)
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Split:
    """A seeded train/val/test split of the images (see the module's docstring).

    ``overrides`` maps content hashes (or, as given by a publisher, paths, resolved to
    hashes when the manifest is built) to the split they must be in.
    """

    seed: int = 0
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    overrides: tuple[tuple[str, str], ...] = ()
    method: str = "hash"

    @classmethod
    def from_dict(cls, d: dict | None, legacy: bool = False) -> "Split | None":
        """``legacy``: a stored manifest without ``method`` was split by the old shuffle."""
        if not d:
            return None
        if not isinstance(d, dict):
            raise InvalidInput("split must be an object {seed, train, val, test, overrides}")
        try:
            s = cls(seed=int(d.get("seed", 0)), train=float(d.get("train", 0.8)),
                    val=float(d.get("val", 0.1)), test=float(d.get("test", 0.1)),
                    overrides=_overrides(d.get("overrides")),
                    method=str(d.get("method") or ("shuffle" if legacy else "hash")))
        except (TypeError, ValueError, OverflowError):
            raise InvalidInput("split needs an integer seed and numeric train/val/test") from None
        if min(s.train, s.val, s.test) < 0 or abs(s.train + s.val + s.test - 1) > 1e-6:
            raise InvalidInput("split fractions must be >= 0 and add up to 1")
        if s.method not in METHODS:
            raise InvalidInput(f"split method must be one of {', '.join(METHODS)}")
        return s

    def to_dict(self) -> dict:
        out = {"seed": self.seed, "train": self.train, "val": self.val, "test": self.test,
               "method": self.method}
        if self.overrides:
            out["overrides"] = dict(self.overrides)
        return out

    def which(self, content_hash: str, forced: dict | None = None) -> str:
        """The split of an image with this content (overrides first; ``forced``: the
        overrides as a dict, when the caller has made it once for many images)."""
        forced = (dict(self.overrides) if forced is None else forced).get(content_hash)
        if forced:
            return forced
        x = split_point(self.seed, content_hash)
        return "train" if x < self.train else "val" if x < self.train + self.val else "test"


def _overrides(raw) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise InvalidInput("split overrides must be an object {image path or hash: split}")
    out = []
    for k, v in raw.items():
        if not isinstance(k, str) or not k:
            raise InvalidInput("a split override needs an image path or content hash")
        if v is not None and v not in SPLITS:  # None drops an override carried over
            raise InvalidInput(f"split override for {k!r} must be one of "
                               f"{', '.join(SPLITS)} (or null to drop it), not {v!r}")
        out.append((k, v))
    return tuple(sorted(out))


def resolve_overrides(split: Split, images: dict[str, str]) -> Split:
    """``split`` with overrides given by path turned into content hashes.

    ``images`` is ``{path: content hash}`` of the version's images. A key that is neither a
    known hash nor one of the images is refused, so a typo never silently does nothing;
    overrides carried from an earlier version for content no longer present are kept (the
    image may come back).
    """
    hashes = set(images.values())
    out = {}
    for k, v in split.overrides:
        if k in images:
            out[images[k]] = v
        elif len(k) == 64 and all(c in "0123456789abcdef" for c in k):
            out[k] = v
        elif k not in hashes:
            raise InvalidInput(f"split override names {k!r}, which is not an image of this "
                               "version")
    return replace(split, overrides=tuple(sorted(out.items())))


def carry(new: Split | None, parent: Split | None) -> Split | None:
    """The split of a new version: the parent's when the publisher gives none, else the one
    given with the parent's overrides under its own (its own win; ``None`` drops one).

    A parent split by the old shuffle is carried as its seed and fractions under the stable
    rule, so from then on images stay put.
    """
    if parent is None:
        base = new
    elif new is None:
        base = replace(parent, method="hash")
    else:
        base = replace(new, overrides=tuple(sorted(
            {**dict(parent.overrides), **dict(new.overrides)}.items())))
    if base is None:
        return None
    return replace(base, overrides=tuple((k, v) for k, v in base.overrides if v is not None))


def assign(entries: list, split: Split | None) -> list:
    """Entries (``FileEntry``) with ``split`` set on images."""
    if split is None:
        return [replace(e, split=None) for e in entries]
    if split.method == "shuffle":
        return _shuffle(entries, split)
    forced = dict(split.overrides)
    return [replace(e, split=split.which(e.hash, forced) if e.kind == "image" else None)
            for e in entries]


def _shuffle(entries: list, split: Split) -> list:
    """The rule of versions recorded before splits were stable (kept to read them as made)."""
    images = sorted(e.path for e in entries if e.kind == "image")
    random.Random(split.seed).shuffle(images)
    n = len(images)
    n_train = round(n * split.train)
    n_val = round(n * split.val)
    where = {}
    for i, p in enumerate(images):
        where[p] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    return [replace(e, split=where.get(e.path)) for e in entries]


def moves(old: list, new: list, limit: int = 50) -> dict:
    """What moved between two versions' splits, images matched by content.

    ``old`` and ``new`` are the entries of two manifests. ``kept`` counts images present in
    both; ``moved`` those of them whose split differs, by ``"from->to"``, with up to ``limit``
    examples; ``added`` and ``removed`` count images by split.
    """
    a = {e.hash: e for e in old if e.kind == "image"}
    b = {e.hash: e for e in new if e.kind == "image"}
    kept = a.keys() & b.keys()
    moved = sorted((b[h].path, a[h].split, b[h].split) for h in kept
                   if a[h].split != b[h].split)
    return {
        "kept": len(kept),
        "moved": len(moved),
        "by_move": dict(Counter(f"{f}->{t}" for _, f, t in moved)),
        "examples": [{"path": p, "from": f, "to": t} for p, f, t in moved[:limit]],
        "added": dict(Counter(b[h].split or "none" for h in b.keys() - kept)),
        "removed": dict(Counter(a[h].split or "none" for h in a.keys() - kept)),
    }
