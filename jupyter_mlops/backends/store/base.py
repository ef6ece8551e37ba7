"""What every store offers, and the checks they share."""
from __future__ import annotations

import abc

import blake3

from ...core.errors import Unavailable
from ...core.datasets.manifest import check_hash


class CorruptObject(Unavailable):
    """An object's content no longer matches its hash (bit rot, a tampered file)."""

    reason = "Corrupt Object"


def object_key(h: str) -> str:
    check_hash(h)
    return f"objects/{h[:2]}/{h[2:]}"


def verify(h: str, data: bytes, where: str) -> bytes:
    got = blake3.blake3(data, max_threads=1).hexdigest()
    if got != h:
        raise CorruptObject(f"object {h} in {where} is corrupt: its content hashes to {got}")
    return data


class ObjectStore(abc.ABC):
    """A content-addressed object store."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the bytes live, for messages (no credentials)."""

    @abc.abstractmethod
    def exists(self, h: str) -> bool: ...

    def missing(self, hashes: list[str]) -> set[str]:
        return {h for h in hashes if not self.exists(h)}

    @abc.abstractmethod
    def put_bytes(self, h: str, data: bytes) -> None:
        """Store ``data`` under ``h`` after checking that it hashes to ``h``."""

    @abc.abstractmethod
    def put_file(self, h: str, path: str) -> None:
        """Store a local file already hashed to ``h`` by the caller (the publish path)."""

    @abc.abstractmethod
    def get_bytes(self, h: str) -> bytes:
        """The object's content, checked against ``h`` (:class:`CorruptObject` otherwise)."""

    @abc.abstractmethod
    def size(self, h: str) -> int | None: ...

    def materialize(self, h: str, dest: str) -> None:
        """Write the object to ``dest`` (checked); local stores may hard-link instead."""
        data = self.get_bytes(h)
        with open(dest, "wb") as f:
            f.write(data)
