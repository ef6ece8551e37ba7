"""Datasets: manifests of content-addressed files, versions, diffs, splits, folder status.

``manifest`` (the model, diff, splits), ``folder`` (scan, parallel hashing, stat cache, status,
publish preparation), ``annotations`` (COCO/CSV/mask), ``images`` (shapes, renderings) and
``catalog`` (names, versions and tags in the control plane database).
"""
from .manifest import FileEntry, Manifest, Split, diff, safe_relpath

__all__ = ["FileEntry", "Manifest", "Split", "diff", "safe_relpath"]
