"""Test data for the detections views: evaluated MLflow runs following the detections contract.

Two runs evaluated on the same synthetic validation images (``jupyter_mlops.demo.cells``), whose
"predictions" are the ground truth jittered by a pixel or two, with chosen cells dropped (missed)
and boxes added where no cell is (false). Every run logs what a real evaluation logs:

- ``eval/detections.json`` = ``{"iou_threshold", "score_threshold", "images": [{"name", "image",
  "overlay", "width", "height", "gt", "pred", "matched", "missed", "false"}]}``
- ``eval/images/<name>.png`` and ``eval/overlays/<name>.png``
- metrics map50, map50_95, precision, recall, count_mae, count_rel_error

A third run logs metrics only (a run that was never evaluated). The errors per image are
chosen here, so the tests know exactly which counts and which gallery order to expect.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from jupyter_mlops.demo import cells

EXPERIMENT = "ui-detections"
N_IMAGES = 14
SIZE = 256
SEED = 9

# run name -> ({image index: cells missed}, {image index: false cells added})
RUNS = {
    "detector-good": ({3: 1, 7: 1}, {5: 1, 7: 1}),
    "detector-weak": ({0: 1, 2: 3, 4: 1, 6: 2, 9: 1, 11: 1}, {2: 1, 4: 2, 8: 1, 10: 1, 13: 1}),
}
UNEVALUATED = "baseline-not-evaluated"


@dataclass
class Expected:
    """What the UI must show for one evaluated run."""

    run_id: str
    cells: int = 0
    predicted: int = 0
    missed: int = 0
    false: int = 0
    # (image name, missed, false), most errors first, then by name: the error gallery's order
    gallery: list[tuple[str, int, int]] = field(default_factory=list)


def name(i: int) -> str:
    return f"img_{i:04d}"


def ground_truth() -> list[tuple[np.ndarray, list[list[int]]]]:
    """The validation images (8-bit) and their boxes, the same for every run."""
    out = []
    for i in range(N_IMAGES):
        rng = np.random.default_rng([SEED, i])
        nuclei = cells.nuclei(rng, SIZE, SIZE, int(rng.integers(6, 11)))
        img, _ = cells.render(rng, SIZE, SIZE, nuclei, bit_depth=8)
        out.append((img, [n["bbox"] for n in nuclei]))
    return out


def _overlaps(a, b) -> bool:
    return not (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1]
                or b[1] + b[3] <= a[1])


def fake_evaluation(i: int, gt: list[list[int]], n_missed: int, n_false: int, seed: int) -> dict:
    """One image's entry of detections.json: jittered matches, dropped cells, added boxes."""
    rng = np.random.default_rng([seed, i])
    missed = sorted(int(g) for g in rng.choice(len(gt), n_missed, replace=False))
    pred, matched = [], []
    for g, (x, y, w, h) in enumerate(gt):
        if g in missed:
            continue
        dx, dy = rng.integers(-2, 3, 2)
        matched.append([len(pred), g])
        pred.append([int(x + dx), int(y + dy), int(w), int(h), round(float(rng.uniform(0.6, 0.99)), 3)])
    false = []
    while len(false) < n_false:
        w, h = (int(v) for v in rng.integers(14, 26, 2))
        box = [int(rng.integers(0, SIZE - w)), int(rng.integers(0, SIZE - h)), w, h]
        if any(_overlaps(box, b) for b in gt + [p[:4] for p in pred]):
            continue
        false.append(len(pred))
        pred.append(box + [round(float(rng.uniform(0.3, 0.6)), 3)])
    return {"name": name(i), "image": f"eval/images/{name(i)}.png",
            "overlay": f"eval/overlays/{name(i)}.png", "width": SIZE, "height": SIZE,
            "gt": gt, "pred": pred, "matched": matched, "missed": missed, "false": false}


def _overlay(img: np.ndarray, entry: dict) -> Image.Image:
    rgb = Image.fromarray(img).convert("RGB")
    draw = ImageDraw.Draw(rgb)
    for x, y, w, h in entry["gt"]:
        draw.rectangle([x, y, x + w, y + h], outline=(80, 200, 80))
    for x, y, w, h, _ in entry["pred"]:
        draw.rectangle([x, y, x + w, y + h], outline=(80, 160, 255))
    return rgb


