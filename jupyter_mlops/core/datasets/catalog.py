"""The shared dataset catalog: names, immutable versions, movable tags, reference versions.

Rows live in the control plane database; bytes live in the store under their content hash. A
version is recorded in one transaction after all of its objects are stored, so a publish that
dies half-way leaves no visible version.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa

from .. import clock
from ..db import Database
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..projects import Projects
from ..roles import Caller
from .manifest import VERSION_RE, Manifest, check_name, diff

SCHEMA = [
    """CREATE TABLE datasets (
        name VARCHAR(63) PRIMARY KEY,
        project VARCHAR(63) NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_by VARCHAR(255) NOT NULL,
        created_at FLOAT NOT NULL
    )""",
    """CREATE TABLE dataset_versions (
        dataset VARCHAR(63) NOT NULL REFERENCES datasets(name),
        number INTEGER NOT NULL,
        manifest_id VARCHAR(64) NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        author VARCHAR(255) NOT NULL,
        created_at FLOAT NOT NULL,
        summary TEXT NOT NULL,
        manifest TEXT NOT NULL,
        PRIMARY KEY (dataset, number)
    )""",
    """CREATE TABLE dataset_tags (
        dataset VARCHAR(63) NOT NULL REFERENCES datasets(name),
        tag VARCHAR(63) NOT NULL,
        number INTEGER NOT NULL,
        moved_by VARCHAR(255) NOT NULL,
        moved_at FLOAT NOT NULL,
        PRIMARY KEY (dataset, tag)
    )""",
]


@dataclass(frozen=True)
class DatasetVersion:
    dataset: str
    number: int
    manifest_id: str
    message: str
    author: str
    created_at: float
    summary: dict
    tags: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        return f"v{self.number}"

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "version": self.version, "manifest_id": self.manifest_id,
                "message": self.message, "author": self.author, "created_at": self.created_at,
                "summary": self.summary, "tags": list(self.tags)}


class DatasetCatalog:
    """Reading is open to every lab member; publishing and tagging need project membership."""

    def __init__(self, db: Database, projects: Projects, featured: tuple[str, ...] = ("cells",)):
        self.db = db
        self.projects = projects
        self.featured = featured
        db.migrate("datasets", SCHEMA)
        self._manifests: dict[tuple[str, int], Manifest] = {}  # immutable, so cacheable
        # held while a version is recorded and while garbage is collected (see gc.py); the
        # control plane is one process, so a process lock is enough
        self.store_lock = threading.Lock()

    # --- reading --------------------------------------------------------------------------

    def _dataset(self, name: str) -> dict:
        rows = self.db.query("SELECT * FROM datasets WHERE name = :n", n=name)
        if not rows:
            raise NotFound(f"no dataset {name!r}")
        return rows[0]

    def _tags(self, name: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for r in self.db.query("SELECT tag, number FROM dataset_tags WHERE dataset = :n"
                               " ORDER BY tag", n=name):
            out.setdefault(r["number"], []).append(r["tag"])
        return out

    def _version(self, row: dict, tags: dict[int, list[str]]) -> DatasetVersion:
        return DatasetVersion(row["dataset"], row["number"], row["manifest_id"], row["message"],
                              row["author"], row["created_at"], json.loads(row["summary"]),
                              tuple(tags.get(row["number"], ())))

    def list(self) -> list[dict]:
        rows = self.db.query("SELECT * FROM datasets")
        rows.sort(key=lambda r: (r["name"] not in self.featured, r["name"]))
        out = []
        for r in rows:
            latest = self.db.query(
                "SELECT * FROM dataset_versions WHERE dataset = :n ORDER BY number DESC LIMIT 1",
                n=r["name"])
            tags = self._tags(r["name"])
            out.append({**r, "tags": {t: f"v{n}" for n, ts in tags.items() for t in ts},
                        "latest": self._version(latest[0], tags).to_dict() if latest else None})
        return out

    def get(self, name: str) -> dict:
        ds = self._dataset(name)
        tags = self._tags(name)
        rows = self.db.query("SELECT dataset, number, manifest_id, message, author, created_at,"
                             " summary FROM dataset_versions WHERE dataset = :n"
                             " ORDER BY number DESC", n=name)
        refs = self.db.query("SELECT name FROM projects WHERE reference_dataset LIKE :p",
                             p=f"{name}@%")
        return {**ds, "tags": {t: f"v{n}" for n, ts in tags.items() for t in ts},
                "versions": [self._version(r, tags).to_dict() for r in rows],
                "referenced_by": [r["name"] for r in refs]}

    def resolve(self, name: str, ref: str) -> DatasetVersion:
        """A version by ``vN``, by tag (``latest``, ``v3``-like tags are version names)."""
        self._dataset(name)
        if VERSION_RE.match(ref or ""):
            number = int(ref[1:])
        else:
            rows = self.db.query("SELECT number FROM dataset_tags WHERE dataset = :n AND tag = :t",
                                 n=name, t=ref)
            if not rows:
                raise NotFound(f"dataset {name!r} has no version or tag {ref!r}")
            number = rows[0]["number"]
        rows = self.db.query("SELECT dataset, number, manifest_id, message, author, created_at,"
                             " summary FROM dataset_versions WHERE dataset = :n AND number = :v",
                             n=name, v=number)
        if not rows:
            raise NotFound(f"dataset {name!r} has no version {ref!r}")
        return self._version(rows[0], self._tags(name))

    def manifest(self, name: str, ref: str) -> tuple[DatasetVersion, Manifest]:
        v = self.resolve(name, ref)
        key = (name, v.number)
        if key not in self._manifests:
            row = self.db.query("SELECT manifest FROM dataset_versions WHERE dataset = :n"
                                " AND number = :v", n=name, v=v.number)[0]
            if len(self._manifests) > 64:
                self._manifests.clear()
            self._manifests[key] = Manifest.from_dict(json.loads(row["manifest"]))
        return v, self._manifests[key]

    def referenced_hashes(self) -> set[str]:
        """Every object hash some version's manifest names (what garbage collection keeps)."""
        out: set[str] = set()
        for r in self.db.query("SELECT manifest FROM dataset_versions"):
            out.update(f["hash"] for f in json.loads(r["manifest"])["files"])
        return out

    def diff(self, name: str, a: str, b: str) -> dict:
        va, ma = self.manifest(name, a)
        vb, mb = self.manifest(name, b)
        return {"dataset": name, "from": va.version, "to": vb.version, **diff(ma, mb)}

    # --- writing --------------------------------------------------------------------------

    def create(self, caller: Caller, name: str, project: str, description: str = "") -> dict:
        check_name(name)
        self.projects.require_member(caller, project)
        try:
            with self.db.tx() as conn:
                conn.execute(sa.text(
                    "INSERT INTO datasets (name, project, description, created_by, created_at)"
                    " VALUES (:n, :p, :d, :u, :t)"),
                    {"n": name, "p": project, "d": description or "", "u": caller.name,
                     "t": clock.now()})
        except sa.exc.IntegrityError:
            raise Conflict(f"dataset {name!r} exists already") from None
        return self.get(name)

    def publish(self, caller: Caller, name: str, manifest: Manifest, message: str = "",
                tags: tuple[str, ...] = (), project: str | None = None) -> DatasetVersion:
        """Record a new immutable version (objects must be stored already) and move tags.

        Publishing to a dataset that does not exist yet creates it in ``project`` (default
        ``default``); publishing to an existing one needs membership of its project.
        """
        for t in tags:
            self._check_tag(t)
        if not self.check_publish(caller, name, project)["exists"]:
            self.create(caller, name, project or "default")
        summary = manifest.summary()
        body = json.dumps(manifest.to_dict(), separators=(",", ":"))
        now = clock.now()
        with self.db.tx() as conn:
            number = conn.execute(sa.text(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM dataset_versions WHERE dataset = :n"),
                {"n": name}).scalar_one()
            conn.execute(sa.text(
                "INSERT INTO dataset_versions (dataset, number, manifest_id, message, author,"
                " created_at, summary, manifest) VALUES (:d, :v, :m, :msg, :a, :t, :s, :body)"),
                {"d": name, "v": number, "m": manifest.id, "msg": message or "",
                 "a": caller.name, "t": now, "s": json.dumps(summary), "body": body})
            for t in ("latest", *tags):
                self._move(conn, name, t, number, caller.name, now)
        return self.resolve(name, f"v{number}")

    def check_publish(self, caller: Caller, name: str, project: str | None = None) -> dict:
        """May ``caller`` publish to ``name``? :class:`Forbidden` with the reason if not.

        Asked before any byte is hashed or sent, so a refused publish fails at once instead of
        after the upload. An existing dataset takes versions from members of its project; a new
        one is created in ``project`` (default ``default``), which needs its membership too.
        """
        check_name(name)
        try:
            ds = self._dataset(name)
        except NotFound:
            target = project or "default"
            try:
                self.projects.require_member(caller, target)
            except NotFound:
                raise Forbidden(f"{caller.name} cannot create dataset {name!r} in project "
                                f"{target!r}: not a member of it (or no such project)") from None
            return {"dataset": name, "project": target, "exists": False}
        if project and project != ds["project"]:
            raise InvalidInput(f"dataset {name!r} belongs to project {ds['project']!r}, "
                               f"not {project!r}")
        try:
            self.projects.require_member(caller, ds["project"])
        except NotFound:
            raise Forbidden(f"dataset {name!r} belongs to project {ds['project']!r}: only its "
                            f"members may publish or tag versions, and {caller.name} is not "
                            "one") from None
        return {"dataset": name, "project": ds["project"], "exists": True}

    def publish_stored(self, caller: Caller, name: str, manifest: Manifest,
                       missing: Callable[[list[str]], set[str]], message: str = "",
                       tags: tuple[str, ...] = (), project: str | None = None) -> DatasetVersion:
        """:meth:`publish` after checking, under the store lock, that every object is stored.

        ``missing(hashes)`` asks the store. Inside the lock no garbage collection can delete an
        object between the check and the record.
        """
        self.check_publish(caller, name, project)
        hashes = sorted({e.hash for e in manifest.entries})
        with self.store_lock:
            absent = missing(hashes)
            if absent:
                raise Conflict(f"{len(absent)} object(s) of this manifest are not in the store "
                               f"(upload them first), e.g. {sorted(absent)[0]}")
            return self.publish(caller, name, manifest, message, tags, project)

    @staticmethod
    def _check_tag(tag: str) -> None:
        check_name(tag, "tag")
        if VERSION_RE.match(tag):
            raise InvalidInput(f"tag {tag!r} looks like a version name (vN); versions are "
                               "named by the catalog")

    @staticmethod
    def _move(conn, name: str, tag: str, number: int, who: str, now: float) -> None:
        conn.execute(sa.text("DELETE FROM dataset_tags WHERE dataset = :d AND tag = :t"),
                     {"d": name, "t": tag})
        conn.execute(sa.text(
            "INSERT INTO dataset_tags (dataset, tag, number, moved_by, moved_at)"
            " VALUES (:d, :t, :v, :u, :now)"),
            {"d": name, "t": tag, "v": number, "u": who, "now": now})

    def tag(self, caller: Caller, name: str, tag: str, ref: str) -> DatasetVersion:
        self._check_tag(tag)
        self._dataset(name)
        self.check_publish(caller, name)
        v = self.resolve(name, ref)
        with self.db.tx() as conn:
            self._move(conn, name, tag, v.number, caller.name, clock.now())
        return self.resolve(name, v.version)

    def set_reference(self, caller: Caller, project: str, name: str, ref: str) -> dict:
        """Mark a version as ``project``'s reference version (a project manager's decision)."""
        self.projects.require_manager(caller, project)
        v = self.resolve(name, ref)
        with self.db.tx() as conn:
            conn.execute(sa.text("UPDATE projects SET reference_dataset = :r WHERE name = :p"),
                         {"r": f"{name}@{v.version}", "p": project})
        return {"project": project, "dataset": name, "version": v.version}
