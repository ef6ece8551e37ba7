"""The control plane configured for S3 (a real SeaweedFS): settings flow from the hub config to
the service, and publish, diff and get work through that store unchanged."""
from __future__ import annotations

import pytest
from traitlets.config import Config

from jupyter_mlops.backends.store import S3Store
from jupyter_mlops.core.datasets import folder
from jupyter_mlops.core.roles import USE, Caller
from jupyter_mlops.demo import cells
from jupyter_mlops.hub.config import configure_hub
from tests.datasets.seaweed import ACCESS_KEY, SECRET_KEY


def s3_settings(seaweed) -> dict:
    return {"backend": "s3", "s3_endpoint_url": seaweed.endpoint, "s3_bucket": "mlops-tests",
            "s3_prefix": "catalog/", "s3_path_style": True,
            "s3_access_key_id": ACCESS_KEY, "s3_secret_access_key": SECRET_KEY}


def test_hub_passes_store_settings_and_keeps_keys_off_the_command_line(tmp_path, seaweed):
    c = Config()
    c.MlopsHub.data_dir = str(tmp_path)
    c.MlopsHub.dataset_store = s3_settings(seaweed)
    configure_hub(c)
    mlops = next(s for s in c.JupyterHub.services if s["name"] == "mlops")
    cmd = " ".join(mlops["command"])
    assert "--StoreSettings.backend=s3" in cmd
    assert f"--StoreSettings.s3_endpoint_url={seaweed.endpoint}" in cmd
    assert SECRET_KEY not in cmd and ACCESS_KEY not in cmd
    assert mlops["environment"]["AWS_SECRET_ACCESS_KEY"] == SECRET_KEY


@pytest.fixture
def service(tmp_path, seaweed, monkeypatch):
    """The control plane's context, built from the same flags the hub passes."""
    from jupyter_mlops.service.app import MlopsService

    c = Config()
    c.MlopsHub.data_dir = str(tmp_path / "data")
    c.MlopsHub.dataset_store = s3_settings(seaweed)
    configure_hub(c)
    mlops = next(s for s in c.JupyterHub.services if s["name"] == "mlops")
    for k, v in mlops["environment"].items():
        monkeypatch.setenv(k, v)
    app = MlopsService()
    app.parse_command_line([a for a in mlops["command"] if a.startswith("--")])
    yield app.build_context()
    MlopsService.clear_instance()


def test_publish_diff_get_through_s3(service, tmp_path):
    store, catalog = service.store, service.datasets
    assert isinstance(store, S3Store) and store.prefix == "catalog/"
    me = Caller("ivy", scopes=frozenset({USE}))
    root = tmp_path / "cells"
    cells.generate(root, n_images=6, seed=8, width=64, height=64)
    m1, c1 = folder.prepare(root, store)
    catalog.publish(me, "s3-cells", m1, "first")
    (root / "img_0000.tif").unlink()
    m2, c2 = folder.prepare(root, store)
    v2 = catalog.publish(me, "s3-cells", m2, "second")
    assert (c1["uploaded"], c2["uploaded"]) == (7, 0)  # v2 holds no new content
    d = catalog.diff(me, "s3-cells", "v1", "latest")
    assert [e["path"] for e in d["removed"]] == ["img_0000.tif"] and v2.version == "v2"
    _, manifest = catalog.manifest(me, "s3-cells", "v1")
    out = folder.materialize(manifest, tmp_path / "got", store.materialize)
    assert (out / "img_0003.tif").read_bytes() == cells_bytes(tmp_path, "img_0003.tif")


def cells_bytes(tmp_path, name: str) -> bytes:
    again = tmp_path / "again"
    cells.generate(again, n_images=6, seed=8, width=64, height=64)
    return (again / name).read_bytes()


def test_with_s3_there_is_no_publish_socket(service):
    """Publishers fall back to HTTP: the control plane does not listen, and removes a socket
    left by an earlier local-store run."""
    import asyncio

    from jupyter_mlops.service.publish_socket import serve_publish_socket

    stale = service.data_dir / "run" / "publish.sock"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("")
    loop = asyncio.new_event_loop()
    try:
        assert serve_publish_socket(None, service, loop) is None
    finally:
        loop.close()
    assert not stale.exists()
