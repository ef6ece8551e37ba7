"""Sending many objects in one request: a plain framing both ends share.

A batch is a byte stream of frames, each an 80-byte ASCII header (the 64-hex blake3 hash, then
the size as 16 hex digits) followed by that many bytes of content. Several objects per request
remove the per-request cost that dominated publishing thousands of small images one PUT each,
and the receiver hashes each object while writing it, so content is read exactly once on its
way into the store (see ``ObjectWriter``).
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator, Protocol

from ..errors import InvalidInput
from .manifest import HASH_RE

HEADER = 80
CHUNK = 1 << 20


def frame_header(h: str, size: int) -> bytes:
    return f"{h}{size:016x}".encode("ascii")


def batch_length(items: Iterable[tuple[str, str, int]]) -> int:
    return sum(HEADER + size for _, _, size in items)


def frames(items: list[tuple[str, str, int]],
           sent: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The body of a batch: ``items`` are ``(hash, local path, size)``; ``sent(size)`` after
    each object. A file whose size changed since it was hashed is refused (its content would
    no longer match its hash)."""
    for h, path, size in items:
        yield frame_header(h, size)
        left = size
        with open(path, "rb", buffering=0) as f:
            while left:
                data = f.read(min(CHUNK, left))
                if not data:
                    break
                left -= len(data)
                yield data
            if left or f.read(1):
                raise InvalidInput(f"{os.path.basename(path)} changed while it was published; "
                                   "publish again")
        if sent:
            sent(size)


class Writer(Protocol):
    def write(self, data) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class BatchReceiver:
    """Parses a batch as it arrives and hands each object to a writer of the store.

    ``open_writer(hash, size)`` returns a writer that verifies the hash on ``commit``. Objects
    completed before a failure stay stored (they are correct, and unreferenced until a version
    names them); the one in flight is dropped.
    """

    def __init__(self, open_writer: Callable[[str, int], Writer], max_object: int):
        self.open_writer = open_writer
        self.max_object = max_object
        self.head = bytearray()
        self.writer: Writer | None = None
        self.left = 0
        self.size = 0
        self.stored = 0
        self.bytes = 0
        self.completed: list[str] = []  # hashes verified since the caller last took them

    def _start(self) -> None:
        head = self.head.decode("ascii", "replace")
        self.head = bytearray()
        h, size_hex = head[:64], head[64:]
        if not HASH_RE.match(h):
            raise InvalidInput("malformed object batch: a frame does not start with a hash")
        try:
            size = int(size_hex, 16)
        except ValueError:
            raise InvalidInput("malformed object batch: bad size in a frame header") from None
        if size > self.max_object:
            raise InvalidInput(f"object {h} of {size} bytes is over the limit of "
                               f"{self.max_object // 2**20} MB")
        self.writer, self.left, self.size = self.open_writer(h, size), size, size
        if size == 0:
            self._finish_object()

    def _finish_object(self) -> None:
        self.writer.commit()
        self.completed.append(self.writer.hash)
        self.writer = None
        self.stored += 1
        self.bytes += self.size

    def feed(self, data) -> None:
        view = memoryview(data)
        while view.nbytes:
            if self.writer is None:
                need = HEADER - len(self.head)
                self.head += view[:need]
                view = view[need:]
                if len(self.head) == HEADER:
                    self._start()
                continue
            n = min(self.left, view.nbytes)
            self.writer.write(view[:n])
            view = view[n:]
            self.left -= n
            if self.left == 0:
                self._finish_object()

    def feed_all(self, chunks: list) -> None:
        for c in chunks:
            self.feed(c)

    def close(self) -> dict:
        if self.writer is not None or self.head:
            self.abort()
            raise InvalidInput("the object batch ended in the middle of an object")
        return {"stored": self.stored, "bytes": self.bytes}

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
