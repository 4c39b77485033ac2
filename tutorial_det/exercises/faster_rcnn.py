"""Checks for the Faster R-CNN exercises of lessons 04 to 06: lining the RPN's output up with
the anchors, the proposal targets of the RoI head, and the two losses."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from tutorial_det.exercises.core import Case, CheckResult, compare_tensors, run_check
from tutorial_det.exercises.mistakes.faster_rcnn import (
    PROPOSAL_TARGETS,
    ROI_HEAD_LOSS,
    RPN_LOSS,
    TO_ANCHOR_ORDER,
)
from tutorial_det.roi import proposal_targets, roi_head_loss
from tutorial_det.rpn import rpn_loss, to_anchor_order


def _cells(n: int, a: int, k: int, h: int, w: int) -> torch.Tensor:
    """A ``[N, A * k, H, W]`` head output whose every value is distinct and readable:
    image n, anchor a, value c at row i, column j holds ``n * 10000 + i * 1000 + j * 100 + a * 10 + c``."""
    n_, a_, c_, i_, j_ = torch.meshgrid(
        *(torch.arange(v, dtype=torch.float32) for v in (n, a, k, h, w)), indexing="ij"
    )
    values = n_ * 10000 + i_ * 1000 + j_ * 100 + a_ * 10 + c_
    return values.reshape(n, a * k, h, w)


def to_anchor_order_cases() -> list[Case]:
    """Cases for ``fn(output [N, A * k, H, W], k) -> [N, H * W * A, k]``."""
    return [
        Case(
            "one cell, two anchors",
            (_cells(1, 2, 4, 1, 1), 4),
            hint="channels a * k .. a * k + k - 1 are anchor a's values",
        ),
        Case(
            "a 2 x 3 map: rows outside, columns inside",
            (_cells(1, 2, 4, 2, 3), 4),
            hint="row-major cells, as grid_anchors orders its anchors (a square map would hide a "
            "row/column mix-up)",
        ),
        Case(
            "two logits per anchor",
            (_cells(1, 3, 2, 3, 2), 2),
            hint="the same rule with k = 2: [N, 2 A, H, W] -> [N, H * W * A, 2]",
        ),
        Case(
            "a batch of two images",
            (_cells(2, 3, 4, 2, 2), 4),
            hint="the batch dimension stays first and the images' values stay apart",
        ),
        Case(
            "the walkthrough's 50 x 50 map with 9 anchors",
            (torch.randn(1, 36, 50, 50, generator=torch.Generator().manual_seed(0)), 4),
            hint="[1, 36, 50, 50] -> [1, 22500, 4], row (i * 50 + j) * 9 + a for anchor a of cell "
            "(i, j)",
        ),
    ]


def check_to_anchor_order(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check ``fn(output [N, A * k, H, W], k) -> [N, H * W * A, k]`` (row-major cells, then
    anchors, as :func:`tutorial_det.anchors.grid_anchors`)."""
    return run_check(
        "check_to_anchor_order",
        fn,
        to_anchor_order_cases(),
        reference=to_anchor_order,
        verbose=verbose,
        mistakes=TO_ANCHOR_ORDER,
    )


# --------------------------------------------------------------------------- losses


def _compare_pair(got: Any, expected: tuple[torch.Tensor, torch.Tensor]) -> str | None:
    names = ("classification loss", "box loss")
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a pair ({names[0]}, {names[1]}), got {type(got).__name__}"
    for name, value, want in zip(names, got, expected, strict=True):
        problem = compare_tensors(torch.as_tensor(value).detach().reshape(()), want.reshape(()))
        if problem is not None:
            return f"{name}: {problem}"
    return None


