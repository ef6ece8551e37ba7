"""Make the upgrade test's fixture: a backup of a small lab made by this version.

    .venv/bin/python -m tests.backup.make_fixture

Starts a platform in a temporary directory, makes the lab's state (``lab_state.make``: accounts,
a project, two dataset versions, a training job with its run and metric, a registered model, a
deployment waiting for approval, their audit events), stops it, backs it up and packs the
snapshot into ``tests/backup/fixtures/data-<version>.tar.gz`` with ``made.json`` (what
``lab_state.check`` looks for). Keep the fixture of each release: the next release's upgrade
test starts from it (``test_upgrade.py`` uses the newest one).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from jupyter_mlops.backends.backup import installed_versions
from tests.backup import lab_state
from tests.fixtures import REPO, Platform, shared_tmp_dir

FIXTURES = Path(__file__).parent / "fixtures"


def main() -> Path:
    work = shared_tmp_dir("mlops-fixture-")
    platform = Platform(work / "data").start()
    try:
        made = lab_state.make(platform, Path(tempfile.mkdtemp(dir=work)))
    finally:
        platform.stop()
    dest = work / "backup"
    subprocess.run([sys.executable, "-m", "jupyter_mlops", "backup", str(dest), "--data-dir",
                    str(platform.data_dir)], check=True, cwd=REPO)
    (dest / "made.json").write_text(json.dumps(made, indent=1) + "\n")
    FIXTURES.mkdir(exist_ok=True)
    out = FIXTURES / f"data-{installed_versions()['jupyter-mlops']}.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for name in ("LATEST", "made.json", "snapshots", "objects"):
            tar.add(dest / name, arcname=name)
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return out


if __name__ == "__main__":
    main()
