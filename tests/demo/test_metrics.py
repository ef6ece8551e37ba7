"""The detection metrics against cases computed by hand (see jupyter_mlops.demo.metrics)."""
from __future__ import annotations

import math

import pytest

from jupyter_mlops.demo import metrics

GT = [[[0, 0, 10, 10], [20, 20, 10, 10]], [[40, 40, 8, 12]]]


def scored(boxes, score=0.9):
    return [[*b, score] for b in boxes]


def test_iou_by_hand():
    # overlap 5x10 = 50, union 100 + 100 - 50 = 150
    assert metrics.iou_matrix([[0, 0, 10, 10]], [[5, 0, 10, 10]])[0, 0] == pytest.approx(1 / 3)
    assert metrics.iou_matrix([[0, 0, 10, 10]], [[10, 0, 5, 5]])[0, 0] == 0.0  # touching
    assert metrics.iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10]])[0, 0] == 1.0
    assert metrics.iou_matrix([], [[0, 0, 1, 1]]).shape == (0, 1)


def test_perfect_predictions_score_one_everywhere():
    preds = [scored(g) for g in GT]
    m = metrics.evaluate(preds, GT, score_threshold=0.5)
    assert m["map50"] == 1.0 and m["map50_95"] == 1.0
    assert m["precision"] == 1.0 and m["recall"] == 1.0
    assert m["count_mae"] == 0.0 and m["count_rel_error"] == 0.0


def test_shifted_boxes_fail_the_strict_thresholds():
    gt = [[[0, 0, 10, 10]]]
    # shifted 2 px: overlap 8x10 = 80, union 120: IoU 2/3, a match at 0.50 ... 0.65 only
    m = metrics.mean_average_precision([scored([[2, 0, 10, 10]])], gt)
    assert m["map50"] == 1.0
    assert m["map50_95"] == pytest.approx(4 / 10)
    # shifted 5 px: IoU 1/3, no match at any threshold
    m = metrics.mean_average_precision([scored([[5, 0, 10, 10]])], gt)
    assert m["map50"] == 0.0 and m["map50_95"] == 0.0


def test_missed_and_false_cells():
    gt = [[[0, 0, 10, 10], [50, 50, 10, 10]]]
    hit, false = [0, 0, 10, 10, 0.9], [100, 100, 10, 10, 0.8]
    # ranked: TP (precision 1, recall 0.5), FP (0.5, 0.5): 51 of the 101 recall levels
    # (0 ... 0.50) get precision 1, the rest 0
    assert metrics.average_precision([[hit, false]], gt, 0.5) == pytest.approx(51 / 101)
    # the false cell ranked first: precision is 0.5 at every reachable recall level
    ranked_wrong = [[hit[:4] + [0.7], false]]
    assert metrics.average_precision(ranked_wrong, gt, 0.5) == pytest.approx(0.5 * 51 / 101)
    at = metrics.at_threshold([[hit, false]], gt, score_threshold=0.5)
    assert (at["tp"], at["fp"], at["fn"]) == (1, 1, 1)
    assert at["precision"] == 0.5 and at["recall"] == 0.5
    assert at["count_mae"] == 0.0  # two found, two there: the count hides the errors
    img = at["images"][0]
    assert img["matched"] == [[0, 0]] and img["missed"] == [1] and img["false"] == [1]
    # above 0.85 only the hit is kept: count off by one of two
    at = metrics.at_threshold([[hit, false]], gt, score_threshold=0.85)
    assert at["precision"] == 1.0 and at["recall"] == 0.5
    assert at["count_mae"] == 1.0 and at["count_rel_error"] == 0.5


def test_duplicate_detection_is_a_false_positive():
    gt = [[[0, 0, 10, 10]]]
    preds = [[[0, 0, 10, 10, 0.9], [1, 0, 10, 10, 0.8]]]
    matched, missed, false = metrics.match(preds[0], gt[0])
    assert matched == [[0, 0]] and missed == [] and false == [1]
    # TP then FP: recall reaches 1 at rank 1 with precision 1
    assert metrics.average_precision(preds, gt, 0.5) == 1.0


def test_greedy_matching_takes_the_best_overlap_of_the_highest_score():
    gt = [[0, 0, 10, 10], [4, 0, 10, 10]]
    pred = [[3, 0, 10, 10, 0.9]]  # IoU 0.54 with gt 0, 0.82 with gt 1
    matched, missed, false = metrics.match(pred, gt)
    assert matched == [[0, 1]] and missed == [0] and false == []


def test_empty_cases():
    assert math.isnan(metrics.average_precision([[]], [[]], 0.5))
    assert metrics.average_precision([[]], [[[0, 0, 5, 5]]], 0.5) == 0.0
    at = metrics.at_threshold([[]], [[[0, 0, 5, 5]]], 0.5)
    assert at["precision"] == 0.0 and at["recall"] == 0.0 and at["count_mae"] == 1.0
    at = metrics.at_threshold([[]], [[]], 0.5)
    assert at["precision"] == 1.0 and at["recall"] == 1.0 and at["count_mae"] == 0.0


def test_two_images_pool_their_rankings():
    # image 0: a hit at 0.9; image 1: a false cell at 0.95 and its cell missed
    gt = [[[0, 0, 10, 10]], [[0, 0, 10, 10]]]
    preds = [[[0, 0, 10, 10, 0.9]], [[50, 50, 10, 10, 0.95]]]
    # ranked: FP (p 0, r 0), TP (p 0.5, r 0.5): levels 0 ... 0.50 get 0.5
    assert metrics.average_precision(preds, gt, 0.5) == pytest.approx(0.5 * 51 / 101)


def test_any_detector_writes_the_artifact_contract_through_one_helper(tmp_path):
    import json

    import numpy as np

    from jupyter_mlops.demo import evaluation

    images = [np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)] * 2
    preds = [scored(GT[0]) + [[50, 50, 5, 5, 0.2]], []]  # image 2: its one cell missed
    m = evaluation.write_detections(tmp_path, ["a", "b"], images, GT, preds, 0.5)
    assert m["recall"] == pytest.approx(2 / 3) and m["count_mae"] == 0.5
    doc = json.loads((tmp_path / "eval" / "detections.json").read_text())
    a, b = doc["images"]
    assert (a["ap50"], a["count_error"], len(a["pred"])) == (1.0, 0, 2)  # 0.2 under threshold
    assert (b["ap50"], b["count_error"], b["missed"]) == (0.0, -1, [0])
    for im in doc["images"]:
        assert (tmp_path / im["image"]).is_file() and (tmp_path / im["overlay"]).is_file()
    with pytest.raises(ValueError, match="file names"):
        evaluation.write_detections(tmp_path, ["../x", "b"], images, GT, preds, 0.5)
