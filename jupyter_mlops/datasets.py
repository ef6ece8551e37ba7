"""Datasets from code: the shared catalog in a notebook, a script or a job.

    from jupyter_mlops import datasets
    path = datasets.get("cells", version="v3")   # read-only local folder, logged to MLflow
    datasets.publish("data/cells", "cells", message="relabelled 12 images")
    datasets.status("data/cells", "cells")        # what changed against "latest"
    datasets.list()

Inside a user server the control plane URL and the hub token come from the environment the
spawner sets (``$JUPYTER_MLOPS_CONTROL_PLANE_URL``, ``$JUPYTERHUB_API_TOKEN``); elsewhere pass
a :class:`CatalogClient`. Calls are synchronous (they run fine inside a kernel's event loop).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from .client import _raise_for
from .core import errors
from .core.datasets import fdpass, folder, transfer
from .core.datasets.manifest import Manifest, Split, check_name

__all__ = ["CatalogClient", "get", "publish", "status", "list", "diff", "cache_dir",
           "collect_garbage"]

_list = list


def cache_dir() -> Path:
    """Where materialised versions and stat caches live: ``~/.cache/jupyter-mlops``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jupyter-mlops"


class CatalogClient:
    """A synchronous client of the control plane's dataset routes (also an object sink)."""

    def __init__(self, base_url: str | None = None, token: str | None = None,
                 timeout: float = 60.0, publish_socket: str | None = None):
        base_url = base_url or os.environ.get("JUPYTER_MLOPS_CONTROL_PLANE_URL", "")
        token = token if token is not None else os.environ.get("JUPYTERHUB_API_TOKEN", "")
        # same-machine publishing (core.datasets.fdpass); "" turns it off
        self.publish_socket = (publish_socket if publish_socket is not None
                               else os.environ.get(fdpass.SOCKET_ENV, ""))
        self.token = token
        if not base_url:
            raise errors.Unavailable(
                "control plane URL unknown: run inside a jupyter-mlops server or pass base_url")
        self.base_url = base_url.rstrip("/") + "/"
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout,
                                  headers={"Authorization": f"token {token}"} if token else {},
                                  limits=httpx.Limits(max_connections=16))

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            resp = self._http.request(method, path.lstrip("/"), **kw)
        except httpx.InvalidURL as e:  # a name or version no URL can carry: bad input
            raise errors.InvalidInput(f"not a valid name or version: {e}") from None
        except httpx.TransportError as e:
            raise errors.Unavailable(f"control plane unreachable at {self.base_url} "
                                     f"({e.__class__.__name__}: {e})") from None
        _raise_for(resp, "control plane")
        return resp

    def close(self) -> None:
        self._http.close()

    # catalog
    def list(self) -> list[dict]:
        return self.request("GET", "api/datasets").json()["datasets"]

    def dataset(self, name: str) -> dict:
        return self.request("GET", f"api/datasets/{name}").json()

    def manifest(self, name: str, ref: str) -> tuple[dict, Manifest]:
        body = self.request("GET", f"api/datasets/{name}/versions/{ref}/manifest").json()
        return body, Manifest.from_dict(body.pop("manifest"))

    def record(self, name: str, manifest: Manifest, message: str = "", tags=(),
               project: str | None = None, tool: str = "") -> dict:
        body = {"manifest": manifest.to_dict(), "message": message, "tags": _list(tags)}
        if project:
            body["project"] = project
        if tool:
            body["tool"] = tool
        return self.request("POST", f"api/datasets/{name}/versions", json=body).json()

    def diff(self, name: str, a: str, b: str) -> dict:
        return self.request("GET", f"api/datasets/{name}/diff",
                            params={"from": a, "to": b}).json()

    # objects (the ObjectSink protocol of core.datasets.folder)
    def missing(self, hashes: list[str]) -> set[str]:
        out: set[str] = set()
        for i in range(0, len(hashes), 20000):
            r = self.request("POST", "api/dataset-objects/missing",
                             json={"hashes": hashes[i:i + 20000]})
            out.update(r.json()["missing"])
        return out

    def put_file(self, h: str, path: str) -> None:
        with open(path, "rb") as f:
            self.request("PUT", f"api/dataset-objects/{h}", content=f.read())

    def put_batch(self, items: _list, sent=None) -> dict:
        """Stream several objects (``(hash, path, size)``) in one request; the control plane
        hashes each on its way into the store and keeps only matching content."""
        return self.request(
            "POST", "api/dataset-objects/batch", content=transfer.frames(items, sent),
            headers={"Content-Type": "application/octet-stream",
                     "Content-Length": str(transfer.batch_length(items))}).json()

    def check_publish(self, name: str, project: str | None = None) -> dict:
        """Raises :class:`~jupyter_mlops.core.errors.Forbidden` (with the reason) when the
        caller may not publish to ``name``; asked before anything is hashed or sent."""
        return self.request("GET", f"api/datasets/{name}/publish-check",
                            params={"project": project} if project else None).json()

    def object_sink(self, name: str, project: str | None = None):
        """Where a publish sends content: the control plane's publish socket when it is on this
        machine (file descriptors, no bytes copied through HTTP), else this client (HTTP)."""
        if self.publish_socket and self.token:
            sink = fdpass.FdPublisher(self.publish_socket, self.token, name, project, self)
            if sink.open():
                return sink
        return self

    def fetch(self, h: str, dest: str) -> None:
        data = self.request("GET", f"api/dataset-objects/{h}").content
        import blake3

        if blake3.blake3(data).hexdigest() != h:  # checked here too: the wire is not trusted
            raise errors.Unavailable(f"object {h} arrived corrupted")
        with open(dest, "wb") as f:
            f.write(data)


