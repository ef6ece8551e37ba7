"""The dataset catalog: names, immutable versions, movable tags, reference versions.

Rows live in the control plane database; bytes live in the store under their content hash. A
version is recorded in one transaction after all of its objects are stored (with the index of
which dataset names which object, and its audit event), so a publish that dies half-way leaves
no visible version.

Who may do what (every method takes the :class:`Caller`):

- read (list, versions, manifests, diffs, the objects themselves): members of the dataset's
  project; the datasets of an ``everyone`` project (``default``) are readable by all. A dataset
  of a project the caller is not in is absent (:class:`NotFound`), and so is an object no
  dataset the caller may read refers to (:meth:`DatasetCatalog.require_object`).
- change (new version, tag move, delete): its owner (creator), the project's managers and
  administrators, any member where the project lets members change each other's work
  (:meth:`Projects.require_change`); other members get :class:`Forbidden` with the reason.
- every change is an event of the dataset's audit log (:meth:`DatasetCatalog.events`), marked
  ``by_other`` when someone other than its owner made it.
"""
from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa

from .. import clock
from ..db import Database
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..projects import Projects
from ..roles import Caller
from .manifest import VERSION_RE, Manifest, check_name, diff
from . import provenance
from .uploads import UploadRecord, chunks
from .splits import carry, moves

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
    # Which dataset's versions name which object: who may read an object, without parsing
    # every manifest at each request.
    """CREATE TABLE dataset_objects (
        hash VARCHAR(64) NOT NULL,
        dataset VARCHAR(63) NOT NULL,
        PRIMARY KEY (hash, dataset)
    )""",
    """CREATE TABLE dataset_events (
        id VARCHAR(32) PRIMARY KEY,
        dataset VARCHAR(63) NOT NULL,
        at FLOAT NOT NULL,
        actor VARCHAR(255) NOT NULL,
        action VARCHAR(32) NOT NULL,
        version VARCHAR(32),
        detail TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX ix_dataset_events ON dataset_events (dataset, at)",
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
    """Reading needs membership of the dataset's project (everyone for ``default``); changes
    belong to the dataset's owner and the project's managers (see the module's docstring)."""

    def __init__(self, db: Database, projects: Projects, featured: tuple[str, ...] = ("cells",)):
        self.db = db
        self.projects = projects
        self.featured = featured
        db.migrate("datasets", SCHEMA)
        db.migrate("dataset_provenance", provenance.SCHEMA)
        self._index_objects()
        self.uploads = UploadRecord(db)  # who sent which object lately (see uploads.py)
        self._manifests: dict[tuple[str, int], Manifest] = {}  # immutable, so cacheable
        # held while a version is recorded and while garbage is collected (see gc.py); the
        # control plane is one process, so a process lock is enough
        self.store_lock = threading.Lock()

    def _index_objects(self) -> None:
        """Fill ``dataset_objects`` for versions recorded before it existed (once)."""
        if self.db.query("SELECT 1 FROM dataset_objects LIMIT 1") or \
                not self.db.query("SELECT 1 FROM dataset_versions LIMIT 1"):
            return
        with self.db.tx() as conn:
            for r in conn.execute(sa.text("SELECT dataset, manifest FROM dataset_versions")
                                  ).mappings().all():
                self._index(conn, r["dataset"],
                            {f["hash"] for f in json.loads(r["manifest"])["files"]})

    @staticmethod
    def _index(conn, name: str, hashes: set[str]) -> None:
        known = {r[0] for r in conn.execute(sa.text(
            "SELECT hash FROM dataset_objects WHERE dataset = :d"), {"d": name})}
        for h in sorted(hashes - known):
            conn.execute(sa.text("INSERT INTO dataset_objects (hash, dataset) VALUES (:h, :d)"),
                         {"h": h, "d": name})

    @staticmethod
    def _event(conn, name: str, actor: str, action: str, version: str | None = None,
               detail: str = "") -> None:
        conn.execute(sa.text(
            "INSERT INTO dataset_events (id, dataset, at, actor, action, version, detail)"
            " VALUES (:i, :d, :t, :a, :x, :v, :m)"),
            {"i": uuid.uuid4().hex, "d": name, "t": clock.now(), "a": actor, "x": action,
             "v": version, "m": detail})

    # --- who may read -----------------------------------------------------------------------

    def _readable(self, caller: Caller, project: str) -> bool:
        p = self.projects.get(project)
        return p is not None and self.projects.is_member(caller, p)

    def require_readable(self, caller: Caller, name: str) -> dict:
        """The dataset's row if ``caller`` may read it; :class:`NotFound` otherwise."""
        ds = self._dataset(name)
        if not self._readable(caller, ds["project"]):
            raise NotFound(f"no dataset {name!r}")
        return ds

    def require_object(self, caller: Caller, h: str) -> None:
        """:class:`NotFound` unless a dataset ``caller`` may read names object ``h`` (an object
        no version names yet, or only datasets of other projects do, is absent to them)."""
        rows = self.db.query(
            "SELECT DISTINCT d.project FROM dataset_objects o JOIN datasets d"
            " ON d.name = o.dataset WHERE o.hash = :h", h=h)
        if not any(self._readable(caller, r["project"]) for r in rows):
            raise NotFound(f"no object {h}")

    def readable_objects(self, caller: Caller, hashes: list[str]) -> set[str]:
        """Those of ``hashes`` named by a version of a dataset ``caller`` may read."""
        rows: list[dict] = []
        for part in chunks(sorted(set(hashes))):
            params = {f"h{i}": h for i, h in enumerate(part)}
            rows += self.db.query(
                "SELECT DISTINCT o.hash, d.project FROM dataset_objects o JOIN datasets d"
                " ON d.name = o.dataset WHERE o.hash IN ("
                + ", ".join(f":{k}" for k in params) + ")", **params)
        readable: dict[str, bool] = {}
        for r in rows:
            if r["project"] not in readable:
                readable[r["project"]] = self._readable(caller, r["project"])
        return {r["hash"] for r in rows if readable[r["project"]]}

    def shared(self, name: str) -> bool:
        """Whether every lab member may read ``name`` (its project holds everyone): only such
        versions are materialised in the shared dataset root user servers read in place."""
        p = self.projects.get(self._dataset(name)["project"])
        return p is not None and p.everyone

    def shared_versions(self) -> list[tuple[str, str]]:
        """``(dataset, "vN")`` of every version of the datasets every lab member may read."""
        everyone = set(self.projects.names(everyone=True))
        return [(r["dataset"], f"v{r['number']}") for r in self.db.query(
            "SELECT v.dataset, v.number, d.project FROM dataset_versions v JOIN datasets d"
            " ON d.name = v.dataset ORDER BY v.dataset, v.number") if r["project"] in everyone]

    def stored_manifest(self, name: str, ref: str) -> tuple[DatasetVersion, Manifest]:
        """A version and its manifest for the platform's own work (no caller is checked:
        callers acting for a person use :meth:`manifest`)."""
        return self._manifest(name, ref)

    def private_names(self) -> list[str]:
        """Datasets of projects that do not hold everyone, and deleted ones (whose versions
        must leave the shared root too)."""
        private = set(self.projects.names(everyone=False))
        return [r["name"] for r in self.db.query(
            "SELECT name, project FROM datasets") if r["project"] in private] + [
            r["dataset"] for r in self.db.query(
                "SELECT DISTINCT e.dataset FROM dataset_events e WHERE e.action = 'deleted'"
                " AND e.dataset NOT IN (SELECT name FROM datasets)")]

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

    def list(self, caller: Caller) -> list[dict]:
        """The datasets ``caller`` may read."""
        rows = [r for r in self.db.query("SELECT * FROM datasets")
                if self._readable(caller, r["project"])]
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

    def get(self, caller: Caller, name: str) -> dict:
        ds = self.require_readable(caller, name)
        tags = self._tags(name)
        rows = self.db.query("SELECT dataset, number, manifest_id, message, author, created_at,"
                             " summary FROM dataset_versions WHERE dataset = :n"
                             " ORDER BY number DESC", n=name)
        refs = self.projects.referencing(name)
        return {**ds, "tags": {t: f"v{n}" for n, ts in tags.items() for t in ts},
                "versions": [self._version(r, tags).to_dict() for r in rows],
                "referenced_by": refs,
                "can_change": self._may_change(caller, ds)}

    def _may_change(self, caller: Caller, ds: dict) -> bool:
        try:
            self.projects.require_change(caller, ds["project"], ds["created_by"], "")
            return True
        except (Forbidden, NotFound):
            return False

    def events(self, caller: Caller, name: str) -> list[dict]:
        """The dataset's audit log, oldest first; ``by_other`` marks what someone other than
        its owner did (a manager, an administrator, a colleague where the project allows)."""
        ds = self.require_readable(caller, name)
        rows = self.db.query(
            "SELECT at, actor, action, version, detail FROM dataset_events WHERE dataset = :d"
            " AND at >= :t ORDER BY at, id", d=name, t=ds["created_at"])
        for r in rows:
            r["by_other"] = r["actor"] != ds["created_by"]
        return rows

    def resolve(self, caller: Caller, name: str, ref: str) -> DatasetVersion:
        """A version ``caller`` may read."""
        self.require_readable(caller, name)
        return self._resolve(name, ref)

    def manifest(self, caller: Caller, name: str, ref: str) -> tuple[DatasetVersion, Manifest]:
        """A version ``caller`` may read, with its manifest."""
        self.require_readable(caller, name)
        return self._manifest(name, ref)

    def _resolve(self, name: str, ref: str) -> DatasetVersion:
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

    def _manifest(self, name: str, ref: str) -> tuple[DatasetVersion, Manifest]:
        v = self._resolve(name, ref)
        key = (name, v.number)
        if key not in self._manifests:
            row = self.db.query("SELECT manifest FROM dataset_versions WHERE dataset = :n"
                                " AND number = :v", n=name, v=v.number)[0]
            if len(self._manifests) > 64:
                self._manifests.clear()
            self._manifests[key] = Manifest.from_dict(json.loads(row["manifest"]), stored=True)
        return v, self._manifests[key]

    def referenced_hashes(self) -> set[str]:
        """Every object hash some version's manifest names (what garbage collection keeps)."""
        out: set[str] = set()
        for r in self.db.query("SELECT manifest FROM dataset_versions"):
            out.update(f["hash"] for f in json.loads(r["manifest"])["files"])
        return out

    def diff(self, caller: Caller, name: str, a: str, b: str,
             read: Callable[[str], bytes] | None = None) -> dict:
        """Per-file differences; with ``read(hash)``, also the annotated objects added, removed
        and moved per image, each image with the recorded changes between the two versions
        (who, when, which tool)."""
        self.require_readable(caller, name)
        va, ma = self._manifest(name, a)
        vb, mb = self._manifest(name, b)
        out = {"dataset": name, "from": va.version, "to": vb.version, **diff(ma, mb)}
        if read is not None:
            objects = provenance.object_diff(ma, mb, read)
            lo, hi = sorted((va.number, vb.number))
            by_path: dict[str, list] = {}
            for r in provenance.history(self.db, name, hi, after=lo):
                by_path.setdefault(r["path"], []).append(r)
            for item in objects["images"]:
                item["changes"] = by_path.get(item["path"], [])
            out["objects"] = objects
        return out

    def annotation_history(self, caller: Caller, name: str, ref: str, path: str) -> list[dict]:
        """The recorded changes of one image's annotated objects up to version ``ref``."""
        v = self.resolve(caller, name, ref)
        return provenance.history(self.db, name, v.number, path=path)

    # --- writing --------------------------------------------------------------------------

    def create(self, caller: Caller, name: str, project: str, description: str = "") -> dict:
        check_name(name)
        self.projects.require_member(caller, project)
        if not isinstance(description, str):
            raise InvalidInput("description must be text")
        try:
            with self.db.tx() as conn:
                self._insert(conn, caller, name, project, description)
        except sa.exc.IntegrityError:
            raise Conflict(f"dataset {name!r} exists already") from None
        return self.get(caller, name)

    def _insert(self, conn, caller: Caller, name: str, project: str,
                description: str = "") -> None:
        conn.execute(sa.text(
            "INSERT INTO datasets (name, project, description, created_by, created_at)"
            " VALUES (:n, :p, :d, :u, :t)"),
            {"n": name, "p": project, "d": description or "", "u": caller.name,
             "t": clock.now()})
        self._event(conn, name, caller.name, "created", None, f"in project {project}")

    def publish(self, caller: Caller, name: str, manifest: Manifest, message: str = "",
                tags: tuple[str, ...] = (), project: str | None = None, *, tool: str = "",
                read: Callable[[str], bytes] | None = None) -> DatasetVersion:
        """Record a new immutable version (objects must be stored already) and move tags.

        Publishing to a dataset that does not exist yet creates it in ``project`` (default
        ``default``); publishing to an existing one is a change (:meth:`check_publish`). The
        dataset (when new), the version, its object index, its tags and its audit event are one
        transaction: after a crash at any point the version is there whole or not at all.

        With ``read(hash)`` (an object's bytes), the images whose annotated objects changed
        against the parent version are recorded with the caller, the time and ``tool``
        (``provenance``).
        """
        for t in tags:
            self._check_tag(t)
        tool = provenance.check_tool(tool)
        check = self.check_publish(caller, name, project)
        manifest, summary, parent = self._against_parent(name, manifest, check["exists"])
        changes = None
        if parent is not None and read is not None:
            changes = provenance.object_diff(parent[1], manifest, read, detailed=0)
            summary["annotation_changes"] = {**changes["totals"], "tool": tool}
        body = json.dumps(manifest.to_dict(), separators=(",", ":"))
        now = clock.now()
        try:
            number = self._record(caller, name, check, manifest, message, tags, summary, body,
                                  now, (parent[0].number if parent else None, tool, changes))
        except sa.exc.IntegrityError:  # created or published concurrently: nothing recorded
            raise Conflict(f"dataset {name!r} changed while this version was recorded; "
                           "publish again") from None
        return self._resolve(name, f"v{number}")

    def _against_parent(self, name: str, manifest: Manifest,
                        exists: bool) -> tuple[Manifest, dict, tuple | None]:
        """The manifest to record, with the split carried from the latest version (see
        ``splits.carry``), and its summary naming that parent and what moved between splits."""
        parent = None
        last = self.db.query("SELECT MAX(number) AS n FROM dataset_versions WHERE dataset = :n",
                             n=name) if exists else []
        if last and last[0]["n"]:
            parent = self._manifest(name, f"v{last[0]['n']}")
        if parent is not None:
            split = carry(manifest.split, parent[1].split)
            if split != manifest.split:
                manifest = Manifest.build(manifest.entries, split)
        summary = manifest.summary()
        if parent is not None:
            summary["parent"] = parent[0].version
            if manifest.split is not None and parent[1].split is not None:
                summary["split_moves"] = moves(parent[1].entries, manifest.entries)
        return manifest, summary, parent

    def _record(self, caller, name, check, manifest, message, tags, summary, body,
                now, annotated=(None, "", None)) -> int:
        with self.db.tx() as conn:
            if not check["exists"]:
                self._insert(conn, caller, name, check["project"])
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
            self._index(conn, name, {e.hash for e in manifest.entries})
            self._event(conn, name, caller.name, "published", f"v{number}",
                        (message or "")[:500])
            parent, tool, changes = annotated
            if changes:
                provenance.record(conn, name, number, parent, caller.name, now, tool, changes)
        return number

    def check_publish(self, caller: Caller, name: str, project: str | None = None) -> dict:
        """May ``caller`` publish to ``name``? :class:`Forbidden` with the reason if not.

        Asked before any byte is hashed or sent, so a refused publish fails at once instead of
        after the upload. An existing dataset takes versions from whoever may change it (its
        owner, its project's managers, members where the project allows); a new one is created
        in ``project`` (default ``default``), which needs its membership.
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
        if not self._readable(caller, ds["project"]):  # its project is not named to outsiders
            raise Forbidden(f"the name {name!r} is taken by a dataset of a project "
                            f"{caller.name} is not in: only its members may publish or tag "
                            "versions of it; choose another name")
        if project and project != ds["project"]:
            raise InvalidInput(f"dataset {name!r} belongs to project {ds['project']!r}, "
                               f"not {project!r}")
        self._require_change(caller, ds)
        return {"dataset": name, "project": ds["project"], "exists": True}

    def _require_change(self, caller: Caller, ds: dict) -> None:
        try:
            self.projects.require_change(caller, ds["project"], ds["created_by"],
                                         f"dataset {ds['name']!r}")
        except NotFound:
            raise Forbidden(f"the name {ds['name']!r} is taken by a dataset of a project "
                            f"{caller.name} is not in") from None

    def publish_stored(self, caller: Caller, name: str, manifest: Manifest,
                       missing: Callable[[list[str]], set[str]], message: str = "",
                       tags: tuple[str, ...] = (), project: str | None = None,
                       durable: Callable[[], None] | None = None,
                       **annotated) -> DatasetVersion:
        """:meth:`publish` after checking, under the store lock, that every object is stored.

        ``missing(hashes)`` asks the store; ``durable()`` flushes it, so the objects are on disk
        before the version naming them is. Inside the lock no garbage collection can delete an
        object between the check and the record. ``annotated``: ``tool`` and ``read`` of
        :meth:`publish`.
        """
        self.check_publish(caller, name, project)
        hashes = sorted({e.hash for e in manifest.entries})
        with self.store_lock:
            absent = missing(hashes)
            if absent:
                raise Conflict(f"{len(absent)} object(s) of this manifest are not in the store "
                               f"(upload them first), e.g. {sorted(absent)[0]}")
            if durable is not None:
                durable()
            return self.publish(caller, name, manifest, message, tags, project, **annotated)

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
        ds = self.require_readable(caller, name)
        self._require_change(caller, ds)
        v = self._resolve(name, ref)
        rows = self.db.query("SELECT number FROM dataset_tags WHERE dataset = :d AND tag = :t",
                             d=name, t=tag)
        was = f" (was v{rows[0]['number']})" if rows else ""
        with self.db.tx() as conn:
            self._move(conn, name, tag, v.number, caller.name, clock.now())
            self._event(conn, name, caller.name, "tagged", v.version, f"{tag} -> {v.version}{was}")
        return self._resolve(name, v.version)

    def delete(self, caller: Caller, name: str) -> None:
        """Remove the dataset, its versions and tags (its objects become garbage unless another
        dataset names them). Refused while a project names one of its versions as reference."""
        ds = self.require_readable(caller, name)
        self._require_change(caller, ds)
        refs = self.projects.referencing(name)
        if refs:
            raise Conflict(f"dataset {name!r} is the reference dataset of project(s) "
                           f"{', '.join(refs)}; a manager of each must choose another first")
        with self.store_lock, self.db.tx() as conn:
            for table in ("dataset_tags", "dataset_versions", "dataset_objects"):
                conn.execute(sa.text(f"DELETE FROM {table} WHERE dataset = :d"), {"d": name})
            provenance.forget(conn, name)
            conn.execute(sa.text("DELETE FROM datasets WHERE name = :d"), {"d": name})
            self._event(conn, name, caller.name, "deleted", None,
                        f"owned by {ds['created_by']} in project {ds['project']}")
        self._manifests = {k: m for k, m in self._manifests.items() if k[0] != name}

    def set_reference(self, caller: Caller, project: str, name: str, ref: str) -> dict:
        """Mark a version as ``project``'s reference version (a project manager's decision)."""
        self.projects.require_manager(caller, project)
        v = self.resolve(caller, name, ref)
        self.projects.update(caller, project, reference_dataset=f"{name}@{v.version}")
        return {"project": project, "dataset": name, "version": v.version}
