"""The server extension's dataset routes, called as the lab calls them (a running user server)."""
from __future__ import annotations

import time

import pytest

from jupyter_mlops.demo import cells
from tests.fixtures import until

USER = "sam"


@pytest.fixture(scope="module")
def lab(platform):
    platform.add_user(USER, "sam-password-123")
    token = platform.token(USER)
    platform.start_server(USER, token=platform.admin_token())
    workspace = platform.data_dir / "users" / USER
    # written after the spawn (the workspace belongs to the user's account when isolated);
    # the files are world-readable, as files a user copies into the workspace would be
    cells.generate(workspace / "data" / "cells", n_images=10, seed=21, width=80, height=80,
                   fmt="png", masks=True)

    def call(method, path, **kw):
        return platform.api(method, f"user/{USER}/mlops/api/{path}", token, **kw)

    return call, workspace


def wait_job(call, job: dict) -> dict:
    return until(lambda: (j := call("GET", f"datasets/jobs/{job['id']}").json())["state"]
                 != "running" and j, 60, f"publish job {job['id']} to end", every=0.2)


def test_publish_a_workspace_folder_with_progress(lab):
    call, _ = lab
    r = call("POST", "datasets/lab-cells/publish",
             json={"folder": "data/cells", "message": "from the lab", "split": {"seed": 2}})
    assert r.status_code == 202, r.text
    job = wait_job(call, r.json())
    assert job["state"] == "done", job
    assert job["total"] > 0 and job["done"] == job["total"]
    v = job["version"]
    assert v["version"] == "v1" and v["summary"]["images"] == 10
    # the server (its own account when isolated) got the socket from the spawner and used it
    assert v["transfer"]["path"] == "socket" and v["transfer"]["uploaded"] > 10
    assert v["summary"]["annotation_files"] == 11  # 10 masks + the COCO file
    listed = call("GET", "datasets").json()["datasets"]
    assert "lab-cells" in [d["name"] for d in listed]


def test_thumbnails_are_cached_pngs(lab):
    call, _ = lab
    files = call("GET", "datasets/lab-cells/versions/latest?kind=image&limit=3").json()["files"]
    h = files[0]["hash"]
    t0 = time.monotonic()
    first = call("GET", f"datasets/objects/{h}/thumbnail?size=96")
    cold = time.monotonic() - t0
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    t0 = time.monotonic()
    again = call("GET", f"datasets/objects/{h}/thumbnail?size=96")
    assert again.content == first.content
    assert time.monotonic() - t0 < max(cold, 0.05) * 2  # served from memory, not re-rendered
    boxes = call("GET", "datasets/lab-cells/versions/latest/annotations",
                 params={"path": files[0]["path"]}).json()["boxes"]
    assert len(boxes) == files[0]["objects"] > 0  # boxes from the label mask


def test_status_of_the_workspace_folder(lab):
    call, workspace = lab
    (workspace / "data/cells/notes.txt").write_text("new file")
    s = call("POST", "datasets/lab-cells/status", json={"folder": "data/cells"}).json()
    assert s["added"] == ["notes.txt"] and s["modified"] == [] and s["version"] == "v1"
    (workspace / "data/cells/notes.txt").unlink()


def test_upload_then_publish(lab):
    call, workspace = lab
    src = workspace / "data/cells"
    session = "up-test-0001"
    for name in ("img_0000.png", "img_0001.png", "annotations.json"):
        r = call("PUT", f"datasets/uploads/{session}/sub/{name}",
                 data=(src / name).read_bytes())
        assert r.status_code == 201, r.text
    job = wait_job(call, call("POST", "datasets/uploaded/publish",
                              json={"upload": session}).json())
    assert job["state"] == "done", job
    assert job["version"]["summary"]["files"] == 3
    assert job["version"]["transfer"]["uploaded"] == 0  # same content as lab-cells: deduplicated


@pytest.mark.parametrize("method,path,body,status,words", [
    ("POST", "datasets/x/publish", {"folder": "../.."}, 400, "leaves"),
    ("POST", "datasets/x/publish", {"folder": "/etc"}, 400, "absolute"),
    ("POST", "datasets/x/publish", {"folder": "nope"}, 404, "no folder"),
    ("POST", "datasets/x/publish", {"folder": "data/cells", "split": {"train": 2}}, 400,
     "add up to 1"),
    ("POST", "datasets/x/publish", {"folder": "data/cells", "split": {
        "overrides": {"img_0000.tif": "holdout"}}}, 400, "must be one of"),
    ("POST", "datasets/x/publish", {"folder": "data/cells", "tool": "napari\nrm"}, 400,
     "one line"),
    ("POST", "datasets/x/publish", {"upload": "no-such-session"}, 404, "no upload session"),
    ("PUT", "datasets/uploads/up-test-0002/.hidden", b"x", 400, "hidden"),
    ("PUT", "datasets/uploads/BAD/a.png", b"x", 404, "session"),  # outside the path pattern
    ("GET", "datasets/jobs/0123456789ab", None, 404, "no publish job"),
    ("GET", "datasets/lab-cells/versions/v7", None, 404, "no version"),
])
def test_bad_input_is_a_clear_4xx(lab, method, path, body, status, words):
    call, _ = lab
    kw = {"data": body} if isinstance(body, bytes) else {"json": body} if body else {}
    r = call(method, path, **kw)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]


def test_symlink_out_of_the_workspace_is_refused(lab, tmp_path):
    call, workspace = lab
    (workspace / "escape").mkdir(exist_ok=True)
    (workspace / "escape" / "x.txt").write_text("x")
    link = workspace / "escape" / "secret"
    if not link.exists():
        link.symlink_to(tmp_path)
    job = wait_job(call, call("POST", "datasets/x/publish", json={"folder": "escape"}).json())
    assert job["state"] == "failed" and "symlink leading out" in job["error"]
    outside = workspace / "outside"
    if not outside.exists():
        outside.symlink_to(tmp_path)
    r = call("POST", "datasets/x/publish", json={"folder": "outside"})
    assert r.status_code == 400 and "out of the workspace" in r.json()["message"]


def test_publishing_into_another_projects_dataset_is_refused_up_front(lab, platform):
    """403 with the reason at once, not a 202 whose job fails after hashing and uploading."""
    call, _ = lab
    admin = platform.admin_token()
    api = "services/mlops/api"
    assert platform.api("POST", f"{api}/projects", admin,
                        json={"name": "histology-lab"}).status_code in (201, 409)
    r = platform.api("POST", f"{api}/datasets", admin,
                     json={"name": "histology", "project": "histology-lab"})
    assert r.status_code in (201, 409), r.text
    r = call("POST", "datasets/histology/publish", json={"folder": "data/cells"})
    assert r.status_code == 403, r.text
    assert "taken by a dataset of a project" in r.json()["message"]
    r = call("POST", "datasets/new-one/publish",
             json={"folder": "data/cells", "project": "histology-lab"})
    assert r.status_code == 403 and "not a member" in r.json()["message"]


def test_tags_and_reference_version_through_the_lab(lab, platform):
    call, _ = lab
    r = call("PUT", "datasets/lab-cells/tags/reviewed", json={"version": "v1"})
    assert r.status_code == 200 and "reviewed" in r.json()["tags"]
    r = call("PUT", "datasets/lab-cells/versions/v1/reference", json={"project": "default"})
    assert r.status_code == 403 and "manager" in r.json()["message"]  # sam is no manager
