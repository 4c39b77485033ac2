"""tutorial_det.metrics: known answers, pycocotools cross-checks, matching rules, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import t
from hypothesis import given
from hypothesis import strategies as st
from pycocotools.cocoeval import COCOeval, Params

from tutorial_det.boxes import box_iou
from tutorial_det.exercises import check_average_precision
from tutorial_det.metrics import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_THRESHOLDS,
    METHODS,
    average_precision,
    match_detections,
    mean_average_precision,
    pycocotools_eval,
    to_coco,
)

SUMMARY_KEYS = [  # COCOeval.stats, in order
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
]


def pred(boxes, scores, labels):
    return {
        "boxes": t(boxes).reshape(-1, 4),
        "scores": t(scores),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def target(boxes, labels, iscrowd=None):
    out = {"boxes": t(boxes).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64)}
    if iscrowd is not None:
        out["iscrowd"] = torch.tensor(iscrowd)
    return out


# --------------------------------------------------------------------------- the known answer

# Three objects; five detections ranked TP, FP, TP, FP, TP: a duplicate of an object already
# found is a false positive, so is a detection overlapping its object with IoU 0.3.
GT = [[10, 10, 50, 50], [100, 100, 160, 140], [200, 20, 260, 90]]
DETS = [
    [10, 10, 50, 50],  # object 0: TP
    [12, 10, 50, 50],  # object 0 again (IoU 0.95): FP
    [100, 100, 160, 140],  # object 1: TP
    [200, 60, 260, 120],  # object 2 with IoU 0.3: FP
    [200, 20, 260, 90],  # object 2: TP
]
SCORES = [0.9, 0.8, 0.7, 0.6, 0.5]
KNOWN_RECALL = [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1]
KNOWN_PRECISION = [1, 1 / 2, 2 / 3, 2 / 4, 3 / 5]
KNOWN_AP = {"all_points": 0.755556, "11_points": 0.763636, "coco_101": 0.756436}


def test_known_answer_from_real_boxes():
    ious = box_iou(t(DETS), t(GT))
    tp, fp = match_detections(ious, 0.5)
    assert tp.tolist() == [True, False, True, False, True]
    assert fp.tolist() == [False, True, False, True, False]
    recall = tp.cumsum(0) / len(GT)
    precision = tp.cumsum(0) / torch.arange(1, len(DETS) + 1)
    torch.testing.assert_close(recall, t(KNOWN_RECALL))
    torch.testing.assert_close(precision, t(KNOWN_PRECISION))
    for method, expected in KNOWN_AP.items():
        assert average_precision(
            recall.double(), precision.double(), method
        ).item() == pytest.approx(expected, abs=1e-6)

    result = mean_average_precision([pred(DETS, SCORES, [1] * 5)], [target(GT, [1] * 3)])
    # The true positives are exact copies: TP at every COCO threshold, so map = AP at IoU 0.5.
    assert result["map"].item() == pytest.approx(KNOWN_AP["coco_101"], abs=1e-6)
    assert result["map_50"].item() == pytest.approx(KNOWN_AP["coco_101"], abs=1e-6)
    assert result["voc_map_50"].item() == pytest.approx(KNOWN_AP["all_points"], abs=1e-6)
    assert result["voc11_map_50"].item() == pytest.approx(KNOWN_AP["11_points"], abs=1e-6)
    assert result["mar_1"].item() == pytest.approx(1 / 3)
    assert result["mar_100"].item() == 1.0
    assert result["map_small"].item() == -1  # every object is 32^2..96^2 pixels: medium
    assert result["map_medium"].item() == pytest.approx(KNOWN_AP["coco_101"], abs=1e-6)
    assert result["classes"].tolist() == [1]


# --------------------------------------------------------------------------- average_precision


def test_average_precision_simple_curves():
    perfect = (t([0.5, 1.0]), t([1.0, 1.0]))
    short = (t([0.25, 0.5]), t([1.0, 1.0]))  # recall never gets past 0.5
    for method in METHODS:
        assert average_precision(*perfect, method).item() == pytest.approx(1.0)
        assert average_precision(t([]), t([]), method).item() == 0.0
        assert average_precision(t([0, 0]), t([0, 0]), method).item() == 0.0
    assert average_precision(*short, "all_points").item() == pytest.approx(0.5)
    assert average_precision(*short, "11_points").item() == pytest.approx(6 / 11)
    assert average_precision(*short, "coco_101").item() == pytest.approx(51 / 101)


def test_average_precision_uses_the_envelope():
    # Precision dips then recovers: the envelope lifts the dip to 0.75.
    recall, precision = t([0.25, 0.25, 0.5, 0.75]), t([1.0, 0.5, 0.67, 0.75])
    assert average_precision(recall, precision, "all_points").item() == pytest.approx(
        0.25 + 0.5 * 0.75
    )


def test_recall_thresholds_are_pycocotools_floats():
    params = Params(iouType="bbox")
    assert np.array_equal(COCO_RECALL_THRESHOLDS.numpy(), params.recThrs)
    assert np.array_equal(COCO_IOU_THRESHOLDS.numpy(), params.iouThrs)


@st.composite
def pr_curves(draw):
    """A random ranking of TP / FP / ignored detections and its (recall, precision) curve."""
    flags = draw(st.lists(st.sampled_from("tfi"), max_size=30))
    num_gts = max(1, flags.count("t") + draw(st.integers(0, 3)))
    tp = torch.tensor([f == "t" for f in flags], dtype=torch.float64)
    fp = torch.tensor([f == "f" for f in flags], dtype=torch.float64)
    tps, fps = tp.cumsum(0), fp.cumsum(0)
    recall = tps / num_gts
    precision = torch.where(tps + fps > 0, tps / (tps + fps).clamp(min=1), 0.0)
    return recall, precision


def reference_ap(recall: np.ndarray, precision: np.ndarray, method: str) -> float:
    """The VOC devkit's loops (all points) and threshold sampling written out plainly."""
    if method == "all_points":
        mrec = np.concatenate(([0.0], recall, [1.0]))
        mpre = np.concatenate(([0.0], precision, [0.0]))
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        changes = np.where(mrec[1:] != mrec[:-1])[0]
        return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))
    levels = Params(iouType="bbox").recThrs if method == "coco_101" else [i / 10 for i in range(11)]
    return float(
        np.mean([precision[recall >= r].max() if (recall >= r).any() else 0.0 for r in levels])
    )


