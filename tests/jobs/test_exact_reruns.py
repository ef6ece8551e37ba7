"""Rerun exactly: the job's folder, seed and environment come back, whatever changed since.

The jobs here run with an environment of their own (a venv layering the platform's packages),
so the test can install a package into it without touching the environment of the session.
"""
from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from jupyter_mlops.core.errors import InvalidInput, NotFound
from jupyter_mlops.core.jobs.snapshot import FolderSnapshot

from .conftest import caller

TRAIN = """
import random
from jupyter_mlops.job_runtime import report, seed
import helper
try:
    import cellboost
    bonus = cellboost.BONUS
except ImportError:
    bonus = 0.0
seed()
report("score", helper.BASE + bonus + random.random() / 10)  # seeded
"""


def job_environment(root: Path) -> tuple[Path, Path]:
    """A venv seeing the platform's packages (through a .pth), with a site-packages of its
    own to install into: ``(python, its site-packages)``."""
    env = root / "jobenv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(env)], check=True)
    site = Path(subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print("
                                "sysconfig.get_paths()['purelib'])"], check=True, text=True,
                               capture_output=True).stdout.strip())
    platform_site = sysconfig.get_paths()["purelib"]
    (site / "platform.pth").write_text(f"import site; site.addsitedir({platform_site!r})\n")
    return env / "bin" / "python", site


def install_cellboost(site: Path) -> None:
    """What an installer leaves: the module and its dist-info."""
    (site / "cellboost.py").write_text("BONUS = 1.0\n")
    info = site / "cellboost-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cellboost\nVersion: 1.0\n")
    (info / "RECORD").write_text("cellboost.py,,\ncellboost-1.0.dist-info/METADATA,,\n"
                                 "cellboost-1.0.dist-info/RECORD,,\n")


@pytest.mark.asyncio
async def test_rerun_exactly_rebuilds_the_environment_and_reproduces_the_metrics(quick_lab):
    lab = quick_lab
    python, site = job_environment(lab.root)
    lab.backend.python = str(python)
    lab.write("alice", "exact/helper.py", "BASE = 0.5\n")
    lab.write("alice", "exact/.gitignore", "outputs/\n")
    lab.write("alice", "exact/outputs/big.bin", "x" * 1000)
    lab.write("alice", "exact/train.py", TRAIN)
    first = lab.jobs.submit(caller("alice"), {"path": "exact/train.py"})
    snap = lab.jobs.job_dir(first.id) / "snapshot"
    assert (snap / "helper.py").is_file() and not (snap / "outputs").exists()
    first = await lab.wait(first.id)
    assert first.state == "succeeded", first.reason
    assert first.seed is not None and first.environment["hash"]
    assert first.environment["rebuilt"] is False

    # Since then: the sibling module was edited and a package installed into the environment.
    lab.write("alice", "exact/helper.py", "BASE = 0.9\n")
    install_cellboost(site)
    now = await lab.wait(lab.jobs.submit(caller("alice"), {"path": "exact/train.py"}).id)
    assert now.state == "succeeded", now.reason
    assert now.metrics["score"] > first.metrics["score"] + 1  # the changes matter
    assert now.environment["hash"] != first.environment["hash"]

    exact = await lab.wait(lab.jobs.rerun(caller("alice"), first.id, exact=True).id)
    assert exact.state == "succeeded", exact.reason
    assert exact.metrics["score"] == first.metrics["score"]
    assert exact.seed == first.seed and exact.snapshot_of == first.id
    assert exact.environment["hash"] == first.environment["hash"]
    assert exact.environment["rebuilt"] is True
    log = lab.jobs.logs(caller("alice"), exact.id)["text"]
    assert "cellboost 1.0 is not in the lock" in log

    # The package is gone again and nothing may be fetched: the lock of the job that had it
    # cannot be rebuilt, and the rerun says so before running any of its code.
    (site / "cellboost.py").unlink()
    subprocess.run(["rm", "-r", str(site / "cellboost-1.0.dist-info")], check=True)
    lab.runner.environments["offline"] = True
    refused = await lab.wait(lab.jobs.rerun(caller("alice"), now.id, exact=True).id)
    assert refused.state == "failed"
    assert f"cannot rerun in job {now.id}'s environment" in refused.reason
    assert "cellboost==1.0" in refused.reason
    assert "score" not in refused.metrics


