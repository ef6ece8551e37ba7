"""An upgrade from a data directory made by an earlier version keeps everything.

The fixture (``fixtures/data-<version>.tar.gz``, made by ``make_fixture.py``; the newest one is
used) is a backup of a small lab. It is restored into a new directory whose ``versions.json``
is removed, as in a data directory of a version that did not record them: ``up`` must then copy
the databases aside, run MLflow's and the hub's own schema upgrades, let the control plane apply
its migrations, and start with every account, run, dataset version, job, deployment and audit
event there and usable.
"""
from __future__ import annotations

import json
import sqlite3
import tarfile
from pathlib import Path

from jupyter_mlops.backends.backup import installed_versions
from tests.backup import lab_state
from tests.backup.test_backup import cli
from tests.fixtures import Platform

FIXTURES = Path(__file__).parent / "fixtures"


def newest_fixture() -> Path:
    def version(p: Path):
        return tuple(int(x) for x in p.name.removeprefix("data-").removesuffix(".tar.gz")
                     .split(".") if x.isdigit())
    return max(FIXTURES.glob("data-*.tar.gz"), key=version)


def test_upgrade_from_the_previous_data_directory_keeps_everything(shared_tmp):
    with tarfile.open(newest_fixture()) as tar:
        tar.extractall(shared_tmp / "fixture")  # our own fixture
    made = json.loads((shared_tmp / "fixture" / "made.json").read_text())
    data = shared_tmp / "data"
    r = cli("restore", shared_tmp / "fixture", "--data-dir", data)
    assert r.returncode == 0, r.stderr
    (data / "versions.json").unlink()
    r = cli("reset-password", "admin", "--password", "upgrade-admin-1", "--data-dir", data)
    assert r.returncode == 0, r.stderr

    upgraded = Platform(data)
    upgraded.admin_password = "upgrade-admin-1"
    upgraded.start()
    try:
        out = "".join(upgraded.output)
        assert "upgrading the data directory" in out, out
        assert "MLflow's database upgraded" in out and "the hub's database upgraded" in out
        lab_state.check(upgraded, made)
    finally:
        upgraded.stop()
    assert upgraded.leftovers == []
    # the databases as they were before the upgrade, each whole
    saved = list((data / "backups").glob("pre-upgrade-*"))
    assert len(saved) == 1
    for name in ("jupyterhub.sqlite", "mlops.sqlite", "mlflow.db"):
        with sqlite3.connect(saved[0] / name) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert json.loads((data / "versions.json").read_text()) == installed_versions()
    log = (data / "logs" / "upgrade.log").read_text()
    assert "db upgrade" in log and "upgrade-db" in log


def test_a_failed_upgrade_stops_the_start_and_keeps_the_databases_as_they_were(tmp_path):
    from jupyter_mlops.hub.upgrade import UpgradeFailed, upgrade_at_start

    (tmp_path / "mlflow").mkdir()
    db = tmp_path / "mlflow" / "mlflow.db"
    with sqlite3.connect(db) as conn:  # a schema revision MLflow's migrations do not know
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('not-a-revision')")
    (tmp_path / "versions.json").write_text(json.dumps({"mlflow": "0.1"}))
    said = []
    try:
        upgrade_at_start(tmp_path, say=lambda *a, **kw: said.append(a[0]))
    except UpgradeFailed as e:
        message = str(e)
    else:
        raise AssertionError("the upgrade should have failed")
    saved = next((tmp_path / "backups").glob("pre-upgrade-*"))
    assert "MLflow's database failed" in message and str(saved) in message
    assert "mlflow 0.1 ->" in said[0]
    with sqlite3.connect(saved / "mlflow.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            "not-a-revision",)
    # not recorded as upgraded: the next start tries again
    assert json.loads((tmp_path / "versions.json").read_text()) == {"mlflow": "0.1"}
    assert "not-a-revision" in (tmp_path / "logs" / "upgrade.log").read_text()