@given(curve=pr_curves(), method=st.sampled_from(METHODS))
def test_average_precision_matches_reference_loops(curve, method):
    recall, precision = curve
    expected = reference_ap(recall.numpy(), precision.numpy(), method)
    assert average_precision(recall, precision, method).item() == pytest.approx(expected, abs=1e-12)


@given(curves=st.lists(pr_curves(), min_size=1, max_size=4), method=st.sampled_from(METHODS))
def test_average_precision_batched_with_padding(curves, method):
    """A batch of curves padded with (last recall, precision 0) gives each curve's own AP."""
    length = max(len(r) for r, _ in curves) + 2
    recall = torch.zeros(len(curves), length, dtype=torch.float64)
    precision = torch.zeros_like(recall)
    for i, (r, p) in enumerate(curves):
        recall[i, : len(r)], precision[i, : len(r)] = r, p
        recall[i, len(r) :] = r[-1] if len(r) else 0.0
    batched = average_precision(recall, precision, method)
    assert batched.shape == (len(curves),)
    for i, (r, p) in enumerate(curves):
        assert batched[i].item() == pytest.approx(average_precision(r, p, method).item(), abs=1e-12)


def test_average_precision_rejects_bad_curves():
    with pytest.raises(ValueError, match="method='voc'"):
        average_precision(t([0.5]), t([1.0]), "voc")
    with pytest.raises(ValueError, match="same shape"):
        average_precision(t([0.5, 1.0]), t([1.0]))
    with pytest.raises(ValueError, match=r"non-decreasing.*recall\[1\]"):
        average_precision(t([0.2, 0.5, 0.4]), t([1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"precision\[0\] = nan"):
        average_precision(t([0.2]), t([float("nan")]))


# --------------------------------------------------------------------------- match_detections


def test_duplicates_are_false_positives_and_thresholds_are_independent():
    ious = t([[0.9], [0.8], [0.6]])  # three detections of one object
    tp, fp = match_detections(ious, [0.5, 0.85])
    assert tp.tolist() == [[True, False, False], [True, False, False]]
    assert fp.tolist() == [[False, True, True], [False, True, True]]
    # At 0.95 nobody overlaps enough: all false positives.
    tp, fp = match_detections(ious, 0.95)
    assert tp.tolist() == [False] * 3 and fp.tolist() == [True] * 3


def test_a_detection_takes_its_best_free_ground_truth():
    # The first detection takes ground truth 1 (IoU 0.9); the second then falls back to 0.
    ious = t([[0.6, 0.9], [0.55, 0.8]])
    tp, fp = match_detections(ious, 0.5)
    assert tp.tolist() == [True, True]
    assert not fp.any()


def test_ignored_ground_truths_and_crowds():
    ious = t([[0.6, 0.9], [0.7, 0.1], [0.1, 0.8], [0.1, 0.7]])
    ignore = torch.tensor([False, True])
    tp, fp = match_detections(ious, 0.5, gt_ignore=ignore)
    # Det 0 prefers the regular ground truth 0 (IoU 0.6) over the ignored one (0.9); det 1
    # finds 0 taken and nothing else: FP; det 2 matches the ignored one: neither; det 3 finds
    # it taken: FP.
    assert tp.tolist() == [True, False, False, False]
    assert fp.tolist() == [False, True, False, True]
    # A crowd absorbs every detection that overlaps it.
    tp, fp = match_detections(ious, 0.5, gt_ignore=ignore, gt_crowd=ignore)
    assert tp.tolist() == [True, False, False, False]
    assert fp.tolist() == [False, True, False, False]
    # det_ignore spares unmatched detections only.
    tp, fp = match_detections(
        ious, 0.5, gt_ignore=ignore, det_ignore=torch.tensor([True, True, False, False])
    )
    assert tp.tolist() == [True, False, False, False]
    assert fp.tolist() == [False, False, False, True]


def test_equal_ious_go_to_the_later_ground_truth():
    tp, _ = match_detections(t([[0.7, 0.7], [0.7, 0.0]]), 0.5)
    assert tp.tolist() == [True, True]  # det 0 took gt 1, so det 1 still finds gt 0


def test_match_detections_batched_equals_one_by_one():
    g = torch.Generator().manual_seed(0)
    ious = torch.rand(6, 9, 4, generator=g)
    ignore = torch.rand(6, 4, generator=g) < 0.3
    crowd = ignore & (torch.rand(6, 4, generator=g) < 0.5)
    det_ignore = torch.rand(6, 9, generator=g) < 0.2
    thresholds = [0.3, 0.5, 0.7]
    tp, fp = match_detections(
        ious, thresholds, gt_ignore=ignore, gt_crowd=crowd, det_ignore=det_ignore
    )
    assert tp.shape == (6, 3, 9)
    for b in range(6):
        one_tp, one_fp = match_detections(
            ious[b], thresholds, gt_ignore=ignore[b], gt_crowd=crowd[b], det_ignore=det_ignore[b]
        )
        assert torch.equal(tp[b], one_tp) and torch.equal(fp[b], one_fp)


def test_match_detections_empty_and_bad_input():
    tp, fp = match_detections(torch.zeros(3, 0), 0.5)
    assert tp.tolist() == [False] * 3 and fp.tolist() == [True] * 3
    tp, fp = match_detections(torch.zeros(0, 2), [0.5, 0.75])
    assert tp.shape == fp.shape == (2, 0)
    with pytest.raises(ValueError, match="ious must be"):
        match_detections(torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"gt_ignore must be a bool tensor of shape \[..., 2\]"):
        match_detections(torch.zeros(3, 2), 0.5, gt_ignore=torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="iou_thresholds"):
        match_detections(torch.zeros(3, 2), 1.5)


# --------------------------------------------------------------------------- pycocotools


def random_dataset(seed: int, *, ties: bool = False, many: bool = False):
    """Random images: objects of every size (some crowds), jittered and spurious detections,
    wrong labels, a class nobody annotated, images without objects or without detections."""
    rng = np.random.default_rng(seed)
    classes = [1, 2, 5]
    preds, targets = [], []
    for i in range(int(rng.integers(6, 11))):
        kind = rng.random()
        n_gt = 0 if kind < 0.15 else int(rng.integers(1, 7))
        xy = rng.integers(0, 400, size=(n_gt, 2))
        wh = np.round(np.exp(rng.uniform(np.log(3), np.log(250), size=(n_gt, 2)))).astype(int)
        gt = np.concatenate((xy, xy + wh), axis=1)
        gt_labels = rng.choice(classes, size=n_gt)
        crowd = rng.random(n_gt) < 0.1
        boxes, labels = [], []
        if not 0.15 <= kind < 0.25:  # else: an image without detections
            for box, label in zip(gt, gt_labels, strict=True):
                for _ in range(int(rng.integers(0, 3))):
                    size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
                    jitter = np.round(rng.normal(0, 0.12, 4) * size).astype(int)
                    x1, y1, x2, y2 = box + jitter
                    boxes.append([x1, y1, max(x1, x2), max(y1, y2)])
                    labels.append(label if rng.random() < 0.85 else rng.choice([*classes, 7]))
            for _ in range(int(rng.integers(0, 6))):
                x, y = rng.integers(0, 450, 2)
                w, h = rng.integers(0, 120, 2)
                boxes.append([x, y, x + w, y + h])
                labels.append(rng.choice([*classes, 7]))
        if many and i == 0:  # more than 100 detections of one class in one image
            for _ in range(130):
                x, y = rng.integers(0, 300, 2)
                boxes.append([x, y, x + 60, y + 60])
                labels.append(1)
        scores = rng.random(len(boxes))
        if ties:
            scores = np.round(scores, 1)
        preds.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "scores": torch.tensor(scores, dtype=torch.float32),
                "labels": torch.tensor(labels, dtype=torch.int64),
            }
        )
        targets.append(
            {
                "boxes": torch.tensor(gt, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor(gt_labels, dtype=torch.int64),
                "iscrowd": torch.tensor(crowd),
            }
        )
    return preds, targets


def coco_eval(preds, targets, **params) -> COCOeval:
    """pycocotools' COCOeval on the same data (``to_coco``: xywh boxes, area w * h)."""
    return pycocotools_eval(*to_coco(preds, targets), **params)


def test_to_coco_layout():
    dataset, detections = to_coco(
        [pred([[10, 20, 40, 60]], [0.5], [3]), pred([], [], [])],
        [target([[0, 0, 10, 10], [5, 5, 7, 9]], [1, 1], iscrowd=[0, 1]), target([], [])],
    )
    assert dataset["images"] == [{"id": 1}, {"id": 2}]
    assert dataset["categories"] == [{"id": 1}, {"id": 3}]
    assert dataset["annotations"][1] == {
        "id": 2,
        "image_id": 1,
        "category_id": 1,
        "bbox": [5.0, 5.0, 2.0, 4.0],
        "area": 8.0,
        "iscrowd": 1,
    }
    assert detections == [
        {"image_id": 1, "category_id": 3, "bbox": [10.0, 20.0, 30.0, 40.0], "score": 0.5}
    ]


def coco_per_class(evaluation: COCOeval) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP and AR (area all, 100 detections) from COCOeval's arrays, -1 when undefined."""
    precision = evaluation.eval["precision"][:, :, :, 0, -1]  # [T, R, K]
    recall = evaluation.eval["recall"][:, :, 0, -1]  # [T, K]
    ap = [precision[:, :, k][precision[:, :, k] > -1] for k in range(precision.shape[2])]
    ar = [recall[:, k][recall[:, k] > -1] for k in range(recall.shape[1])]
    return np.array([v.mean() if v.size else -1 for v in ap]), np.array(
        [v.mean() if v.size else -1 for v in ar]
    )


def coco_voc_ap(preds, targets) -> dict[str, np.ndarray]:
    """Per-class VOC AP at IoU 0.5 with every detection: pycocotools' matches, accumulated and
    integrated by plain numpy code (the reference loops above)."""
    evaluation = coco_eval(
        preds,
        targets,
        iouThrs=np.array([0.5]),
        maxDets=[100000],
        areaRng=[[0, 1e10]],
        areaRngLbl=["all"],
    )
    num_images = len(evaluation.params.imgIds)
    out = {"all_points": [], "11_points": []}
    for k in range(len(evaluation.params.catIds)):
        found = [
            e for e in evaluation.evalImgs[k * num_images : (k + 1) * num_images] if e is not None
        ]
        num_gts = sum(int((e["gtIgnore"] == 0).sum()) for e in found)
        if num_gts == 0:
            for values in out.values():
                values.append(-1.0)
            continue
        scores = np.concatenate([e["dtScores"] for e in found]) if found else np.zeros(0)
        order = np.argsort(-scores, kind="mergesort")
        matched = np.concatenate([e["dtMatches"][0] for e in found])[order] > 0
        ignored = np.concatenate([e["dtIgnore"][0] for e in found])[order] > 0
        tp = np.cumsum(matched[~ignored])
        fp = np.cumsum(~matched[~ignored])
        recall = tp / num_gts
        precision = tp / np.maximum(tp + fp, 1)
        for method, values in out.items():
            values.append(reference_ap(recall, precision, method))
    return {method: np.array(values) for method, values in out.items()}


CASES = [(seed, False, False) for seed in range(8)] + [
    (10, True, False),
    (11, True, True),
    (12, False, True),
]


@pytest.mark.parametrize(("seed", "ties", "many"), CASES)
def test_matches_pycocotools(seed, ties, many):
    preds, targets = random_dataset(seed, ties=ties, many=many)
    ours = mean_average_precision(preds, targets)
    evaluation = coco_eval(preds, targets)
    for key, expected in zip(SUMMARY_KEYS, evaluation.stats, strict=True):
        assert ours[key].item() == pytest.approx(expected, abs=1e-4), key
    assert ours["classes"].tolist() == evaluation.params.catIds
    ap, ar = coco_per_class(evaluation)
    np.testing.assert_allclose(ours["map_per_class"].numpy(), ap, atol=1e-4)
    np.testing.assert_allclose(ours["mar_100_per_class"].numpy(), ar, atol=1e-4)
    voc = coco_voc_ap(preds, targets)
    np.testing.assert_allclose(ours["voc_map_50_per_class"].numpy(), voc["all_points"], atol=1e-4)
    np.testing.assert_allclose(ours["voc11_map_50_per_class"].numpy(), voc["11_points"], atol=1e-4)
    for key in ("voc_map_50", "voc11_map_50"):
        valid = ours[f"{key}_per_class"][ours[f"{key}_per_class"] > -1]
        assert ours[key].item() == pytest.approx(valid.mean().item(), abs=1e-6)
    assert all(torch.isfinite(v).all() for v in ours.values())


def test_score_ties_follow_input_order_like_pycocotools():
    """Equal scores: pycocotools' stable sorts rank them by image, then by input order. Here the
    order decides which of two equal-score detections takes the object."""
    gt = [target([[0, 0, 40, 40]], [1]), target([[0, 0, 40, 40]], [1])]
    preds = [
        pred([[0, 0, 40, 30], [0, 0, 40, 40]], [0.5, 0.5], [1, 1]),  # IoU 0.75, then 1.0
        pred([[100, 100, 140, 140]], [0.5], [1]),  # a false positive with the same score
    ]
    ours = mean_average_precision(preds, gt)
    evaluation = coco_eval(preds, gt)
    for key, expected in zip(SUMMARY_KEYS, evaluation.stats, strict=True):
        assert ours[key].item() == pytest.approx(expected, abs=1e-6), key
    # At IoU >= 0.8 the first detection misses and the second finds the object:
    # ranking FP, TP, FP for one object in two images (2 objects): AP at 0.8 is lower than at 0.5.
    per_threshold = mean_average_precision(preds, gt, iou_thresholds=[0.8])["map"].item()
    assert per_threshold == pytest.approx((0.5 * 51 + 0) / 101, abs=1e-6)


def test_equal_ious_like_pycocotools():
    """A detection exactly between two objects (IoU 0.6 with each) takes the later one, leaving
    the first to the next detection: two true positives, as pycocotools finds."""
    gt = [target([[0, 0, 40, 40], [20, 0, 60, 40]], [1, 1])]
    preds = [pred([[10, 0, 50, 40], [0, 0, 40, 40]], [0.9, 0.8], [1, 1])]
    ours = mean_average_precision(preds, gt, iou_thresholds=[0.5])
    evaluation = coco_eval(preds, gt, iouThrs=np.array([0.5]))
    assert ours["map"].item() == pytest.approx(1.0)
    assert ours["map"].item() == pytest.approx(evaluation.eval["precision"][0, :, 0, 0, -1].mean())


def test_max_detections_keeps_the_best_per_image_and_class():
    # 3 objects, found by the 11th, 12th and 13th best detections of the image.
    boxes = [[500 + 10 * i, 0, 505 + 10 * i, 5] for i in range(10)] + GT
    scores = [1.0 - 0.01 * i for i in range(13)]
    result = mean_average_precision([pred(boxes, scores, [1] * 13)], [target(GT, [1, 1, 1])])
    assert result["mar_10"].item() == 0 and result["mar_100"].item() == 1
    limited = mean_average_precision(
        [pred(boxes, scores, [1] * 13)], [target(GT, [1, 1, 1])], max_detections=11
    )
    assert limited["mar_11"].item() == pytest.approx(1 / 3)
    assert "mar_100" not in limited and "mar_11_per_class" in limited


# --------------------------------------------------------------------------- edge cases


def test_no_predictions_at_all():
    targets = [target(GT, [1, 1, 2]), target([], [])]
    preds = [pred([], [], []), pred([], [], [])]
    result = mean_average_precision(preds, targets)
    for key in ("map", "map_50", "mar_100", "voc_map_50", "voc11_map_50", "map_medium"):
        assert result[key].item() == 0.0, key
    assert result["map_small"].item() == -1 and result["map_large"].item() == -1
    assert result["map_per_class"].tolist() == [0.0, 0.0]
    assert result["classes"].tolist() == [1, 2]


def test_no_targets_at_all():
    result = mean_average_precision([pred(DETS, SCORES, [1, 1, 2, 2, 3])], [target([], [])])
    for key, value in result.items():
        if key != "classes":
            assert (value == -1).all(), key
    assert result["map_per_class"].shape == (3,)


def test_no_images():
    result = mean_average_precision([], [])
    assert result["map"].item() == -1 and result["map_per_class"].shape == (0,)
    assert result["classes"].shape == (0,)


def test_options():
    preds, targets = random_dataset(3)
    result = mean_average_precision(preds, targets, iou_thresholds=[0.6, 0.7], class_metrics=False)
    assert result["map_50"].item() == -1 and result["map_75"].item() == -1
    assert result["map_per_class"].item() == -1
    full = mean_average_precision(preds, targets)
    assert result["voc_map_50"].item() == pytest.approx(full["voc_map_50"].item())
    at_06 = mean_average_precision(preds, targets, iou_thresholds=[0.6])["map"].item()
    at_07 = mean_average_precision(preds, targets, iou_thresholds=[0.7])["map"].item()
    assert result["map"].item() == pytest.approx((at_06 + at_07) / 2, abs=1e-6)


def test_crowd_regions_absorb_detections():
    crowd = target([[0, 0, 200, 200], [300, 300, 340, 340]], [1, 1], iscrowd=[1, 0])
    dets = pred(
        [[300, 300, 340, 340], [10, 10, 50, 50], [20, 20, 60, 60]], [0.9, 0.8, 0.7], [1, 1, 1]
    )
    result = mean_average_precision([dets], [crowd])
    # The two small detections lie inside the crowd (overlap = intersection / own area = 1),
    # so they are ignored instead of counted as false positives.
    assert result["map"].item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("preds", "targets", "error", "message"),
    [
        ([pred(GT, [1, 1, 1], [1, 1, 1])], [], ValueError, "preds has 1 images but targets has 0"),
        (
            [
                {
                    "boxes": torch.zeros(2, 3),
                    "scores": t([1, 1]),
                    "labels": torch.ones(2, dtype=torch.int64),
                }
            ],
            [target([], [])],
            ValueError,
            r"preds\[0\]\['boxes'\] must have shape \[N, 4\], got \[2, 3\]",
        ),
        (
            [pred([], [], []), pred(GT, [0.5, 0.4], [1, 1, 1])],
            [target([], []), target([], [])],
            ValueError,
            r"preds\[1\]\['scores'\] must have shape \[3\]",
        ),
        (
            [pred([], [], []), pred(GT, [0.5, 0.4, float("nan")], [1, 1, 1])],
            [target([], []), target([], [])],
            ValueError,
            r"preds\[1\]\['scores'\] holds nan",
        ),
        (
            [pred(GT, [1, 1, 1], [1, 1])],
            [target([], [])],
            ValueError,
            r"preds\[0\]\['labels'\] must have shape \[3\]",
        ),
        (
            [{"boxes": t(GT), "scores": t([1, 1, 1]), "labels": t([1, 1, 1])}],
            [target([], [])],
            TypeError,
            r"preds\[0\]\['labels'\] must be an integer tensor",
        ),
        (
            [{"boxes": t(GT), "labels": torch.ones(3, dtype=torch.int64)}],
            [target([], [])],
            ValueError,
            r"preds\[0\] has no key 'scores'",
        ),
        (
            [pred([], [], []), pred([], [], [])],
            [target([], []), target([[0, 0, 10, 10], [5, 5, 4, 9]], [1, 1])],
            ValueError,
            r"targets\[1\]\['boxes'\]\[1\] .* has x2 < x1",
        ),
        (
            [pred([], [], [])],
            [target(GT, [1, 1, 1], iscrowd=[0, 1])],
            ValueError,
            r"targets\[0\]\['iscrowd'\] must have shape \[3\]",
        ),
        (
            [pred([], [], [])],
            [{"boxes": GT, "labels": [1, 1, 1]}],
            TypeError,
            r"targets\[0\]\['boxes'\] must be a torch.Tensor",
        ),
        ({"boxes": t(GT)}, [target([], [])], TypeError, "preds must be a list"),
        (
            [pred(GT, [1, 1, 1], [1, 0, 1])],
            [target(GT, [1, 1, 1])],
            ValueError,
            r"preds\[0\]\['labels'\] holds 0: labels number the object classes from 1 \(0 is the",
        ),
        (
            [pred([], [], []), pred([], [], [])],
            [target([], []), target(GT, [2, -3, 1])],
            ValueError,
            r"targets\[1\]\['labels'\] holds -3: labels number the object classes from 1$",
        ),
        (
            [pred([], [], [])],
            [{**target(GT, [1, 1, 1]), "difficult": torch.tensor([0, 2, 1])}],
            ValueError,
            r"targets\[0\]\['difficult'\] must hold 0/1 or bools",
        ),
    ],
)
def test_malformed_input_names_image_and_key(preds, targets, error, message):
    with pytest.raises(error, match=message):
        mean_average_precision(preds, targets)


