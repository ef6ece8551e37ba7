"""Dataset routes of the server extension that work next to the user's files: publishing from a
workspace folder or an upload (hashing runs here), folder status, and thumbnails with a bounded
in-memory cache. The catalog itself is forwarded to the control plane (:mod:`.passthrough`)."""
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
from ..client import ControlPlane
from ..core.datasets.manifest import NAME_PATTERN, check_hash, check_name, safe_relpath
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

    publishes_at_once = Integer(
        2, help="""Publishes of this server that hash and send at the same time; more wait
        (phase ``queued``). Each reads its folder and hashes on a thread of its own.""",
    ).tag(config=True)

    publishes_kept = Integer(
        50, help="""Finished publishes whose outcome the server keeps for the UI to read
        (oldest dropped first). The version itself is in the catalog.""",
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
    """Publishes running in this server, with their progress (kept for the UI to poll).

    Bounded both ways: at most ``at_once`` run (the others wait their turn: state ``running``,
    phase ``queued``, so the UI shows them waiting), and
    at most ``kept`` finished ones are remembered. One instance per server, owned by its
    settings (:func:`workspace_state`)."""

    def __init__(self, at_once: int = 2, kept: int = 50):
        self.kept = kept
        self.jobs: OrderedDict[str, dict] = OrderedDict()
        self._turns = threading.BoundedSemaphore(max(1, at_once))
        self._lock = threading.Lock()

    def start(self, owner: str, run) -> dict:
        job = {"id": uuid.uuid4().hex[:12], "owner": owner, "state": "running",
               "phase": "queued", "done": 0, "total": 0, "bytes": 0, "error": None,
               "version": None}
        with self._lock:
            self.jobs[job["id"]] = job
            self._forget_finished()

        def progress(phase, done, total, nbytes):
            job.update(phase=phase, done=done, total=total, bytes=nbytes)

        def work():
            with self._turns:
                job["phase"] = "scanning"
                try:
                    job["version"] = run(progress)
                    job["state"] = "done"
                except MlopsError as e:
                    job.update(state="failed", error=e.message, status=e.status)
                except Exception as e:  # reported to the UI, not swallowed
                    job.update(state="failed", error=f"{e.__class__.__name__}: {e}",
                               status=500)

        # daemon: a publish cut short by the server's stop leaves no version (nothing recorded)
        threading.Thread(target=work, name=f"publish-{job['id']}", daemon=True).start()
        return job

    def _forget_finished(self) -> None:
        finished = [i for i, j in self.jobs.items() if j["state"] in ("done", "failed")]
        for job_id in finished[:max(0, len(finished) - self.kept)]:
            del self.jobs[job_id]

    def get(self, owner: str, job_id: str) -> dict:
        job = self.jobs.get(job_id)
        if not job or job["owner"] != owner:
            raise NotFound(f"no publish job {job_id!r}")
        return job


def workspace_state(settings) -> tuple[DatasetsConfig, ThumbnailCache, PublishJobs]:
    """The dataset settings, thumbnail cache and publish jobs of one server, made once and
    kept on its :class:`~.settings.MlopsSettings`."""
    state = getattr(settings, "_dataset_workspace", None)
    if state is None:
        cfg = DatasetsConfig(parent=settings)
        state = (cfg, ThumbnailCache(cfg.thumbnail_cache_mb * 2**20),
                 PublishJobs(cfg.publishes_at_once, cfg.publishes_kept))
        settings._dataset_workspace = state
    return state


class DatasetsBase(MlopsHandler):
    def initialize(self, settings):
        super().initialize(settings)
        self.config_, self.thumbs, self.jobs = workspace_state(settings)

    def catalog(self) -> ControlPlane:
        """A blocking client for a worker thread (publish and status hash files there)."""
        return ControlPlane(self.mlops.control_plane_url, self.mlops.api_token,
                            timeout=60.0)

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


class RenderHandler(DatasetsBase):
    """Thumbnails and previews of image objects, cached (content-addressed, so never stale)."""

    @tornado.web.authenticated
    async def get(self, h, what):
        check_hash(h)
        size = self.get_query_argument("size", "160")
        key = (h, what, size)
        png = self.thumbs.get(key)
        if png is None:
            params = {"size": size} if what == "thumbnail" else {}
            resp = await self.mlops.control_plane().request(
                "GET", f"api/dataset-objects/{h}/{what}", params=params)
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

ROUTES = [
    (r"datasets/jobs/([0-9a-f]{12})", JobHandler),
    (r"datasets/uploads/([^/]+)/(.+)", UploadHandler),
    (r"datasets/objects/([0-9a-f]{64})/(thumbnail|preview)", RenderHandler),
    (rf"datasets/{NAME}/publish", PublishHandler),
    (rf"datasets/{NAME}/status", StatusHandler),
]
