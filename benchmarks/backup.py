"""Backup benchmark: a lab-sized data directory backed up, backed up again, verified, restored.

    .venv/bin/python benchmarks/backup.py            # 2,000 objects of 1 MB (the lab's dataset)
    .venv/bin/python benchmarks/backup.py --quick    # 200 objects of 256 KB

The data directory is synthetic (no platform runs): the three databases with some thousand
rows each in WAL mode, the objects, some hundred MLflow artifact files. Measures, each as a
fresh ``Backup``/``verify``/``restore`` call in process:

1. the first backup (everything copied and hashed);
2. a nightly backup with nothing new (goal: <= 0.1 of the first: objects are not copied again,
   unchanged files are hard links; the databases are always copied);
3. a backup after 20 new objects (copies exactly 20);
4. verify (re-hashes everything) and restore.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from jupyter_mlops.backends import backup  # noqa: E402


def make_data_dir(d: Path, objects: int, size: int) -> None:
    for rel in ("hub/jupyterhub.sqlite", "control/mlops.sqlite", "mlflow/mlflow.db"):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(d / rel) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE t (x TEXT)")
            conn.executemany("INSERT INTO t VALUES (?)", [("x" * 200,)] * 5000)
    add_objects(d, 0, objects, size)
    art = d / "mlflow" / "artifacts"
    for i in range(300):
        p = art / str(i % 10) / f"run{i}" / "metrics.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(2048))


def add_objects(d: Path, start: int, n: int, size: int) -> None:
    for i in range(start, start + n):
        h = f"{i:064x}"
        p = d / "store" / "objects" / h[:2] / h[2:]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    n, size = (200, 256 << 10) if args.quick else (2000, 1 << 20)
    work = Path(tempfile.mkdtemp(prefix="mlops-bench-backup-"))
    try:
        data, dest = work / "data", work / "dest"
        make_data_dir(data, n, size)
        first, m1 = timed(lambda: backup.Backup(data, dest).run())
        again, m2 = timed(lambda: backup.Backup(data, dest).run())
        add_objects(data, n, 20, size)
        new, m3 = timed(lambda: backup.Backup(data, dest).run())
        check, (_, problems) = timed(lambda: backup.verify(dest))
        restore, _ = timed(lambda: backup.restore(dest, work / "restored"))
        assert not problems and m3["counts"]["objects_copied"] == 20
        result = {
            "objects": n, "object_bytes": size,
            "first_s": round(first, 2), "nothing_new_s": round(again, 2),
            "nothing_new_ratio": round(again / first, 3),
            "twenty_new_s": round(new, 2), "verify_s": round(check, 2),
            "restore_s": round(restore, 2),
            "objects_copied": [m["counts"]["objects_copied"] for m in (m1, m2, m3)],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for k, v in result.items():
        print(f"{k:>18}: {v}")
    out = Path(__file__).parent / "results" / f"backup{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    if not args.quick:  # with small objects the fixed cost (databases, walk) dominates
        print("goal nothing_new_ratio <= 0.1: "
              f"{'met' if result['nothing_new_ratio'] <= 0.1 else 'NOT met'}")
    return result


if __name__ == "__main__":
    main()