def test_voc_difficult_objects_are_neither_to_find_nor_a_false_positive_when_found():
    found, hard = [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]
    ordinary = target([found, hard], [1, 1])
    flagged = {**ordinary, "difficult": torch.tensor([False, True])}
    one_found = [pred([found], [0.9], [1])]
    # one object found, one difficult object missed: nothing left to find
    assert float(mean_average_precision(one_found, [flagged])["voc_map_50"]) == 1.0
    assert float(mean_average_precision(one_found, [ordinary])["voc_map_50"]) == 0.5
    # a detection on the difficult object, ranked first, is not a false positive either
    both = [pred([hard, found], [0.95, 0.9], [1, 1])]
    metrics = mean_average_precision(both, [flagged])
    assert float(metrics["voc_map_50"]) == 1.0 and float(metrics["map"]) == 1.0
    # an image holding only difficult objects: the class has nothing to find (-1)
    alone = [{**target([hard], [1]), "difficult": torch.tensor([True])}]
    assert float(mean_average_precision([pred([], [], [])], alone)["voc_map_50"]) == -1.0


def test_bad_options():
    with pytest.raises(ValueError, match="max_detections"):
        mean_average_precision([], [], max_detections=0)
    with pytest.raises(ValueError, match="iou_thresholds"):
        mean_average_precision([], [], iou_thresholds=[0.5, 1.2])


# --------------------------------------------------------------------------- exercise checker


@pytest.mark.parametrize("method", METHODS)
def test_check_average_precision_accepts_the_reference(method):
    assert check_average_precision(
        lambda r, p: average_precision(r, p, method), method, verbose=False
    )


def test_check_average_precision_catches_a_missing_envelope():
    def no_envelope(recall, precision):
        steps = torch.diff(recall, prepend=recall.new_zeros(1))
        return (steps * precision).sum()

    result = check_average_precision(no_envelope, "all_points", verbose=False)
    assert not result
    assert result.causes[0].name == "ap_without_envelope"
