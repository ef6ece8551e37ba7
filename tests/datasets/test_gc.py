"""Garbage collection of unreferenced objects, on a local directory and a real SeaweedFS S3."""
from __future__ import annotations

import time

import blake3
import pytest
import sqlalchemy as sa

from jupyter_mlops.backends.store import LocalStore
from jupyter_mlops.core import clock
from jupyter_mlops.core.datasets.catalog import DatasetCatalog
from jupyter_mlops.core.datasets.gc import collect_garbage
from jupyter_mlops.core.datasets.manifest import FileEntry, Manifest
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.errors import Conflict, NotFound
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.core.roles import USE, Caller

ME = Caller("dana", scopes=frozenset({USE}))
HOUR = 3600


def h(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


@pytest.fixture
def catalog(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield DatasetCatalog(db, Projects(db))
    db.dispose()


@pytest.fixture
def later():
    """Move the clock two hours ahead (stored objects then look two hours old)."""
    def move(seconds=2 * HOUR):
        clock.set_clock(clock.ManualClock(time.time() + seconds))
    yield move
    clock.set_clock(None)


def publish(catalog, store, name: str, contents: list[bytes]):
    for c in contents:
        store.put_bytes(h(c), c)
    m = Manifest.build(FileEntry(f"f{i}.txt", len(c), h(c)) for i, c in enumerate(contents))
    return catalog.publish_stored(ME, name, m, store.missing)


def test_dry_run_counts_only_old_unreferenced_objects(catalog, store, later):
    publish(catalog, store, "kept", [b"referenced one", b"referenced two"])
    store.put_bytes(h(b"orphan"), b"orphan")  # a publish that died before recording
    now = collect_garbage(catalog, store, grace_seconds=HOUR)
    assert (now["objects"], now["unreferenced"], now["deletable"], now["kept_recent"]) == \
        (3, 1, 0, 1)  # young: it may belong to a publish still running
    later()
    r = collect_garbage(catalog, store, grace_seconds=HOUR)
    assert r["dry_run"] and r["deletable"] == 1 and r["deletable_bytes"] == len(b"orphan")
    assert r["deleted"] == 0 and not store.missing([h(b"orphan")])  # dry run: still there


def test_collection_deletes_old_orphans_and_never_referenced_objects(catalog, store, later):
    publish(catalog, store, "kept", [b"stays a", b"stays b"])
    for orphan in (b"orphan 1", b"orphan 2" * 50):
        store.put_bytes(h(orphan), orphan)
    later()
    r = collect_garbage(catalog, store, dry_run=False, grace_seconds=HOUR)
    assert r["deleted"] == 2 and r["deletable_bytes"] == len(b"orphan 1") + 400
    assert store.missing([h(b"orphan 1"), h(b"orphan 2" * 50), h(b"stays a"), h(b"stays b")]) \
        == {h(b"orphan 1"), h(b"orphan 2" * 50)}
    assert store.get_bytes(h(b"stays a")) == b"stays a"
    assert collect_garbage(catalog, store, grace_seconds=HOUR)["unreferenced"] == 0


def test_a_record_after_collection_of_its_objects_is_refused(catalog, store):
    """The race: a publish found an old orphan stored (so did not send it), then a collection
    deleted it before the version was recorded. Recording checks under the store lock."""
    store.put_bytes(h(b"old orphan"), b"old orphan")
    collect_garbage(catalog, store, dry_run=False, grace_seconds=0)
    m = Manifest.build([FileEntry("a.txt", 10, h(b"old orphan"))])
    with pytest.raises(Conflict, match="not in the store"):
        catalog.publish_stored(ME, "holes", m, store.missing)
    assert catalog.list(ME) == []


def test_collection_waits_for_a_record_in_progress(catalog, store):
    """Recording holds the store lock: a collection started meanwhile sees the new version."""
    import threading

    data = b"being recorded"
    store.put_bytes(h(data), data)
    m = Manifest.build([FileEntry("a.txt", len(data), h(data))])
    entered, release = threading.Event(), threading.Event()

    def slow_missing(hashes):
        entered.set()
        release.wait(10)
        return store.missing(hashes)

    class Watched:
        """The store lock, telling when someone asks for it."""

        def __init__(self, lock):
            self.lock, self.asked = lock, threading.Event()

        def __enter__(self):
            self.asked.set()
            return self.lock.__enter__()

        def __exit__(self, *exc):
            return self.lock.__exit__(*exc)

    t = threading.Thread(target=catalog.publish_stored, args=(ME, "slow", m, slow_missing))
    t.start()
    assert entered.wait(10)  # the record holds the store lock now
    lock = catalog.store_lock = Watched(catalog.store_lock)
    result = {}
    gc = threading.Thread(target=lambda: result.update(
        collect_garbage(catalog, store, dry_run=False, grace_seconds=0)))
    gc.start()
    assert lock.asked.wait(10)  # the collection has come to the lock the record holds
    assert not result
    release.set()
    t.join(10)
    gc.join(10)
    assert result["deleted"] == 0 and store.get_bytes(h(data)) == data


def test_local_collection_removes_dead_partial_uploads(tmp_path, catalog, later):
    store = LocalStore(tmp_path / "store")
    w = store.writer(h(b"never finished"), 100)
    w.write(b"never")  # the uploader died here; its temporary file stays behind
    later()
    r = collect_garbage(catalog, store, dry_run=False, grace_seconds=HOUR)
    assert r["partial_uploads_removed"] == 1 and not any((tmp_path / "store/tmp").iterdir())


def test_a_catalog_from_before_the_object_index_fills_it_once(catalog, tmp_path):
    """Versions recorded before ``dataset_objects`` existed: the index is rebuilt at start,
    so their objects stay readable by the dataset's readers (and by no one else)."""
    store = LocalStore(tmp_path / "store")
    publish(catalog, store, "old-cells", [b"recorded before the index"])
    with catalog.db.tx() as conn:
        conn.execute(sa.text("DELETE FROM dataset_objects"))
    with pytest.raises(NotFound):
        catalog.require_object(ME, h(b"recorded before the index"))
    again = DatasetCatalog(catalog.db, Projects(catalog.db))
    again.require_object(ME, h(b"recorded before the index"))  # readable again
    with pytest.raises(NotFound):
        again.require_object(ME, h(b"never published"))