@pytest.mark.asyncio
async def test_a_folder_over_the_snapshot_bounds_is_refused_with_its_biggest_files(quick_lab):
    lab = quick_lab
    lab.jobs.snapshots = FolderSnapshot(max_bytes=10_000, max_files=50)
    lab.write("alice", "heavy/train.py", "print('hi')\n")
    lab.write("alice", "heavy/images.npy", "x" * 20_000)
    with pytest.raises(InvalidInput, match=r"images\.npy \(0\.0 MB\).*\.gitignore"):
        lab.jobs.submit(caller("alice"), {"path": "heavy/train.py"})
    assert lab.jobs.store.list(user="alice") == []  # nothing queued, nothing half-written
    lab.write("alice", "heavy/.gitignore", "*.npy\n")
    job = lab.jobs.submit(caller("alice"), {"path": "heavy/train.py"})
    assert not (lab.jobs.job_dir(job.id) / "snapshot" / "images.npy").exists()
    await lab.wait(job.id)


@pytest.mark.asyncio
async def test_every_job_has_a_recorded_seed(quick_lab):
    lab = quick_lab
    lab.write("alice", "seeds/declared.py", "seed = 7\nprint('seed', seed)\n")
    lab.write("alice", "seeds/silent.py",
              "from jupyter_mlops.job_runtime import seed\nprint('seed', seed())\n")
    declared = lab.jobs.submit(caller("alice"), {"path": "seeds/declared.py"})
    given = lab.jobs.submit(caller("alice"), {"path": "seeds/declared.py",
                                              "params": {"seed": 3}})
    silent = lab.jobs.submit(caller("alice"), {"path": "seeds/silent.py"})
    # the author's default, the user's value, or one the platform drew: each recorded
    assert (declared.seed, declared.spec.params) == (7, {"seed": 7})
    assert (given.seed, given.spec.params) == (3, {"seed": 3})
    assert isinstance(silent.seed, int) and silent.spec.params == {}
    done = await lab.wait(silent.id)
    assert f"seed {silent.seed}" in lab.jobs.logs(caller("alice"), done.id)["text"]
    for job in (declared, given):
        await lab.wait(job.id)


@pytest.mark.asyncio
async def test_latest_is_pinned_at_submit_and_reruns_read_that_version(quick_lab):
    from jupyter_mlops.core.datasets.catalog import DatasetCatalog
    from jupyter_mlops.core.datasets.manifest import FileEntry, Manifest

    lab = quick_lab
    catalog = DatasetCatalog(lab.projects.db, lab.projects)
    lab.jobs.datasets = catalog
    admin = caller("carol")

    def publish(content_hash: str):
        return catalog.publish(admin, "pin-cells", Manifest.build(
            [FileEntry("a.txt", 1, content_hash)]), "a version")

    publish("a" * 64)
    lab.write("alice", "pin/read.py",
              "import os\nprint('reads', os.environ['MLOPS_DATASET_VERSION'])\n")
    first = lab.jobs.submit(caller("alice"), {"path": "pin/read.py",
                                              "dataset_version": "pin-cells@latest"})
    assert first.dataset_resolved == "pin-cells@v1"
    await lab.wait(first.id)
    publish("b" * 64)  # "latest" moves on
    exact = await lab.wait(lab.jobs.rerun(caller("alice"), first.id, exact=True).id)
    assert exact.dataset_resolved == "pin-cells@v1" == exact.spec.dataset_version
    assert "reads pin-cells@v1" in lab.jobs.logs(caller("alice"), exact.id)["text"]
    fresh = lab.jobs.submit(caller("alice"), {"path": "pin/read.py",
                                              "dataset_version": "pin-cells@latest"})
    assert fresh.dataset_resolved == "pin-cells@v2"
    await lab.wait(fresh.id)
    with pytest.raises(NotFound, match="no version or tag 'gold'"):
        lab.jobs.submit(caller("alice"), {"path": "pin/read.py",
                                          "dataset_version": "pin-cells@gold"})


@pytest.mark.asyncio
async def test_a_notebook_reruns_with_its_sibling_module_as_it_was(quick_lab):
    lab = quick_lab
    lab.write("alice", "nb/helper.py", "BASE = 0.5\n")
    lab.write_notebook("alice", "nb/train.ipynb", [
        ("from jupyter_mlops.job_runtime import report\nimport helper\n"
         "report('score', helper.BASE)", "")])
    first = await lab.wait(lab.jobs.submit(caller("alice"), {"path": "nb/train.ipynb"}).id)
    assert (first.state, first.metrics) == ("succeeded", {"score": 0.5}), first.reason
    lab.write("alice", "nb/helper.py", "BASE = 0.9\n")
    exact = await lab.wait(lab.jobs.rerun(caller("alice"), first.id, exact=True).id)
    # the workspace's helper says 0.9 now; the kernel imported the snapshot's
    assert (exact.state, exact.metrics) == ("succeeded", {"score": 0.5}), exact.reason
