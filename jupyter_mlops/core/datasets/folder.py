"""A dataset folder on disk: safe scanning, parallel hashing, a stat cache, status, publish.

Hashing runs on a thread pool, one file per task and one core per file: each thread reads
into its own reused 1 MiB buffer and blake3 hashes it with the GIL released. (Measured here:
this beats memory-mapping, whose page faults cost more than the copy, and blake3's own threads
inside every file, which fight the pool for the cores.) One big file alone uses blake3's
threads. The stat cache remembers ``(size, mtime, ctime, inode) -> hash`` per folder, so a
status with one changed file re-hashes one file.
"""
from __future__ import annotations

import json
import os
import shutil
import stat as stat_mod
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol

import blake3

from ..errors import InvalidInput, NotFound
from . import annotations as ann
from .images import image_info
from .manifest import BAD_CHARS, FileEntry, Manifest, Split, is_image, safe_relpath

Progress = Callable[[str, int, int, int], None]  # phase, files done, files total, bytes done
SKIPPED_NAMES = {".ipynb_checkpoints", "__pycache__", ".git", ".DS_Store"}


def default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


def hash_workers() -> int:
    """One hashing thread per core: more only queue for the same cores."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


READ_BUFFER = 1 << 20  # big enough that blake3's SIMD dominates, small enough to stay in L2
_buffers = threading.local()


@dataclass(frozen=True)
class LocalFile:
    path: str  # relative POSIX path inside the root
    abspath: str
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int

    def key(self) -> list:
        return [self.size, self.mtime_ns, self.ctime_ns, self.ino]


def scan(root: str | Path) -> list[LocalFile]:
    """Every regular file under ``root`` (hidden names skipped), sorted by path.

    A symlink is followed only when it resolves inside ``root``; one leading out is refused,
    since publishing it would copy files the user never meant to share.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotFound(f"no folder {str(root)!r}")
    real_root = os.path.realpath(root)
    out: list[LocalFile] = []
    stack = [("", str(root))]
    while stack:
        rel, path = stack.pop()
        try:
            items = list(os.scandir(path))
        except OSError as e:
            raise InvalidInput(f"cannot read folder {rel or '.'}: {e.strerror}") from None
        for it in items:
            if it.name.startswith(".") or it.name in SKIPPED_NAMES:
                continue
            relp = f"{rel}/{it.name}" if rel else it.name
            if it.is_symlink():
                target = os.path.realpath(it.path)
                if target != real_root and not target.startswith(real_root + os.sep):
                    raise InvalidInput(f"{relp} is a symlink leading out of the folder; refused")
                if os.path.isdir(target):
                    continue  # its files are published under their real path already
            elif it.is_dir(follow_symlinks=False):  # the entry's type: no stat call
                stack.append((relp, it.path))
                continue
            try:
                st = it.stat()  # one stat per file (follows an inside link)
            except OSError:
                continue  # dangling link or vanished file
            if stat_mod.S_ISREG(st.st_mode):
                if BAD_CHARS.search(it.name):  # hidden names ("." "..") are skipped above
                    safe_relpath(relp)  # raises with the reason
                out.append(LocalFile(relp, it.path, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                     st.st_ino))
    out.sort(key=lambda f: f.path)
    return out


def hash_file(path: str, threads: int = 1) -> str:
    """blake3 of a file, read into this thread's reused buffer (no allocation per chunk)."""
    if threads != 1:  # one big file on its own: let blake3 spread it over the cores
        h = blake3.blake3(max_threads=threads)
        if os.path.getsize(path) > 0:
            h.update_mmap(path)
        return h.hexdigest()
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = bytearray(READ_BUFFER)
    view = memoryview(buf)
    h = blake3.blake3(max_threads=1)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


