"""The embedded default: objects as read-only files below a directory."""
from __future__ import annotations

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
