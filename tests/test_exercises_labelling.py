"""check_label_anchors: right answers written differently pass; the issue's known case and the
lesson's two bugs are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorial_det.boxes import box_iou
from tutorial_det.exercises import check_label_anchors
from tutorial_det.exercises.mistakes.labelling import LABEL_ANCHORS
from tutorial_det.labelling import label_anchors


def iou_pair(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def labels_loop(anchors, gt_boxes):
    iou = [[iou_pair(a, g) for g in gt_boxes.tolist()] for a in anchors.tolist()]
    gt_best = [max(column) for column in zip(*iou, strict=True)]
    labels, matched = [], []
    for row in iou:
        best = max(row, default=0.0)
        matched.append(row.index(best) if row else 0)
        label = 0 if best < 0.3 else (1 if best >= 0.7 else -1)
        if any(v == g and g > 0 for v, g in zip(row, gt_best, strict=True)):
            label = 1
        labels.append(label)
    return torch.tensor(labels, dtype=torch.int64), torch.tensor(matched, dtype=torch.int64)


def labels_numpy(anchors, gt_boxes):
    if len(gt_boxes) == 0:
        return torch.zeros(len(anchors), dtype=torch.int64), torch.zeros(
            len(anchors), dtype=torch.int64
        )
    iou = box_iou(anchors, gt_boxes).numpy()
    best, matched = iou.max(axis=1), iou.argmax(axis=1)
    gt_best = iou.max(axis=0)
    labels = np.where(best >= 0.7, 1, np.where(best < 0.3, 0, -1))
    labels[((iou == gt_best) & (gt_best > 0)).any(axis=1)] = 1
    return torch.from_numpy(labels), torch.from_numpy(matched)


def labels_matched_only_for_positives(anchors, gt_boxes):
    """Another valid convention: matched_gt is -1 where the anchor is not positive."""
    labels, matched = label_anchors(anchors, gt_boxes)
    return labels, torch.where(labels == 1, matched, -1)


@pytest.mark.parametrize(
    "fn", [label_anchors, labels_loop, labels_numpy, labels_matched_only_for_positives]
)
def test_right_answers_pass(fn):
    assert check_label_anchors(fn, verbose=False)


def test_the_negative_rule_after_the_best_anchor_rule_is_named_on_the_issues_case():
    mistake = LABEL_ANCHORS.named("labels_negative_rule_last")
    anchors = torch.tensor([[0.0, 0, 100, 100], [50, 50, 150, 150]])
    gt = torch.tensor([[40.0, 40, 60, 60]])
    assert label_anchors(anchors, gt)[0].tolist() == [1, 0]
    assert mistake.fn(anchors, gt)[0].tolist() == [0, 0]
    result = check_label_anchors(mistake.fn, verbose=False)
    assert result.failures == [
        "[a best anchor below 0.3 is positive, not negative] labels: expected [1, 0], got [0, 0]"
    ]


def test_the_lessons_rules_are_told_both_of_their_bugs():
    def labels_by_rules(anchors, gt_boxes):  # lesson 03's spot-the-bug: no > 0, no G = 0 guard
        iou = box_iou(anchors, gt_boxes)
        best_iou, matched = iou.max(dim=1)
        labels = torch.full((len(anchors),), -1)
        labels[best_iou < 0.3] = 0
        labels[best_iou >= 0.7] = 1
        labels[(iou == iou.max(dim=0).values).any(dim=1)] = 1
        return labels, matched

    result = check_label_anchors(labels_by_rules, verbose=False)
    assert [m.name for m in result.causes] == [
        "labels_ties_at_zero",
        "labels_no_ground_truth_guard",
    ]


def test_float_labels_fail():
    result = check_label_anchors(
        lambda a, g: (label_anchors(a, g)[0].float(), label_anchors(a, g)[1]), verbose=False
    )
    assert not result and "expected int64 values, got float32" in result.failures[0]