class StatCache:
    """``path -> (stat key, hash, image info)`` of one folder, kept in a JSON file."""

    def __init__(self, root: str | Path, cache_dir: str | Path | None):
        self.root = os.path.realpath(root)
        self.file = None
        if cache_dir:
            name = blake3.blake3(self.root.encode()).hexdigest()[:32] + ".json"
            self.file = Path(cache_dir) / name
        self.entries: dict[str, list] = {}
        self.dirty = False
        if self.file and self.file.exists():
            try:
                data = json.loads(self.file.read_text())
                if data.get("root") == self.root:
                    self.entries = data.get("entries", {})
            except (OSError, ValueError):
                self.entries = {}

    def get(self, f: LocalFile) -> tuple[str, dict] | None:
        e = self.entries.get(f.path)
        if e and e[0] == f.key():
            return e[1], e[2]
        return None

    def put(self, f: LocalFile, h: str, info: dict) -> None:
        self.entries[f.path] = [f.key(), h, info]
        self.dirty = True

    def save(self) -> None:
        if not (self.file and self.dirty):
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"root": self.root, "entries": self.entries}))
        os.replace(tmp, self.file)
        self.dirty = False


def hash_folder(files: list[LocalFile], cache: StatCache | None = None,
                workers: int | None = None, progress: Progress | None = None,
                counts: dict | None = None) -> dict[str, tuple[str, dict]]:
    """``{path: (hash, image info)}``; files whose stats match the cache are not re-read.

    ``counts`` (a dict), when given, receives ``hashed``: how many files were read.
    """
    out: dict[str, tuple[str, dict]] = {}
    todo = []
    for f in files:
        hit = cache.get(f) if cache else None
        if hit:
            out[f.path] = hit
        else:
            todo.append(f)
    total, done, nbytes = len(files), len(out), 0
    if counts is not None:
        counts["hashed"] = len(todo)

    workers = workers or hash_workers()
    # fewer files than cores (a status with one change, one huge file): threads inside files
    threads = blake3.blake3.AUTO if len(todo) < workers and any(
        f.size > 64 * READ_BUFFER for f in todo) else 1

    def one(f: LocalFile):
        info = image_info(f.abspath) if is_image(f.path) else {}
        return f, hash_file(f.abspath, threads), info

    if progress:
        progress("hashing", done, total, 0)
    if len(todo) == 1:  # no pool to start for the common status case
        f, h, info = one(todo[0])
        out[f.path] = (h, info)
        if cache:
            cache.put(f, h, info)
        if progress:
            progress("hashing", total, total, f.size)
    elif todo:
        with ThreadPoolExecutor(workers) as pool:
            for f, h, info in pool.map(one, todo):
                out[f.path] = (h, info)
                if cache:
                    cache.put(f, h, info)
                done += 1
                nbytes += f.size
                if progress and (done % 25 == 0 or done == total):
                    progress("hashing", done, total, nbytes)
    return out


def build_manifest(root: str | Path, files: list[LocalFile], hashed: dict,
                   split: Split | None = None) -> Manifest:
    """The manifest of a scanned and hashed folder, with annotation links and image shapes."""
    root = Path(root)
    paths = [f.path for f in files]
    images = [p for p in paths if is_image(p) and hashed[p][1]]

    def read(p: str) -> bytes:
        return (root / p).read_bytes()

    links = ann.link(paths, images, read)
    annotation_files = links.pop(None)
    image_set = set(images) - annotation_files
    entries = []
    for f in files:
        h, info = hashed[f.path]
        if f.path in annotation_files:
            entries.append(FileEntry(f.path, f.size, h, kind="annotation"))
        elif f.path in image_set:
            a = links.get(f.path, {})
            entries.append(FileEntry(f.path, f.size, h, kind="image", width=info.get("width"),
                                     height=info.get("height"), channels=info.get("channels"),
                                     dtype=info.get("dtype"), annotation=a.get("annotation"),
                                     objects=a.get("objects")))
        else:
            entries.append(FileEntry(f.path, f.size, h))
    return Manifest.build(entries, split)


def status(root: str | Path, manifest: "Manifest | dict[str, str]",
           cache: StatCache | None = None, workers: int | None = None) -> dict:
    """What changed in ``root`` against a version: added, removed, modified paths.

    ``manifest`` is the version's manifest or just its ``{path: hash}`` index (what a client
    keeps cached, since parsing a whole manifest costs more than the status itself).
    """
    files = scan(root)
    before = len(cache.entries) if cache else 0
    counts: dict = {}
    hashed = hash_folder(files, cache, workers, counts=counts)
    if cache:
        cache.save()
    want = manifest if isinstance(manifest, dict) else manifest.index()
    added, modified, unchanged = [], [], 0
    for p, (h, _) in hashed.items():
        w = want.get(p)
        if w is None:
            added.append(p)
        elif w == h:
            unchanged += 1
        else:
            modified.append(p)
    return {
        "added": sorted(added),
        "removed": sorted(want.keys() - hashed.keys()),
        "modified": sorted(modified),
        "unchanged": unchanged,
        "rehashed": counts["hashed"],
        "cached": before,
    }


