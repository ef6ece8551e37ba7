"""Dataset routes of the server extension: the catalog (through the control plane), publishing
from a workspace folder or an upload (hashing runs here, next to the files), folder status, and
thumbnails with a bounded in-memory cache."""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

import tornado
from traitlets import Integer
from traitlets.config import Configurable

from .. import datasets as api
from ..core.datasets.manifest import (NAME_PATTERN, REF_PATTERN, check_hash, check_name,
                                      safe_relpath)
from ..core.errors import InvalidInput, MlopsError, NotFound, PayloadTooLarge
from .handlers import MlopsHandler

SESSION_RE = re.compile(r"^[a-z0-9-]{8,64}$")


class DatasetsConfig(Configurable):
    """Dataset settings of the server extension (``c.DatasetsConfig.*``)."""

    thumbnail_cache_mb = Integer(
        64, help="""Memory the thumbnail cache may hold (least recently used dropped first).
        Thumbnails are immutable (keyed by content hash), so they never go stale.""",
    ).tag(config=True)

    upload_max_mb = Integer(
        512, help="Largest single file accepted by the upload route, in MB.",
    ).tag(config=True)


class ThumbnailCache:
    """A byte-bounded LRU of rendered PNGs."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            png = self._items.get(key)
            if png is not None:
                self._items.move_to_end(key)
            return png

    def put(self, key: tuple, png: bytes) -> None:
        with self._lock:
            if key in self._items or len(png) > self.max_bytes:
                return
            self._items[key] = png
            self.bytes += len(png)
            while self.bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.bytes -= len(old)


class PublishJobs:
    """Publishes running in this server, with their progress (kept for the UI to poll)."""

    def __init__(self):
        self.jobs: dict[str, dict] = {}

    def start(self, owner: str, run) -> dict:
        job = {"id": uuid.uuid4().hex[:12], "owner": owner, "state": "running",
               "phase": "scanning", "done": 0, "total": 0, "bytes": 0, "error": None,
               "version": None}
        self.jobs[job["id"]] = job

        def progress(phase, done, total, nbytes):
            job.update(phase=phase, done=done, total=total, bytes=nbytes)

        def work():
            try:
                job["version"] = run(progress)
                job["state"] = "done"
            except MlopsError as e:
                job.update(state="failed", error=e.message, status=e.status)
            except Exception as e:  # reported to the UI, not swallowed
                job.update(state="failed", error=f"{e.__class__.__name__}: {e}", status=500)

        threading.Thread(target=work, name=f"publish-{job['id']}", daemon=True).start()
        return job

    def get(self, owner: str, job_id: str) -> dict:
        job = self.jobs.get(job_id)
        if not job or job["owner"] != owner:
            raise NotFound(f"no publish job {job_id!r}")
        return job


_state: dict = {}


def _shared(settings) -> tuple[DatasetsConfig, ThumbnailCache, PublishJobs]:
    if "config" not in _state:
        cfg = DatasetsConfig(parent=settings)
        _state.update(config=cfg, thumbs=ThumbnailCache(cfg.thumbnail_cache_mb * 2**20),
                      jobs=PublishJobs())
    return _state["config"], _state["thumbs"], _state["jobs"]


class DatasetsBase(MlopsHandler):
    def initialize(self, settings):
        super().initialize(settings)
        self.config_, self.thumbs, self.jobs = _shared(settings)

    async def proxy(self, method: str, path: str, **kw) -> None:
        client = self.control_plane()
        try:
            resp = await client.request(method, path, **kw)
        finally:
            await client.aclose()
        self.set_status(resp.status_code)
        self.finish(resp.content,
                    set_content_type=resp.headers.get("content-type", "application/json"))

    def catalog(self) -> api.CatalogClient:
        return api.CatalogClient(self.mlops.control_plane_url, self.mlops.api_token)

    def workspace_folder(self, rel: str) -> Path:
        """A folder of this server's workspace; ``..``, absolute paths and escapes refused."""
        root = Path(self.settings.get("server_root_dir") or os.getcwd()).resolve()
        rel = (rel or "").strip().rstrip("/")  # a leading "/" is refused as absolute
        target = root if rel in ("", ".") else root / safe_relpath(rel)
        real = target.resolve()
        if real != root and root not in real.parents:
            raise InvalidInput(f"folder {rel!r} leads out of the workspace; refused")
        if not real.is_dir():
            raise NotFound(f"no folder {rel!r} in the workspace")
        return real


def uploads_root() -> Path:
    return api.cache_dir() / "uploads"


class ListHandler(DatasetsBase):
    @tornado.web.authenticated
    async def get(self):
        await self.proxy("GET", "api/datasets")


class DatasetHandler(DatasetsBase):
    @tornado.web.authenticated
    async def get(self, name):
        await self.proxy("GET", f"api/datasets/{name}")


class VersionHandler(DatasetsBase):
    @tornado.web.authenticated
    async def get(self, name, ref):
        params = {k: self.get_query_argument(k) for k in ("offset", "limit", "kind", "split", "q")
                  if self.get_query_argument(k, None) is not None}
        await self.proxy("GET", f"api/datasets/{name}/versions/{ref}", params=params)


class AnnotationsHandler(DatasetsBase):
    @tornado.web.authenticated
    async def get(self, name, ref):
        await self.proxy("GET", f"api/datasets/{name}/versions/{ref}/annotations",
                         params={"path": self.get_query_argument("path", "")})


class DiffHandler(DatasetsBase):
    @tornado.web.authenticated
    async def get(self, name):
        await self.proxy("GET", f"api/datasets/{name}/diff",
                         params={"from": self.get_query_argument("from", ""),
                                 "to": self.get_query_argument("to", "")})


