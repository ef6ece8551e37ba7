"""The catalog on a real platform: control plane routes, the public API, MLflow lineage."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import blake3
import pytest

from jupyter_mlops import datasets

from jupyter_mlops.client import ControlPlane
from jupyter_mlops.core.datasets import transfer
from jupyter_mlops.demo import cells
from tests.fixtures import until

API = "services/mlops/api"


@pytest.fixture(scope="module")
def people(platform):
    platform.add_user("dana", "dana-password-1")
    return {"admin": platform.admin_token(), "dana": platform.token("dana")}


@pytest.fixture(scope="module")
def client(platform, people):
    c = ControlPlane(f"{platform.url}/services/mlops/", people["dana"])
    yield c
    c.close()


@pytest.fixture(scope="module")
def published(platform, client, tmp_path_factory):
    """``cells`` v1 and v2 (v2: one image removed, one changed, one added)."""
    root = tmp_path_factory.mktemp("cells") / "cells"
    cells.generate(root, n_images=16, seed=11, fmt="mixed", width=96, height=96)
    v1 = datasets.publish(root, "cells", message="first", split={"seed": 1}, client=client)
    (root / "img_0001.png").unlink()
    cells.generate(root / "tmp", n_images=1, seed=99, width=96, height=96)
    os.replace(root / "tmp/img_0000.tif", root / "img_0002.tif")  # changed content
    cells.generate(root / "tmp", n_images=1, seed=11, start=16, width=96, height=96)
    os.replace(root / "tmp/img_0016.tif", root / "img_0016.tif")  # added
    for f in (root / "tmp").iterdir():
        f.unlink()
    (root / "tmp").rmdir()
    v2 = datasets.publish(root, "cells", message="second", tags=["reviewed"], client=client)
    return root, v1, v2


def test_publish_records_versions_and_moves_latest(published, client):
    _, v1, v2 = published
    assert (v1["version"], v2["version"]) == ("v1", "v2")
    assert v1["summary"]["images"] == 16 and sum(v1["summary"]["splits"].values()) == 16
    # v2 was published without a split: it keeps v1's, and none of the 14 kept images moved
    assert v2["summary"]["split"]["seed"] == 1 and v2["summary"]["parent"] == "v1"
    moves = v2["summary"]["split_moves"]
    assert (moves["kept"], moves["moved"], sum(moves["added"].values())) == (14, 0, 2)
    assert v1["author"] == "dana" and v1["message"] == "first"
    assert v2["transfer"]["uploaded"] == 2  # only the changed and the added image
    ds = client.dataset("cells")
    assert ds["tags"] == {"latest": "v2", "reviewed": "v2"}
    assert [v["version"] for v in ds["versions"]] == ["v2", "v1"]
    assert datasets.list(client)[0]["name"] == "cells"


def test_diff_of_two_versions(published, client):
    d = client.diff("cells", "v1", "latest")
    assert [e["path"] for e in d["added"]] == ["img_0016.tif"]
    assert [e["path"] for e in d["removed"]] == ["img_0001.png"]
    assert [e["path"] for e in d["changed"]] == ["img_0002.tif"]
    assert d["unchanged"] == 15  # 14 images + annotations.json


def test_a_correction_shows_as_moved_objects_with_who_and_tool(platform, people, client,
                                                               tmp_path):
    import json

    root = tmp_path / "cells-fix"
    cells.generate(root, n_images=4, seed=12, width=64, height=64)
    datasets.publish(root, "cells-fix", client=client)
    doc = json.loads((root / "annotations.json").read_text())
    first = doc["annotations"][0]
    first["bbox"][0] += 3  # a box nudged
    (root / "annotations.json").write_text(json.dumps(doc))
    v2 = datasets.publish(root, "cells-fix", client=client, tool="napari 0.5")
    assert v2["summary"]["annotation_changes"]["moved"] == 1
    d = client.diff("cells-fix", "v1", "v2")
    [img] = d["objects"]["images"]
    image = next(i["file_name"] for i in doc["images"] if i["id"] == first["image_id"])
    assert img["path"] == image and (img["moved"], img["added"], img["removed"]) == (1, 0, 0)
    assert [(c["author"], c["tool"], c["version"]) for c in img["changes"]] == [
        ("dana", "napari 0.5", "v2")]
    r = platform.api("GET", f"{API}/datasets/cells-fix/versions/v2/annotations",
                     people["dana"], params={"path": image})
    assert [h["version"] for h in r.json()["history"]] == ["v2"]


def test_version_pages_annotations_and_thumbnails(published, platform, people):
    tok = people["dana"]
    r = platform.api("GET", f"{API}/datasets/cells/versions/v1?kind=image&offset=4&limit=5", tok)
    body = r.json()
    assert r.status_code == 200 and body["total"] == 16 and len(body["files"]) == 5
    f = body["files"][0]
    assert f["path"] == "img_0004.tif" and f["width"] == 96 and f["objects"] > 0
    r = platform.api("GET", f"{API}/datasets/cells/versions/v1/annotations", tok,
                     params={"path": f["path"]})
    assert r.status_code == 200 and len(r.json()["boxes"]) == f["objects"]
    r = platform.api("GET", f"{API}/dataset-objects/{f['hash']}/thumbnail?size=64", tok)
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_get_gives_a_read_only_folder_and_logs_lineage(published, platform, people, client,
                                                       tmp_path, monkeypatch):
    import mlflow

    root, _, _ = published
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", people["dana"])
    mlflow.set_tracking_uri(f"{platform.url}/services/mlflow")
    mlflow.set_experiment("datasets-lineage")
    with mlflow.start_run() as run:
        path = datasets.get("cells", version="v2", client=client, shared_root="")
    assert str(path).startswith(str(tmp_path / "cache"))
    got = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()
                 and not p.name.startswith("."))
    want = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert got == want
    assert (path / "img_0016.tif").read_bytes() == (root / "img_0016.tif").read_bytes()
    # read-only by mode (tests run as root here, who would ignore the modes when writing)
    assert (path / "img_0016.tif").stat().st_mode & 0o222 == 0
    assert path.stat().st_mode & 0o222 == 0
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    ds = inputs[0].dataset
    v2 = client.dataset("cells")["versions"][0]
    assert ds.name == "cells@v2" and ds.digest == v2["manifest_id"][:32]
    assert {t.key: t.value for t in inputs[0].tags}["mlops.version"] == "v2"


def test_get_uses_the_shared_root_when_mounted(published, platform, client, people):
    path = datasets.get("cells", "v1", client=client,
                        shared_root=str(platform.data_dir / "datasets"))
    assert path == platform.data_dir / "datasets" / "cells" / "v1"
    assert len([p for p in path.rglob("*.tif")]) == 8
    # the files are the store's own (hard links, read-only), and the API says so
    some = next(path.rglob("*.tif"))
    h = blake3.blake3(some.read_bytes()).hexdigest()
    stored = platform.data_dir / "store" / "objects" / h[:2] / h[2:]
    assert some.stat().st_ino == stored.stat().st_ino and some.stat().st_mode & 0o222 == 0
    r = platform.api("GET", f"{API}/datasets/cells/versions/v1?limit=1", people["dana"])
    assert r.json()["mount"] == {"where": "shared root", "mode": "hardlink",
                                 "path": "cells/v1"}


def test_status_of_a_folder(published, client, tmp_path, monkeypatch):
    root, _, _ = published
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    s = datasets.status(root, "cells", client=client)
    assert (s["version"], s["added"], s["modified"], s["removed"]) == ("v2", [], [], [])
    s = datasets.status(root, "cells", "v1", client=client)
    assert s["added"] == ["img_0016.tif"] and s["removed"] == ["img_0001.png"]
    assert s["modified"] == ["img_0002.tif"] and s["rehashed"] == 0


def test_tags_move_versions_do_not(published, client, platform, people):
    tok = people["dana"]
    r = platform.api("PUT", f"{API}/datasets/cells/tags/reviewed", tok, json={"version": "v1"})
    assert r.status_code == 200 and r.json()["version"] == "v1"
    assert client.dataset("cells")["tags"]["reviewed"] == "v1"
    r = platform.api("PUT", f"{API}/datasets/cells/tags/v9", tok, json={"version": "v1"})
    assert r.status_code == 400 and "version name" in r.json()["message"]


def test_reference_version_needs_a_manager(published, platform, people):
    r = platform.api("PUT", f"{API}/datasets/cells/versions/v1/reference", people["dana"],
                     json={"project": "default"})
    assert r.status_code == 403
    r = platform.api("PUT", f"{API}/datasets/cells/versions/v1/reference", people["admin"],
                     json={"project": "default"})
    assert r.status_code == 200
    assert platform.api("GET", f"{API}/datasets/cells", people["dana"]).json()[
        "referenced_by"] == ["default"]


def test_publishing_needs_membership_of_the_owning_project(platform, people, client):
    r = platform.api("POST", f"{API}/projects", people["admin"], json={"name": "secret-lab"})
    assert r.status_code == 201, r.text
    r = platform.api("POST", f"{API}/datasets", people["admin"],
                     json={"name": "secret-cells", "project": "secret-lab"})
    assert r.status_code == 201
    data = b"one file"
    h = blake3.blake3(data).hexdigest()
    assert platform.api("PUT", f"{API}/dataset-objects/{h}", people["dana"],
                        data=data).status_code in (200, 201)
    manifest = {"files": [{"path": "a.txt", "size": len(data), "hash": h, "kind": "file"}]}
    r = platform.api("POST", f"{API}/datasets/secret-cells/versions", people["dana"],
                     json={"manifest": manifest})
    assert r.status_code == 403 and "taken by a dataset of a project" in r.json()["message"]
    assert "secret-lab" not in r.text  # the project is not named to someone outside it
    # asked up front, before anything is hashed or sent
    r = platform.api("GET", f"{API}/datasets/secret-cells/publish-check", people["dana"])
    assert r.status_code == 403
    assert "only its members may publish" in r.json()["message"]
    assert platform.api("GET", f"{API}/datasets/secret-cells/publish-check",
                        people["admin"]).json()["exists"] is True
    r = platform.api("GET", f"{API}/datasets/brand-new/publish-check?project=secret-lab",
                     people["dana"])
    assert r.status_code == 403 and "not a member" in r.json()["message"]
    # a dataset of a project dana is not in does not exist for her
    assert platform.api("GET", f"{API}/datasets/secret-cells", people["dana"]).status_code == 404


@pytest.mark.parametrize("method,path,body,status,words", [
    ("POST", "datasets", {"name": "../etc", "project": "default"}, 400, "invalid"),
    ("POST", "datasets/cells/versions",
     {"manifest": {"files": [{"path": "../x", "size": 1, "hash": "a" * 64}]}}, 400, "leaves"),
    ("POST", "datasets/cells/versions",
     {"manifest": {"files": [{"path": "/etc/x", "size": 1, "hash": "a" * 64}]}}, 400,
     "absolute"),
    ("POST", "datasets/cells/versions",
     {"manifest": {"files": [{"path": "x", "size": 1, "hash": "a" * 64}]}}, 409, "not in"),
    ("GET", "datasets/cells/versions/v99", None, 404, "no version"),
    ("GET", "datasets/cells/diff?from=v1", None, 400, "two versions"),
    ("GET", "datasets/nothing-here", None, 404, "no dataset"),
    ("GET", "datasets/cells/versions/v1?limit=0", None, 400, "limit"),
    ("PUT", f"dataset-objects/{'b' * 64}", b"not matching", 400, "does not match"),
])
def test_bad_input_is_a_clear_4xx(published, platform, people, method, path, body, status,
                                  words):
    kw = {"data": body} if isinstance(body, bytes) else {"json": body} if body else {}
    r = platform.api(method, f"{API}/{path}", people["dana"], **kw)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]


def test_routes_need_a_token(platform):
    r = platform.api("GET", f"{API}/datasets", "not-a-token")
    assert r.status_code in (401, 403)


KILLED = textwrap.dedent("""
    import sys, time
    from jupyter_mlops import datasets
    from jupyter_mlops.client import ControlPlane
    from jupyter_mlops.core.datasets import folder
    folder.BATCH_FILES = 8  # several batches, and the kill lands inside one
    c = ControlPlane(sys.argv[2], sys.argv[3])
    real = c.put_batch
    def slow(items, sent):
        def each(size):
            sent(size)
            print("sent", flush=True)
            time.sleep(0.3)
        return real(items, each)
    c.put_batch = slow
    datasets.publish(sys.argv[1], "killed", client=c, )