class ObjectSink(Protocol):
    """Where a publish sends content: a store directly, or the control plane over HTTP."""

    def missing(self, hashes: list[str]) -> set[str]: ...

    def put_file(self, h: str, path: str) -> None: ...


BATCH_BYTES = 32 * 2**20  # per request: large enough to hide its cost, small enough to
BATCH_FILES = 256          # spread over parallel requests and report progress often


def batches(items: list[tuple[str, str, int]]) -> list[list[tuple[str, str, int]]]:
    out: list[list] = [[]]
    size = 0
    for it in items:
        if out[-1] and (size + it[2] > BATCH_BYTES or len(out[-1]) >= BATCH_FILES):
            out.append([])
            size = 0
        out[-1].append(it)
        size += it[2]
    return [b for b in out if b]


def upload(files: Iterable[LocalFile], hashed: dict, sink: ObjectSink,
           workers: int | None = None, progress: Progress | None = None) -> dict:
    """Send the content the sink lacks (each distinct hash once). Returns counts.

    One batched question (``missing``), then only the missing objects: several per request
    and requests in parallel when the sink takes batches (``put_batch``, the control plane
    over HTTP), one by one otherwise (a store on this machine, copying in the kernel).
    """
    by_hash: dict[str, LocalFile] = {}
    for f in files:
        by_hash.setdefault(hashed[f.path][0], f)
    need = sink.missing(sorted(by_hash))
    todo = [by_hash[h] for h in sorted(need)]
    total = len(todo)
    state = {"done": 0, "bytes": 0}
    lock = threading.Lock()
    if progress:
        progress("storing", 0, total, 0)

    def sent(size: int) -> None:
        with lock:
            state["done"] += 1
            state["bytes"] += size
            done, nbytes = state["done"], state["bytes"]
        if progress and (done % 25 == 0 or done == total):
            progress("storing", done, total, nbytes)

    put_batch = getattr(sink, "put_batch", None)
    with ThreadPoolExecutor(workers or default_workers()) as pool:
        if put_batch is not None:
            items = [(hashed[f.path][0], f.abspath, f.size) for f in todo]
            jobs = [pool.submit(put_batch, b, sent) for b in batches(items)]
        else:
            def one(f: LocalFile) -> None:
                sink.put_file(hashed[f.path][0], f.abspath)
                sent(f.size)

            jobs = [pool.submit(one, f) for f in todo]
        for job in jobs:
            job.result()
    return {"objects": len(by_hash), "uploaded": total,
            "uploaded_bytes": sum(f.size for f in todo)}


