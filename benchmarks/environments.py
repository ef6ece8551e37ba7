"""Locked environments of "rerun exactly": what recording and rebuilding cost.

    .venv/bin/python benchmarks/environments.py

Measures, in process, with this interpreter's environment (the platform's, some 230
distributions with torch, MLflow and JupyterLab):

1. the lock (what every job records at its start; goal: well under a second);
2. a rebuild from the lock when every distribution is here in the locked version (all linked:
   what a rerun costs after an unrelated package was installed; goal: under 30 s once per lock);
3. the reuse of that environment by the next rerun of the same lock (goal: ~0).

Results go to ``benchmarks/results/environments.json``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from jupyter_mlops.backends import job_environment as envs  # noqa: E402


def main() -> dict:
    root = Path(tempfile.mkdtemp(prefix="mlops-bench-envs-"))
    try:
        t0 = time.perf_counter()
        lock = envs.current_lock()
        t1 = time.perf_counter()
        envs.build(lock, root, log=lambda m: None)
        t2 = time.perf_counter()
        envs.build(lock, root, log=lambda m: None)
        t3 = time.perf_counter()
        links = sum(1 for _ in root.rglob("*") if _.is_symlink())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = {"distributions": sum(1 for x in lock.splitlines() if x and not x.startswith("#")),
           "lock_s": round(t1 - t0, 3), "rebuild_all_linked_s": round(t2 - t1, 2),
           "reuse_s": round(t3 - t2, 4), "symlinks": links,
           "load_average": os.getloadavg()[0]}
    path = Path(__file__).parent / "results" / "environments.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
