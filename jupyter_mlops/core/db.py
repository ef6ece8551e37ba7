"""The control plane's database: one SQLAlchemy engine, per-component schema migrations.

SQLite in the data directory by default, any SQLAlchemy URL (Postgres on Kubernetes) in
production. Components declare their schema as an ordered list of statements and call
:meth:`Database.migrate` once at start; statements already applied are skipped, so a schema
only ever grows by appending.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection


class Database:
    def __init__(self, url: str):
        self.url = url
        kwargs = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = sa.create_engine(url, future=True, **kwargs)
        if url.startswith("sqlite"):
            @sa.event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

        with self.engine.begin() as conn:
            conn.execute(sa.text(
                "CREATE TABLE IF NOT EXISTS schema_versions ("
                " component VARCHAR(64) PRIMARY KEY, version INTEGER NOT NULL)"
            ))

    def migrate(self, component: str, statements: Sequence[str]) -> None:
        """Apply the statements of ``component`` not applied yet, in one transaction each."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.text("SELECT version FROM schema_versions WHERE component = :c"),
                {"c": component},
            ).first()
            done = row[0] if row else 0
            for i, stmt in enumerate(statements[done:], start=done + 1):
                conn.execute(sa.text(stmt))
                if i == 1 and not row:
                    conn.execute(sa.text(
                        "INSERT INTO schema_versions (component, version) VALUES (:c, 1)"),
                        {"c": component})
                else:
                    conn.execute(sa.text(
                        "UPDATE schema_versions SET version = :v WHERE component = :c"),
                        {"v": i, "c": component})

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A transaction: committed on success, rolled back on any exception."""
        with self.engine.begin() as conn:
            yield conn

    def query(self, sql: str, **params) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]

    def dispose(self) -> None:
        self.engine.dispose()
