"""The embedded default: objects as read-only files below a directory."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from ...core.errors import NotFound
from .base import ObjectStore, object_key, verify


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
