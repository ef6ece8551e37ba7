"""Backups of a data directory, taken while the platform runs; their verification; restores.

A backup destination holds complete snapshots, each with a manifest, and the dataset store's
objects once for all of them::

    DEST/objects/ab/cdef...        content-addressed dataset objects (immutable: an object is
                                   copied once, by the first backup that finds it missing)
    DEST/snapshots/<UTC time>/     one complete backup: manifest.json, data/<path in data dir>
    DEST/snapshots/<time>.partial/ a backup under way, or interrupted (removed by the next)
    DEST/LATEST                    the name of the newest complete snapshot, written last

A snapshot is built under its ``.partial`` name and renamed when complete, and ``LATEST``
moves after that (both atomic renames): an interrupted backup leaves the earlier snapshots and
``LATEST`` as they were, and the next run simply starts again. Objects are copied to a
temporary name and renamed, so a present object is always whole. Unchanged files (same size
and modification time as in the previous snapshot) are hard links to the previous snapshot's
copy: every snapshot is complete, yet a nightly backup only copies what changed.

What is copied, in this order: SQLite databases (online backup API, one consistent snapshot
each): the hub's first, then the control plane's, then MLflow's. Then the store's objects,
then every other file. Everything the control plane's database references was written before
the reference was committed (objects are stored and flushed before a dataset version is
recorded; runs and model versions exist before a job or deployment names them), so copying
the referencing database before what it references leaves no dangling reference in a backup.

Not copied: what a start recreates or what belongs to a running platform only (logs, pid and
lock files, sockets, ``hub/ports.json``: a restored platform picks its own internal ports, so a
restore drill can run next to the live platform), the shared dataset root ``datasets/`` (hard
links of store objects: the control plane materialises shared versions again at start), the
store's partial uploads, and ``backups/`` (copies taken before upgrades).
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path
from typing import Callable

from . import backup_files as files
from ..core.errors import Conflict, InvalidInput, MlopsError, NotFound

FORMAT = 1
MANIFEST = "manifest.json"
# The databases the platform keeps, in the order they are copied (see the module docstring);
# any other SQLite database found in the data directory is copied after them, the same way.
DATABASES = {
    "hub": "hub/jupyterhub.sqlite",
    "control": "control/mlops.sqlite",
    "mlflow": "mlflow/mlflow.db",
}
PLATFORM_DIRS = {"hub", "control", "mlflow"}
SKIPPED_DIRS = {"logs", "run", "mlflow/run", "datasets", "store", "backups"}
SKIPPED_FILES = {"up.lock", "up.processes.json", "hub/ports.json"}
SKIPPED_SUFFIXES = (".pid", ".sqlite-wal", ".sqlite-shm", ".sqlite-journal", ".db-wal",
                    ".db-shm", ".db-journal")

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class BackupError(MlopsError):
    """A backup, verification or restore that cannot go on: the message says why."""

    status = 500


def now_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def installed_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("jupyter-mlops", "jupyterhub", "mlflow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def latest_snapshot(dest: Path) -> Path:
    """The newest complete snapshot of ``dest`` (or ``dest`` itself when it is a snapshot)."""
    dest = Path(dest)
    if (dest / MANIFEST).is_file():
        return dest
    try:
        name = (dest / "LATEST").read_text().strip()
    except FileNotFoundError:
        raise NotFound(f"{dest} holds no complete backup (no LATEST, no {MANIFEST})") from None
    snap = dest / "snapshots" / name
    if not (snap / MANIFEST).is_file():
        raise BackupError(f"{dest}/LATEST names {name}, which has no {MANIFEST}")
    return snap


def _objects_root(snapshot: Path) -> Path:
    return snapshot.parent.parent / "objects"


def load_manifest(snapshot: Path) -> dict:
    try:
        manifest = json.loads((snapshot / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise BackupError(f"cannot read {snapshot / MANIFEST}: {e}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{snapshot / MANIFEST} has format {manifest.get('format')!r}; "
                          f"this version reads format {FORMAT}")
    return manifest


def _skipped(rel: str, is_dir: bool) -> bool:
    if is_dir:
        return rel in SKIPPED_DIRS
    return rel in SKIPPED_FILES or rel.endswith(SKIPPED_SUFFIXES)


def _walk(data_dir: Path) -> list[str]:
    """Paths (relative, sorted) of the regular files and symlinks a backup copies."""
    found = []
    for root, dirs, names in os.walk(data_dir):
        rel_root = os.path.relpath(root, data_dir)
        rel_root = "" if rel_root == "." else rel_root + "/"
        dirs[:] = sorted(d for d in dirs if not _skipped(rel_root + d, True)
                         and not os.path.islink(os.path.join(root, d)))
        # a symlink to a directory is listed in dirs: keep it as a link
        links = [d for d in os.listdir(root) if os.path.islink(os.path.join(root, d))
                 and os.path.isdir(os.path.join(root, d))]
        for name in sorted(set(names) | set(links)):
            rel = rel_root + name
            if _skipped(rel, False):
                continue
            mode = os.lstat(os.path.join(root, name)).st_mode
            if stat.S_ISREG(mode) or stat.S_ISLNK(mode):  # sockets, fifos: not state
                found.append(rel)
    return found


class Backup:
    """One run of ``jupyter-mlops backup``: ``Backup(data_dir, dest).run()``."""

    def __init__(self, data_dir: Path, dest: Path, progress: Progress | None = None,
                 store=None):
        """``store``: the platform's dataset store when it is not ``<data_dir>/store`` (an
        S3 bucket: ``backends.store.store_from_settings``); its objects are copied the same
        way, read through the store (each checked against its hash on the way)."""
        self.store = store
        self.data_dir = Path(data_dir).resolve()
        self.dest = Path(dest).resolve()
        self.progress = progress or (lambda stage, done, total: None)
        if not (self.data_dir / "control").is_dir() and not (self.data_dir / "hub").is_dir():
            raise NotFound(f"{self.data_dir} is not a jupyter-mlops data directory "
                           "(no hub/ or control/ in it)")
        if self.dest == self.data_dir or self.data_dir in self.dest.parents:
            raise InvalidInput(f"the backup destination {self.dest} is inside the data "
                               f"directory {self.data_dir}: it would back itself up")

    def run(self, keep: int = 0) -> dict:
        """Take a snapshot; keep the ``keep`` newest (0: all). Returns its manifest."""
        if keep < 0:
            raise InvalidInput("--keep is a number of snapshots, 0 or more (0: keep all)")
        self.dest.mkdir(parents=True, exist_ok=True)
        self.dest.chmod(0o700)  # every project's data and the platform's secrets
        lock = open(self.dest / ".backup.lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"another backup into {self.dest} is running") from None
        try:
            return self._run(keep)
        finally:
            lock.close()

    def _run(self, keep: int) -> dict:
        snapshots = self.dest / "snapshots"
        snapshots.mkdir(exist_ok=True)
        for leftover in snapshots.glob("*.partial"):  # an interrupted earlier run
            shutil.rmtree(leftover)
        for leftover in (self.dest / "objects").glob("*/.*.tmp"):
            leftover.unlink()
        try:
            previous = latest_snapshot(self.dest)
            prev_manifest = load_manifest(previous)
        except NotFound:
            previous, prev_manifest = None, {"files": {}, "objects": {}}
        name = now_stamp()
        partial = snapshots / f"{name}.partial"
        (partial / "data").mkdir(parents=True)
        manifest = {"format": FORMAT, "created": name, "source": str(self.data_dir),
                    "versions": installed_versions(), "databases": {}, "files": {}, "objects": {},
                    "counts": {}}
        paths = _walk(self.data_dir)
        dbs = [p for p in DATABASES.values() if p in paths]
        # The platform's own databases; a user's SQLite file in a workspace is a plain file.
        dbs += [p for p in paths if p not in dbs and p.split("/")[0] in PLATFORM_DIRS
                and files.is_sqlite(self.data_dir / p)]
        self._databases(dbs, partial / "data", manifest)
        copied_objects = self._objects(prev_manifest["objects"], manifest)
        others = [p for p in paths if p not in dbs]
        linked = self._files(others, partial / "data", previous, prev_manifest["files"],
                             manifest)
        _copy_dir_modes(self.data_dir, partial / "data")
        manifest["counts"] = {
            "databases": len(dbs),
            "files": len(manifest["files"]),
            "bytes": sum(f.get("size", 0) for f in manifest["files"].values()),
            "files_copied": len(manifest["files"]) - linked,
            "files_linked": linked,
            "objects": len(manifest["objects"]),
            "object_bytes": sum(o["size"] for o in manifest["objects"].values()),
            "objects_copied": copied_objects,
        }
        tmp = partial / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp, partial / MANIFEST)
        files.sync_filesystem(partial)  # every copy on disk before the snapshot counts
        os.replace(partial, snapshots / name)
        files.fsync_dir(snapshots)
        latest_tmp = self.dest / ".LATEST.tmp"
        latest_tmp.write_text(name + "\n")
        os.replace(latest_tmp, self.dest / "LATEST")
        files.fsync_dir(self.dest)
        if keep > 0:
            done = sorted(p for p in snapshots.iterdir() if not p.name.endswith(".partial"))
            for old in done[:-keep]:
                shutil.rmtree(old)
        manifest["snapshot"] = str(snapshots / name)
        return manifest

    def _databases(self, dbs: list[str], out: Path, manifest: dict) -> None:
        names = {v: k for k, v in DATABASES.items()}
        for i, rel in enumerate(dbs):
            self.progress(f"database {rel}", i, len(dbs))
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                rows = files.backup_sqlite(self.data_dir / rel, dst)
            except sqlite3.Error as e:
                raise BackupError(f"cannot back up the database {rel}: {e}") from None
            size, h = dst.stat().st_size, files.hash_file(dst)
            manifest["files"][rel] = {"size": size, "blake3": h}
            manifest["databases"][names.get(rel, rel)] = {"path": rel, "tables": rows}
        self.progress("databases", len(dbs), len(dbs))

    def _objects(self, known: dict, manifest: dict) -> int:
        """Copy the store objects ``DEST/objects`` lacks; the count copied."""
        source = self.data_dir / "store" / "objects"
        if self.store is not None:
            keys = sorted(f"{o.hash[:2]}/{o.hash[2:]}" for o in self.store.list_objects())
        else:
            keys = sorted(f"{d.name}/{f.name}" for d in source.iterdir() if d.is_dir()
                          for f in d.iterdir() if not f.name.startswith(".")
                          ) if source.is_dir() else []
        root = self.dest / "objects"
        fresh = []  # (temporary name, final name): renamed together once flushed to disk
        for i, key in enumerate(keys):
            if i % 50 == 0:
                self.progress("dataset objects", i, len(keys))
            dst = root / key
            if dst.exists():
                entry = known.get(key)
                if entry is None or entry["size"] != dst.stat().st_size:
                    entry = {"size": dst.stat().st_size, "blake3": files.hash_file(dst)}
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.parent / f".{dst.name}.tmp"
                try:
                    if self.store is not None:
                        size, h = files.write_bytes(
                            self.store.get_bytes(key.replace("/", "")), tmp)
                    else:
                        size, h = files.copy_file(source / key, tmp)
                except (FileNotFoundError, NotFound):
                    tmp.unlink(missing_ok=True)  # collected as garbage meanwhile
                    continue
                fresh.append((tmp, dst))
                entry = {"size": size, "blake3": h}
            manifest["objects"][key] = entry
        if fresh:
            files.sync_filesystem(root)
            for tmp, dst in fresh:
                os.replace(tmp, dst)
        copied = len(fresh)
        self.progress("dataset objects", len(keys), len(keys))
        return copied

    def _files(self, paths: list[str], out: Path, previous: Path | None, known: dict,
               manifest: dict) -> int:
        """Copy ``paths``; a file unchanged since the previous snapshot is hard-linked to its
        copy there. The count linked."""
        linked = 0
        for i, rel in enumerate(paths):
            if i % 200 == 0:
                self.progress("files", i, len(paths))
            src, dst = self.data_dir / rel, out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                st = src.lstat()
                if stat.S_ISLNK(st.st_mode):
                    manifest["files"][rel] = {"symlink": files.copy_symlink(src, dst)}
                    continue
                before = known.get(rel)
                if (previous is not None and before and "blake3" in before
                        and before.get("size") == st.st_size
                        and before.get("mtime_ns") == st.st_mtime_ns
                        and (previous / "data" / rel).is_file()):
                    os.link(previous / "data" / rel, dst)
                    manifest["files"][rel] = dict(before)
                    linked += 1
                    continue
                size, h = files.copy_file(src, dst)
            except FileNotFoundError:
                continue  # removed while the backup ran (a finished upload's temp file)
            manifest["files"][rel] = {"size": size, "blake3": h, "mtime_ns": st.st_mtime_ns}
        self.progress("files", len(paths), len(paths))
        return linked


def verify(src: Path, progress: Progress | None = None) -> tuple[dict, list[str]]:
    """Check the newest snapshot of ``src`` (or the snapshot ``src``) against its manifest:
    every file and object present with its size and hash, every database sound with the
    rows the manifest counted. Returns (manifest, problems); no problems: the backup is whole.
    """
    progress = progress or (lambda stage, done, total: None)
    snapshot = latest_snapshot(Path(src))
    manifest = load_manifest(snapshot)
    problems = []
    data = snapshot / "data"
    entries = sorted(manifest["files"].items())
    for i, (rel, entry) in enumerate(entries):
        if i % 200 == 0:
            progress("files", i, len(entries))
        p = data / rel
        if "symlink" in entry:
            if not p.is_symlink() or os.readlink(p) != entry["symlink"]:
                problems.append(f"{rel}: symlink missing or changed")
            continue
        problems += _file_problems(p, rel, entry)
    progress("files", len(entries), len(entries))
    objects = _objects_root(snapshot)
    keys = sorted(manifest["objects"])
    for i, key in enumerate(keys):
        if i % 50 == 0:
            progress("dataset objects", i, len(keys))
        problems += _file_problems(objects / key, f"object {key}", manifest["objects"][key])
    progress("dataset objects", len(keys), len(keys))
    for name, db in manifest["databases"].items():
        path = data / db["path"]
        if not path.is_file():
            continue  # already reported as missing
        found = files.sqlite_problems(path)
        if found:
            problems.append(f"database {name}: {'; '.join(found[:3])}")
        elif files.sqlite_rows(path) != db["tables"]:
            problems.append(f"database {name}: table rows differ from the manifest")
    return manifest, problems


def _file_problems(path: Path, what: str, entry: dict) -> list[str]:
    if not path.is_file():
        return [f"{what}: missing"]
    if path.stat().st_size != entry["size"]:
        return [f"{what}: {path.stat().st_size} bytes, the manifest says {entry['size']}"]
    if files.hash_file(path) != entry["blake3"]:
        return [f"{what}: content differs from the manifest (blake3)"]
    return []


def data_dir_in_use(data_dir: Path) -> bool:
    """True while a ``jupyter-mlops up`` holds ``data_dir``'s lock."""
    try:
        f = open(data_dir / "up.lock", "r")
    except FileNotFoundError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def restore(src: Path, data_dir: Path, progress: Progress | None = None,
            store=None) -> dict:
    """Restore the newest snapshot of ``src`` into ``data_dir``, which must not exist or be
    empty. The backup is verified first; the data directory appears whole or not at all (built
    under a temporary name beside it, renamed at the end). ``store``: put the dataset objects
    into that store (an S3 bucket) instead of ``<data_dir>/store``; those it holds already are
    not sent again. Returns the manifest."""
    progress = progress or (lambda stage, done, total: None)
    data_dir = Path(data_dir).resolve()
    if data_dir.exists():
        if data_dir_in_use(data_dir):
            raise Conflict(f"{data_dir} is the data directory of a running platform: "
                           "restore into a new, empty directory")
        if not data_dir.is_dir() or any(data_dir.iterdir()):
            raise Conflict(f"{data_dir} is not empty: restore into a new, empty directory "
                           "(a restore never overwrites a data directory)")
    snapshot = latest_snapshot(Path(src))
    manifest, problems = verify(snapshot, progress)
    if problems:
        raise BackupError(f"the backup {snapshot} does not match its manifest, nothing "
                          f"restored: {'; '.join(problems[:5])}"
                          + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    building = data_dir.parent / f".{data_dir.name}.restoring-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(mode=0o755)
    try:
        entries = sorted(manifest["files"].items())
        for i, (rel, entry) in enumerate(entries):
            if i % 200 == 0:
                progress("restore files", i, len(entries))
            src_path, dst = snapshot / "data" / rel, building / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if "symlink" in entry:
                files.copy_symlink(src_path, dst)
            else:
                files.copy_file(src_path, dst)
        objects = _objects_root(snapshot)
        keys = sorted(manifest["objects"])
        for i, key in enumerate(keys):
            if i % 50 == 0:
                progress("restore dataset objects", i, len(keys))
            if store is not None:
                h = key.replace("/", "")
                if not store.exists(h):
                    store.put_bytes(h, (objects / key).read_bytes())
                continue
            dst = building / "store" / "objects" / key
            dst.parent.mkdir(parents=True, exist_ok=True)
            files.copy_file(objects / key, dst)
        progress("restore dataset objects", len(keys), len(keys))
        _copy_dir_modes(snapshot / "data", building)
        detach_processes(building)
        files.sync_filesystem(building)
        if data_dir.exists():
            data_dir.rmdir()  # empty, checked above
        os.replace(building, data_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return manifest


def detach_processes(data_dir: Path) -> dict:
    """Forget, in a restored data directory, the processes the backed-up platform ran.

    The databases name running jobs, model servers and user servers by pid (with a start time
    against reuse). On the same machine, while the original platform still runs (a restore
    drill), the restored platform would take them for its own: route to them, and kill them
    when it stops. So: jobs that ran at backup time lose their process handle (the restored
    platform records them as ended without an outcome: rerun them), deployments with a
    server are started again from their model version, user servers are recorded stopped.
    Returns what was changed, counted."""
    import sqlite3

    changed = {"jobs": 0, "deployments": 0, "user_servers": 0}
    control = data_dir / DATABASES["control"]
    if control.is_file():
        conn = sqlite3.connect(control)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "jobs" in tables:
                for job_id, data in conn.execute(
                        "SELECT id, data FROM jobs WHERE state = 'running'").fetchall():
                    d = json.loads(data)
                    d["handle"] = {k: v for k, v in (d.get("handle") or {}).items()
                                   if k not in ("pid", "create_time")}
                    conn.execute("UPDATE jobs SET data = ? WHERE id = ?",
                                 (json.dumps(d), job_id))
                    changed["jobs"] += 1
            if "deployments" in tables:
                changed["deployments"] = conn.execute(
                    "UPDATE deployments SET instance = NULL, status = 'starting'"
                    " WHERE instance IS NOT NULL").rowcount
            conn.commit()
        finally:
            conn.close()
    hub = data_dir / DATABASES["hub"]
    if hub.is_file():
        conn = sqlite3.connect(hub)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if {"spawners", "servers"} <= tables:
                changed["user_servers"] = conn.execute(
                    "UPDATE spawners SET server_id = NULL, state = '{}', started = NULL"
                    " WHERE server_id IS NOT NULL").rowcount
                conn.execute("DELETE FROM servers")
            conn.commit()
        finally:
            conn.close()
    return changed


def _copy_dir_modes(source: Path, target: Path) -> None:
    """The directories of ``target`` get the modes and owners of the same directories in
    ``source`` (private ones stay 0700, workspaces stay their users')."""
    for root, dirs, _ in os.walk(target):
        for d in dirs:
            t = Path(root) / d
            s = source / t.relative_to(target)
            if s.is_dir() and not t.is_symlink():
                st = s.stat()
                os.chmod(t, stat.S_IMODE(st.st_mode))
                files.keep_owner(st, t)
