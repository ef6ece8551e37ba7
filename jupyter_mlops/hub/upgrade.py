"""Database upgrades at ``jupyter-mlops up``, before anything of the platform starts.

``<data_dir>/versions.json`` records the versions of jupyter-mlops, JupyterHub and MLflow that
last ran on the data directory. When one of them moved (or the file is missing beside existing
databases: a data directory from before it was kept), the start first copies every database
into ``<data_dir>/backups/pre-upgrade-<UTC time>/`` (SQLite's online backup), then upgrades
each schema with its owner's own tool:

- MLflow's tracking and registry store: ``mlflow db upgrade`` (MLflow's Alembic migrations;
  ``mlflow server`` refuses an out-of-date schema);
- the hub's database: ``jupyterhub upgrade-db`` (JupyterHub's Alembic migrations; the copy of
  the SQLite file it makes beside it is moved into the pre-upgrade directory);
- the control plane's database: its components' append-only migrations
  (``core.db.Database.migrate``), applied by the control plane itself when it starts.

A failed upgrade stops ``up`` with the reason and where the pre-upgrade copies are
(docs/operations.md, "When an upgrade fails").
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..backends import backup_files
from ..backends.backup import DATABASES, installed_versions, now_stamp

VERSIONS_FILE = "versions.json"


class UpgradeFailed(RuntimeError):
    """A schema upgrade failed; the message names the pre-upgrade copies."""


def recorded_versions(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / VERSIONS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _record(data_dir: Path, versions: dict) -> None:
    tmp = data_dir / f".{VERSIONS_FILE}.tmp"
    tmp.write_text(json.dumps(versions, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, data_dir / VERSIONS_FILE)


def upgrade_at_start(data_dir: Path, say=print, timeout: float = 600) -> Path | None:
    """Upgrade the databases of ``data_dir`` if a component's version moved since the last
    start. Returns the directory of the pre-upgrade copies (None: nothing to upgrade)."""
    data_dir = Path(data_dir)
    installed = installed_versions()
    recorded = recorded_versions(data_dir)
    present = {name: data_dir / rel for name, rel in DATABASES.items()
               if (data_dir / rel).is_file()}
    moved = sorted(k for k in installed if recorded.get(k) != installed[k])
    if not present or not moved:
        if recorded != installed:
            _record(data_dir, installed)
        return None
    what = ", ".join(f"{k} {recorded.get(k) or '(unrecorded)'} -> {installed[k]}"
                     for k in moved)
    saved = data_dir / "backups" / f"pre-upgrade-{now_stamp()}"
    saved.mkdir(parents=True)
    (data_dir / "backups").chmod(0o700)
    say(f"jupyter-mlops: upgrading the data directory ({what}); copies of the databases "
        f"first, in {saved}", flush=True)
    for name, path in present.items():
        backup_files.backup_sqlite(path, saved / path.name)
    bin_dir = Path(sys.executable).parent
    steps = []
    if "mlflow" in present and ("mlflow" in moved or "mlflow" not in recorded):
        steps.append(("MLflow", [str(bin_dir / "mlflow"), "db", "upgrade",
                                 f"sqlite:///{present['mlflow']}"], data_dir / "mlflow"))
    if "hub" in present and ("jupyterhub" in moved or "jupyterhub" not in recorded):
        steps.append(("the hub", [sys.executable, "-m", "jupyterhub", "upgrade-db",
                                  f"--JupyterHub.db_url=sqlite:///{present['hub']}"],
                      data_dir / "hub"))
    log_path = data_dir / "logs" / "upgrade.log"
    log_path.parent.mkdir(exist_ok=True)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    hub_copies = set(data_dir.glob("hub/jupyterhub.sqlite.*"))
    for label, cmd, cwd in steps:
        with open(log_path, "ab") as log:
            log.write(f"\n$ {' '.join(cmd)}\n".encode())
            log.flush()
            try:
                done = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, timeout=timeout)
                failed = done.returncode != 0
            except subprocess.TimeoutExpired:
                failed = True
        if failed:
            raise UpgradeFailed(
                f"upgrading {label}'s database failed (see {log_path}); the databases as "
                f"they were before are in {saved}: see docs/operations.md, 'When an upgrade "
                "fails'")
        say(f"jupyter-mlops: {label}'s database upgraded", flush=True)
    # JupyterHub's own copy of the file it upgraded joins ours (not in every later backup).
    for copy in set(data_dir.glob("hub/jupyterhub.sqlite.*")) - hub_copies:
        os.replace(copy, saved / copy.name)
    _record(data_dir, installed)
    return saved
