"""The embedded default: objects as read-only files below a directory.

The directory is the platform's alone (mode 0700): objects of every project live here, so no
local account may enter it. User servers and jobs read versions through the control plane's
API (which checks project membership) or, for datasets every lab member may read, in place in
the shared dataset root, where the control plane hard-links them (see
``service.handlers.datasets``).
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import uuid
from pathlib import Path

from ...core.errors import NotFound
from .base import ObjectStore, ObjectWriter, StoredObject, object_key, verify


class _FileWriter(ObjectWriter):
    """Writes into ``tmp/`` while hashing; renamed into ``objects/`` once the hash matches."""

    def __init__(self, store: "LocalStore", h: str, size: int):
        super().__init__(h, size)
        self.store = store
        self.tmp = store._tmp()
        self.f = open(self.tmp, "wb", buffering=0)

    def _write(self, data) -> None:
        self.f.write(data)

    def _commit(self) -> None:
        self.f.close()
        self.store._publish(self.tmp, self.hash)

    def abort(self) -> None:
        self.f.close()
        self.tmp.unlink(missing_ok=True)


class LocalStore(ObjectStore):
    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # every project's objects: no local account may enter
        self._claim_fd: int | None = None

    def claim(self) -> bool:
        """Take this store for this process (an advisory lock held until it exits); False if
        another control plane holds it. Only the holder's uploads write to ``tmp/``, so once
        claimed, everything found there is a leftover of an interrupted upload."""
        if self._claim_fd is not None:
            return True
        fd = os.open(self.root / ".writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._claim_fd = fd
        return True

    def sync(self) -> None:
        """Flush the store's file system to disk (before a version naming new objects is
        recorded, so a machine crash cannot leave a recorded version with unwritten objects)."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.syncfs(fd) != 0:
                os.sync()
        except (OSError, AttributeError):
            os.sync()
        finally:
            os.close(fd)

    def describe(self) -> str:
        return f"local store {self.root}"

    def path(self, h: str) -> Path:
        return self.root / object_key(h)

    def exists(self, h: str) -> bool:
        return self.path(h).exists()

    def size(self, h: str) -> int | None:
        try:
            return self.path(h).stat().st_size
        except FileNotFoundError:
            return None

    def _publish(self, tmp: Path, h: str) -> None:
        # write to tmp/, then rename: a reader (or a crash) never sees half an object
        os.chmod(tmp, 0o444)
        dest = self.path(h)
        dest.parent.mkdir(exist_ok=True)
        os.replace(tmp, dest)

    def _tmp(self) -> Path:
        return self.root / "tmp" / uuid.uuid4().hex

    def put_bytes(self, h: str, data: bytes) -> None:
        verify(h, data, "the upload")
        if self.exists(h):
            return
        tmp = self._tmp()
        with open(tmp, "wb") as f:
            f.write(data)
        self._publish(tmp, h)

    def put_file(self, h: str, path: str) -> None:
        if self.exists(h):
            return
        tmp = self._tmp()
        shutil.copyfile(path, tmp)  # in-kernel copy (sendfile/copy_file_range)
        self._publish(tmp, h)

    def writer(self, h: str, size: int) -> ObjectWriter:
        return _FileWriter(self, h, size)

    def list_objects(self):
        objects = self.root / "objects"
        for d in os.scandir(objects):
            if len(d.name) != 2 or not d.is_dir(follow_symlinks=False):
                continue
            for f in os.scandir(d.path):
                try:
                    st = f.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                yield StoredObject(d.name + f.name, st.st_size, st.st_mtime)

    def delete(self, hashes: list[str]) -> None:
        for h in hashes:
            self.path(h).unlink(missing_ok=True)

    def clean_partial(self, older_than: float) -> int:
        n = 0
        for f in os.scandir(self.root / "tmp"):
            try:
                if f.stat(follow_symlinks=False).st_mtime < older_than:
                    os.unlink(f.path)
                    n += 1
            except FileNotFoundError:
                pass
        return n

    def get_bytes(self, h: str) -> bytes:
        try:
            data = self.path(h).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"object {h} is not in the {self.describe()}") from None
        return verify(h, data, self.describe())

    def materialize(self, h: str, dest: str, verify: bool = True) -> None:
        if verify:
            self.get_bytes(h)  # checked before it is handed out
        try:
            os.link(self.path(h), dest)  # read-only object: sharing the inode is safe
        except OSError:
            shutil.copyfile(self.path(h), dest)
