"""The cell-detection parts on their own: loaders, split, template copy, the served format."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from jupyter_mlops.core.errors import Conflict, InvalidInput
from jupyter_mlops.demo import cells, loaders, metrics, template


def test_label_masks_give_the_coco_boxes(tmp_path):
    cells.generate(tmp_path, n_images=3, seed=5, width=96, height=96, fmt="png", masks=True)
    coco = loaders.load_coco(tmp_path / "annotations.json")
    masked = loaders.load_masks(tmp_path)
    assert [s.name for s in coco] == [s.name for s in masked] == ["img_0000", "img_0001",
                                                                   "img_0002"]
    for a, b in zip(coco, masked):
        assert len(a.boxes) == len(b.boxes) > 0
        matched, missed, false = metrics.match([[*x, 1.0] for x in b.boxes], a.boxes, 0.5)
        assert not missed and not false
        for pi, gi in matched:  # the generator's COCO box pads the mask's extent by 1 px
            (mx, my, mw, mh), (cx, cy, cw, ch) = b.boxes[pi], a.boxes[gi]
            assert cx <= mx and cy <= my and mx + mw <= cx + cw and my + mh <= cy + ch
            assert mx - cx <= 1 and my - cy <= 1
    assert loaders.load_folder(tmp_path)[0].boxes == coco[0].boxes  # COCO wins when both


def test_csv_boxes_and_an_image_without_cells(tmp_path):
    cells.generate(tmp_path, n_images=2, seed=1, width=64, height=64, fmt="png")
    (tmp_path / "annotations.json").unlink()
    with open(tmp_path / "boxes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "x", "y", "w", "h"])
        w.writerow(["img_0000.png", 1, 2, 3, 4])
        w.writerow(["img_0000.png", 10, 20, 5, 6])
        w.writerow(["img_0001.png", "", "", "", ""])
    samples = loaders.load_folder(tmp_path)
    assert [(s.name, s.boxes) for s in samples] == [
        ("img_0000", [[1, 2, 3, 4], [10, 20, 5, 6]]), ("img_0001", [])]
    assert samples[0].pixels.dtype == np.uint16 and samples[0].image.max() == 1.0


def test_no_annotations_is_said_plainly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no annotations"):
        loaders.load_folder(tmp_path)


def test_the_split_is_stable_as_the_dataset_grows():
    names = [f"img_{i:04d}" for i in range(200)]
    small = [loaders.Sample(n, None) for n in names[:100]]
    big = [loaders.Sample(n, None) for n in names]
    _, val_small = loaders.split(small, 0.25)
    _, val_big = loaders.split(big, 0.25)
    assert {s.name for s in val_small} == {s.name for s in val_big if s.name in names[:100]}
    assert 0.15 < len(val_big) / 200 < 0.35
    _, other_seed = loaders.split(big, 0.25, split_seed=1)
    assert {s.name for s in other_seed} != {s.name for s in val_big}
    train, val = loaders.split(small[:2], 0.01)  # tiny: both sides still get an image
    assert len(train) == 1 and len(val) == 1


def test_normalize_makes_8_and_16_bit_alike():
    rng = np.random.default_rng(0)
    img16, _ = cells.render(rng, 64, 64, cells.nuclei(rng, 64, 64, 4))
    img8 = loaders.to_uint8(img16)
    assert np.abs(loaders.normalize(img16) - loaders.normalize(img8)).mean() < 0.02
    rgb = np.stack([img8] * 3, axis=-1)[None]
    assert loaders.normalize(rgb).shape == (64, 64)


def test_template_copy_names_its_folder_and_refuses_what_it_must(tmp_path):
    import yaml

    from jupyter_mlops.core.jobs.pipelines import parse_pipeline
    from jupyter_mlops.core.jobs.sweeps import parse_space

    copied = template.copy_to("projects/cells", tmp_path)
    assert copied["path"] == "projects/cells" and copied["open"] == "projects/cells/README.md"
    folder = tmp_path / "projects" / "cells"
    spec = parse_pipeline((folder / "pipeline.yaml").read_text())
    assert [s["job"]["path"] for s in spec["steps"]] == [
        f"projects/cells/{n}.py" for n in ("prepare", "train", "evaluate", "register")]
    assert set(parse_space((folder / "space.yaml").read_text())) == {"lr", "width",
                                                                     "batch_size"}
    assert "{{folder}}" not in "".join(p.read_text() for p in folder.iterdir())
    yaml.safe_load((folder / "pipeline.yaml").read_text())
    with pytest.raises(Conflict):
        template.copy_to("projects/cells", tmp_path)
    (tmp_path / "empty").mkdir()
    assert template.copy_to("empty", tmp_path)["path"] == "empty"  # an empty folder is fine
    (tmp_path / "file").write_text("x")
    for bad in ("../out", "/abs", "", "file"):
        with pytest.raises((InvalidInput, Conflict)):
            template.copy_to(bad, tmp_path)


def test_template_scripts_declare_their_parameters():
    from jupyter_mlops.core.jobs.model import declared_parameters

    train = declared_parameters(template.source() / "train.py")
    assert {"epochs": "int", "lr": "float", "seed": "int", "dataset": "str",
            "width": "int", "batch_size": "int"}.items() <= train.items()
    assert declared_parameters(template.source() / "register.py")["min_map50"] == "float"


def test_served_answer_is_what_try_it_draws():
    from jupyter_mlops.demo import detector, pyfunc

    model = pyfunc.CellDetectorModel()
    model.detector = detector.Detector(width=4, score_threshold=0.0)  # untrained: any boxes
    rng = np.random.default_rng(1)
    img, _ = cells.render(rng, 64, 48, cells.nuclei(rng, 64, 48, 3))
    for given in (img[None], img, [img, img], np.stack([loaders.to_uint8(img)] * 3, -1)[None]):
        out = model.predict(None, given, params={"score_threshold": 0.0})
        assert len(out) == (2 if isinstance(given, list) else 1)
        first = out[0]
        assert set(first) == {"boxes", "scores", "labels", "count"}
        assert first["count"] == len(first["boxes"]) == len(first["scores"]) > 0
        for x0, y0, x1, y1 in first["boxes"]:
            assert 0 <= x0 <= x1 <= 64 and 0 <= y0 <= y1 <= 48
    strict = model.predict(None, img[None], params={"score_threshold": 1.01})
    assert strict[0]["count"] == 0


def test_magic_copies_next_to_the_notebook(tmp_path, monkeypatch):
    from IPython.core.error import UsageError

    from jupyter_mlops import magics

    class Shell:
        def register_magics(self, m):
            pass

    magics.load_ipython_extension(Shell())
    monkeypatch.chdir(tmp_path)
    magics.SUBCOMMANDS["template"].run(["cells", "mine"], None)
    assert (tmp_path / "mine" / "train.py").is_file()
    with pytest.raises(UsageError, match="not empty"):
        magics.SUBCOMMANDS["template"].run(["cells", "mine"], None)
