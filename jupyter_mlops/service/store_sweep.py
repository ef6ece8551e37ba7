"""What the control plane tidies at start, before it accepts a publish.

- Partial uploads in the store (``ObjectStore.clean_partial``): all of them when this control
  plane holds the store alone (``ObjectStore.claim``: nothing can be uploading yet), else only
  those older than ``StoreSettings.partial_upload_grace_seconds`` (S3, or a directory another
  control plane writes to). With them, the per-user record of recent uploads forgets entries
  older than its bound (``core.datasets.uploads``).
- The shared dataset root (``<data_dir>/datasets``, readable by every local account): trees of
  versions whose materialisation was interrupted (``.vN.tmp-<pid>``), and every version of a
  dataset whose project does not hold everyone (left there before such versions stopped being
  materialised in it; their members read them through the API) or that was deleted (a crash
  between the delete and the removal of its folder). Versions of shared datasets
  recorded but not materialised (a crash between the two) are materialised again, in the
  background.

A publish is thereby complete or absent after a crash at any point: objects appear whole
(rename, or an atomic PUT), a version is one database transaction recorded after its objects
are stored and flushed, and what a crash leaves half-done is either invisible (an unreferenced
object, collected as garbage later) or swept here.
"""
from __future__ import annotations

import logging
import re
import shutil
import threading

from ..backends.store import LocalStore, StoreSettings
from ..core import clock
from ..core.errors import MlopsError
from ..core.datasets import folder

log = logging.getLogger("jupyter_mlops.service")

_PARTIAL_TREE = re.compile(r"^\.v\d+\.tmp-\d+$")


def shared_root(context):
    """The shared dataset root user servers and jobs read versions from in place."""
    return context.data_dir / "datasets"


def remove_tree(path) -> None:
    """Remove a tree of the shared root whose directories were made read-only (0555).

    Only directories are made writable again: files are hard links of store objects, whose
    mode belongs to the object (and to its other links)."""
    for d in [path, *(p for p in path.rglob("*") if p.is_dir() and not p.is_symlink())]:
        try:
            d.chmod(0o700)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)


def sweep_at_start(context, settings: StoreSettings) -> dict:
    """Sweep the store and the shared root (see the module docstring); returns counts."""
    store, catalog = context.store, context.datasets
    alone = store.claim()
    cutoff = clock.now() - (0 if alone else settings.partial_upload_grace_seconds)
    try:
        partial = store.clean_partial(cutoff)
    except MlopsError as e:  # an S3 store out of reach must not keep the control plane down
        log.warning("partial uploads not swept at start: %s", e.message)
        partial = None
    out = {"alone": alone, "partial_uploads": partial,
           "uploads_forgotten": catalog.uploads.sweep(),
           "partial_versions": 0, "private_removed": 0, "to_materialise": 0}
    root = shared_root(context)
    if root.is_dir():
        private = set(catalog.private_names())
        for ds in list(root.iterdir()):
            if ds.name in private:
                remove_tree(ds)
                out["private_removed"] += 1
                continue
            if not ds.is_dir() or ds.is_symlink():
                continue
            for v in list(ds.iterdir()):
                if _PARTIAL_TREE.match(v.name) and alone:
                    remove_tree(v)
                    out["partial_versions"] += 1
    if isinstance(store, LocalStore):
        missing = [(name, version) for name, version in catalog.shared_versions()
                   if not (root / name / version / ".mlops-version.json").exists()]
        out["to_materialise"] = len(missing)
        if missing:
            threading.Thread(target=_materialise, args=(catalog, store, root, missing),
                             name="materialise-shared", daemon=True).start()
    log.info("store sweep at start: %s", out)
    return out


def _materialise(catalog, store: LocalStore, root, missing) -> None:
    for name, version in missing:
        try:
            _, manifest = catalog.stored_manifest(name, version)
            folder.materialize(manifest, root / name / version,
                               lambda h, p: store.materialize(h, p, verify=False))
        except Exception as e:  # the API still serves the version; say why it is not in place
            log.warning("could not materialise %s@%s in the shared root: %s", name, version, e)
