"""What every store offers, and the checks they share."""
from __future__ import annotations

import abc
import os
import stat as stat_mod

import blake3

from typing import Iterator, NamedTuple

from ...core.errors import InvalidInput, Unavailable
from ...core.datasets.manifest import check_hash


class CorruptObject(Unavailable):
    """An object's content no longer matches its hash (bit rot, a tampered file)."""

    reason = "Corrupt Object"


class ObjectMismatch(InvalidInput):
    """Uploaded content does not hash to the name it was sent under (refused, never stored)."""


class StoredObject(NamedTuple):
    hash: str
    size: int
    mtime: float  # when it was stored (seconds since the epoch): garbage collection's grace


class ObjectWriter:
    """One object arriving in pieces: hashed as it is written, kept only if the hash matches.

    The content is read once, on its way in; ``commit`` compares the running hash with the name
    and only then makes the object visible, so a store never holds content under a wrong name
    (and the upload path needs no second read to verify it).
    """

    def __init__(self, h: str, size: int):
        self.hash = check_hash(h)
        self.size = size
        self.received = 0
        self._hasher = blake3.blake3(max_threads=1)

    def write(self, data) -> None:
        self.received += len(data)
        if self.received > self.size:
            self.abort()
            raise ObjectMismatch(f"object {self.hash} is longer than its announced {self.size} "
                                 "bytes")
        self._hasher.update(data)
        self._write(data)

    def commit(self) -> None:
        got = self._hasher.hexdigest()
        if self.received != self.size or got != self.hash:
            self.abort()
            raise ObjectMismatch(f"object {self.hash} does not match its content (it hashes "
                                 f"to {got}, {self.received} of {self.size} bytes); refused")
        self._commit()

    def _write(self, data) -> None: ...

    def _commit(self) -> None: ...

    def abort(self) -> None: ...


def check_regular(fd: int, size: int, what: str) -> None:
    """Refuse a descriptor that is not a regular file of ``size`` bytes (a fifo or a device
    could block or never end; another size means the file changed since it was listed)."""
    st = os.fstat(fd)
    if not stat_mod.S_ISREG(st.st_mode):
        raise InvalidInput(f"{what}: the descriptor passed is not a regular file; refused")
    if st.st_size != size:
        raise ObjectMismatch(f"{what}: the file holds {st.st_size} bytes, not the announced "
                             f"{size} (changed since it was listed?); publish again")


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

    @abc.abstractmethod
    def writer(self, h: str, size: int) -> ObjectWriter:
        """A writer that stores ``size`` bytes under ``h`` if, and only if, they hash to ``h``."""

    @abc.abstractmethod
    def list_objects(self) -> Iterator[StoredObject]:
        """Every stored object (garbage collection walks them)."""

    @abc.abstractmethod
    def delete(self, hashes: list[str]) -> None:
        """Remove objects (garbage collection only; missing ones are ignored)."""

    def checking_writer(self, h: str, size: int) -> ObjectWriter:
        """A writer that checks ``size`` bytes against ``h`` either way and stores them only if
        ``h`` is not stored yet (an existing object is not rewritten). Uploads use it so that
        they are checked, and answered, alike whether or not the object existed."""
        return ObjectWriter(h, size) if self.exists(h) else self.writer(h, size)

    def put_fd(self, h: str, fd: int, size: int, buf: bytearray) -> bool:
        """Store ``size`` bytes read from an open file ``fd`` under ``h`` if they hash to it.

        The same-machine publish path: the publisher opened the file (so the kernel checked its
        permissions) and passed the descriptor. Only a regular file is read (a fifo or a device
        could block or never end); reads use explicit offsets (the descriptor's offset is
        shared with the sender), and each buffer is hashed and written in one pass, so the
        content verified is exactly the content stored. The content is verified even if ``h``
        was stored already (then it is not written); returns False in that case.
        """
        check_regular(fd, size, f"object {h}")
        existed = self.exists(h)
        w = ObjectWriter(h, size) if existed else self.writer(h, size)
        view = memoryview(buf)
        off = 0
        try:
            while off < size:
                n = os.preadv(fd, [view[:min(len(buf), size - off)]], off)
                if not n:
                    break
                w.write(view[:n])
                off += n
        except OSError as e:
            w.abort()
            raise InvalidInput(f"object {h}: cannot read the descriptor passed "
                               f"({e.strerror})") from None
        w.commit()  # raises ObjectMismatch (and drops the partial object) if it does not match
        return not existed

    def clean_partial(self, older_than: float) -> int:
        """Remove leftovers of uploads that died before their time (``older_than``: epoch)."""
        return 0

    def claim(self) -> bool:
        """Whether this process is the only writer of the store (then every partial upload
        found at start is a leftover). Shared stores (S3) say no: others may be uploading."""
        return False

    def sync(self) -> None:
        """Make stored objects durable before a version naming them is recorded."""

    def materialize(self, h: str, dest: str) -> str:
        """Write the object to ``dest`` (checked); local stores may hard-link instead.
        Returns how: ``"copy"`` here."""
        data = self.get_bytes(h)
        with open(dest, "wb") as f:
            f.write(data)
        return "copy"