""")


def test_a_killed_publish_leaves_no_version(platform, people, client, tmp_path):
    root = tmp_path / "k"
    cells.generate(root, n_images=20, seed=4, width=64, height=64)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(root),
                             f"{platform.url}/services/mlops/", people["dana"]],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    while lines.count("sent\n") < 2:
        line = proc.stdout.readline()
        assert line, "the publishing process ended early:\n" + "".join(lines)
        lines.append(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = platform.api("GET", f"{API}/datasets/killed", people["dana"])
    assert r.status_code == 404  # nothing recorded, not even the name
    tmp = platform.data_dir / "store" / "tmp"
    # the control plane drops the object in flight
    until(lambda: not any(tmp.iterdir()), 10, "the object in flight to be dropped", every=0.1)
    v = datasets.publish(root, "killed", client=client)
    assert v["version"] == "v1" and 0 < v["transfer"]["uploaded"] < 21


def frame(data: bytes, claimed: str | None = None) -> bytes:
    return transfer.frame_header(claimed or blake3.blake3(data).hexdigest(), len(data)) + data


def test_a_batch_stores_matching_objects_and_refuses_a_lie(platform, people):
    good, other, lie = b"nucleus one" * 100, b"nucleus two", b"not what it claims"
    body = frame(good) + frame(lie, claimed=blake3.blake3(b"else").hexdigest()) + frame(other)
    r = platform.api("POST", f"{API}/dataset-objects/batch", people["dana"], data=body)
    assert r.status_code == 400 and "does not match" in r.json()["message"]
    hashes = [blake3.blake3(x).hexdigest() for x in (good, b"else", other)]
    missing = platform.api("POST", f"{API}/dataset-objects/missing", people["dana"],
                           json={"hashes": hashes}).json()["missing"]
    assert missing == sorted(hashes[1:])  # the object before the lie is kept, nothing after
    r = platform.api("POST", f"{API}/dataset-objects/batch", people["dana"],
                     data=frame(other) + frame(good)[:50])
    assert r.status_code == 400 and "middle of an object" in r.json()["message"]
    r = platform.api("POST", f"{API}/dataset-objects/batch", people["dana"], data=frame(other))
    assert r.status_code == 201 and r.json() == {"stored": 1, "bytes": len(other)}


def test_a_record_after_its_objects_were_collected_uploads_them_again(platform, people, client,
                                                                       tmp_path, monkeypatch):
    """The garbage-collection race: objects deleted between upload and record (here removed
    from the store directly, as a collection with no grace would) give 409, and the client
    sends them again instead of recording a version with holes."""
    root = tmp_path / "race"
    cells.generate(root, n_images=3, seed=77, width=40, height=40)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real = client.record
    calls = []

    def record(name, manifest, *a, **kw):
        if not calls:
            for e in manifest.entries:
                (platform.data_dir / "store" / "objects" / e.hash[:2] / e.hash[2:]).unlink()
        calls.append(name)
        return real(name, manifest, *a, **kw)

    monkeypatch.setattr(client, "record", record)
    v = datasets.publish(root, "race", client=client)
    assert len(calls) == 2 and v["version"] == "v1"
    assert datasets.get("race", client=client).joinpath("img_0001.tif").exists()


def test_garbage_collection_is_for_admins_and_dry_by_default(platform, people):
    r = platform.api("POST", f"{API}/admin/dataset-garbage", people["dana"], json={})
    assert r.status_code == 403
    r = platform.api("POST", f"{API}/admin/dataset-garbage", people["admin"], json={})
    body = r.json()
    assert r.status_code == 200 and body["dry_run"] is True and body["deleted"] == 0
    assert body["objects"] >= body["referenced"] > 0
    r = platform.api("POST", f"{API}/admin/dataset-garbage", people["admin"],
                     json={"dry_run": "yes"})
    assert r.status_code == 400 and "dry_run" in r.json()["message"]


def test_mlops_datasets_magic(published, platform, people, monkeypatch, tmp_path):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("JUPYTER_MLOPS_CONTROL_PLANE_URL", f"{platform.url}/services/mlops/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", people["dana"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_mlops")
    table = shell.run_line_magic("mlops", "datasets")
    assert table.iloc[0]["name"] == "cells" and table.iloc[0]["latest"] == "v2"
    versions = shell.run_line_magic("mlops", "datasets versions cells")
    assert list(versions["version"]) == ["v2", "v1"]
    root, _, _ = published
    s = shell.run_line_magic("mlops", f"datasets status {root} cells -v v1")
    assert s["added"] == ["img_0016.tif"]
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="no dataset"):
        shell.run_line_magic("mlops", "datasets versions nothing-here")
