"""Datasets benchmark: jupyter-mlops vs DVC on the same folder, side by side in one run.

    .venv/bin/python benchmarks/datasets.py                 # 2,000 images of 0.5-4 MB
    .venv/bin/python benchmarks/datasets.py --quick         # 200 images, same table

Measures (goals):

1. cold publish (empty store) of the folder, keeping a copy of the content, vs ``dvc add``
   (goal <= 0.12 of DVC's time for 2,000 images): first both as fresh processes timed from
   outside, in alternating rounds A B A B (``--rounds``), the ratio of the medians printed;
   then, in process, the core path (hash + store + record, what runs next to the
   files) and, unless ``--skip-platform``, the product path through a running platform
   (hash in the client, one question for the missing hashes, version recorded), twice on an
   emptied store: the same-machine path a user server takes (open descriptors passed over
   the control plane's unix socket, copied and verified in one pass) and the HTTP fallback
   (batches streamed over parallel requests at the address the spawner gives user servers,
   each object verified on its way into the store);
2. hashing throughput vs the single-core blake3 limit measured in the same run (goal >= 80 %);
3. status with one changed file, stat cache warm (goal <= 50 ms): like for like against
   ``dvc status``, both as fresh processes timed from outside in alternating rounds (a
   process that reads the stat cache from disk and compares against the latest version, vs
   ``dvc status`` in its repository), medians and their ratio; then ours in process (the core
   call), and with the platform the whole ``datasets.status`` a notebook makes (version lookup
   over HTTP, cached manifest index, stat cache read from disk), which have no DVC peer;
4. time to the first page (48) of thumbnails through the control plane (with the platform).

DVC is installed into its own virtual environment under the work directory (``pip install
dvc``), never into the project's. Both tools read the same files with the page cache warm
(dropping the cache would slow the other engineers sharing this machine); both keep a copy.
"""
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/ holds scripts named like stdlib modules (platform.py): keep it off the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import blake3
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jupyter_mlops.backends.store import LocalStore  # noqa: E402
from jupyter_mlops.core.datasets import folder  # noqa: E402
from jupyter_mlops.core.datasets.catalog import DatasetCatalog  # noqa: E402
from jupyter_mlops.core.datasets.manifest import Manifest  # noqa: E402
from jupyter_mlops.core.db import Database  # noqa: E402
from jupyter_mlops.core.projects import Projects  # noqa: E402
from jupyter_mlops.core.roles import USE, Caller  # noqa: E402
from jupyter_mlops.demo import cells  # noqa: E402


def make_images(root: Path, n: int, seed: int = 0) -> tuple[int, int]:
    """``n`` 16-bit TIFFs of 0.5-4 MB (sides 512-1448 px), seeded; reused when present."""
    marker = root / ".complete"
    if marker.exists() and json.loads(marker.read_text())["n"] == n:
        files = [p for p in root.iterdir() if p.suffix == ".tif"]
        return len(files), sum(p.stat().st_size for p in files)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)

    def one(i: int) -> int:
        rng = np.random.default_rng([seed, i])
        side = int(np.sqrt(rng.uniform(0.5, 4.0) * 2**20 / 2))
        img, _ = cells.render(rng, side, side, cells.nuclei(rng, side, side, 25))
        path = root / f"img_{i:05d}.tif"
        cells.write_image(path, img)
        return path.stat().st_size

    with ThreadPoolExecutor(2) as pool:
        sizes = list(pool.map(one, range(n)))
    marker.write_text(json.dumps({"n": n}))
    return n, sum(sizes)


def warm(root: Path) -> float:
    t = time.perf_counter()
    for p in sorted(root.iterdir()):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(1 << 22):
                    pass
    return time.perf_counter() - t


def single_core_blake3() -> float:
    buf = os.urandom(256 * 2**20)
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        blake3.blake3(buf, max_threads=1).digest()
        best = max(best, len(buf) / (time.perf_counter() - t))
    return best


def dvc_env(work: Path) -> Path:
    venv = work / "dvc-venv"
    dvc = venv / "bin" / "dvc"
    if not dvc.exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "dvc"], check=True)
    return dvc


