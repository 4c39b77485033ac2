"""Checks for the non-maximum suppression exercise of the RPN lesson."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial

import torch

from tutorial_det.exercises.core import Case, CheckResult, compare_tensors, run_check
from tutorial_det.exercises.mistakes.nms import NMS
from tutorial_det.nms import nms

_compare_kept = partial(compare_tensors, exact_dtype=True)


def _any_tie_order(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> Callable:
    """A comparison that accepts the result of any order of visiting boxes of equal score."""
    right = []
    for order in itertools.permutations(range(len(scores))):
        ranked = torch.tensor(sorted(order, key=lambda i: -float(scores[i])))  # ties as in order
        visit_in_this_order = torch.arange(len(ranked), 0, -1, dtype=torch.float32)
        right.append(ranked[nms(boxes[ranked], visit_in_this_order, iou_threshold)])

    def compare(got, expected):
        if any(_compare_kept(got, answer) is None for answer in right):
            return None
        return _compare_kept(got, expected)

    return compare


def _proposals(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    centre = torch.rand(n, 2, generator=generator) * 400
    size = torch.rand(n, 2, generator=generator) * 150 + 10
    boxes = torch.cat((centre - size / 2, centre + size / 2), dim=1)
    return boxes, torch.rand(n, generator=generator)


def nms_cases() -> list[Case]:
    """Cases for ``fn(boxes [N, 4], scores [N], iou_threshold) -> kept indices [K]`` (int64,
    decreasing score, torchvision.ops.nms's contract)."""
    t = torch.tensor
    square = [0.0, 0, 10, 10]
    g = torch.Generator().manual_seed(0)
    return [
        Case("one box", (t([square]), t([0.5]), 0.5), expected=t([0])),
        Case(
            "sort by the scores, not by the indices",
            (t([square, [0.0, 0, 10, 11]]), t([0.1, 0.9]), 0.5),
            hint="the boxes are visited in decreasing order of score",
            expected=t([1]),
        ),
        Case(
            "the best box is visited first",
            (
                t([[5.0, 5, 105, 105], [0, 0, 100, 100], [200, 200, 300, 300]]),
                t([0.9, 0.2, 0.5]),
                0.7,
            ),
            hint="box 0 (score 0.9) suppresses box 1 (IoU 0.82); box 2 overlaps neither",
            expected=t([0, 2]),
        ),
        Case(
            "kept indices come out best first",
            (t([square, [20.0, 0, 30, 10], [40.0, 0, 50, 10]]), t([0.2, 0.9, 0.5]), 0.5),
            hint="the indices come out in the order they were kept (decreasing score)",
            expected=t([1, 2, 0]),
        ),
        Case(
            "suppress only when IoU > threshold",
            (t([[0.0, 0, 2, 1], [0.0, 0, 1, 1]]), t([0.9, 0.8]), 0.5),
            hint="these two boxes have IoU exactly 0.5: a box is dropped only when its IoU is "
            "strictly greater than the threshold",
            expected=t([0, 1]),
        ),
        Case(
            "no '+1' in widths and areas",
            (t([[0.0, 0, 2, 2], [1.0, 0, 3, 2]]), t([0.8, 0.9]), 0.4),
            hint="IoU here is 2 / 6 = 0.33 (with a '+1' it would be 6 / 12 = 0.5)",
            expected=t([1, 0]),
        ),
        Case(
            "only kept boxes suppress",
            (t([square, [4.0, 0, 14, 10], [8.0, 0, 18, 10]]), t([0.9, 0.8, 0.7]), 0.3),
            hint="box 1 is suppressed by box 0, so it must not suppress box 2 (IoU(0, 2) = 0.11)",
            expected=t([0, 2]),
        ),
        Case(
            "equal scores: either of two identical boxes may stay",
            (t([square, square, [20.0, 0, 30, 10]]), t([0.5, 0.5, 0.5]), 0.5),
            hint="boxes of equal score may be visited in any order (torchvision does not fix it)",
            expected=t([0, 2]),
            compare=_any_tie_order(t([square, square, [20.0, 0, 30, 10]]), t([0.5] * 3), 0.5),
        ),
        Case(
            "threshold 0 and touching boxes",
            (t([square, [10.0, 0, 20, 10], [9.0, 0, 19, 10]]), t([0.9, 0.8, 0.7]), 0.0),
            hint="touching boxes have IoU 0, which is not > 0; any real overlap is",
            expected=t([0, 1]),
        ),
        Case(
            "threshold 1 keeps identical boxes",
            (t([square, square]), t([0.9, 0.8]), 1.0),
            hint="identical boxes have IoU 1, which is not > 1",
            expected=t([0, 1]),
        ),
        Case(
            "zero-area boxes",
            (t([[5.0, 5, 5, 5], [5.0, 5, 5, 5]]), t([0.9, 0.8]), 0.5),
            hint="two empty boxes have IoU 0, so both stay",
            expected=t([0, 1]),
        ),
        Case(
            "no boxes",
            (torch.zeros(0, 4), torch.zeros(0), 0.5),
            hint="zero boxes give an empty int64 tensor",
            expected=torch.zeros(0, dtype=torch.int64),
        ),
        Case("200 random boxes, threshold 0.7", (*_proposals(200, g), 0.7)),
        Case("200 random boxes, threshold 0.3", (*_proposals(200, g), 0.3)),
    ]


def check_nms(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``fn(boxes [N, 4], scores [N], iou_threshold) -> kept indices``."""
    return run_check(
        "check_nms",
        fn,
        nms_cases(),
        reference=nms,
        compare=_compare_kept,
        verbose=verbose,
        mistakes=NMS,
    )
