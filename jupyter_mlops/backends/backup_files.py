"""Where the bytes of a backup come from and go to on one machine: SQLite databases copied
with SQLite's online backup API (consistent while the platform writes to them), files copied
while hashing, ownership and modes kept.

No policy here: ``backends.backup`` decides what is copied, when a file is reused and what the
manifest says.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import blake3

CHUNK = 1 << 20
SQLITE_HEADER = b"SQLite format 3\x00"


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_HEADER
    except OSError:
        return False


def hash_file(path: Path) -> str:
    h = blake3.blake3(max_threads=1)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def keep_owner(src_stat: os.stat_result, dst: Path) -> None:
    """The copy belongs to whom the original belongs (a user's workspace stays theirs)."""
    if os.geteuid() == 0:
        os.chown(dst, src_stat.st_uid, src_stat.st_gid, follow_symlinks=False)


def copy_file(src: Path, dst: Path) -> tuple[int, str]:
    """Copy ``src`` to ``dst`` (a new name: callers rename it into place), hashing on the way;
    mode, times and owner kept. Not flushed to disk one by one (thousands of fsyncs would
    take most of the time): callers :func:`sync_filesystem` once before the rename that
    makes their copies count. Returns (size, blake3)."""
    st = src.stat()
    h = blake3.blake3(max_threads=1)
    size = 0
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while chunk := fi.read(CHUNK):
            fo.write(chunk)
            h.update(chunk)
            size += len(chunk)
    shutil.copystat(src, dst)
    keep_owner(st, dst)
    return size, h.hexdigest()


def write_bytes(data: bytes, dst: Path) -> tuple[int, str]:
    """Write ``data`` to the new file ``dst`` (mode 0444: stored objects never change).
    Returns (size, blake3)."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return len(data), blake3.blake3(data, max_threads=1).hexdigest()


def copy_symlink(src: Path, dst: Path) -> str:
    target = os.readlink(src)
    os.symlink(target, dst)
    keep_owner(src.lstat(), dst)
    return target


def backup_sqlite(src: Path, dst: Path) -> dict[str, int]:
    """A consistent copy of the SQLite database ``src`` into the new file ``dst``, taken
    while other processes may write to it (one read transaction: the copy is the database as
    of one commit). The copy is one self-contained file (rollback journal, no WAL beside it).
    Returns the rows of each table."""
    # mode=rw, not ro: a WAL database opened read-only needs its -shm file to exist
    source = sqlite3.connect(f"file:{src}?mode=rw", uri=True, timeout=60)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)  # all pages in one step: one snapshot
            target.execute("PRAGMA journal_mode=DELETE")
            counts = table_rows(target)
        finally:
            target.close()
    finally:
        source.close()
    shutil.copymode(src, dst)
    keep_owner(src.stat(), dst)
    with open(dst, "rb") as f:
        os.fsync(f.fileno())
    return counts


def table_rows(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " ORDER BY name")]
    return {n: conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}


def sqlite_problems(path: Path) -> list[str]:
    """What SQLite's own integrity check finds wrong with ``path`` (empty when sound)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        return [str(e)]
    return [] if rows == ["ok"] else rows


def sqlite_rows(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return table_rows(conn)
    finally:
        conn.close()


def sync_filesystem(path: Path) -> None:
    """Flush the file system holding ``path`` to disk (``syncfs``; ``sync`` where missing)."""
    import ctypes

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
            os.sync()
    except (OSError, AttributeError):
        os.sync()
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
