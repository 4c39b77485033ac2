"""Checks for the anchor-labelling exercise of lesson 03."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tutorial_det.anchors import anchor_base, grid_anchors, inside_anchors
from tutorial_det.exercises.core import Case, CheckResult, compare_tensors, run_check
from tutorial_det.exercises.mistakes.labelling import LABEL_ANCHORS
from tutorial_det.labelling import label_anchors


def _compare_labels(got: Any, expected: tuple[torch.Tensor, torch.Tensor]) -> str | None:
    """Labels must match exactly; matched ground truths only where the label is 1 (elsewhere
    the index means nothing, so any convention is accepted)."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a pair (labels, matched_gt), got {type(got).__name__}"
    labels, matched = got
    want_labels, want_matched = expected
    problem = compare_tensors(labels, want_labels)
    if problem is not None:
        return f"labels: {problem}"
    positive = want_labels == 1
    problem = compare_tensors(torch.as_tensor(matched)[positive], want_matched[positive])
    if problem is not None:
        return f"matched_gt of the positive anchors: {problem}"
    return None


def _seed_example() -> tuple[torch.Tensor, torch.Tensor]:
    anchors = grid_anchors(anchor_base(), (50, 50), 16)
    anchors = anchors[inside_anchors(anchors, (800, 800))]
    return anchors, torch.tensor([[30.0, 20, 500, 400], [400, 300, 600, 500]])


def label_anchors_cases() -> list[Case]:
    """Cases for ``fn(anchors [A, 4], gt_boxes [G, 4]) -> (labels [A], matched_gt [A])`` with the
    thresholds 0.7 / 0.3."""
    t = torch.tensor
    gt = t([[0.0, 0, 10, 10]])
    return [
        Case(
            "positive, ignored and negative anchors",
            # IoU with the ground truth: 1, 0.5, 0.1, 0 (the first is also the best anchor).
            (t([[0.0, 0, 10, 10], [0, 0, 10, 20], [0, 0, 1, 10], [50, 50, 60, 60]]), gt),
            hint="1 when IoU >= 0.7, 0 when IoU < 0.3, -1 in between",
            expected=(t([1, -1, 0, 0]), t([0, 0, 0, 0])),
        ),
        Case(
            "thresholds are inclusive for positives, exclusive for negatives",
            # IoU 1 (best anchor), 0.7 exactly, 0.3 exactly.
            (t([[0.0, 0, 10, 10], [0, 0, 7, 10], [0, 0, 3, 10]]), gt),
            hint="IoU 0.7 is positive (>= 0.7); IoU 0.3 is ignored, not negative (< 0.3)",
            expected=(t([1, 1, -1]), t([0, 0, 0])),
        ),
        Case(
            "the best anchor of a ground truth is positive even below 0.7",
            # IoU 0.5 and 0.2: no anchor reaches 0.7, the 0.5 one is the best.
            (t([[0.0, 0, 10, 20], [0, 0, 2, 10]]), gt),
            hint="each ground truth's highest-IoU anchor(s) are positive, whatever that IoU",
            expected=(t([1, 0]), t([0, 0])),
        ),
        Case(
            "a best anchor below 0.3 is positive, not negative",
            # IoU 0.04 and 0.01: the first is the ground truth's best anchor.
            (t([[0.0, 0, 100, 100], [50, 50, 150, 150]]), t([[40.0, 40, 60, 60]])),
            hint="the best-anchor rule comes after the negative rule and overrides it",
            expected=(t([1, 0]), t([0, 0])),
        ),
        Case(
            "ties: every anchor sharing a ground truth's highest IoU is positive",
            (t([[0.0, 0, 10, 20], [0, -10, 10, 10], [0, 0, 2, 10]]), gt),
            hint="every anchor that ties for a ground truth's highest IoU is positive",
            expected=(t([1, 1, 0]), t([0, 0, 0])),
        ),
        Case(
            "a ground truth that overlaps no anchor makes no positive",
            (t([[0.0, 0, 10, 10], [20, 20, 30, 30]]), t([[100.0, 100, 110, 110]])),
            hint="a best-anchor IoU of 0 is no match",
            expected=(t([0, 0]), t([0, 0])),
        ),
        Case(
            "matched_gt is the ground truth with the highest IoU",
            (
                t([[0.0, 0, 10, 10], [100, 100, 110, 110], [50, 50, 60, 60]]),
                t([[100.0, 100, 110, 110], [0, 0, 10, 10]]),
            ),
            hint="matched_gt[a] = argmax over ground truths of IoU(anchor a, gt)",
            expected=(t([1, 1, 0]), t([1, 0, 0])),
        ),
        Case(
            "no ground truth: every anchor is background",
            (t([[0.0, 0, 10, 10], [5, 5, 15, 15]]), torch.zeros(0, 4)),
            hint="with G = 0 every anchor is negative",
            expected=(t([0, 0]), t([0, 0])),
        ),
        Case(
            "the 8940 inside anchors of an 800 x 800 image, two ground truths",
            _seed_example(),
            hint="expected 18 positives, 7690 negatives and 1232 ignored",
        ),
    ]


def check_label_anchors(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``fn(anchors, gt_boxes) -> (labels, matched_gt)`` (thresholds 0.7 / 0.3)."""
    return run_check(
        "check_label_anchors",
        fn,
        label_anchors_cases(),
        reference=label_anchors,
        compare=_compare_labels,
        verbose=verbose,
        mistakes=LABEL_ANCHORS,
    )
