"""A platform whose dataset store is an S3 bucket (a real SeaweedFS server): ``backup
--config`` reads the objects through the store, incrementally; ``restore --config`` puts them
into a bucket, sending only those it lacks."""
from __future__ import annotations

import sqlite3
import uuid

import pytest

from jupyter_mlops.backends.store import S3Store
from tests.backup.test_backup import cli, latest_manifest
from tests.datasets.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedS3

BUCKET = "mlops-backup-tests"


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    s = SeaweedS3(tmp_path_factory.mktemp("seaweed-backup")).start()
    yield s
    s.stop()


def config_for(path, endpoint: str, prefix: str):
    path.write_text(
        "c.MlopsHub.dataset_store = {'backend': 's3', 's3_endpoint_url': %r, "
        "'s3_bucket': %r, 's3_prefix': %r, 's3_access_key_id': %r, "
        "'s3_secret_access_key': %r}\n" % (endpoint, BUCKET, prefix, ACCESS_KEY, SECRET_KEY))
    return path


def test_objects_of_an_s3_store_are_backed_up_and_restored(seaweed, tmp_path):
    import blake3

    prefix = f"live-{uuid.uuid4().hex[:8]}/"
    live = S3Store(BUCKET, seaweed.endpoint, prefix=prefix, access_key_id=ACCESS_KEY,
                   secret_access_key=SECRET_KEY)
    data = tmp_path / "data"
    (data / "control").mkdir(parents=True)
    with sqlite3.connect(data / "control" / "mlops.sqlite") as conn:
        conn.execute("CREATE TABLE t (x)")

    def put(content: bytes) -> str:
        h = blake3.blake3(content).hexdigest()
        live.put_bytes(h, content)
        return h

    first = {put(f"image {i}".encode()) for i in range(3)}
    config = config_for(tmp_path / "platform_config.py", seaweed.endpoint, prefix)
    dest = tmp_path / "dest"
    r = cli("backup", dest, "--data-dir", data, "--config", config)
    assert r.returncode == 0, r.stderr
    assert latest_manifest(dest)["counts"]["objects_copied"] == 3
    added = put(b"image 3")
    r = cli("backup", dest, "--data-dir", data, "--config", config)
    assert r.returncode == 0, r.stderr
    m = latest_manifest(dest)
    assert m["counts"]["objects_copied"] == 1 and m["counts"]["objects"] == 4
    assert cli("verify", dest).returncode == 0

    # into an empty bucket prefix, which then holds every object, byte for byte
    other = f"restored-{uuid.uuid4().hex[:8]}/"
    target = S3Store(BUCKET, seaweed.endpoint, prefix=other, access_key_id=ACCESS_KEY,
                     secret_access_key=SECRET_KEY)
    target.put_bytes(added, b"image 3")  # already there: not sent again
    r = cli("restore", dest, "--data-dir", tmp_path / "restored", "--config",
            config_for(tmp_path / "restored_config.py", seaweed.endpoint, other))
    assert r.returncode == 0, r.stderr
    assert {o.hash for o in target.list_objects()} == first | {added}
    for h in first:
        assert target.get_bytes(h) == live.get_bytes(h)
    assert not (tmp_path / "restored" / "store").exists()
    assert (tmp_path / "restored" / "control" / "mlops.sqlite").is_file()
