"""The dataset domain on real files: manifests, safety, splits, diff, status, annotations."""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from jupyter_mlops.backends.store import LocalStore
from jupyter_mlops.core.datasets import Manifest, Split, annotations, diff, folder, images
from jupyter_mlops.core.datasets.manifest import FileEntry, safe_relpath
from jupyter_mlops.core.errors import InvalidInput
from jupyter_mlops.demo import cells


@pytest.fixture
def cell_folder(tmp_path):
    root = tmp_path / "cells"
    cells.generate(root, n_images=12, seed=5, fmt="mixed", width=96, height=80)
    (root / "README.txt").write_text("synthetic cells\n")
    return root


def publish_local(root, store_dir, split=None, cache=None):
    return folder.prepare(root, LocalStore(store_dir), split, cache)


def test_demo_generator_is_seeded_and_16_bit(tmp_path):
    a = cells.generate(tmp_path / "a", n_images=3, seed=9, width=64, height=64)
    b = cells.generate(tmp_path / "b", n_images=3, seed=9, width=64, height=64)
    assert a == b
    assert (tmp_path / "a/img_0000.tif").read_bytes() == (tmp_path / "b/img_0000.tif").read_bytes()
    import tifffile

    arr = tifffile.imread(tmp_path / "a/img_0001.tif")
    assert arr.dtype == np.uint16 and arr.shape == (64, 64)
    # every ground-truth box is brighter inside than the background
    for ann in a["annotations"]:
        if ann["image_id"] != 2:
            continue
        x, y, w, h = ann["bbox"]
        assert arr[y:y + h, x:x + w].max() > np.median(arr) * 3


def test_manifest_of_a_folder(cell_folder, tmp_path):
    m, counts = publish_local(cell_folder, tmp_path / "store", Split(seed=1))
    s = m.summary()
    assert s["files"] == 14 and s["images"] == 12 and s["annotation_files"] == 1
    assert s["image_sizes"] == {"96x80": 12}
    assert s["annotated_images"] == 12 and s["objects"] > 12
    assert sum(s["splits"].values()) == 12 and s["splits"]["train"] == 10
    readme = m.by_path()["README.txt"]
    assert readme.kind == "file" and readme.width is None  # not an image, stored as a file
    assert counts["uploaded"] == 14
    tif = m.by_path()["img_0000.tif"]
    assert (tif.dtype, tif.channels, tif.annotation) == ("uint16", 1, "annotations.json")


def test_same_content_same_id_and_deduplicated(cell_folder, tmp_path):
    m1, c1 = publish_local(cell_folder, tmp_path / "store")
    m2, c2 = publish_local(cell_folder, tmp_path / "store")
    assert m1.id == m2.id and c2["uploaded"] == 0
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "same.tif").write_bytes((cell_folder / "img_0000.tif").read_bytes())
    _, c3 = publish_local(copy, tmp_path / "store")
    assert c3["uploaded"] == 0  # deduplicated across datasets too


def test_split_is_seeded(cell_folder, tmp_path):
    m1, _ = publish_local(cell_folder, tmp_path / "s")
    a = Manifest.build(m1.entries, Split(seed=3))
    b = Manifest.build(m1.entries, Split(seed=3))
    c = Manifest.build(m1.entries, Split(seed=4))
    split = lambda m: {e.path: e.split for e in m.entries}  # noqa: E731
    assert split(a) == split(b) and split(a) != split(c)
    with pytest.raises(InvalidInput, match="add up to 1"):
        Split.from_dict({"seed": 1, "train": 0.9, "val": 0.2, "test": 0})


def test_diff_added_removed_changed(cell_folder, tmp_path):
    m1, _ = publish_local(cell_folder, tmp_path / "s")
    (cell_folder / "img_0003.png").unlink()
    (cell_folder / "README.txt").write_text("changed\n")
    cells.generate(tmp_path / "more", n_images=1, seed=5, start=20, width=96, height=80)
    os.rename(tmp_path / "more/img_0020.tif", cell_folder / "img_0020.tif")
    m2, c = publish_local(cell_folder, tmp_path / "s")
    d = diff(m1, m2)
    assert [e["path"] for e in d["added"]] == ["img_0020.tif"]
    assert [e["path"] for e in d["removed"]] == ["img_0003.png"]
    assert [e["path"] for e in d["changed"]] == ["README.txt"]
    assert d["unchanged"] == 12
    assert c["uploaded"] == 2  # only the new content


def test_status_rehashes_only_changed_files(cell_folder, tmp_path):
    cache = folder.StatCache(cell_folder, tmp_path / "cache")
    m, _ = publish_local(cell_folder, tmp_path / "s", cache=cache)
    fresh = folder.StatCache(cell_folder, tmp_path / "cache")  # as a later process sees it
    s = folder.status(cell_folder, m, fresh)
    assert (s["added"], s["removed"], s["modified"], s["rehashed"]) == ([], [], [], 0)
    with open(cell_folder / "img_0003.png", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01")
    (cell_folder / "new.txt").write_text("x")
    s = folder.status(cell_folder, m, folder.StatCache(cell_folder, tmp_path / "cache"))
    assert s["modified"] == ["img_0003.png"] and s["added"] == ["new.txt"]
    assert s["rehashed"] == 2 and s["unchanged"] == 13


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs/path", "a/../../b", "a//b", "a\\b",
                                 "./a", "", "x\x00y"])
def test_bad_paths_refused(bad):
    with pytest.raises(InvalidInput):
        safe_relpath(bad)
    with pytest.raises(InvalidInput):
        FileEntry.from_dict({"path": bad, "size": 1, "hash": "0" * 64})


