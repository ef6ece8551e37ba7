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

import blake3

from ...core.errors import InvalidInput, NotFound
from .base import ObjectStore, ObjectWriter, StoredObject, check_regular, object_key, verify


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

    def ingest_fd(self, fd: int, size: int, buf: bytearray) -> tuple[str, bool]:
        """Store ``size`` bytes of an open file in one pass, hashing while copying.

        For content whose hash is not known yet (a file no stat cache remembers): each buffer
        read is hashed and written to ``tmp/``, and the file is renamed into ``objects/`` under
        the hash it turned out to have, or dropped when that object is stored already. Returns
        ``(hash, stored)``. Only a regular file holding exactly ``size`` bytes is read.
        """
        check_regular(fd, size, "a file")
        tmp = self._tmp()
        hasher = blake3.blake3(max_threads=1)
        view = memoryview(buf)
        off = 0
        try:
            with open(tmp, "wb", buffering=0) as out:
                while off < size:
                    n = os.preadv(fd, [view[:min(len(buf), size - off)]], off)
                    if not n:
                        raise InvalidInput(f"a file shrank from {size} to {off} bytes while it "
                                           "was published; publish again")
                    hasher.update(view[:n])
                    out.write(view[:n])
                    off += n
            h = hasher.hexdigest()
            if self.exists(h):
                tmp.unlink()
                return h, False
            self._publish(tmp, h)
            return h, True
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def ingest_batch(self, items: list[tuple[str, int]]) -> list[tuple[str, bool]]:
        """:meth:`ingest_fd` of local files ``(path, size)``: the publish path of code running
        next to the store (``core.datasets.folder.prepare``)."""
        buf = bytearray(1 << 20)
        out = []
        for path, size in items:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                out.append(self.ingest_fd(fd, size, buf))
            finally:
                os.close(fd)
        return out

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

    def materialize(self, h: str, dest: str, verify: bool = True) -> str:
        """Put the object at ``dest``: a hard link to the store's read-only file (no byte
        copied) when both are on one file system, else a copy. Returns ``"hardlink"`` or
        ``"copy"``, which the version's marker file and its API answer report."""
        if verify:
            self.get_bytes(h)  # checked before it is handed out
        try:
            os.link(self.path(h), dest)  # read-only object: sharing the inode is safe
            return "hardlink"
        except OSError:  # another file system (EXDEV), or links refused: the fallback
            shutil.copyfile(self.path(h), dest)
            return "copy"