def _client(client: CatalogClient | None) -> CatalogClient:
    return client or CatalogClient()


def list(client: CatalogClient | None = None) -> list[dict]:  # noqa: A001 (datasets.list())
    """The catalog: every dataset with its tags and latest version."""
    return _client(client).list()


def diff(name: str, a: str, b: str, client: CatalogClient | None = None) -> dict:
    """Per-file differences between two versions (added, removed, changed)."""
    return _client(client).diff(name, a, b)


def publish(folder_path: str | Path, name: str, message: str = "",
            split: dict | Split | None = None, tags=(), project: str | None = None,
            client: CatalogClient | None = None, progress=None,
            tool: str = "jupyter_mlops.datasets.publish") -> dict:
    """Publish ``folder_path`` as a new version of ``name``; only new content is sent.

    ``split``: ``{"seed": 0, "train": 0.8, "val": 0.1, "test": 0.1, "overrides": {"img.tif":
    "test"}}`` stores a split drawn per image from its content and the seed (stable as images
    come and go); without one, the new version keeps the previous version's split, and
    overrides given are merged over the previous ones. ``tool``: what made the annotations
    (recorded with each image whose annotated objects changed, e.g. ``"napari 0.5"``).
    """
    check_name(name)
    c = _client(client)
    if isinstance(split, dict):
        split = Split.from_dict(split)
    check = c.check_publish(name, project)  # a refusal costs nothing yet
    cache = folder.StatCache(folder_path, cache_dir() / "stat")
    previous = None
    if check.get("exists"):
        try:  # files at the same path and size as in the latest version: likely unchanged
            _, latest = c.manifest(name, "latest")
            previous = {e.path: e.size for e in latest.entries}
        except errors.NotFound:
            previous = None
    sink = c.object_sink(name, project)
    try:
        manifest, counts = folder.prepare(folder_path, sink, split, cache, progress=progress,
                                          previous=previous)
        if progress:
            progress("recording", 0, 1, 0)
        try:
            version = c.record(name, manifest, message, tags, project, tool)
        except errors.Conflict:
            # an object found stored was collected as garbage meanwhile (core.datasets.gc):
            # send what is missing now and record once more
            files = folder.scan(folder_path)
            hashed = folder.hash_folder(files, cache)
            folder.upload(files, hashed, sink, progress=progress)
            version = c.record(name, manifest, message, tags, project, tool)
    finally:
        if sink is not c:
            sink.close()
    if progress:
        progress("recorded", 1, 1, 0)
    return {**version, "transfer": {**counts, "path": "socket" if sink is not c else "http"}}


def _manifest_index(c: CatalogClient, name: str, version: str) -> tuple[dict, dict[str, str]]:
    """The version (one small request) and its ``{path: hash}``, cached by manifest id.

    Manifests never change, so the index of one is fetched once; a status then costs a version
    lookup, a folder walk and the hashing of changed files only.
    """
    info = c.request("GET", f"api/datasets/{name}/versions/{version}",
                     params={"limit": 1}).json()
    mid = info["manifest_id"]
    path = cache_dir() / "manifests" / f"{mid}.json"
    try:
        return info, json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    _, manifest = c.manifest(name, info["version"])
    index = manifest.index()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(index, separators=(",", ":")))
    os.replace(tmp, path)
    return info, index


def status(folder_path: str | Path, name: str, version: str = "latest",
           client: CatalogClient | None = None) -> dict:
    """What changed in ``folder_path`` against a version; unchanged files are not re-hashed."""
    info, index = _manifest_index(_client(client), name, version)
    cache = folder.StatCache(folder_path, cache_dir() / "stat")
    return {"dataset": name, "version": info["version"],
            **folder.status(folder_path, index, cache)}


def collect_garbage(delete: bool = False, grace_hours: float = 24,
                    client: CatalogClient | None = None) -> dict:
    """Store objects no version references (administrators only): counted, or with ``delete``
    removed. Objects younger than ``grace_hours`` are kept: they may belong to a publish still
    running (see ``core.datasets.gc``)."""
    return _client(client).request(
        "POST", "api/admin/dataset-garbage",
        json={"dry_run": not delete, "grace_seconds": grace_hours * 3600}).json()