def ingest(files: list[LocalFile], sink, cache: StatCache | None = None,
           workers: int | None = None, progress: Progress | None = None) -> tuple[dict, dict]:
    """Hash and store ``files`` in one pass through ``sink.ingest_batch`` (each file read
    once, hashed while it is copied). Returns ``{path: (hash, image info)}`` and counts."""
    out: dict[str, tuple[str, dict]] = {}
    total = len(files)
    state = {"done": 0, "bytes": 0, "stored": 0, "stored_bytes": 0}
    lock = threading.Lock()
    if progress:
        progress("storing", 0, total, 0)
    per_call = max(1, min(64, total // ((workers or default_workers()) * 4) or 1))

    def one(batch: list[LocalFile]) -> None:
        results = sink.ingest_batch([(f.abspath, f.size) for f in batch])
        infos = [image_info(f.abspath) if is_image(f.path) else {} for f in batch]
        with lock:
            for f, (h, stored), info in zip(batch, results, infos):
                out[f.path] = (h, info)
                if cache:
                    cache.put(f, h, info)
                state["done"] += 1
                state["bytes"] += f.size
                if stored:
                    state["stored"] += 1
                    state["stored_bytes"] += f.size
            done, nbytes = state["done"], state["bytes"]
        if progress:
            progress("storing", done, total, nbytes)

    chunks = [files[i:i + per_call] for i in range(0, total, per_call)]
    with ThreadPoolExecutor(workers or default_workers()) as pool:
        for job in [pool.submit(one, c) for c in chunks]:
            job.result()
    return out, {"uploaded": state["stored"], "uploaded_bytes": state["stored_bytes"],
                 "one_pass": total}


def prepare(root: str | Path, sink: ObjectSink, split: Split | None = None,
            cache: StatCache | None = None, workers: int | None = None,
            progress: Progress | None = None,
            previous: dict[str, int] | None = None) -> tuple[Manifest, dict]:
    """Scan, hash, store the new content; the manifest to record and the transfer counts.

    When the sink can hash while it stores (``ingest_batch``: a store on this machine, or the
    control plane's publish socket), files the stat cache does not know are read once: hashed
    while copied. Files the previous version holds at the same path and size (``previous``,
    ``{path: size}``) are likely unchanged, so they are hashed first and copied only if new.
    Recording the version is the caller's last step, so a publish killed before it leaves no
    version behind (only unreferenced objects, which the next publish reuses).
    """
    files = scan(root)
    if not files:
        raise InvalidInput(f"folder {str(root)!r} holds no files to publish")
    one_pass: list[LocalFile] = []
    if getattr(sink, "ingest_batch", None) is not None:
        previous = previous or {}
        one_pass = [f for f in files if not (cache and cache.get(f))
                    and previous.get(f.path) != f.size]
    counts = {"uploaded": 0, "uploaded_bytes": 0, "one_pass": 0}
    hashed: dict[str, tuple[str, dict]] = {}
    if one_pass:
        hashed, counts = ingest(one_pass, sink, cache, workers, progress)
    chosen = set(hashed)
    rest = [f for f in files if f.path not in chosen]
    if rest:
        hashed.update(hash_folder(rest, cache, workers, progress))
    if cache:
        cache.save()
    if rest:
        sent = upload(rest, hashed, sink, workers, progress)
        counts = {"uploaded": counts["uploaded"] + sent["uploaded"],
                  "uploaded_bytes": counts["uploaded_bytes"] + sent["uploaded_bytes"],
                  "one_pass": counts["one_pass"]}
    counts["objects"] = len({h for h, _ in hashed.values()})
    return build_manifest(root, files, hashed, split), counts


def _rmtree(path: Path) -> None:
    """Remove a tree made read-only by :func:`materialize`."""
    def fix(func, p, _exc):
        os.chmod(os.path.dirname(p), 0o700)
        os.chmod(p, 0o700)
        func(p)

    if path.exists():
        os.chmod(path, 0o700)
        shutil.rmtree(path, onerror=fix)


def materialize(manifest: Manifest, dest: Path, fetch: Callable[[str, str], str | None],
                workers: int | None = None) -> Path:
    """Write every file of ``manifest`` below ``dest``, read-only, appearing all at once.

    ``fetch(hash, path)`` writes one object to a path and may say how (``"hardlink"`` or
    ``"copy"``; ``None`` counts as a copy, e.g. a download). The tree is built beside ``dest``
    and renamed into place, so a reader never sees a partial version. Its marker file
    ``.mlops-version.json`` names the manifest and ``mode``: ``hardlink`` when every file
    shares the store's inode, ``copy`` when every file was copied, ``mixed`` otherwise.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    _rmtree(tmp)
    tmp.mkdir(parents=True)
    for d in {str(Path(e.path).parent) for e in manifest.entries}:
        (tmp / d).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(workers or default_workers()) as pool:
        modes = set(pool.map(lambda e: fetch(e.hash, str(tmp / e.path)) or "copy",
                             manifest.entries))
    mode = modes.pop() if len(modes) == 1 else "mixed" if modes else "copy"
    (tmp / ".mlops-version.json").write_text(json.dumps({"manifest_id": manifest.id,
                                                         "mode": mode}))
    for root, dirs, files in os.walk(tmp):
        for f in files:
            os.chmod(os.path.join(root, f), 0o444)
    for root, dirs, _ in os.walk(tmp, topdown=False):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o555)
    os.chmod(tmp, 0o555)
    try:
        os.rename(tmp, dest)
    except OSError:
        _rmtree(tmp)  # someone else materialised it first
        if not dest.exists():
            raise
    return dest