def seed_runs(client, tmp: Path) -> tuple[str, dict[str, Expected], str]:
    """Create (once per platform) the experiment and its runs; return the experiment id, the
    expectations per evaluated run name and the id of the run without an evaluation."""
    exp = client.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(
        EXPERIMENT, tags={"mlops.project": "default"})
    existing = {r.info.run_name: r.info.run_id for r in client.search_runs([exp_id])}
    images = ground_truth()
    expected: dict[str, Expected] = {}
    for k, (run_name, (missing, extra)) in enumerate(RUNS.items()):
        entries = [fake_evaluation(i, gt, missing.get(i, 0), extra.get(i, 0), SEED * 100 + k)
                   for i, (_, gt) in enumerate(images)]
        e = Expected(run_id=existing.get(run_name, ""))
        for en in entries:
            e.cells += len(en["gt"])
            e.predicted += len(en["pred"])
            e.missed += len(en["missed"])
            e.false += len(en["false"])
        e.gallery = sorted(((en["name"], len(en["missed"]), len(en["false"])) for en in entries
                            if en["missed"] or en["false"]), key=lambda t: (-(t[1] + t[2]), t[0]))
        expected[run_name] = e
        if e.run_id:
            continue
        out = tmp / run_name / "eval"
        (out / "images").mkdir(parents=True)
        (out / "overlays").mkdir()
        for (img, _), en in zip(images, entries):
            Image.fromarray(img).save(out / "images" / f"{en['name']}.png")
            _overlay(img, en).save(out / "overlays" / f"{en['name']}.png")
        (out / "detections.json").write_text(json.dumps(
            {"iou_threshold": 0.5, "score_threshold": 0.25, "images": entries}))
        tp = e.predicted - e.false
        precision, recall = tp / e.predicted, tp / e.cells
        counts = [abs(len(en["pred"]) - len(en["gt"])) for en in entries]
        run = client.create_run(exp_id, run_name=run_name)
        e.run_id = run.info.run_id
        for key, value in {"map50": precision * recall, "map50_95": 0.6 * precision * recall,
                           "precision": precision, "recall": recall,
                           "count_mae": sum(counts) / len(counts),
                           "count_rel_error": sum(counts) / e.cells}.items():
            client.log_metric(e.run_id, key, value)
        client.log_param(e.run_id, "model", run_name)
        client.log_artifacts(e.run_id, str(out), "eval")
        client.set_terminated(e.run_id)
    baseline = existing.get(UNEVALUATED)
    if not baseline:
        baseline = client.create_run(exp_id, run_name=UNEVALUATED).info.run_id
        client.log_param(baseline, "model", UNEVALUATED)
        client.log_metric(baseline, "loss", 1.0)
        client.set_terminated(baseline)
    return exp_id, expected, baseline


# Five runs evaluated through the platform's own helper (evaluation.write_detections): every run
# finds every cell except run-3, which misses all of img_0004, and run-2, one cell of img_0001.
FIVE = "ui-detections-five"
FIVE_IMAGES = 6
FIVE_RUNS = {f"run-{k}": {} for k in range(1, 6)}
FIVE_RUNS["run-2"] = {1: 1}
FIVE_RUNS["run-3"] = {4: None}  # None: every cell of the image missed


def seed_five_runs(client, tmp: Path) -> tuple[str, dict[str, str]]:
    """Create (once per platform) the experiment of five evaluated runs; return its id and
    ``{run name: run id}``."""
    from jupyter_mlops.demo import evaluation

    exp = client.get_experiment_by_name(FIVE)
    exp_id = exp.experiment_id if exp else client.create_experiment(
        FIVE, tags={"mlops.project": "default"})
    ids = {r.info.run_name: r.info.run_id for r in client.search_runs([exp_id])}
    data = ground_truth()[:FIVE_IMAGES]
    names = [name(i) for i in range(FIVE_IMAGES)]
    for run_name, missing in FIVE_RUNS.items():
        if run_name in ids:
            continue
        preds = []
        for i, (_, gt) in enumerate(data):
            drop = len(gt) if missing.get(i, 0) is None else missing.get(i, 0)
            preds.append([[x + 1, y, w, h, 0.9 - 0.01 * j] for j, (x, y, w, h)
                          in enumerate(gt[drop:])])
        results = evaluation.write_detections(tmp / run_name, names, [img for img, _ in data],
                                              [gt for _, gt in data], preds, 0.25)
        run = client.create_run(exp_id, run_name=run_name)
        ids[run_name] = run.info.run_id
        for key, value in results.items():
            client.log_metric(run.info.run_id, key, float(value))
        client.log_artifacts(run.info.run_id, str(tmp / run_name / "eval"), "eval")
        client.set_terminated(run.info.run_id)
    return exp_id, ids
