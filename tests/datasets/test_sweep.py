"""What a control plane finds at start after a crash mid-publish, and sweeps: partial uploads
in the store's tmp directory (all of them when it holds the store alone; only old ones when
another control plane writes there too), half-built versions in the shared root, and versions
recorded but never materialised there."""
from __future__ import annotations

import os
import time

import blake3
import pytest

from jupyter_mlops.backends.store import LocalStore, StoreSettings
from jupyter_mlops.core.datasets.manifest import FileEntry, Manifest
from jupyter_mlops.core.roles import USE, Caller
from jupyter_mlops.service.store_sweep import sweep_at_start
from tests.fixtures import until


@pytest.fixture
def start(tmp_path):
    """Build the control plane's context as a (re)start does; each call is a new process's."""
    from jupyter_mlops.service.app import MlopsService

    built = []

    def build():
        app = MlopsService()
        app.parse_command_line([f"--MlopsService.data_dir={tmp_path / 'data'}"])
        built.append(app.build_context())
        MlopsService.clear_instance()
        return built[-1]
    yield build
    for context in built:
        context.db.dispose()


def _interrupted_upload(store: LocalStore, data: bytes) -> None:
    """What a control plane killed mid-upload leaves: part of an object in tmp/."""
    w = store.writer(blake3.blake3(data).hexdigest(), len(data))
    w.write(data[: len(data) // 2])
    w.f.close()  # the process died: no commit, no abort


def test_partial_uploads_are_swept_at_restart(start):
    first = start()
    store = first.store
    kept = b"a whole object"
    store.put_bytes(blake3.blake3(kept).hexdigest(), kept)
    _interrupted_upload(store, b"half of an object that never arrived" * 100)
    half_built = first.data_dir / "datasets" / "cells" / ".v3.tmp-4242"
    (half_built / "sub").mkdir(parents=True)
    (half_built / "sub").chmod(0o555)
    assert len(list((store.root / "tmp").iterdir())) == 1
    # When the control plane starts again
    again = start()
    out = sweep_at_start(again, StoreSettings())
    # Then the partial file and the half-built version are gone, the stored object stays
    assert out["alone"] and out["partial_uploads"] == 1 and out["partial_versions"] == 1
    assert list((again.store.root / "tmp").iterdir()) == []
    assert not half_built.exists()
    assert again.store.get_bytes(blake3.blake3(kept).hexdigest()) == kept


def test_with_another_writer_only_old_partial_uploads_go(start):
    other = start()
    assert other.store.claim()  # another control plane writes to this store
    _interrupted_upload(other.store, b"an upload under way right now" * 10)
    _interrupted_upload(other.store, b"an upload that died two hours ago" * 10)
    tmp = other.store.root / "tmp"
    by_age = sorted(tmp.iterdir(), key=lambda p: p.stat().st_mtime)
    old = by_age[0]
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    here = start()
    out = sweep_at_start(here, StoreSettings(partial_upload_grace_seconds=3600))
    assert not out["alone"] and out["partial_uploads"] == 1
    assert not old.exists() and len(list(tmp.iterdir())) == 1


def test_a_recorded_version_missing_from_the_shared_root_is_materialised(start):
    context = start()
    data = b"one image's worth of bytes"
    h = blake3.blake3(data).hexdigest()
    context.store.put_bytes(h, data)
    manifest = Manifest.build([FileEntry("a.bin", len(data), h)])
    # recorded, then the control plane died before materialising it in the shared root
    context.datasets.publish_stored(Caller("ivy", scopes=frozenset({USE})), "sweep-cells",
                                    manifest, context.store.missing)
    target = context.data_dir / "datasets" / "sweep-cells" / "v1"
    assert not target.exists()
    # a deleted dataset whose folder stayed in the shared root (a crash after the delete)
    gone = Manifest.build([FileEntry("b.bin", len(data), h)])
    context.datasets.publish_stored(Caller("ivy", scopes=frozenset({USE})), "gone-cells", gone,
                                    context.store.missing)
    context.datasets.delete(Caller("ivy", scopes=frozenset({USE})), "gone-cells")
    stale = context.data_dir / "datasets" / "gone-cells" / "v1"
    stale.mkdir(parents=True)
    out = sweep_at_start(start(), StoreSettings())
    assert out["to_materialise"] == 1 and out["private_removed"] == 1
    assert not stale.parent.exists()
    until((target / ".mlops-version.json").exists, 10, "the version materialised", every=0.05)
    assert (target / "a.bin").read_bytes() == data


def test_stale_multipart_uploads_are_aborted_on_s3(seaweed):
    import uuid

    from jupyter_mlops.backends.store import S3Store
    from tests.datasets.seaweed import ACCESS_KEY, SECRET_KEY

    store = S3Store("mlops-tests", seaweed.endpoint, prefix=f"sweep-{uuid.uuid4().hex[:8]}/",
                    access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY)
    store.ensure_bucket()
    key = store.key("ab" * 32)
    up = store.client.create_multipart_upload(Bucket=store.bucket, Key=key)
    store.client.upload_part(Bucket=store.bucket, Key=key, UploadId=up["UploadId"],
                             PartNumber=1, Body=b"x" * 1024)
    assert store.clean_partial(time.time() - 3600) == 0  # begun just now: kept
    assert store.clean_partial(time.time() + 60) == 1
    left = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
    assert not left.get("Uploads")
