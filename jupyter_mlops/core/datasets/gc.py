"""Garbage collection of store objects that no version references any more.

Objects become unreferenced when a publish dies after uploading (its version is never recorded)
or, later, if versions are ever removed. The race to avoid: deleting an object that a publish in
progress has uploaded, or found already stored, but not yet recorded. Two rules close it:

- an object younger than the grace period is never deleted, so the uploads of a running
  publish survive (grace is configurable; the default, one day, outlasts any publish);
- recording a version and collecting garbage hold the catalog's store lock, and recording checks
  inside it that every object of the manifest is present. A publish that relied on an old
  unreferenced object deleted a moment earlier is refused with 409 instead of recording a
  version with a hole; the client then uploads what is missing and records again.
"""
from __future__ import annotations

from typing import Protocol

from .. import clock
from ..errors import InvalidInput

DEFAULT_GRACE_SECONDS = 24 * 3600


class GarbageStore(Protocol):
    def list_objects(self): ...

    def delete(self, hashes: list[str]) -> None: ...

    def clean_partial(self, older_than: float) -> int: ...


def collect_garbage(catalog, store: GarbageStore, dry_run: bool = True,
                    grace_seconds: float = DEFAULT_GRACE_SECONDS) -> dict:
    """Find (and unless ``dry_run``, delete) unreferenced objects older than the grace period.

    Returns counts and bytes: ``objects`` stored, ``unreferenced``, ``deletable`` (old enough)
    with ``deletable_bytes``, ``kept_recent`` (unreferenced but within the grace period).
    """
    if not isinstance(grace_seconds, (int, float)) or grace_seconds < 0:
        raise InvalidInput("grace_seconds must be a number >= 0")
    with catalog.store_lock:
        referenced = catalog.referenced_hashes()
        cutoff = clock.now() - grace_seconds
        total = total_bytes = 0
        unreferenced, deletable = [], []
        for o in store.list_objects():
            total += 1
            total_bytes += o.size
            if o.hash in referenced:
                continue
            unreferenced.append(o)
            if o.mtime < cutoff:
                deletable.append(o)
        partial = 0
        if not dry_run:
            store.delete([o.hash for o in deletable])
            partial = store.clean_partial(cutoff)
    return {
        "dry_run": dry_run,
        "grace_seconds": grace_seconds,
        "objects": total,
        "bytes": total_bytes,
        "referenced": len(referenced),
        "unreferenced": len(unreferenced),
        "deletable": len(deletable),
        "deletable_bytes": sum(o.size for o in deletable),
        "kept_recent": len(unreferenced) - len(deletable),
        "deleted": 0 if dry_run else len(deletable),
        "partial_uploads_removed": partial,
    }
