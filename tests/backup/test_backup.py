"""Backups of the running session platform while a job logs metrics, a restore into a new
directory that starts with everything there, an incremental second backup, and verification
finding what was tampered with (``jupyter-mlops backup | verify | restore``, as run by an
administrator)."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from jupyter_mlops import datasets

from jupyter_mlops.client import ControlPlane
from jupyter_mlops.demo import cells
from tests.backup import lab_state
from tests.backup.lab_state import API, DATASET, PROJECT, USER
from tests.fixtures import REPO, Platform


def cli(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_mlops", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


def latest_manifest(dest) -> dict:
    name = (dest / "LATEST").read_text().strip()
    return json.loads((dest / "snapshots" / name / "manifest.json").read_text())


@pytest.fixture(scope="module")
def lab(platform, tmp_path_factory):
    return lab_state.make(platform, tmp_path_factory.mktemp("bk-lab"))


@pytest.fixture(scope="module")
def backup(platform, lab, tmp_path_factory):
    """The first backup, taken while a job logs a metric step every 0.2 s."""
    dest = tmp_path_factory.mktemp("bk-dest") / "backups"
    ds = platform.token(USER)
    logging = lab_state.submit(platform, ds, "bk_logging.py",
                               lab_state.LOGGING.format(steps=3000))  # cancelled at the end
    steps_before = lab_state.wait_for_steps(platform, ds, logging, 5)
    r = cli("backup", dest, "--data-dir", platform.data_dir)
    assert r.returncode == 0, r.stderr
    still = lab_state.job(platform, ds, logging)
    steps_after = len(lab_state.metric_history(platform, ds, still["run_id"], "loss"))
    yield {"dest": dest, "job": logging, "steps_before": steps_before, "out": r,
           "logged_during": still["state"] == "running" and steps_after > steps_before}
    platform.api("POST", f"{API}/jobs/{logging}/cancel", ds)


def test_backup_of_a_running_platform_is_whole(backup):
    assert backup["logged_during"], "the job should still have been logging during the backup"
    m = latest_manifest(backup["dest"])
    assert {"hub", "control", "mlflow"} <= set(m["databases"])
    control = m["databases"]["control"]["tables"]
    assert control["jobs"] >= 2 and control["deployments"] >= 1
    assert m["databases"]["hub"]["tables"]["users"] >= 3
    assert m["counts"]["objects"] >= 9  # 8 images + annotations of the lab's dataset
    for secret in ("hub/jupyterhub_cookie_secret", "control/cookie_secret"):
        assert secret in m["files"]
    assert not any(p.startswith(("logs/", "datasets/")) or p == "hub/ports.json"
                   for p in m["files"])
    assert "complete" in backup["out"].stdout and "databases:" in backup["out"].stderr
    r = cli("verify", backup["dest"])
    assert r.returncode == 0 and "matches its manifest" in r.stdout, r.stdout + r.stderr


def test_restore_starts_a_platform_with_everything_there(platform, lab, backup,
                                                         shared_tmp):
    # The live data directory and a non-empty one are refused; nothing is written there.
    r = cli("restore", backup["dest"], "--data-dir", platform.data_dir)
    assert r.returncode == 2 and "running platform" in r.stderr, r.stderr
    (shared_tmp / "other").mkdir()
    (shared_tmp / "other" / "notes.txt").write_text("mine")
    r = cli("restore", backup["dest"], "--data-dir", shared_tmp / "other")
    assert r.returncode == 2 and "not empty" in r.stderr, r.stderr
    assert os.listdir(shared_tmp / "other") == ["notes.txt"]

    target = shared_tmp / "restored"
    r = cli("restore", backup["dest"], "--data-dir", target)
    assert r.returncode == 0, r.stderr
    m = latest_manifest(backup["dest"])
    restored = Platform(target)
    restored.admin_password = platform.admin_password  # the accounts came with the backup
    restored.start()
    try:
        lab_state.check(restored, lab, logging_job=backup["job"],
                        min_steps=backup["steps_before"])
        with sqlite3.connect(target / "control" / "mlops.sqlite") as conn:
            for table, rows in m["databases"]["control"]["tables"].items():
                n = conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
                assert n >= rows, (table, n, rows)
        # the job that ran during the backup is not taken for the restored platform's own
        ds = restored.token(USER)
        ended = lab_state.until(
            lambda: (j := lab_state.job(restored, ds, backup["job"]))["state"] != "running"
            and j, 60, "the restored platform to settle the job that ran during the backup")
        assert ended["state"] == "failed", ended
    finally:
        restored.stop()
    assert restored.leftovers == []
    # the original platform's job was neither adopted nor ended by the restored platform
    assert lab_state.job(platform, platform.token(USER), backup["job"])["state"] == "running"


def test_a_second_backup_copies_only_new_objects(platform, lab, backup, tmp_path):
    ds = platform.token(USER)
    client = ControlPlane(f"{platform.url}/services/mlops/", ds)
    try:
        root = tmp_path / DATASET
        cells.generate(root, n_images=3, seed=21, width=32, height=32, start=20)
        v = datasets.publish(root, DATASET, message="three new", project=PROJECT,
                             client=client)
    finally:
        client.close()
    first = latest_manifest(backup["dest"])
    r = cli("backup", backup["dest"], "--data-dir", platform.data_dir)
    assert r.returncode == 0, r.stderr
    second = latest_manifest(backup["dest"])
    new = set(second["objects"]) - set(first["objects"])
    assert second["counts"]["objects_copied"] == len(new) == v["transfer"]["uploaded"]
    assert second["counts"]["files_linked"] > 0  # unchanged artifacts: hard links
    assert len(list((backup["dest"] / "snapshots").iterdir())) == 2


def test_verify_names_a_tampered_and_a_missing_file(backup, shared_tmp):
    import shutil

    copy = shared_tmp / "copy"
    shutil.copytree(backup["dest"], copy, symlinks=True)
    m = latest_manifest(copy)
    snap = copy / "snapshots" / (copy / "LATEST").read_text().strip()
    victim = next(p for p, e in m["files"].items() if p.startswith("mlflow/artifacts/")
                  and "size" in e)
    with open(snap / "data" / victim, "r+b") as f:
        f.write(b"X")
    key = sorted(m["objects"])[0]
    (copy / "objects" / key).unlink()
    r = cli("verify", copy)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{victim}: content differs" in r.stderr and f"object {key}: missing" in r.stderr
    r = cli("restore", copy, "--data-dir", shared_tmp / "from-copy")
    assert r.returncode == 2 and "nothing restored" in r.stderr, r.stderr
    assert not (shared_tmp / "from-copy").exists()
