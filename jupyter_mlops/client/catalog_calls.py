"""The dataset catalog of the control plane (``api/datasets``, ``api/dataset-objects``)."""
from __future__ import annotations

from urllib.parse import quote

from ..backends import fdpass
from ..core import errors
from ..core.datasets import transfer
from ..core.datasets.manifest import Manifest
from . import parse


def seg(value) -> str:
    """One path segment: a name can never reach another route (``/``, ``?`` are escaped)."""
    return quote(str(value), safe="")


def name_seg(value) -> str:
    """A dataset name, version or object hash as a path segment; one no URL can carry (control
    characters) is bad input before anything is sent (the catalog's documented 400)."""
    value = str(value)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise errors.InvalidInput(f"not a valid name or version: {value!r}")
    return seg(value)


def _manifest(resp):
    body = resp.json()
    return body, Manifest.from_dict(body.pop("manifest"))


class CatalogCalls:
    """Datasets, versions, tags and diffs (sync and async)."""

    def datasets(self):
        """The catalog: every dataset the caller sees, with tags and latest version."""
        return self._send("GET", "api/datasets", parse.key("datasets"))

    def dataset(self, name: str):
        """One dataset with its versions."""
        return self._send("GET", f"api/datasets/{name_seg(name)}")

    def dataset_version(self, name: str, ref: str, **params):
        """One version (a name or a tag) with a page of its files (``offset``, ``limit``,
        ``kind``, ``split``, ``q``)."""
        return self._send("GET", f"api/datasets/{name_seg(name)}/versions/{name_seg(ref)}",
                          params=params or None)

    def manifest(self, name: str, ref: str):
        """``(version, Manifest)``: the version's record and its full file list."""
        return self._send("GET", f"api/datasets/{name_seg(name)}/versions/{name_seg(ref)}/manifest",
                          _manifest)

    def record(self, name: str, manifest: Manifest, message: str = "", tags=(),
               project: str | None = None, tool: str = ""):
        """Record ``manifest`` (whose objects are stored) as a new version of ``name``."""
        body = {"manifest": manifest.to_dict(), "message": message, "tags": list(tags)}
        if project:
            body["project"] = project
        if tool:
            body["tool"] = tool
        return self._send("POST", f"api/datasets/{name_seg(name)}/versions", json=body)

    def diff(self, name: str, a: str, b: str):
        """Per-file differences between two versions."""
        return self._send("GET", f"api/datasets/{name_seg(name)}/diff", params={"from": a, "to": b})

    def check_publish(self, name: str, project: str | None = None):
        """Raises :class:`~jupyter_mlops.core.errors.Forbidden` (with the reason) when the
        caller may not publish to ``name``; asked before anything is hashed or sent."""
        return self._send("GET", f"api/datasets/{name_seg(name)}/publish-check",
                          params={"project": project} if project else None)

    def collect_garbage(self, dry_run: bool = True, grace_seconds: float = 86400):
        """Store objects no version references (administrators only)."""
        return self._send("POST", "api/admin/dataset-garbage",
                          json={"dry_run": dry_run, "grace_seconds": grace_seconds})


class DatasetObjects:
    """Content of datasets over HTTP, synchronous: the ``ObjectSink`` protocol of
    ``core.datasets.folder`` (publish) and the fetch of ``folder.materialize`` (get)."""

    publish_socket = ""

    def missing(self, hashes: list[str]) -> set[str]:
        out: set[str] = set()
        for i in range(0, len(hashes), 20000):
            out.update(self.request("POST", "api/dataset-objects/missing",
                                    json={"hashes": hashes[i:i + 20000]}).json()["missing"])
        return out

    def put_file(self, h: str, path: str) -> None:
        with open(path, "rb") as f:
            self.request("PUT", f"api/dataset-objects/{name_seg(h)}", content=f.read())

    def put_batch(self, items: list, sent=None) -> dict:
        """Stream several objects (``(hash, path, size)``) in one request; the control plane
        hashes each on its way into the store and keeps only matching content."""
        return self.request(
            "POST", "api/dataset-objects/batch", content=transfer.frames(items, sent),
            headers={"Content-Type": "application/octet-stream",
                     "Content-Length": str(transfer.batch_length(items))}).json()

    def fetch(self, h: str, dest: str) -> None:
        data = self.request("GET", f"api/dataset-objects/{name_seg(h)}").content
        import blake3

        if blake3.blake3(data).hexdigest() != h:  # checked here too: the wire is not trusted
            raise errors.Unavailable(f"object {h} arrived corrupted")
        with open(dest, "wb") as f:
            f.write(data)

    def object_sink(self, name: str, project: str | None = None):
        """Where a publish sends content: the control plane's publish socket when it is on this
        machine (file descriptors, no bytes copied through HTTP), else this client (HTTP)."""
        if self.publish_socket and self.config.token:
            sink = fdpass.FdPublisher(self.publish_socket, self.config.token, name, project,
                                      self)
            if sink.open():
                return sink
        return self


def publish_socket_from_env() -> str:
    """The control plane's publish socket the spawner announced (``""``: HTTP only)."""
    import os

    return os.environ.get(fdpass.SOCKET_ENV, "")