def run_dvc(dvc: Path, images: Path, work: Path) -> dict:
    repo = work / "dvc-repo"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([str(dvc), "init", "--no-scm", "-q"], cwd=repo, check=True, env=env)
    # DVC's default cache type copies; a hard-linked workspace costs nothing to set up
    subprocess.run(["cp", "-al", str(images), str(repo / "images")], check=True)
    (repo / "images" / ".complete").unlink(missing_ok=True)
    t = time.perf_counter()
    subprocess.run([str(dvc), "add", "-q", "images"], cwd=repo, check=True, env=env)
    add = time.perf_counter() - t
    victim = sorted((repo / "images").glob("*.tif"))[7]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    tmp = victim.with_suffix(".new")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, victim)  # breaks the hard link: the source folder stays untouched
    t = time.perf_counter()
    r = subprocess.run([str(dvc), "status"], cwd=repo, env=env, capture_output=True,
                       text=True)
    status = time.perf_counter() - t
    assert "modified" in r.stdout, r.stdout
    return {"add": add, "status": status}


def publish_once(images: Path, work: Path, name: str) -> None:
    """The core path of a cold publish, in this (fresh) process: scan, hash while copying into
    an empty local store, record the version. Run by :func:`run_rounds` as a subprocess."""
    db = Database(f"sqlite:///{work / 'round.sqlite'}")
    catalog = DatasetCatalog(db, Projects(db))
    store = LocalStore(work / "round-store")
    manifest, _ = folder.prepare(images, store, cache=folder.StatCache(images, None))
    # no syncfs here: dvc add does not flush either, and on a machine shared with other
    # writers a file-system flush waits for their dirty pages too
    catalog.publish(Caller("bench", scopes=frozenset({USE})), name, manifest, "cold")
    db.dispose()


