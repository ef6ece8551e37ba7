"""What the upload path tells a caller about the shared object store.

The store is content-addressed and shared by every project, so "is object ``h`` stored?"
would tell anyone holding a file's bytes whether that exact file is in another project's
private dataset. The upload answers therefore depend only on what the caller may know: an
object counts as present for a caller when a version they may read names it, or when they
uploaded it themselves recently (this module's per-user record). Everything else is
"missing" to them, whether or not the store holds it; they send it, the control plane checks
the bytes against the hash and keeps the stored copy (dedup still saves the storage).

The record is bounded per user and kept only as long as garbage collection keeps an object no
version names (``gc.DEFAULT_GRACE_SECONDS``): a retry of an interrupted publish, even across a
restart of the control plane, still sends only what that user had not sent.
"""
from __future__ import annotations

from typing import Callable, Iterable

import sqlalchemy as sa

from .. import clock
from ..roles import Caller
from ..db import Database
from .gc import DEFAULT_GRACE_SECONDS

SCHEMA = [
    """CREATE TABLE dataset_uploads (
        username VARCHAR(255) NOT NULL,
        hash VARCHAR(64) NOT NULL,
        at FLOAT NOT NULL,
        PRIMARY KEY (username, hash)
    )""",
    "CREATE INDEX ix_dataset_uploads_at ON dataset_uploads (at)",
]

CHUNK = 500  # hashes per statement (SQLite's bound on parameters)


def chunks(items: list, n: int = CHUNK) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class UploadRecord:
    """Which objects each user uploaded recently: at most ``max_per_user`` (the oldest go
    first), for ``keep_seconds``."""

    def __init__(self, db: Database, max_per_user: int = 100_000,
                 keep_seconds: float = DEFAULT_GRACE_SECONDS):
        self.db = db
        self.max_per_user = max_per_user
        self.keep_seconds = keep_seconds
        db.migrate("dataset_uploads", SCHEMA)

    def record(self, user: str, hashes: Iterable[str]) -> None:
        todo = sorted(set(hashes))
        if not todo:
            return
        now = clock.now()
        with self.db.tx() as conn:
            for part in chunks(todo):
                params = {f"h{i}": h for i, h in enumerate(part)}
                conn.execute(sa.text(
                    "DELETE FROM dataset_uploads WHERE username = :u AND hash IN ("
                    + ", ".join(f":{k}" for k in params) + ")"), {"u": user, **params})
            conn.execute(sa.text("INSERT INTO dataset_uploads (username, hash, at)"
                                 " VALUES (:u, :h, :t)"),
                         [{"u": user, "h": h, "t": now} for h in todo])
            over = conn.execute(sa.text(
                "SELECT 1 FROM dataset_uploads WHERE username = :u LIMIT 1 OFFSET :n"),
                {"u": user, "n": self.max_per_user}).first()
            if over is not None:  # over the bound: forget the oldest
                conn.execute(sa.text(
                    "DELETE FROM dataset_uploads WHERE username = :u AND hash NOT IN ("
                    "SELECT hash FROM dataset_uploads WHERE username = :u"
                    " ORDER BY at DESC, hash LIMIT :n)"), {"u": user, "n": self.max_per_user})

    def recent(self, user: str, hashes: list[str]) -> set[str]:
        """Those of ``hashes`` that ``user`` uploaded within ``keep_seconds``."""
        out: set[str] = set()
        since = clock.now() - self.keep_seconds
        for part in chunks(sorted(set(hashes))):
            params = {f"h{i}": h for i, h in enumerate(part)}
            out.update(r["hash"] for r in self.db.query(
                "SELECT hash FROM dataset_uploads WHERE username = :u AND at >= :t AND hash IN ("
                + ", ".join(f":{k}" for k in params) + ")", u=user, t=since, **params))
        return out

    def sweep(self) -> int:
        """Forget uploads older than ``keep_seconds`` (with the store's partial uploads)."""
        with self.db.tx() as conn:
            return conn.execute(sa.text("DELETE FROM dataset_uploads WHERE at < :t"),
                                {"t": clock.now() - self.keep_seconds}).rowcount


def known_to(catalog, caller: Caller, hashes: list[str]) -> set[str]:
    """Those of ``hashes`` ``caller`` may know the store holds: named by a version they may
    read, or uploaded by them recently (not checked against the store)."""
    return catalog.readable_objects(caller, hashes) | catalog.uploads.recent(caller.name, hashes)


def missing_for(catalog, caller: Caller, hashes: list[str],
                store_missing: Callable[[list[str]], set[str]]) -> set[str]:
    """The objects ``caller`` must send: absent from the store, or not known to them (see the
    module docstring). What they learn thereby depends only on what they may read or sent."""
    absent = set(store_missing(hashes))
    present = [h for h in hashes if h not in absent]
    known = known_to(catalog, caller, present) if present else set()
    return {h for h in hashes if h not in known}
