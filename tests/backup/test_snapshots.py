"""Snapshots of a small data directory, without a platform: an interrupted backup leaves the
destination usable, retention, what is left out, modes and links kept, bad destinations."""
from __future__ import annotations

import json
import os
import sqlite3

import pytest

from jupyter_mlops.backends import backup
from jupyter_mlops.core.errors import InvalidInput


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    for sub in ("hub", "control", "mlflow/artifacts/1", "store/objects/ab", "logs",
                "datasets/cells", "users/ann"):
        (d / sub).mkdir(parents=True)
    for rel in ("hub/jupyterhub.sqlite", "control/mlops.sqlite", "mlflow/mlflow.db"):
        with sqlite3.connect(d / rel) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE t (x)")
            conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(5)])
    (d / "hub").chmod(0o700)
    (d / "hub" / "jupyterhub_cookie_secret").write_text("secret")
    (d / "hub" / "ports.json").write_text("{}")
    (d / "logs" / "hub.log").write_text("log")
    (d / "up.lock").write_text("")
    (d / "store" / "objects" / "ab" / "cdef").write_bytes(b"image")
    (d / "mlflow" / "artifacts" / "1" / "MLmodel").write_text("flavors: {}")
    (d / "users" / "ann" / "train.py").write_text("print(1)")
    os.symlink("train.py", d / "users" / "ann" / "latest.py")
    return d


def test_an_interrupted_backup_leaves_the_last_one_whole(data_dir, tmp_path):
    dest = tmp_path / "dest"
    first = backup.Backup(data_dir, dest).run()
    (data_dir / "store" / "objects" / "ab" / "ffff").write_bytes(b"new image")

    def interrupt(stage, done, total):
        if stage == "files":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backup.Backup(data_dir, dest, interrupt).run()
    # the new object is whole in DEST already; LATEST still names the first snapshot, intact
    assert len(list((dest / "snapshots").glob("*.partial"))) == 1
    assert (dest / "LATEST").read_text().strip() == first["created"]
    manifest, problems = backup.verify(dest)
    assert problems == [] and manifest["created"] == first["created"]
    # the next run starts again: the partial snapshot is gone, the object not copied twice
    second = backup.Backup(data_dir, dest).run()
    assert list((dest / "snapshots").glob("*.partial")) == []
    assert second["counts"]["objects_copied"] == 0 and second["counts"]["objects"] == 2
    assert backup.verify(dest)[1] == []


def test_what_a_snapshot_holds(data_dir, tmp_path):
    m = backup.Backup(data_dir, tmp_path / "dest").run()
    snap = tmp_path / "dest" / "snapshots" / m["created"] / "data"
    assert sorted(m["files"]) == [
        "control/mlops.sqlite", "hub/jupyterhub.sqlite", "hub/jupyterhub_cookie_secret",
        "mlflow/artifacts/1/MLmodel", "mlflow/mlflow.db", "users/ann/latest.py",
        "users/ann/train.py"]
    assert m["databases"]["control"]["tables"] == {"t": 5}
    assert os.readlink(snap / "users" / "ann" / "latest.py") == "train.py"
    assert (snap / "hub").stat().st_mode & 0o777 == 0o700
    assert oct((tmp_path / "dest").stat().st_mode & 0o777) == oct(0o700)
    # the copy of a WAL database is one self-contained file
    assert not (snap / "hub" / "jupyterhub.sqlite-wal").exists()
    assert json.loads((tmp_path / "dest" / "snapshots" / m["created"] / "manifest.json")
                      .read_text())["counts"]["objects"] == 1


def test_keep_prunes_old_snapshots_and_unchanged_files_are_links(data_dir, tmp_path):
    dest = tmp_path / "dest"
    runs = [backup.Backup(data_dir, dest).run(keep=2) for _ in range(3)]
    names = sorted(p.name for p in (dest / "snapshots").iterdir())
    assert names == [runs[1]["created"], runs[2]["created"]]
    # the secret, the artifact and the script; never the databases (always copied anew)
    assert runs[2]["counts"]["files_linked"] == 3
    linked = dest / "snapshots" / names[1] / "data" / "mlflow" / "artifacts" / "1" / "MLmodel"
    assert linked.stat().st_nlink == 2


def test_a_destination_inside_the_data_directory_is_refused(data_dir):
    with pytest.raises(InvalidInput, match="inside the data directory"):
        backup.Backup(data_dir, data_dir / "backups-here")


def test_a_users_sqlite_file_is_a_plain_file_and_a_torn_database_stops_the_backup(
        data_dir, tmp_path):
    with sqlite3.connect(data_dir / "users" / "ann" / "notes.db") as conn:
        conn.execute("CREATE TABLE n (x)")
    m = backup.Backup(data_dir, tmp_path / "dest").run()
    assert "users/ann/notes.db" in m["files"]
    assert sorted(m["databases"]) == ["control", "hub", "mlflow"]
    with pytest.raises(InvalidInput, match="--keep"):
        backup.Backup(data_dir, tmp_path / "dest").run(keep=-1)
    db = data_dir / "control" / "mlops.sqlite"
    db.write_bytes(db.read_bytes()[:100] + b"\0" * 5000)  # the header, then nothing sound
    for side in ("-wal", "-shm"):
        (data_dir / "control" / f"mlops.sqlite{side}").unlink(missing_ok=True)
    with pytest.raises(backup.BackupError, match="cannot back up the database control/"):
        backup.Backup(data_dir, tmp_path / "dest").run()
    assert len(list((tmp_path / "dest" / "snapshots").iterdir())) == 2  # 1 + the partial one
    assert backup.verify(tmp_path / "dest")[1] == []