def run_rounds(dvc: Path, images: Path, work: Path, rounds: int) -> dict:
    """Cold publish (ours) vs ``dvc add``, each as a fresh process timed from outside, in
    alternating rounds A B A B, so both pay interpreter start and imports and both meet the
    machine's load in turn. Untimed before each: an emptied store (ours) or a fresh ``dvc
    init`` with the folder hard-linked in (DVC)."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    ours, theirs = [], []
    for i in range(rounds):
        for d in ("round-store",):
            shutil.rmtree(work / d, ignore_errors=True)
        (work / "round.sqlite").unlink(missing_ok=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--publish-once",
                        "--workdir", str(work), "--n", str(len(list(images.glob("*.tif")))),
                        "--name", f"round-{i}"], check=True)
        ours.append(time.perf_counter() - t)
        repo = work / "dvc-round"
        shutil.rmtree(repo, ignore_errors=True)
        repo.mkdir()
        subprocess.run([str(dvc), "init", "--no-scm", "-q"], cwd=repo, check=True, env=env)
        subprocess.run(["cp", "-al", str(images), str(repo / "images")], check=True)
        (repo / "images" / ".complete").unlink(missing_ok=True)
        t = time.perf_counter()
        subprocess.run([str(dvc), "add", "-q", "images"], cwd=repo, check=True, env=env)
        theirs.append(time.perf_counter() - t)
        print(f"round {i + 1}: ours {ours[-1]:.2f} s, dvc add {theirs[-1]:.2f} s "
              f"-> {ours[-1] / theirs[-1]:.3f}x", flush=True)
    shutil.rmtree(work / "dvc-round", ignore_errors=True)
    shutil.rmtree(work / "round-store", ignore_errors=True)
    from statistics import median

    return {"ours": ours, "dvc": theirs, "ratio": median(ours) / median(theirs),
            "ratios": [a / b for a, b in zip(ours, theirs)]}


def run_status(images: Path, manifest, cache_dir: Path) -> list[float]:
    """Status with one changed file, as a fresh process sees it (stat cache read from disk)."""
    victim = sorted(images.glob("*.tif"))[7]
    original = victim.read_bytes()
    times = []
    try:
        for i in range(5):
            data = bytearray(original)
            data[-1] = (data[-1] + 1 + i) % 256
            victim.write_bytes(bytes(data))
            c = folder.StatCache(images, cache_dir)
            t = time.perf_counter()
            s = folder.status(images, manifest, c)
            times.append(time.perf_counter() - t)
            assert s["modified"] == [victim.name] and s["rehashed"] == 1, s
    finally:
        victim.write_bytes(original)
    return times


def run_core(images: Path, work: Path) -> dict:
    store_dir, cache_dir = work / "core-store", work / "core-cache"
    for d in (store_dir, cache_dir):
        shutil.rmtree(d, ignore_errors=True)
    db = Database(f"sqlite:///{work / 'core.sqlite'}")
    catalog = DatasetCatalog(db, Projects(db))
    me = Caller("bench", scopes=frozenset({USE}))
    store = LocalStore(store_dir)

    cache = folder.StatCache(images, cache_dir)
    t = time.perf_counter()
    manifest, counts = folder.prepare(images, store, cache=cache)
    v = catalog.publish(me, f"bench-{int(time.time())}", manifest, "cold")
    publish = time.perf_counter() - t

    files = folder.scan(images)
    nbytes = sum(f.size for f in files)
    t = time.perf_counter()
    folder.hash_folder(files)  # no cache: every file hashed, on every core
    hashing = nbytes / (time.perf_counter() - t)

    status_times = run_status(images, manifest, cache_dir)
    db.dispose()
    return {"publish": publish, "uploaded": counts["uploaded"], "hashing": hashing,
            "status": sorted(status_times)[len(status_times) // 2], "version": v.version,
            "status_runs": status_times}


def run_platform(images: Path, work: Path) -> dict:
    from jupyter_mlops import datasets
    from jupyter_mlops.client import ControlPlane
    from tests.fixtures import Platform

    shutil.rmtree(work / "platform", ignore_errors=True)  # a cold store every run
    p = Platform(work / "platform").start(timeout=180)
    try:
        token = p.admin_token()
        # user servers call the control plane directly (the spawner's control_plane_url), not
        # through the public proxy
        svc = p.hub("GET", "services/mlops").json()
        direct = (svc.get("url") or p.url).rstrip("/") + "/services/mlops/"
        os.environ["XDG_CACHE_HOME"] = str(work / "platform-client-cache")
        sock = str(p.data_dir / "run" / "publish.sock")  # what the spawner gives user servers

        def cold(name: str, socket_path: str):
            # an empty store and no stat cache: every file hashed and stored
            shutil.rmtree(work / "platform-client-cache", ignore_errors=True)
            objects = p.data_dir / "store" / "objects"
            shutil.rmtree(objects)
            objects.mkdir()
            c = ControlPlane(direct, token, timeout=300, publish_socket=socket_path)
            marks: dict[str, float] = {}

            def progress(phase, *_):
                marks.setdefault(phase, time.perf_counter())

            t = time.perf_counter()
            v = datasets.publish(images, name, "cold", client=c, progress=progress)
            end = time.perf_counter()
            # where the time went: hashing, storing, recording (seconds)
            v["phases"] = {"hash": marks["storing"] - t,
                           "store": marks["recording"] - marks["storing"],
                           "record": end - marks["recording"]}
            return end - t, v, c

        publish_http, vh, c = cold("cells-http", "")
        c.close()
        assert vh["transfer"]["path"] == "http"
        publish, v, client = cold("cells-bench", sock)
        assert v["transfer"]["path"] == "socket", v["transfer"]
        datasets.status(images, "cells-bench", client=client)  # fills the manifest index cache
        victim = sorted(images.glob("*.tif"))[7]
        original = victim.read_bytes()
        status_times = []
        try:
            for i in range(5):
                data = bytearray(original)
                data[-1] = (data[-1] + 1 + i) % 256
                victim.write_bytes(bytes(data))
                t = time.perf_counter()
                st = datasets.status(images, "cells-bench", client=client)
                status_times.append(time.perf_counter() - t)
                assert st["modified"] == [victim.name] and st["rehashed"] == 1, st
        finally:
            victim.write_bytes(original)
        api = f"services/mlops/api/datasets/cells-bench/versions/{v['version']}"
        t = time.perf_counter()
        page = p.api("GET", api, token, params={"limit": 48, "kind": "image"}).json()

        def thumb(f):
            r = p.api("GET", f"services/mlops/api/dataset-objects/{f['hash']}/thumbnail",
                      token, params={"size": 128})
            assert r.status_code == 200
            return len(r.content)

        with ThreadPoolExecutor(6) as pool:  # a browser's connections per host
            list(pool.map(thumb, page["files"]))
        first_page = time.perf_counter() - t
        client.close()
        return {"publish": publish, "publish_http": publish_http, "first_page": first_page,
                "phases": v["phases"], "phases_http": vh["phases"],
                "uploaded": v["transfer"]["uploaded"], "via": direct,
                "status": sorted(status_times)[2], "status_runs": status_times}
    finally:
        p.stop()


# A ``status`` command in a fresh interpreter: only what status needs is imported, the version's
# manifest is read from a file (as ``dvc status`` reads its .dvc file), the stat cache from disk.
STATUS_ONCE = """
import json, sys
from jupyter_mlops.core.datasets import folder
from jupyter_mlops.core.datasets.manifest import Manifest
images, manifest, cache = sys.argv[1:4]
with open(manifest) as f:
    m = Manifest.from_dict(json.load(f))
