"""Dataset catalog routes of the control plane. Reading is open to every lab member (the
catalog is shared); publishing, tagging and uploading objects need project membership."""
from __future__ import annotations

import asyncio
import posixpath

from ...backends.store import LocalStore
from ...core.datasets import annotations as ann
from ...core.datasets import folder
from ...core.datasets.images import render_png
from ...core.datasets.manifest import Manifest, check_hash, safe_relpath
from ...core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
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
        self.write_json({"datasets": self.context.datasets.list(),
                         "store": self.context.store.describe()})

    async def post(self):
        body = self.get_json_body()
        ds = self.context.datasets.create(self.caller, body.get("name", ""),
                                          body.get("project") or "default",
                                          body.get("description", ""))
        self.write_json(ds, status=201)


class DatasetHandler(ApiHandler):
    async def get(self, name):
        self.write_json(self.context.datasets.get(name))


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
        store = self.context.store
        hashes = sorted({e.hash for e in manifest.entries})
        missing = await asyncio.to_thread(store.missing, hashes)
        if missing:
            raise Conflict(f"{len(missing)} object(s) of this manifest are not in the store "
                           f"(upload them first), e.g. {sorted(missing)[0]}")
        v = self.context.datasets.publish(self.caller, name, manifest,
                                          str(body.get("message") or ""), tuple(tags),
                                          body.get("project"))
        if isinstance(store, LocalStore):
            # the shared root gets the version as hard links: user servers read it in place
            dest = self.context.data_dir / "datasets" / name / v.version
            try:
                await asyncio.to_thread(folder.materialize, manifest, dest,
                                        lambda h, p: store.materialize(h, p, verify=False))
            except OSError as e:
                log.warning("could not materialise %s@%s in the shared root: %s", name,
                            v.version, e)
        self.write_json(v.to_dict(), status=201)


class VersionHandler(ApiHandler):
    async def get(self, name, ref):
        """The version and one page of its files (``offset``, ``limit``, ``kind``, ``split``)."""
        v, m = self.context.datasets.manifest(name, ref)
        offset = _int_arg(self, "offset", 0, 0, 10**7)
        limit = _int_arg(self, "limit", 100, 1, 10000)
        kind = self.get_query_argument("kind", "")
        split = self.get_query_argument("split", "")
        q = self.get_query_argument("q", "")
        files = [e for e in m.entries if (not kind or e.kind == kind)
                 and (not split or e.split == split) and (not q or q in e.path)]
        self.write_json({**v.to_dict(), "total": len(files), "offset": offset,
                         "files": [e.to_dict() for e in files[offset:offset + limit]]})


class ManifestHandler(ApiHandler):
    async def get(self, name, ref):
        v, m = self.context.datasets.manifest(name, ref)
        self.write_json({**v.to_dict(), "manifest": m.to_dict()})


class AnnotationsHandler(ApiHandler):
    async def get(self, name, ref):
        """The boxes drawn over one image of a version."""
        path = safe_relpath(self.get_query_argument("path", ""))
        _, m = self.context.datasets.manifest(name, ref)
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
        self.write_json({"path": path, "annotation": e.annotation, "width": e.width,
                         "height": e.height, "boxes": boxes,
                         "name": posixpath.basename(path)})


class DiffHandler(ApiHandler):
    async def get(self, name):
        a = self.get_query_argument("from", "")
        b = self.get_query_argument("to", "")
        if not a or not b:
            raise InvalidInput("give two versions: ?from=v1&to=v2")
        self.write_json(self.context.datasets.diff(name, a, b))


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
        missing = await asyncio.to_thread(self.context.store.missing, sorted(set(hashes)))
        self.write_json({"missing": sorted(missing)})


class ObjectHandler(ApiHandler):
    async def put(self, h):
        """Store content under its hash; content that does not hash to ``h`` is refused."""
        check_hash(h)
        data = self.request.body
        limit = self.context.settings.get("max_object_bytes", 512 * 2**20)
        if len(data) > limit:
            raise PayloadTooLarge(f"objects are limited to {limit // 2**20} MB")
        store = self.context.store
        if await asyncio.to_thread(store.exists, h):
            self.write_json({"hash": h, "stored": False})
            return
        from ...backends.store import CorruptObject

        try:
            await asyncio.to_thread(store.put_bytes, h, data)
        except CorruptObject as e:
            raise InvalidInput(e.message.replace("is corrupt", "does not match")) from None
        self.write_json({"hash": h, "stored": True}, status=201)

    async def get(self, h):
        check_hash(h)
        data = await asyncio.to_thread(self.context.store.get_bytes, h)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Cache-Control", "private, max-age=31536000, immutable")
        self.finish(data)


class RenderHandler(ApiHandler):
    """A PNG of an image object: ``thumbnail`` (``size`` px, default 160) or ``preview``."""

    async def get(self, h, what):
        check_hash(h)
        side = _int_arg(self, "size", 160, 16, 512) if what == "thumbnail" else 1600
        data = await asyncio.to_thread(self.context.store.get_bytes, h)
        async with _render_slots:
            png = await asyncio.to_thread(render_png, data, side)
        self.set_header("Content-Type", "image/png")
        self.set_header("Cache-Control", "private, max-age=31536000, immutable")
        self.finish(png)


NAME = r"([a-z0-9][a-z0-9._-]{0,62})"
REF = r"([A-Za-z0-9._-]{1,63})"
HASH = r"([0-9a-f]{64})"

ROUTES = [
    (r"/datasets", DatasetsHandler),
    (rf"/datasets/{NAME}", DatasetHandler),
    (rf"/datasets/{NAME}/versions", VersionsHandler),
    (rf"/datasets/{NAME}/versions/{REF}", VersionHandler),
    (rf"/datasets/{NAME}/versions/{REF}/manifest", ManifestHandler),
    (rf"/datasets/{NAME}/versions/{REF}/annotations", AnnotationsHandler),
    (rf"/datasets/{NAME}/versions/{REF}/reference", ReferenceHandler),
    (rf"/datasets/{NAME}/diff", DiffHandler),
    (rf"/datasets/{NAME}/tags/{REF}", TagHandler),
    (r"/dataset-objects/missing", MissingObjectsHandler),
    (rf"/dataset-objects/{HASH}", ObjectHandler),
    (rf"/dataset-objects/{HASH}/(thumbnail|preview)", RenderHandler),
]
