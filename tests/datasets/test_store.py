"""Both stores against real backends: a local directory and a real SeaweedFS S3 server."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import blake3
import pytest

from jupyter_mlops.backends.store import CorruptObject, LocalStore, S3Store, object_key
from jupyter_mlops.core.datasets import folder
from jupyter_mlops.core.errors import InvalidInput, NotFound, Unavailable
from jupyter_mlops.demo import cells
from tests.fixtures import free_port


def h(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def corrupt(store, digest: str, data: bytes) -> None:
    """Change an object's bytes behind the store's back."""
    if isinstance(store, LocalStore):
        p = store.path(digest)
        os.chmod(p, 0o644)
        p.write_bytes(data)
    else:
        store.client.put_object(Bucket=store.bucket, Key=store.key(digest), Body=data)


def test_put_get_dedup_missing(store):
    a, b = b"cell image one", b"cell image two"
    assert store.missing([h(a), h(b)]) == {h(a), h(b)}
    store.put_bytes(h(a), a)
    store.put_bytes(h(a), a)  # idempotent
    assert store.missing([h(a), h(b)]) == {h(b)}
    assert store.get_bytes(h(a)) == a and store.size(h(a)) == len(a)
    with pytest.raises(NotFound):
        store.get_bytes(h(b))


def test_upload_that_does_not_match_its_hash_is_refused(store):
    with pytest.raises(CorruptObject):
        store.put_bytes(h(b"right"), b"wrong")
    assert store.missing([h(b"right")]) == {h(b"right")}
    with pytest.raises(InvalidInput):
        store.get_bytes("../../etc/passwd")


def test_corruption_detected_on_read(store):
    data = b"nuclei" * 1000
    store.put_bytes(h(data), data)
    corrupt(store, h(data), b"bit rot" * 10)
    with pytest.raises(CorruptObject, match="corrupt"):
        store.get_bytes(h(data))


def test_one_layout_in_both_stores(store):
    data = b"layout"
    store.put_bytes(h(data), data)
    key = object_key(h(data))
    assert key == f"objects/{h(data)[:2]}/{h(data)[2:]}"
    if isinstance(store, LocalStore):
        assert (store.root / key).exists()
    else:
        store.client.head_object(Bucket=store.bucket, Key=store.prefix + key)


def test_publish_a_folder_into_the_store(store, tmp_path):
    cells.generate(tmp_path / "d", n_images=150, seed=1, width=32, height=32)
    m, counts = folder.prepare(tmp_path / "d", store)
    assert counts["uploaded"] == 151
    assert not store.missing([e.hash for e in m.entries])  # > 100: listed, not HEAD-ed
    _, again = folder.prepare(tmp_path / "d", store)
    assert again["uploaded"] == 0


def test_s3_unreachable_is_a_clear_error():
    s = S3Store("b", f"http://127.0.0.1:{free_port()}", connect_timeout=0.5)
    t = time.monotonic()
    with pytest.raises(Unavailable, match="unreachable"):
        s.put_bytes(h(b"x"), b"x")
    assert time.monotonic() - t < 15


def test_s3_wrong_credentials_are_a_clear_error(seaweed):
    s = S3Store("b", seaweed.endpoint, access_key_id="nobody", secret_access_key="nothing")
    with pytest.raises(Unavailable, match="denied access .*check the access key"):
        s.put_bytes(h(b"x"), b"x")


KILLED_PUBLISH = textwrap.dedent("""
    import sys, time
    from jupyter_mlops.backends.store import LocalStore
    from jupyter_mlops.core.datasets import folder
    store = LocalStore(sys.argv[2])
    real = store.ingest_fd  # the one-pass path: hashed while copied
    def slow(*a):
        out = real(*a)
        print("stored", flush=True)
        time.sleep(0.2)
        return out
    store.ingest_fd = slow
    m, _ = folder.prepare(sys.argv[1], store, workers=1)
    print("RECORD", m.id, flush=True)  # never reached: killed before recording
""")


def test_killed_publish_leaves_no_partial_object(tmp_path):
    cells.generate(tmp_path / "d", n_images=30, seed=3, width=64, height=64)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_PUBLISH, str(tmp_path / "d"),
                             str(tmp_path / "store")], stdout=subprocess.PIPE, text=True)
    for _ in range(3):
        assert proc.stdout.readline().startswith("stored")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = LocalStore(tmp_path / "store")
    stored = [p for p in (tmp_path / "store" / "objects").rglob("*") if p.is_file()]
    assert 3 <= len(stored) < 31
    for p in stored:  # every visible object is complete and correct
        digest = p.parent.name + p.name
        assert store.get_bytes(digest)
    m, counts = folder.prepare(tmp_path / "d", store)  # the next publish succeeds
    assert counts["uploaded"] == 31 - len(stored)


def test_a_version_is_hard_linked_on_one_file_system_and_copied_across(tmp_path):
    import json
    import shutil
    import tempfile

    cells.generate(tmp_path / "d", n_images=3, seed=4, width=32, height=32)
    store = LocalStore(tmp_path / "store")
    m, _ = folder.prepare(tmp_path / "d", store)
    fetch = lambda digest, p: store.materialize(digest, p, verify=False)  # noqa: E731
    linked = folder.materialize(m, tmp_path / "shared" / "v1", fetch)
    marker = json.loads((linked / ".mlops-version.json").read_text())
    assert marker == {"manifest_id": m.id, "mode": "hardlink"}
    e = m.entries[0]
    assert (linked / e.path).stat().st_ino == store.path(e.hash).stat().st_ino
    other = tempfile.mkdtemp(dir="/dev/shm")  # tmpfs: another file system, links refused
    try:
        copied = folder.materialize(m, os.path.join(other, "v1"), fetch)
        marker = json.loads((copied / ".mlops-version.json").read_text())
        assert marker["mode"] == "copy"
        assert (copied / e.path).stat().st_ino != store.path(e.hash).stat().st_ino
        assert (copied / e.path).read_bytes() == store.get_bytes(e.hash)
        assert (copied / e.path).stat().st_mode & 0o222 == 0  # read-only either way
    finally:
        folder._rmtree(Path(other))
        shutil.rmtree(other, ignore_errors=True)