def test_symlink_out_of_root_refused_inside_allowed(cell_folder, tmp_path):
    (tmp_path / "secret.txt").write_text("not yours")
    os.symlink(cell_folder / "README.txt", cell_folder / "inside-link.txt")
    assert "inside-link.txt" in [f.path for f in folder.scan(cell_folder)]
    os.symlink(tmp_path / "secret.txt", cell_folder / "escape.txt")
    with pytest.raises(InvalidInput, match="symlink leading out"):
        folder.scan(cell_folder)


def test_hidden_files_skipped(cell_folder):
    (cell_folder / ".ipynb_checkpoints").mkdir()
    (cell_folder / ".ipynb_checkpoints" / "x.png").write_bytes(b"x")
    (cell_folder / ".hidden").write_text("x")
    assert not [f for f in folder.scan(cell_folder) if "/." in "/" + f.path]


def test_csv_and_mask_annotations(tmp_path):
    root = tmp_path / "d"
    cells.generate(root, n_images=2, seed=2, fmt="png", masks=True, width=64, height=64)
    coco = json.loads((root / "annotations.json").read_text())
    (root / "annotations.json").unlink()
    (root / "img_0000.csv").write_text("x,y,w,h,label\n1,2,10,12,nucleus\n5,5,3,3,nucleus\n")
    m, _ = publish_local(root, tmp_path / "s")
    by = m.by_path()
    assert by["img_0000.png"].annotation == "img_0000.csv" and by["img_0000.png"].objects == 2
    assert by["img_0001.png"].annotation == "masks/img_0001.png"
    n_true = sum(1 for a in coco["annotations"] if a["image_id"] == 2)
    assert by["img_0001.png"].objects == n_true
    assert by["masks/img_0001.png"].kind == "annotation"
    boxes = annotations.boxes_for("img_0001.png", "masks/img_0001.png",
                                  (root / "masks/img_0001.png").read_bytes())
    truth = sorted(tuple(a["bbox"]) for a in coco["annotations"] if a["image_id"] == 2)
    got = sorted((b["x"], b["y"], b["w"], b["h"]) for b in boxes)
    # mask boxes lie inside the ground-truth boxes of the same nuclei
    for (x, y, w, h), (tx, ty, tw, th) in zip(got, truth):
        assert tx <= x and ty <= y and x + w <= tx + tw and y + h <= ty + th


def test_coco_boxes_read_back(cell_folder):
    data = (cell_folder / "annotations.json").read_bytes()
    boxes = annotations.boxes_for("img_0000.tif", "annotations.json", data)
    coco = json.loads(data)
    assert len(boxes) == sum(1 for a in coco["annotations"] if a["image_id"] == 1) > 0


def test_16_bit_rendering_is_not_black(cell_folder):
    png = images.render_png((cell_folder / "img_0000.tif").read_bytes(), 48)
    im = Image.open(io.BytesIO(png))
    arr = np.asarray(im)
    assert im.size == (48, 40) and arr.dtype == np.uint8
    assert arr.max() > 200 and arr.min() < 60
    with pytest.raises(InvalidInput):
        images.render_png(b"not an image", 48)


def test_a_cold_publish_reads_each_file_once(cell_folder, tmp_path, monkeypatch):
    reads = []
    real = folder.hash_file
    monkeypatch.setattr(folder, "hash_file", lambda p, *a: reads.append(p) or real(p, *a))
    store = LocalStore(tmp_path / "store")
    m, counts = folder.prepare(cell_folder, store)
    assert reads == [] and counts["one_pass"] == counts["uploaded"] == 14
    for e in m.entries:  # stored under the hash it turned out to have, and nothing else
        assert store.get_bytes(e.hash) == (cell_folder / e.path).read_bytes()
    assert not any((tmp_path / "store" / "tmp").iterdir())
    again, counts = folder.prepare(cell_folder, store)  # no cache: one pass, nothing new kept
    assert again.id == m.id and counts["uploaded"] == 0
    # files the previous version holds at the same size are hashed first, copied only if new
    previous = {e.path: e.size for e in m.entries}
    _, counts = folder.prepare(cell_folder, store, previous=previous)
    assert len(reads) == 14 and counts["one_pass"] == 0 and counts["uploaded"] == 0


def test_the_upload_record_is_bounded_per_user_and_forgets_old_uploads(tmp_path):
    from jupyter_mlops.core import clock
    from jupyter_mlops.core.db import Database
    from jupyter_mlops.core.datasets.uploads import UploadRecord

    t = clock.ManualClock()
    clock.set_clock(t)
    try:
        rec = UploadRecord(Database(f"sqlite:///{tmp_path / 'u.sqlite'}"), max_per_user=3,
                           keep_seconds=3600)
        old, new = ["a" * 64, "b" * 64], ["c" * 64, "d" * 64]
        rec.record("pia", old)
        t.advance(10)
        rec.record("pia", new)
        rec.record("rex", old)
        everything = old + new
        # the bound keeps pia's three latest (one of the older pair goes); rex's are his own
        kept = rec.recent("pia", everything)
        assert set(new) < kept and len(kept) == 3
        assert rec.recent("rex", everything) == set(old)
        rec.record("quinn", everything)  # more than the bound at once: still three kept
        assert len(rec.recent("quinn", everything)) == 3
        # past keep_seconds an upload no longer counts, and the sweep drops it
        t.advance(3595)
        assert rec.recent("pia", everything) == set(new) and rec.sweep() == 1
        t.advance(10)
        assert rec.recent("rex", everything) == set() and rec.sweep() == 7
    finally:
        clock.set_clock(None)
