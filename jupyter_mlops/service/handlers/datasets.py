"""Dataset catalog routes of the control plane. Who may read and change what is decided in
``core.datasets.catalog`` (members of a dataset's project read it, everyone for ``default``;
its owner and the project's managers change it); objects are served only to callers who may
read a version naming them. What the upload routes answer depends only on what the caller may
read or sent themselves, never on what other projects stored (``core.datasets.uploads``)."""
from __future__ import annotations

import asyncio
import json
import posixpath

from tornado import web

from ...backends.store import LocalStore
from ...core.datasets import annotations as ann
from ...core import roles
from ...core.datasets import folder, gc, transfer
from ...core.datasets.uploads import missing_for
from ...core.datasets.images import render_png
from ...core.datasets.manifest import (NAME_PATTERN, REF_PATTERN, Manifest, check_hash,
                                       safe_relpath)
from ...core.errors import InvalidInput, MlopsError, NotFound, PayloadTooLarge
from ..store_sweep import remove_tree, shared_root
from .base import ApiHandler, log

_render_slots = asyncio.Semaphore(2)  # renderings are CPU work: at most two at a time


def _int_arg(handler, name: str, default: int, lo: int, hi: int) -> int:
    raw = handler.get_query_argument(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, not {raw!r}") from None
    if not lo <= value <= hi:
        raise InvalidInput(f"{name} must be between {lo} and {hi}")
    return value


class DatasetsHandler(ApiHandler):
    async def get(self):
        self.write_json({"datasets": self.context.datasets.list(self.caller),
                         "store": self.context.store.describe()})

    async def post(self):
        body = self.get_json_body()
        ds = self.context.datasets.create(self.caller, body.get("name", ""),
                                          body.get("project") or "default",
                                          body.get("description", ""))
        self.write_json(ds, status=201)


class DatasetHandler(ApiHandler):
    async def get(self, name):
        self.write_json(self.context.datasets.get(self.caller, name))

    async def delete(self, name):
        await asyncio.to_thread(self.context.datasets.delete, self.caller, name)
        # its versions leave the shared root too (a reader holding a file keeps its inode)
        remove_tree(shared_root(self.context) / name)
        self.set_status(204)
        self.finish()


class DatasetEventsHandler(ApiHandler):
    async def get(self, name):
        self.write_json({"events": self.context.datasets.events(self.caller, name)})


class VersionsHandler(ApiHandler):
    async def post(self, name):
        """Record a version whose objects are all in the store already."""
        body = self.get_json_body()
        manifest = Manifest.from_dict(body.get("manifest") or {})
        if not manifest.entries:
            raise InvalidInput("a version needs at least one file")
        tags = body.get("tags") or []
        if not isinstance(tags, list):
            raise InvalidInput("tags must be a list of names")
        store, catalog = self.context.store, self.context.datasets

        def missing(hashes):  # a version names only objects its publisher may know of
            return missing_for(catalog, self.caller, hashes, store.missing)

        v = await asyncio.to_thread(
            catalog.publish_stored, self.caller, name, manifest, missing,
            str(body.get("message") or ""), tuple(tags), body.get("project"), store.sync,
            tool=body.get("tool"), read=store.get_bytes)
        # the catalog may have carried the parent's split: materialise what it recorded
        _, manifest = self.context.datasets.stored_manifest(name, v.version)
        if isinstance(store, LocalStore) and self.context.datasets.shared(name):
            # the shared root gets versions every lab member may read, as hard links: user
            # servers read them in place. Other projects' versions never go there (the root is
            # readable by every local account); their members download them through the API.
            dest = shared_root(self.context) / name / v.version
            try:
                await asyncio.to_thread(folder.materialize, manifest, dest,
                                        lambda h, p: store.materialize(h, p, verify=False))
            except OSError as e:
                log.warning("could not materialise %s@%s in the shared root: %s", name,
                            v.version, e)
        self.write_json(v.to_dict(), status=201)


class PublishCheckHandler(ApiHandler):
    async def get(self, name):
        """200 if the caller may publish to ``name`` (in ``?project=`` when new), else 403."""
        project = self.get_query_argument("project", "") or None
        self.write_json(self.context.datasets.check_publish(self.caller, name, project))


class GarbageHandler(ApiHandler):
    """Unreferenced store objects: counted (dry run, the default) or deleted. Admins only."""

    required_scopes = (roles.ADMIN,)

    async def post(self):
        body = self.get_json_body()
        dry_run = body.get("dry_run", True)
        if not isinstance(dry_run, bool):
            raise InvalidInput("dry_run must be true or false")
        grace = body.get("grace_seconds", gc.DEFAULT_GRACE_SECONDS)
        result = await asyncio.to_thread(gc.collect_garbage, self.context.datasets,
                                         self.context.store, dry_run, grace)
        log.info("dataset store garbage collection by %s: %s", self.caller.name, result)
        self.write_json(result)


def mount_of(context, name: str, version: str) -> dict:
    """How user servers and jobs get a version's files: read in place from the shared root
    (``hardlink``: the store's read-only files, no byte copied; ``copy`` where the shared root
    is on another file system) or downloaded through the API into the reader's cache."""
    if not isinstance(context.store, LocalStore):
        return {"where": "download", "mode": "copy",
                "reason": f"the bytes live in the {context.store.describe()}: "
                          "datasets.get downloads and checks each file once"}
    if not context.datasets.shared(name):
        return {"where": "download", "mode": "copy",
                "reason": "only datasets every lab member may read are placed in the shared "
                          "root; datasets.get downloads this one with the member's token"}
    marker = shared_root(context) / name / version / ".mlops-version.json"
    try:
        mode = json.loads(marker.read_text()).get("mode", "hardlink")
    except (OSError, ValueError):
        return {"where": "pending", "mode": None, "path": f"{name}/{version}",
                "reason": "not in the shared root yet; datasets.get downloads it meanwhile"}
    out = {"where": "shared root", "mode": mode, "path": f"{name}/{version}"}
    if mode != "hardlink":
        out["reason"] = ("the shared root and the store are on different file systems (or "
                         "hard links were refused): the files were copied")
    return out


class VersionHandler(ApiHandler):
    async def get(self, name, ref):
        """The version and one page of its files (``offset``, ``limit``, ``kind``, ``split``)."""
        v, m = self.context.datasets.manifest(self.caller, name, ref)
        offset = _int_arg(self, "offset", 0, 0, 10**7)
        limit = _int_arg(self, "limit", 100, 1, 10000)
        kind = self.get_query_argument("kind", "")
        split = self.get_query_argument("split", "")
        q = self.get_query_argument("q", "")
        files = [e for e in m.entries if (not kind or e.kind == kind)
                 and (not split or e.split == split) and (not q or q in e.path)]
        self.write_json({**v.to_dict(), "total": len(files), "offset": offset,
                         "files": [e.to_dict() for e in files[offset:offset + limit]],
                         "mount": await asyncio.to_thread(mount_of, self.context, name,
                                                          v.version)})


class ManifestHandler(ApiHandler):
    async def get(self, name, ref):
        v, m = self.context.datasets.manifest(self.caller, name, ref)
        self.write_json({**v.to_dict(), "manifest": m.to_dict()})


class AnnotationsHandler(ApiHandler):
    async def get(self, name, ref):
        """The boxes drawn over one image of a version."""
        path = safe_relpath(self.get_query_argument("path", ""))
        _, m = self.context.datasets.manifest(self.caller, name, ref)
        entries = m.by_path()
        e = entries.get(path)
        if e is None:
            raise NotFound(f"{name}@{ref} has no file {path!r}")
        boxes: list = []
        if e.annotation and e.annotation in entries:
            data = await asyncio.to_thread(self.context.store.get_bytes,
                                           entries[e.annotation].hash)
            async with _render_slots:
                boxes = await asyncio.to_thread(ann.boxes_for, path, e.annotation, data)
        history = self.context.datasets.annotation_history(self.caller, name, ref, path)
        self.write_json({"path": path, "annotation": e.annotation, "width": e.width,
                         "height": e.height, "boxes": boxes,
                         "name": posixpath.basename(path), "history": history})


class DiffHandler(ApiHandler):
    async def get(self, name):
        a = self.get_query_argument("from", "")
        b = self.get_query_argument("to", "")
        if not a or not b:
            raise InvalidInput("give two versions: ?from=v1&to=v2")
        self.write_json(await asyncio.to_thread(self.context.datasets.diff, self.caller, name,
                                                a, b, self.context.store.get_bytes))


class TagHandler(ApiHandler):
    async def put(self, name, tag):
        body = self.get_json_body()
        v = self.context.datasets.tag(self.caller, name, tag, str(body.get("version") or ""))
        self.write_json(v.to_dict())


class ReferenceHandler(ApiHandler):
    async def put(self, name, ref):
        body = self.get_json_body()
        project = body.get("project")
        if not isinstance(project, str) or not project:
            raise InvalidInput("name the project whose reference version this becomes")
        self.write_json(self.context.datasets.set_reference(self.caller, project, name, ref))


class MissingObjectsHandler(ApiHandler):
    async def post(self):
        hashes = self.get_json_body().get("hashes")
        if not isinstance(hashes, list) or len(hashes) > 100_000:
            raise InvalidInput("hashes must be a list of at most 100000 content hashes")
        for h in hashes:
            check_hash(h)
        missing = await asyncio.to_thread(missing_for, self.context.datasets, self.caller,
                                          sorted(set(hashes)), self.context.store.missing)
        self.write_json({"missing": sorted(missing)})


class ObjectHandler(ApiHandler):
    async def put(self, h):
        """Store content under its hash; content that does not hash to ``h`` is refused.

        Checked and answered alike whether or not the store held ``h`` already (then it is
        not rewritten): the answer tells nothing about other projects' objects."""
        check_hash(h)
        data = self.request.body
        limit = self.context.settings.get("max_object_bytes", 512 * 2**20)
        if len(data) > limit:
            raise PayloadTooLarge(f"objects are limited to {limit // 2**20} MB")
        from ...backends.store import CorruptObject

        try:  # put_bytes checks the content first, then skips an object stored already
            await asyncio.to_thread(self.context.store.put_bytes, h, data)
        except CorruptObject as e:
            raise InvalidInput(e.message.replace("is corrupt", "does not match")) from None
        await asyncio.to_thread(self.context.datasets.uploads.record, self.caller.name, [h])
        self.write_json({"hash": h, "stored": True}, status=201)

    async def get(self, h):
        check_hash(h)
        self.context.datasets.require_object(self.caller, h)
        data = await asyncio.to_thread(self.context.store.get_bytes, h)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Cache-Control", "private, max-age=31536000, immutable")
        self.finish(data)


@web.stream_request_body
class ObjectBatchHandler(ApiHandler):
    """Many objects in one streamed request (framing in ``core.datasets.transfer``).

    Each object is hashed while it is written to the store and kept only if it matches; the
    body is never held whole in memory. Hashing and writing run off the event loop in ~1 MiB
    steps, so two uploads use two cores.
    """

    STEP = 1 << 20

    async def prepare(self):
        await super().prepare()
        limit = self.context.settings.get("max_object_bytes", 512 * 2**20)
        self.request.connection.set_max_body_size(64 * 2**30)
        self.receiver = transfer.BatchReceiver(self.context.store.checking_writer, limit)
        self.pending: list = []
        self.pending_bytes = 0
        self.failure: MlopsError | None = None
        self.draining = self.closed = False

    async def _drain(self) -> None:
        chunks, self.pending, self.pending_bytes = self.pending, [], 0
        if self.failure is None:
            self.draining = True
            try:
                await asyncio.to_thread(self.receiver.feed_all, chunks)
            except MlopsError as e:  # answered once the body is read (see post)
                self.receiver.abort()
                self.failure = e
            finally:
                self.draining = False
                if self.closed:
                    self.receiver.abort()
                await asyncio.to_thread(self._record)

    def _record(self) -> None:
        """Remember the objects completed so far as sent by the caller (a retry skips them)."""
        done, self.receiver.completed = self.receiver.completed, []
        self.context.datasets.uploads.record(self.caller.name, done)

    async def data_received(self, chunk):
        self.pending.append(chunk)
        self.pending_bytes += len(chunk)
        if self.pending_bytes >= self.STEP:
            await self._drain()

    async def post(self):
        await self._drain()
        if self.failure is not None:
            raise self.failure
        self.write_json(await asyncio.to_thread(self.receiver.close), status=201)

    def on_connection_close(self):
        # a publish killed half-way: keep the objects that arrived whole (the next publish
        # need not send them again), drop the one in flight
        if getattr(self, "receiver", None) is None:
            return
        self.closed = True
        if self.draining:
            return  # the running step aborts when it ends
        try:
            self.receiver.feed_all(self.pending)
        except MlopsError:
            pass
        self.pending = []
        self.receiver.abort()
        self._record()


class RenderHandler(ApiHandler):
    """A PNG of an image object: ``thumbnail`` (``size`` px, default 160) or ``preview``."""

    async def get(self, h, what):
        check_hash(h)
        side = _int_arg(self, "size", 160, 16, 512) if what == "thumbnail" else 1600
        self.context.datasets.require_object(self.caller, h)
        data = await asyncio.to_thread(self.context.store.get_bytes, h)
        async with _render_slots:
            png = await asyncio.to_thread(render_png, data, side)
        self.set_header("Content-Type", "image/png")
        self.set_header("Cache-Control", "private, max-age=31536000, immutable")
        self.finish(png)


NAME = f"({NAME_PATTERN})"
REF = f"({REF_PATTERN})"
HASH = r"([0-9a-f]{64})"

ROUTES = [
    (r"/datasets", DatasetsHandler),
    (rf"/datasets/{NAME}", DatasetHandler),
    (rf"/datasets/{NAME}/events", DatasetEventsHandler),
    (rf"/datasets/{NAME}/versions", VersionsHandler),
    (rf"/datasets/{NAME}/publish-check", PublishCheckHandler),
    (rf"/datasets/{NAME}/versions/{REF}", VersionHandler),
    (rf"/datasets/{NAME}/versions/{REF}/manifest", ManifestHandler),
    (rf"/datasets/{NAME}/versions/{REF}/annotations", AnnotationsHandler),
    (rf"/datasets/{NAME}/versions/{REF}/reference", ReferenceHandler),
    (rf"/datasets/{NAME}/diff", DiffHandler),
    (rf"/datasets/{NAME}/tags/{REF}", TagHandler),
    (r"/dataset-objects/missing", MissingObjectsHandler),
    (r"/admin/dataset-garbage", GarbageHandler),
    (r"/dataset-objects/batch", ObjectBatchHandler),
    (rf"/dataset-objects/{HASH}", ObjectHandler),
    (rf"/dataset-objects/{HASH}/(thumbnail|preview)", RenderHandler),
]
