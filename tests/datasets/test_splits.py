"""Stable splits: an image's split depends on its content and the seed only, overrides follow
the image from version to version, and a version says what moved since its parent."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import blake3
import pytest
import sqlalchemy as sa

from jupyter_mlops.core.datasets.catalog import DatasetCatalog
from jupyter_mlops.core.datasets.manifest import FileEntry, Manifest
from jupyter_mlops.core.datasets.splits import Split, moves
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.errors import InvalidInput
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.core.roles import USE, Caller

ME = Caller("sina", scopes=frozenset({USE}))


def image(i: int, path: str | None = None) -> FileEntry:
    h = blake3.blake3(f"pixels of image {i}".encode()).hexdigest()
    return FileEntry(path or f"img_{i:05d}.tif", 100, h, kind="image", width=8, height=8)


def splits_by_hash(m: Manifest) -> dict[str, str]:
    return {e.hash: e.split for e in m.entries if e.kind == "image"}


@pytest.fixture
def catalog(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield DatasetCatalog(db, Projects(db))
    db.dispose()


def test_adding_removing_renaming_moves_none_of_1000_kept_images():
    split = Split(seed=7)
    base = [image(i) for i in range(1000)]
    v1 = Manifest.build(base, split)
    counts = Counter(e.split for e in v1.entries)
    assert 740 < counts["train"] < 860 and 60 < counts["val"] < 140 and 60 < counts["test"] < 140
    first = image(5000, "aaa_sorts_first.tif")  # what moved 309 of 1,000 under the shuffle
    changes = {
        "added": base + [first],
        "removed": base[1:],
        "renamed": [replace(e, path=f"renamed/{e.path}") if i % 10 == 0 else e
                    for i, e in enumerate(base)],
        "all three": [replace(e, path=f"x/{e.path}") if i % 7 == 0 else e
                      for i, e in enumerate(base[3:])] + [first],
    }
    for what, entries in changes.items():
        v2 = Manifest.build(entries, split)
        m = moves(v1.entries, v2.entries)
        assert m["moved"] == 0 and m["kept"] >= 997, (what, m)
        old, new = splits_by_hash(v1), splits_by_hash(v2)
        assert all(old[h] == s for h, s in new.items() if h in old), what
    # the rule it replaces, for contrast: the seeded shuffle of sorted paths
    shuffled = Manifest.build(base, replace(split, method="shuffle"))
    grown = Manifest.build(base + [first], replace(split, method="shuffle"))
    assert moves(shuffled.entries, grown.entries)["moved"] > 100


def test_same_content_under_two_names_is_in_one_split():
    a, b = image(1, "a.tif"), image(1, "copies/b.tif")
    for seed in range(20):
        m = Manifest.build([a, b, image(2)], Split(seed=seed))
        assert m.by_path()["a.tif"].split == m.by_path()["copies/b.tif"].split


def test_overrides_by_path_are_kept_by_content_and_typos_refused():
    entries = [image(i) for i in range(50)]
    drawn = Manifest.build(entries, Split(seed=1))
    train = next(e for e in drawn.entries if e.split == "train")
    m = Manifest.build(entries, Split.from_dict({"seed": 1, "overrides": {train.path: "test"}}))
    assert m.by_path()[train.path].split == "test"
    assert m.split.overrides == ((train.hash, "test"),)  # keyed by content, not the name
    assert sum(e.split != d.split for e, d in zip(m.entries, drawn.entries)) == 1
    with pytest.raises(InvalidInput, match="not an image of this version"):
        Manifest.build(entries, Split.from_dict({"overrides": {"nope.tif": "test"}}))
    with pytest.raises(InvalidInput, match="must be one of"):
        Split.from_dict({"overrides": {train.path: "holdout"}})


def test_the_catalog_carries_split_and_overrides_and_says_what_moved(catalog):
    entries = [image(i) for i in range(200)]
    drawn = Manifest.build(entries, Split(seed=3))
    pinned = next(e for e in drawn.entries if e.split == "train" and e.hash != entries[0].hash)
    v1 = catalog.publish(ME, "stable", Manifest.build(
        entries, Split.from_dict({"seed": 3, "overrides": {pinned.path: "test"}})))
    assert "parent" not in v1.summary
    # v2: the pinned image renamed, one image added, one removed, no split given at all
    v2_entries = [replace(e, path="moved/pinned.tif") if e.hash == pinned.hash else e
                  for e in entries[1:]] + [image(900)]
    v2 = catalog.publish(ME, "stable", Manifest.build(v2_entries, None))
    _, m2 = catalog.manifest(ME, "stable", "v2")
    assert m2.by_path()["moved/pinned.tif"].split == "test"  # the override followed it
    assert m2.split.seed == 3 and m2.split.overrides == ((pinned.hash, "test"),)
    assert v2.summary["parent"] == "v1"
    sm = v2.summary["split_moves"]
    assert sm["kept"] == 199 and sm["moved"] == 0 and sum(sm["added"].values()) == 1
    assert v2.summary["splits"] == dict(Counter(e.split for e in m2.entries))
    # v3: the override dropped (null), so the image goes back to its drawn split: one move
    v3 = catalog.publish(ME, "stable", Manifest.build(
        v2_entries, Split.from_dict({"seed": 3, "overrides": {pinned.hash: None}})))
    sm = v3.summary["split_moves"]
    assert sm["moved"] == 1 and sm["by_move"] == {"test->train": 1}
    assert sm["examples"] == [{"path": "moved/pinned.tif", "from": "test", "to": "train"}]
    d = catalog.diff(ME, "stable", "v1", "v3")
    assert d["split_moves"]["moved"] == 1


def test_versions_split_by_the_old_shuffle_keep_their_splits(catalog):
    entries = [image(i) for i in range(40)]
    old = Manifest.build(entries, Split(seed=2, method="shuffle"))
    catalog.publish(ME, "legacy", old)
    body = old.to_dict()
    del body["split"]["method"]  # what versions recorded before stable splits hold
    with catalog.db.tx() as conn:
        conn.execute(sa.text("UPDATE dataset_versions SET manifest = :m WHERE dataset = 'legacy'"),
                     {"m": json.dumps(body)})
    catalog._manifests.clear()
    _, m = catalog.manifest(ME, "legacy", "v1")
    assert splits_by_hash(m) == splits_by_hash(old)
    # the next version moves to the stable rule with the same seed and fractions
    v2 = catalog.publish(ME, "legacy", Manifest.build(entries, None))
    _, m2 = catalog.manifest(ME, "legacy", "v2")
    assert m2.split.method == "hash" and m2.split.seed == 2
    assert v2.summary["split_moves"]["kept"] == 40