class TagHandler(DatasetsBase):
    @tornado.web.authenticated
    async def put(self, name, tag):
        await self.proxy("PUT", f"api/datasets/{name}/tags/{tag}", json=self.json_body())


class ReferenceHandler(DatasetsBase):
    @tornado.web.authenticated
    async def put(self, name, ref):
        await self.proxy("PUT", f"api/datasets/{name}/versions/{ref}/reference",
                         json=self.json_body())


class RenderHandler(DatasetsBase):
    """Thumbnails and previews of image objects, cached (content-addressed, so never stale)."""

    @tornado.web.authenticated
    async def get(self, h, what):
        check_hash(h)
        size = self.get_query_argument("size", "160")
        key = (h, what, size)
        png = self.thumbs.get(key)
        if png is None:
            client = self.control_plane()
            try:
                params = {"size": size} if what == "thumbnail" else {}
                resp = await client.request("GET", f"api/dataset-objects/{h}/{what}",
                                            params=params)
            finally:
                await client.aclose()
            png = resp.content
            if what == "thumbnail":
                self.thumbs.put(key, png)
        self.set_header("Cache-Control", "private, max-age=31536000, immutable")
        self.finish(png, set_content_type="image/png")


class UploadHandler(DatasetsBase):
    """``PUT datasets/uploads/<session>/<path>``: one file of an upload, staged for publish."""

    @tornado.web.authenticated
    async def put(self, session, path):
        if not SESSION_RE.match(session):
            raise InvalidInput("upload session ids are 8-64 lowercase letters, digits, dashes")
        safe_relpath(path)
        if any(p.startswith(".") for p in path.split("/")):
            raise InvalidInput(f"hidden files are not published: {path!r}")
        limit = self.config_.upload_max_mb * 2**20
        if len(self.request.body) > limit:
            raise PayloadTooLarge(f"files are limited to {self.config_.upload_max_mb} MB")
        dest = uploads_root() / session / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        tmp.write_bytes(self.request.body)
        os.replace(tmp, dest)
        self.set_status(201)
        self.finish({"session": session, "path": path, "size": len(self.request.body)})


class PublishHandler(DatasetsBase):
    """Start a publish of a workspace folder (``folder``) or an upload session (``upload``)."""

    @tornado.web.authenticated
    async def post(self, name):
        check_name(name)
        body = self.json_body()
        if body.get("upload"):
            session = str(body["upload"])
            if not SESSION_RE.match(session):
                raise InvalidInput("bad upload session id")
            src = uploads_root() / session
            if not src.is_dir():
                raise NotFound(f"no upload session {session!r} (upload files first)")
        else:
            src = self.workspace_folder(str(body.get("folder", "")))
        tags = body.get("tags") or []
        if not isinstance(tags, list):
            raise InvalidInput("tags must be a list")
        split = body.get("split") or None
        if split is not None and not isinstance(split, dict):
            raise InvalidInput("split must be an object {seed, train, val, test}")
        from ..core.datasets.manifest import Split

        split = Split.from_dict(split)  # bad input answers 400 now, not later in the job
        from ..core.datasets.provenance import check_tool

        tool = check_tool(body.get("tool")) or ("JupyterLab upload" if body.get("upload")
                                                else "JupyterLab folder publish")
        catalog = self.catalog()
        message, project = str(body.get("message") or ""), body.get("project")
        try:  # refused now (403 with the reason), not after hashing and uploading
            await asyncio.to_thread(catalog.check_publish, name, project)
        except BaseException:
            catalog.close()
            raise

        def run(progress):
            try:
                return api.publish(src, name, message, split, tags, project, catalog, progress,
                                   tool=tool)
            finally:
                catalog.close()
                if body.get("upload"):
                    shutil.rmtree(src, ignore_errors=True)

        job = self.jobs.start(self.current_user.username, run)
        self.set_status(202)
        self.finish(job)


class JobHandler(DatasetsBase):
    @tornado.web.authenticated
    async def get(self, job_id):
        self.finish(self.jobs.get(self.current_user.username, job_id))


class StatusHandler(DatasetsBase):
    """What changed in a workspace folder against a version."""

    @tornado.web.authenticated
    async def post(self, name):
        body = self.json_body()
        src = self.workspace_folder(str(body.get("folder", "")))
        catalog = self.catalog()
        try:
            result = await asyncio.to_thread(api.status, src, name,
                                             str(body.get("version") or "latest"), catalog)
        finally:
            catalog.close()
        self.finish(result)


NAME = f"({NAME_PATTERN})"
REF = f"({REF_PATTERN})"

ROUTES = [
    (r"datasets", ListHandler),
    (r"datasets/jobs/([0-9a-f]{12})", JobHandler),
    (r"datasets/uploads/([^/]+)/(.+)", UploadHandler),
    (r"datasets/objects/([0-9a-f]{64})/(thumbnail|preview)", RenderHandler),
    (rf"datasets/{NAME}", DatasetHandler),
    (rf"datasets/{NAME}/versions/{REF}", VersionHandler),
    (rf"datasets/{NAME}/versions/{REF}/annotations", AnnotationsHandler),
    (rf"datasets/{NAME}/versions/{REF}/reference", ReferenceHandler),
    (rf"datasets/{NAME}/diff", DiffHandler),
    (rf"datasets/{NAME}/tags/{REF}", TagHandler),
    (rf"datasets/{NAME}/publish", PublishHandler),
    (rf"datasets/{NAME}/status", StatusHandler),
]
