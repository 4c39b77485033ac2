"""Checks for the box exercises of lesson 00."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tutorial_det.boxes import box_iou
from tutorial_det.exercises.core import Case, CheckResult, run_check
from tutorial_det.exercises.mistakes.boxes import BOX_IOU


def _random_boxes(n: int, generator: torch.Generator, size: float = 100.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator) * size
    wh = torch.rand(n, 2, generator=generator) * size / 2
    return torch.cat((xy, xy + wh), dim=1)


def box_iou_cases() -> list[Case]:
    """Known answers, edge cases and random boxes for an IoU function ``[N, 4] x [M, 4] -> [N, M]``."""
    t = torch.tensor
    g = torch.Generator().manual_seed(0)
    return [
        Case(
            "identical boxes", (t([[0.0, 0, 10, 10]]), t([[0.0, 0, 10, 10]])), expected=t([[1.0]])
        ),
        Case(
            "disjoint boxes",
            (t([[0.0, 0, 10, 10]]), t([[20.0, 20, 30, 30]])),
            hint="boxes apart in x and in y have intersection 0",
            expected=t([[0.0]]),
        ),
        Case(
            "half overlap",
            (t([[0.0, 0, 10, 10]]), t([[5.0, 0, 15, 10]])),
            hint="the union is area(a) + area(b) - intersection",
            expected=t([[50.0 / 150.0]]),
        ),
        Case(
            "one box inside the other",
            (t([[0.0, 0, 10, 10]]), t([[2.0, 2, 4, 4]])),
            expected=t([[0.04]]),
        ),
        Case(
            "boxes touching along an edge",
            (t([[0.0, 0, 10, 10]]), t([[10.0, 0, 20, 10]])),
            hint="no '+1': the box (0, 0, 10, 10) is 10 pixels wide, so boxes that touch overlap by 0",
            expected=t([[0.0]]),
        ),
        Case(
            "overlap in x only",
            (t([[0.0, 0, 10, 10]]), t([[5.0, 20, 15, 30]])),
            hint="both the x and the y overlap must be positive",
            expected=t([[0.0]]),
        ),
        Case(
            "zero-area boxes",
            (t([[5.0, 5, 5, 5], [0, 0, 10, 10]]), t([[5.0, 5, 5, 5]])),
            hint="when the union is 0 the IoU is 0, not 0 / 0 = NaN",
            expected=t([[0.0], [0.0]]),
        ),
        Case(
            "no boxes on one side",
            (torch.zeros(0, 4), t([[0.0, 0, 10, 10], [1, 1, 2, 2]])),
            hint="N = 0 boxes give an empty [0, M] matrix",
            expected=torch.zeros(0, 2),
        ),
        Case(
            "several boxes each side (rows = first argument)",
            (
                t([[0.0, 0, 10, 10], [0, 0, 20, 20]]),
                t([[0.0, 0, 10, 10], [0, 0, 5, 5], [50, 50, 60, 60]]),
            ),
            hint="result[i, j] is IoU(boxes1[i], boxes2[j])",
        ),
        Case("random boxes 30 x 20", (_random_boxes(30, g), _random_boxes(20, g))),
    ]


def check_box_iou(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``fn(boxes1 [N, 4], boxes2 [M, 4]) -> [N, M]`` IoU (xyxy boxes)."""
    return run_check(
        "check_box_iou",
        fn,
        box_iou_cases(),
        reference=box_iou,
        verbose=verbose,
        mistakes=BOX_IOU,
    )
