"""Model files through MLflow's artifact proxy on a unix socket (``mlflow-artifacts:/<path>``).

The platform's MLflow server listens on a unix socket only, and MLflow's own client speaks TCP.
When MLflow proxies its artifacts (``--artifacts-destination``: a local directory or S3), a
model version's download URI is ``mlflow-artifacts:/<path>``: this module copies that tree to a
local directory through the proxy's REST routes, so a model server needs neither S3 credentials
nor a TCP MLflow. The copy appears all at once (renamed into place), and is reused when present.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlparse

import httpx

SCHEME = "mlflow-artifacts"


def artifact_path(uri: str) -> str:
    """``mlflow-artifacts:/1/models/m-1/artifacts`` -> ``1/models/m-1/artifacts``."""
    parsed = urlparse(uri)
    if parsed.scheme != SCHEME:
        raise ValueError(f"not an {SCHEME}: URI: {uri!r}")
    path = PurePosixPath(parsed.path.lstrip("/"))
    if not path.parts or ".." in path.parts:
        raise ValueError(f"bad artifact path in {uri!r}")
    return str(path)


def _files(http: httpx.Client, base: str, path: str):
    r = http.get(f"{base}/api/2.0/mlflow-artifacts/artifacts", params={"path": path})
    r.raise_for_status()
    for f in r.json().get("files", []):
        child = f"{path}/{f['path']}"
        if f.get("is_dir"):
            yield from _files(http, base, child)
        else:
            yield child


def download(uri: str, socket_path: str, dest: str | Path,
             prefix: str = "/services/mlflow", timeout: float = 120.0) -> Path:
    """Copy the artifact tree of ``uri`` to ``dest`` (a directory that must not exist yet, or
    a finished earlier copy) and return it."""
    dest = Path(dest)
    if (dest / "MLmodel").exists():
        return dest
    root = artifact_path(uri)
    base = prefix.rstrip("/")
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    # MLflow checks the Host header (DNS-rebinding protection): localhost is always allowed.
    # Its own httpx client, not jupyter_mlops.client: a model server process runs this at start
    # (serving/app.py) and streams each file to disk, which the client's buffered answers do not.
    transport = httpx.HTTPTransport(uds=socket_path, retries=2)
    with httpx.Client(transport=transport, base_url="http://localhost", timeout=timeout) as http:
        files = list(_files(http, base, root))
        if not files:
            raise FileNotFoundError(f"{uri} holds no files")
        for rel in files:
            target = tmp / rel[len(root) + 1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            with http.stream("GET", f"{base}/api/2.0/mlflow-artifacts/artifacts/"
                             + quote(rel)) as r:
                r.raise_for_status()
                with open(target, "wb") as f:
                    for chunk in r.iter_bytes(1 << 20):
                        f.write(chunk)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    return dest