def gc_main(url: str, token: str, delete: bool, grace_hours: float) -> int:
    """``jupyter-mlops gc``: print what garbage collection found (or removed)."""
    try:
        c = CatalogClient(url, token)
        r = collect_garbage(delete, grace_hours, c)
    except errors.MlopsError as e:
        print(f"jupyter-mlops gc: {e.message}")
        return 1
    verb = "deleted" if delete else "would delete (dry run; --delete to remove)"
    print(f"{r['objects']} objects ({r['bytes'] / 2**20:.1f} MiB) in the store, "
          f"{r['referenced']} referenced by versions, {r['unreferenced']} unreferenced\n"
          f"{verb}: {r['deletable']} objects, {r['deletable_bytes'] / 2**20:.1f} MiB "
          f"(kept {r['kept_recent']} younger than {grace_hours:g} h)")
    return 0


def _log_input(name: str, info: dict, url: str, context: str) -> bool:
    """Record the version as an MLflow dataset input of the active run (lineage): the run
    started in this process, or else the job's run ($MLFLOW_RUN_ID, set by the job wrapper,
    which user code need not resume)."""
    import mlflow

    run = mlflow.active_run()
    run_id = run.info.run_id if run else os.environ.get("MLFLOW_RUN_ID", "")
    if not run_id:
        return False
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    ds = MetaDataset(HTTPDatasetSource(url), name=f"{name}@{info['version']}",
                     digest=info["manifest_id"][:32])
    tags = {"mlflow.data.context": context, "mlops.dataset": name,
            "mlops.version": info["version"], "mlops.manifest": info["manifest_id"]}
    mlflow.MlflowClient().log_inputs(run_id, [DatasetInput(
        ds._to_mlflow_entity(), [InputTag(k, v) for k, v in tags.items()])])
    return True


def get(name: str, version: str = "latest", context: str = "training",
        client: CatalogClient | None = None, shared_root: str | None = None) -> Path:
    """A read-only local folder holding ``name`` at ``version`` (a version name or a tag).

    Served straight from the mounted shared root when the version is there, else downloaded
    once (every object checked against its hash) into ``~/.cache/jupyter-mlops/datasets``.
    When an MLflow run is active, the version is logged as a dataset input of that run.
    """
    check_name(name)
    c = _client(client)
    info, manifest = c.manifest(name, version)
    shared = shared_root if shared_root is not None else os.environ.get(
        "JUPYTER_MLOPS_DATASETS", "")
    path = None
    if shared:
        candidate = Path(shared) / name / info["version"]
        marker = candidate / ".mlops-version.json"
        try:
            if json.loads(marker.read_text()).get("manifest_id") == manifest.id:
                path = candidate
        except (OSError, ValueError):
            pass
    if path is None:
        dest = cache_dir() / "datasets" / name / f"{info['version']}-{manifest.id[:12]}"
        path = folder.materialize(manifest, dest, c.fetch)
    _log_input(name, info, f"{c.base_url}api/datasets/{name}/versions/{info['version']}",
               context)
    return path


def _magic(args: list[str], shell):
    """``%mlops datasets [list | versions NAME | get NAME [-v V] | status FOLDER NAME [-v V]
    | diff NAME FROM TO]``: the catalog from a notebook (a DataFrame or a dict)."""
    import pandas as pd

    from .magics import UsageError, parser

    p = parser("datasets", "The shared dataset catalog.")
    p.add_argument("action", nargs="?", default="list",
                   choices=["list", "versions", "get", "status", "diff"])
    p.add_argument("args", nargs="*", help="NAME, FOLDER NAME, or NAME FROM TO")
    p.add_argument("-v", "--version", default="latest", help="version or tag (latest)")
    a = p.parse_args(args)
    need = {"list": 0, "versions": 1, "get": 1, "status": 2, "diff": 3}[a.action]
    if len(a.args) != need:
        raise UsageError(f"%mlops datasets {a.action} takes {need} argument(s)")
    try:
        if a.action == "list":
            from .magics import table

            return table([{
                "name": d["name"], "project": d["project"],
                "latest": (d.get("latest") or {}).get("version"),
                "images": ((d.get("latest") or {}).get("summary") or {}).get("images"),
                "tags": ", ".join(f"{t}={v}" for t, v in sorted(d["tags"].items()))}
                for d in list()],
                "No datasets in your projects yet: publish a folder of images from the "
                "Datasets section, or with jupyter_mlops.datasets.publish(FOLDER, NAME).")
        if a.action == "versions":
            return pd.DataFrame([{
                "version": v["version"], "tags": ", ".join(v["tags"]), "author": v["author"],
                "message": v["message"], "files": v["summary"]["files"],
                "images": v["summary"]["images"], "objects": v["summary"]["objects"]}
                for v in CatalogClient().dataset(a.args[0])["versions"]])
        if a.action == "get":
            return get(a.args[0], a.version)
        if a.action == "status":
            return status(a.args[0], a.args[1], a.version)
        return diff(*a.args)
    except errors.MlopsError as e:
        raise UsageError(f"%mlops datasets: {e.message}") from None


try:  # the %mlops registry (IPython present: always inside a lab)
    from .magics import subcommand as _subcommand
except ImportError:  # pragma: no cover
    pass
else:
    _subcommand("datasets", "the shared datasets: list, versions, get, status, diff")(_magic)