s = folder.status(images, m, folder.StatCache(images, cache))
assert len(s["modified"]) == 1, s
"""


def status_rounds(dvc: Path, images: Path, work: Path, rounds: int) -> dict:
    """Status with one changed file: ours and ``dvc status``, each a fresh process timed from
    outside, alternating (A B A B). Untimed before each: one file changed (in our folder, and
    in DVC's hard-linked copy, breaking the link)."""
    from statistics import median

    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    repo = work / "dvc-repo"
    db = Database(f"sqlite:///{work / 'core.sqlite'}")
    row = db.query("SELECT manifest FROM dataset_versions ORDER BY created_at DESC LIMIT 1")
    db.dispose()
    manifest = work / "status-manifest.json"
    manifest.write_text(row[0]["manifest"])
    victim = sorted(images.glob("*.tif"))[7]
    theirs_victim = repo / "images" / victim.name
    original = victim.read_bytes()
    ours, theirs = [], []
    try:
        for i in range(rounds):
            data = bytearray(original)
            data[-1] = (data[-1] + 1 + i) % 256
            victim.write_bytes(bytes(data))
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", STATUS_ONCE, str(images), str(manifest),
                            str(work / "core-cache")], check=True, cwd=REPO)
            ours.append(time.perf_counter() - t)
            tmp = theirs_victim.with_suffix(".new")
            tmp.write_bytes(bytes(data))
            os.replace(tmp, theirs_victim)
            t = time.perf_counter()
            r = subprocess.run([str(dvc), "status"], cwd=repo, env=env, capture_output=True,
                               text=True)
            theirs.append(time.perf_counter() - t)
            assert "modified" in r.stdout, r.stdout
            print(f"status round {i + 1}: ours {ours[-1] * 1000:.0f} ms, dvc status "
                  f"{theirs[-1] * 1000:.0f} ms", flush=True)
    finally:
        victim.write_bytes(original)
    return {"ours": ours, "dvc": theirs, "ours_median": median(ours),
            "dvc_median": median(theirs), "ratio": median(ours) / median(theirs)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="200 images instead of 2,000")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "mlops-bench-ds"))
    ap.add_argument("--skip-dvc", action="store_true")
    ap.add_argument("--skip-platform", action="store_true")
    ap.add_argument("--status-only", action="store_true",
                    help="only the status measurement, on the folder and cache of a full run")
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternating fresh-process rounds of ours and dvc add (A B A B)")
    ap.add_argument("--publish-once", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--name", default="round", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick and a.n == 2000:
        a.n = 200
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    images = work / f"images-{a.n}"
    if a.publish_once:
        publish_once(images, work, a.name)
        return
    t = time.perf_counter()
    if a.status_only:
        db = Database(f"sqlite:///{work / 'core.sqlite'}")
        row = db.query("SELECT manifest FROM dataset_versions ORDER BY created_at DESC LIMIT 1")
        manifest = Manifest.from_dict(json.loads(row[0]["manifest"]))
        times = run_status(images, manifest, work / "core-cache")
        print(f"status, 1 changed file: {sorted(times)[2] * 1000:.1f} ms (median of 5: "
              f"{', '.join(f'{t * 1000:.1f}' for t in times)}); load average "
              f"{os.getloadavg()[0]:.1f}")
        return
    n, total = make_images(images, a.n)
    print(f"{n} images, {total / 2**30:.2f} GiB ({time.perf_counter() - t:.0f} s to prepare)")
    print(f"warm read of all files: {warm(images):.2f} s; cores: {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    limit = single_core_blake3()

    dvc = rounds = None
    if not a.skip_dvc:
        rounds = run_rounds(dvc_env(work), images, work, a.rounds)
        dvc = run_dvc(dvc_env(work), images, work)
        warm(images)
    core = run_core(images, work)
    statuses = None if a.skip_dvc else status_rounds(dvc_env(work), images, work,
                                                      max(a.rounds, 5))
    plat = None if a.skip_platform else run_platform(images, work)

    gb = 2**30
    rows = [("single-core blake3 limit", f"{limit / gb:.2f} GiB/s", "", ""),
            ("hashing, all cores (files)", f"{core['hashing'] / gb:.2f} GiB/s",
             f"{core['hashing'] / limit:.0%} of the limit", "goal >= 80%")]
    if rounds:
        rows.append(("cold publish, fresh processes A B A B",
                     " / ".join(f"{x:.2f}" for x in rounds["ours"]) + " s",
                     "dvc add " + " / ".join(f"{x:.2f}" for x in rounds["dvc"]) +
                     f" s -> {rounds['ratio']:.3f}x (median)", "goal <= 0.12x"))
    if dvc:
        rows.append(("cold publish, core path", f"{core['publish']:.2f} s",
                     f"dvc add {dvc['add']:.2f} s -> {core['publish'] / dvc['add']:.2f}x",
                     "goal <= 0.25x"))
        if plat:
            rows.append(("cold publish, platform (socket)", f"{plat['publish']:.2f} s",
                         f"dvc add {dvc['add']:.2f} s -> {plat['publish'] / dvc['add']:.2f}x",
                         "goal <= 0.25x"))
            rows.append(("cold publish, platform (HTTP)", f"{plat['publish_http']:.2f} s",
                         f"dvc add {dvc['add']:.2f} s -> "
                         f"{plat['publish_http'] / dvc['add']:.2f}x", "fallback"))
        rows.append(("status, fresh processes A B A B",
                     f"{statuses['ours_median'] * 1000:.0f} ms (median)",
                     f"dvc status {statuses['dvc_median'] * 1000:.0f} ms -> "
                     f"{statuses['ratio']:.3f}x (median)", ""))
        rows.append(("status, 1 changed file, in process", f"{core['status'] * 1000:.1f} ms",
                     "", "goal <= 50 ms"))
        if plat:
            rows.append(("status via datasets.status()", f"{plat['status'] * 1000:.1f} ms",
                         "", "goal <= 50 ms"))
    else:
        rows.append(("cold publish, core path", f"{core['publish']:.2f} s", "", ""))
        if plat:
            rows.append(("cold publish, platform (socket)", f"{plat['publish']:.2f} s", "", ""))
            rows.append(("cold publish, platform (HTTP)", f"{plat['publish_http']:.2f} s", "",
                         "fallback"))
        rows.append(("status, 1 changed file", f"{core['status'] * 1000:.1f} ms", "",
                     "goal <= 50 ms"))
    if plat:
        for key, label in (("phases", "socket"), ("phases_http", "HTTP")):
            ph = plat[key]
            rows.append((f"  {label}: hash / store / record",
                         " / ".join(f"{ph[k]:.2f}" for k in ("hash", "store", "record")) + " s",
                         "", ""))
        rows.append(("first page of 48 thumbnails", f"{plat['first_page']:.2f} s", "", ""))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
    print(json.dumps({"n": n, "bytes": total, "blake3_limit": limit, "core": core,
                      "dvc": dvc, "rounds": rounds, "status_rounds": statuses,
                      "platform": plat}, default=str))


if __name__ == "__main__":
    main()