def _rpn_batch(seed: int, images: int, anchors: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(-1, 2, (images, anchors), generator=g)
    return (
        torch.randn(images, anchors, 2, generator=g),
        torch.randn(images, anchors, 4, generator=g),
        labels,
        torch.randn(images, anchors, 4, generator=g),
    )


def rpn_loss_cases() -> list[Case]:
    """Cases for ``fn(logits [N, K, 2], deltas [N, K, 4], labels [N, K], target_deltas
    [N, K, 4]) -> (objectness_loss, box_loss)`` with lambda 1 and smooth L1's beta = 1/9."""
    t = torch.tensor
    ln2 = math.log(2)
    return [
        Case(
            "one positive, one negative, one ignored",
            (
                t([[[0.0, 0.0], [0.0, 0.0], [9.0, -9.0]]]),
                t([[[0.5, 0.0, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0], [3.0, 3.0, 3.0, 3.0]]]),
                t([[1, 0, -1]]),
                torch.zeros(1, 3, 4),
            ),
            hint="cross entropy over the labels 0 and 1 only (ignore -1); smooth L1 only on "
            "positives (|x| - beta / 2 = 0.5 - 1/18 here); both divided by the 2 sampled anchors",
            expected=(t(ln2), t((0.5 - 1 / 18) / 2)),
        ),
        Case(
            "the total is label + lambda x box, not label twice",
            (
                t([[[0.0, 0.0]]]),
                t([[[0.0, 0.0, 0.0, 0.0]]]),
                t([[1]]),
                t([[[2.0, 0.0, 0.0, 0.0]]]),
            ),
            hint="the box loss depends on the deltas: here (2 - 1/18) / 1; it is not the "
            "classification loss again",
            expected=(t(ln2), t(2 - 1 / 18)),
        ),
        Case(
            "normalised by the sampled anchors, not by the positives",
            (
                torch.zeros(1, 4, 2),
                torch.zeros(1, 4, 4),
                t([[1, 0, 0, 0]]),
                t([[[1.0, 0.0, 0.0, 0.0]] + [[5.0, 5.0, 5.0, 5.0]] * 3]),
            ),
            hint="4 anchors are sampled, 1 is positive: the box sum (1 - 1/18) is divided by 4",
            expected=(t(ln2), t((1 - 1 / 18) / 4)),
        ),
        Case(
            "a batch is normalised over all its sampled anchors",
            _rpn_batch(0, 2, 50),
            hint="count the sampled anchors of every image together (torchvision's choice)",
        ),
        Case(
            "nothing sampled gives 0, not NaN",
            (torch.zeros(1, 3, 2), torch.zeros(1, 3, 4), t([[-1, -1, -1]]), torch.zeros(1, 3, 4)),
            hint="with no sampled anchor both losses are 0",
            expected=(t(0.0), t(0.0)),
        ),
    ]


def check_rpn_loss(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check ``fn(logits, deltas, labels, target_deltas) -> (objectness, box)`` against
    :func:`tutorial_det.rpn.rpn_loss` (lambda 1, beta 1/9, both divided by the sampled anchors)."""
    return run_check(
        "check_rpn_loss",
        fn,
        rpn_loss_cases(),
        reference=rpn_loss,
        compare=_compare_pair,
        verbose=verbose,
        mistakes=RPN_LOSS,
    )


def roi_head_loss_cases() -> list[Case]:
    """Cases for ``fn(class_logits [S, C], box_deltas [S, C, 4], labels [S], target_deltas
    [S, 4]) -> (classifier_loss, box_loss)`` with smooth L1's beta = 1/9."""
    t = torch.tensor
    g = torch.Generator().manual_seed(1)
    own_class = torch.zeros(2, 3, 4)
    own_class[0, 1] = 9.0  # another class's deltas: must not count
    return [
        Case(
            "the positive's own class only",
            (torch.zeros(2, 3), own_class, t([2, 0]), t([[0.5, 0.0, 0.0, 0.0], [7.0, 7, 7, 7]])),
            hint="compare box_deltas[i, labels[i]] with the target, for positives (label > 0) "
            "only; the negative's target is never read",
            expected=(t(math.log(3)), t((0.5 - 1 / 18) / 2)),
        ),
        Case(
            "normalised by the RoIs sampled here, not by another stage's positives",
            (torch.zeros(4, 2), torch.zeros(4, 2, 4), t([1, 0, 0, 0]), t([[1.0, 0, 0, 0]] * 4)),
            hint="4 RoIs sampled: the box sum 1 - 1/18 is divided by 4 (the RPN's positive count "
            "has nothing to do with this stage)",
            expected=(t(math.log(2)), t((1 - 1 / 18) / 4)),
        ),
        Case(
            "no RoI sampled gives 0, not NaN",
            (torch.zeros(0, 3), torch.zeros(0, 3, 4), t([], dtype=torch.int64), torch.zeros(0, 4)),
            hint="with S = 0 both losses are 0",
            expected=(t(0.0), t(0.0)),
        ),
        Case(
            "random batch",
            (
                torch.randn(64, 5, generator=g),
                torch.randn(64, 5, 4, generator=g),
                torch.randint(0, 5, (64,), generator=g),
                torch.randn(64, 4, generator=g),
            ),
        ),
    ]


def check_roi_head_loss(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check ``fn(class_logits, box_deltas, labels, target_deltas) -> (classifier, box)`` against
    :func:`tutorial_det.roi.roi_head_loss`."""
    return run_check(
        "check_roi_head_loss",
        fn,
        roi_head_loss_cases(),
        reference=roi_head_loss,
        compare=_compare_pair,
        verbose=verbose,
        mistakes=ROI_HEAD_LOSS,
    )


# --------------------------------------------------------------------------- proposal targets


def _sorted_rows(rois, labels, deltas) -> torch.Tensor:
    joined = torch.cat(
        (
            torch.as_tensor(rois, dtype=torch.float64).reshape(-1, 4),
            torch.as_tensor(labels, dtype=torch.float64).reshape(-1, 1),
            torch.as_tensor(deltas, dtype=torch.float64).reshape(-1, 4),
        ),
        dim=1,
    )
    joined = joined.round(decimals=4)
    for column in reversed(range(joined.shape[1])):
        joined = joined[joined[:, column].sort(stable=True).indices]
    return joined


def _compare_targets(got: Any, expected: tuple) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return f"expected a triple (rois, labels, target_deltas), got {type(got).__name__}"
    try:
        mine = _sorted_rows(*got)
    except (TypeError, ValueError, RuntimeError) as error:
        return f"could not read the result as [S, 4], [S], [S, 4] tensors ({error})"
    problem = compare_tensors(mine, _sorted_rows(*expected), atol=1e-3)
    return None if problem is None else f"rows (roi, label, deltas), sorted: {problem}"


def _all_targets(proposals, gt_boxes, gt_labels):
    """The reference with a sample large enough to keep every candidate (no randomness)."""
    return proposal_targets(
        proposals, gt_boxes, gt_labels, batch_size_per_image=10_000, positive_fraction=0.5
    )


def proposal_targets_cases() -> list[Case]:
    """Cases for ``fn(proposals [P, 4], gt_boxes [G, 4], gt_labels [G]) -> (rois, labels,
    target_deltas)`` keeping **every** candidate (no sampling): positives at IoU >= 0.5 with
    their ground truth's class and deltas (weights 10, 10, 5, 5), the rest background."""
    t = torch.tensor
    gt = t([[10.0, 10, 50, 50], [60, 60, 100, 100]])
    g = torch.Generator().manual_seed(2)
    xy = torch.rand(40, 2, generator=g) * 90
    random = torch.cat((xy, xy + torch.rand(40, 2, generator=g) * 40 + 2), dim=1)
    return [
        Case(
            "add the ground truths to the proposals",
            (t([[200.0, 200, 220, 220]]), gt, t([3, 1])),
            hint="the 2 ground truths join the proposals: 3 candidates, two of them positive "
            "(IoU 1) with zero deltas",
        ),
        Case(
            "IoU 0.5 exactly is positive, the class is the ground truth's",
            (t([[10.0, 10, 50, 90], [10, 10, 30, 30]]), gt, t([3, 1])),
            hint="positive when IoU >= 0.5 (0.5 included); label = gt_labels[matched]; "
            "negatives get label 0 and zero deltas",
        ),
        Case(
            "deltas use the weights (10, 10, 5, 5)",
            (t([[12.0, 8, 52, 46]]), gt, t([2, 2])),
            hint="encode_boxes(gt, roi, weights=(10, 10, 5, 5))",
        ),
        Case(
            "no ground truth: everything is background",
            (random[:5], torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)),
            hint="with G = 0 every proposal is background (class 0, zero deltas)",
        ),
        Case("40 random proposals", (random, gt, t([1, 2]))),
    ]


def check_proposal_targets(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check ``fn(proposals, gt_boxes, gt_labels) -> (rois, labels, target_deltas)`` with no
    sampling (every candidate kept; compared as sets of rows, so any order passes)."""
    return run_check(
        "check_proposal_targets",
        fn,
        proposal_targets_cases(),
        reference=_all_targets,
        compare=_compare_targets,
        verbose=verbose,
        mistakes=PROPOSAL_TARGETS,
    )
