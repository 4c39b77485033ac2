"""Mistakes in the anchor labelling of lesson 03 (``check_label_anchors``: ``fn(anchors [A, 4],
gt_boxes [G, 4]) -> (labels [A], matched_gt [A])``, thresholds 0.7 / 0.3).

The right rules, in order: a = negative (0) when the anchor's best IoU is < 0.3, b = positive (1)
when it is >= 0.7, c = positive for every anchor that ties for a ground truth's highest IoU, when
that IoU is above 0; -1 (ignored) otherwise. Each mistake below changes one of them."""

from __future__ import annotations

import torch

from tutorial_det.boxes import box_iou
from tutorial_det.exercises.core import Catalogue

LABEL_ANCHORS = Catalogue()


def _background(anchors):
    """No ground truth: every anchor negative (right)."""
    zeros = torch.zeros(len(anchors), dtype=torch.int64)
    return zeros, zeros.clone()


def _best_anchors(iou):
    """Rule c, right: ``[A]`` bool, the anchors tying for a ground truth's highest IoU (> 0)."""
    gt_best = iou.max(dim=0).values  # [G]
    return ((iou == gt_best) & (gt_best > 0)).any(dim=1)


def _rules(iou, best):
    """Right: rules a, b and c, in this order."""
    return [(best < 0.3, 0), (best >= 0.7, 1), (_best_anchors(iou), 1)]


def _label(anchors, gt_boxes, rules, start=-1):
    """Labels from ``rules(iou, best)``, a list of (which anchors, label) applied in order to
    labels that start at ``start``; with the right guard for G = 0."""
    if len(gt_boxes) == 0:
        return _background(anchors)
    iou = box_iou(anchors, gt_boxes)  # [A, G]
    best, matched = iou.max(dim=1)
    labels = torch.full((len(anchors),), start)
    for which, label in rules(iou, best):
        labels[which] = label
    return labels, matched


@LABEL_ANCHORS.add(
    "You apply the negative rule after the best-anchor rule, so a best anchor whose IoU is below "
    "0.3 ends up negative: label negatives first, then positives."
)
def labels_negative_rule_last(anchors, gt_boxes):
    return _label(
        anchors,
        gt_boxes,
        lambda iou, best: [(best >= 0.7, 1), (_best_anchors(iou), 1), (best < 0.3, 0)],
    )


@LABEL_ANCHORS.add(
    "Your positive threshold is strict (IoU > 0.7); an anchor with IoU exactly 0.7 is positive "
    "(>= 0.7)."
)
def labels_strict_positive(anchors, gt_boxes):
    return _label(
        anchors,
        gt_boxes,
        lambda iou, best: [(best < 0.3, 0), (best > 0.7, 1), (_best_anchors(iou), 1)],
    )


@LABEL_ANCHORS.add(
    "Your negative threshold is inclusive (IoU <= 0.3); an anchor with IoU exactly 0.3 is "
    "ignored, negatives are strictly below 0.3."
)
def labels_inclusive_negative(anchors, gt_boxes):
    return _label(
        anchors,
        gt_boxes,
        lambda iou, best: [(best <= 0.3, 0), (best >= 0.7, 1), (_best_anchors(iou), 1)],
    )


@LABEL_ANCHORS.add(
    "You take one best anchor per ground truth (argmax); every anchor that ties for the highest "
    "IoU is positive: compare the IoU matrix with each ground truth's maximum."
)
def labels_argmax_best_anchor(anchors, gt_boxes):
    def first_best(iou):
        gt_best, first = iou.max(dim=0)
        return first[gt_best > 0]

    return _label(
        anchors,
        gt_boxes,
        lambda iou, best: [(best < 0.3, 0), (best >= 0.7, 1), (first_best(iou), 1)],
    )


@LABEL_ANCHORS.add(
    "A ground truth that overlaps no anchor makes every anchor a best anchor (they all tie at "
    "IoU 0): a best anchor counts only when its IoU is above 0."
)
def labels_ties_at_zero(anchors, gt_boxes):
    def ties_even_at_zero(iou):
        return (iou == iou.max(dim=0).values).any(dim=1)

    return _label(
        anchors,
        gt_boxes,
        lambda iou, best: [(best < 0.3, 0), (best >= 0.7, 1), (ties_even_at_zero(iou), 1)],
    )


@LABEL_ANCHORS.add(
    "With no ground truth (G = 0) there is no maximum to take: return every anchor as negative "
    "(label 0) before computing the IoU."
)
def labels_no_ground_truth_guard(anchors, gt_boxes):
    box_iou(anchors, gt_boxes).max(dim=1)  # raises when G = 0: nothing guards it
    return _label(anchors, gt_boxes, _rules)


@LABEL_ANCHORS.add(
    "You leave out the best-anchor rule: each ground truth's highest-IoU anchor(s) are positive "
    "even below 0.7, so that no object is left without a positive."
)
def labels_thresholds_only(anchors, gt_boxes):
    return _label(anchors, gt_boxes, lambda iou, best: [(best < 0.3, 0), (best >= 0.7, 1)])


@LABEL_ANCHORS.add(
    "You have no ignored anchors: between IoU 0.3 and 0.7 an anchor is ignored (-1), not negative."
)
def labels_without_ignored(anchors, gt_boxes):
    return _label(
        anchors, gt_boxes, lambda iou, best: [(best >= 0.7, 1), (_best_anchors(iou), 1)], start=0
    )
