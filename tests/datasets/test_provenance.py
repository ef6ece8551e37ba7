"""Annotation provenance: two annotators' corrections as per-object changes, each recorded with
who published it, when, with which tool and from which parent version."""
from __future__ import annotations

import json

import blake3
import pytest

from jupyter_mlops.backends.store import LocalStore
from jupyter_mlops.core.datasets.catalog import DatasetCatalog
from jupyter_mlops.core.datasets.manifest import FileEntry, Manifest
from jupyter_mlops.core.datasets.provenance import match
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.errors import InvalidInput
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.core.roles import ADMIN, MANAGE, USE, Caller

IMAGES = ["a.tif", "b.tif", "c.tif"]


def box(x, y, w=10, h=10, label="cell"):
    return {"x": x, "y": y, "w": w, "h": h, "label": label}


def coco(boxes: dict[str, list[dict]]) -> bytes:
    images = [{"id": i, "file_name": n} for i, n in enumerate(IMAGES)]
    anns = [{"id": k, "image_id": IMAGES.index(n), "category_id": 1,
             "bbox": [b["x"], b["y"], b["w"], b["h"]]}
            for k, (n, b) in enumerate((n, b) for n in IMAGES for b in boxes.get(n, []))]
    return json.dumps({"images": images, "annotations": anns,
                       "categories": [{"id": 1, "name": "cell"}]}).encode()


@pytest.fixture
def catalog(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield DatasetCatalog(db, Projects(db))
    db.dispose()


def version(store: LocalStore, boxes: dict) -> Manifest:
    doc = coco(boxes)
    h = blake3.blake3(doc).hexdigest()
    store.put_bytes(h, doc)
    entries = [FileEntry("annotations.json", len(doc), h, kind="annotation")]
    for n in IMAGES:
        ih = blake3.blake3(n.encode()).hexdigest()
        entries.append(FileEntry(n, 10, ih, kind="image", width=100, height=100,
                                 annotation="annotations.json", objects=len(boxes.get(n, []))))
    return Manifest.build(entries)


def test_match_pairs_objects_by_overlap():
    m = match([box(0, 0), box(50, 50), box(80, 80)],
              [box(0, 0), box(52, 51), box(20, 20), box(80, 80, label="mitosis")])
    assert m["unchanged"] == 1 and len(m["added"]) == 1 and m["added"][0]["x"] == 20
    assert [(x["old"]["x"], x["new"]["x"]) for x in m["moved"]] == [(80, 80), (50, 52)]
    assert m["removed"] == []
    assert match([box(0, 0)], [box(60, 60)]) == {"added": [box(60, 60)],
                                                 "removed": [box(0, 0)], "moved": [],
                                                 "unchanged": 0}


def test_two_annotators_corrections_are_per_object_changes_with_who_when_tool(catalog,
                                                                               tmp_path):
    store = LocalStore(tmp_path / "store")
    read = store.get_bytes
    ana, ben = Caller("ana", scopes=frozenset({USE})), Caller("ben", scopes=frozenset({USE}))
    admin = Caller("root-admin", scopes=frozenset({USE, MANAGE, ADMIN}))
    # the lab lets members correct each other's work: ben may publish to ana's dataset
    catalog.projects.update(admin, "default", members_change_others_work=True)
    start = {"a.tif": [box(10, 10), box(40, 40)], "b.tif": [box(5, 5)],
             "c.tif": [box(60, 60), box(70, 10)]}
    catalog.publish(ana, "cells-ann", version(store, start), "first", read=read)
    # ana (napari): moves one box of a.tif, adds one to b.tif
    after_ana = {**start, "a.tif": [box(10, 10), box(44, 42)],
                 "b.tif": [box(5, 5), box(30, 30)]}
    v2 = catalog.publish(ana, "cells-ann", version(store, after_ana), "ana's pass",
                         tool="napari 0.5", read=read)
    assert v2.summary["annotation_changes"] == {"images": 2, "added": 1, "removed": 0,
                                                "moved": 1, "tool": "napari 0.5"}
    # ben (CVAT) removes a box of c.tif
    after_ben = {**after_ana, "c.tif": [box(60, 60)]}
    catalog.publish(ben, "cells-ann", version(store, after_ben), "ben's pass",
                    tool="CVAT 2.21", read=read)

    d = catalog.diff(ana, "cells-ann", "v1", "v3", read)
    by_path = {i["path"]: i for i in d["objects"]["images"]}
    assert sorted(by_path) == ["a.tif", "b.tif", "c.tif"]
    a = by_path["a.tif"]
    assert (a["added"], a["removed"], a["moved"], a["unchanged"]) == (0, 0, 1, 1)
    assert a["objects"]["moved"][0]["old"]["x"] == 40 and a["objects"]["moved"][0]["new"]["x"] == 44
    assert by_path["b.tif"]["objects"]["added"][0]["x"] == 30
    assert by_path["c.tif"]["objects"]["removed"][0]["x"] == 70
    assert [(c["version"], c["tool"], c["parent"]) for c in a["changes"]] == [
        ("v2", "napari 0.5", "v1")]
    assert [(c["version"], c["tool"], c["removed"]) for c in by_path["c.tif"]["changes"]] == [
        ("v3", "CVAT 2.21", 1)]
    assert [c["author"] for i in by_path.values() for c in i["changes"]] == ["ana", "ana", "ben"]
    assert all(c["at"] > 0 for i in by_path.values() for c in i["changes"])
    assert d["objects"]["totals"] == {"images": 3, "added": 1, "removed": 1, "moved": 1}
    # one step: only ben's change
    d = catalog.diff(ana, "cells-ann", "v2", "v3", read)
    assert [i["path"] for i in d["objects"]["images"]] == ["c.tif"]
    hist = catalog.annotation_history(ana, "cells-ann", "latest", "a.tif")
    assert [(h["version"], h["moved"]) for h in hist] == [("v2", 1)]
    assert catalog.annotation_history(ana, "cells-ann", "v1", "a.tif") == []
    with pytest.raises(InvalidInput, match="one line"):
        catalog.publish(ana, "cells-ann", version(store, start), tool="x\ny", read=read)
