"""Checks for the RoI pooling exercise of the RoI lesson."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tutorial_det.exercises.core import Case, CheckResult, run_check
from tutorial_det.exercises.mistakes.roi import ROI_POOL
from tutorial_det.roi_pool import roi_pool


def _ramp(height: int, width: int) -> torch.Tensor:
    """A ``[1, 1, H, W]`` map whose cell (y, x) holds ``y * W + x``: every max is easy to read."""
    return torch.arange(height * width, dtype=torch.float32).view(1, 1, height, width)


def roi_pool_cases() -> list[Case]:
    """Cases for ``fn(features [B, C, H, W], rois [K, 5], output_size, spatial_scale) ->
    [K, C, h, w]`` (torchvision.ops.roi_pool's contract)."""
    t = torch.tensor
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 8, 12, 12, generator=g)
    corners = (torch.rand(20, 4, generator=g) * 220 - 10).sort(dim=1).values[:, [0, 1, 3, 2]]
    random_rois = torch.cat((torch.randint(0, 2, (20, 1), generator=g).float(), corners), 1)
    return [
        Case(
            "whole 4 x 4 map into 2 x 2 bins",
            (_ramp(4, 4), t([[0.0, 0, 0, 3, 3]]), 2, 1.0),
            hint="each bin takes the max of its cells",
            expected=t([[[[5.0, 7], [13, 15]]]]),
        ),
        Case(
            "the RoI includes its last cell",
            (_ramp(1, 6), t([[0.0, 0, 0, 3, 0]]), (1, 2), 1.0),
            hint="corners x1 = 0 and x2 = 3 cover cells 0, 1, 2, 3: x2 - x1 + 1 cells",
            expected=t([[[[1.0, 3]]]]),
        ),
        Case(
            "round the scaled corners, don't truncate",
            (_ramp(1, 8), t([[0.0, 7, 0, 7, 0]]), 1, 0.25),
            hint="7 * 0.25 = 1.75 rounds to cell 2",
            expected=t([[[[2.0]]]]),
        ),
        Case(
            "halves round away from zero",
            (_ramp(1, 8), t([[0.0, 5, 0, 5, 0]]), 1, 0.5),
            hint="5 * 0.5 = 2.5 is cell 3 (halves away from zero, C's round)",
            expected=t([[[[3.0]]]]),
        ),
        Case(
            "bins start at floor and end at ceil",
            (_ramp(1, 5), t([[0.0, 0, 0, 4, 0]]), (1, 2), 1.0),
            hint="5 cells in 2 bins of 2.5: cells floor(0)..ceil(2.5) - 1 = 0..2 and "
            "floor(2.5)..ceil(5) - 1 = 2..4 (neighbouring bins may share a cell)",
            expected=t([[[[2.0, 4]]]]),
        ),
        Case(
            "a RoI smaller than one cell",
            (_ramp(3, 3), t([[0.0, 16, 16, 20, 20]]), 2, 1 / 16),
            hint="both corners round to cell 1: the RoI is at least 1 cell wide and high, and "
            "every bin of it is that cell",
            expected=t([[[[4.0, 4], [4, 4]]]]),
        ),
        Case(
            "bins off the map are 0",
            (_ramp(2, 2) - 10, t([[0.0, 1, 0, 2, 1], [0, 10, 10, 20, 20]]), (1, 2), 1.0),
            hint="each bin is clamped to the map; a bin with no cells left is 0",
            expected=t([[[[-7.0, 0]]], [[[0.0, 0]]]]),
        ),
        Case(
            "column 0 is the image index",
            (
                torch.cat((_ramp(2, 2), -_ramp(2, 2))),
                t([[1.0, 0, 0, 1, 1], [0, 0, 0, 1, 1]]),
                1,
                1.0,
            ),
            hint="rois[k, 0] says which image of the batch RoI k is on",
            expected=t([[[[0.0]]], [[[3.0]]]]),
        ),
        Case(
            "output_size is (height, width)",
            (_ramp(4, 6), t([[0.0, 0, 0, 5, 3]]), (2, 3), 1.0),
            hint="split the RoI's rows into output_size[0] bins and its columns into "
            "output_size[1]",
        ),
        Case(
            "20 random RoIs on a 2 x 8 x 12 x 12 batch, stride 16",
            (features, random_rois, 7, 1 / 16),
        ),
    ]


def check_roi_pool(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``fn(features, rois [K, 5], output_size, spatial_scale) -> [K, C, h, w]``
    RoI max pooling."""
    return run_check(
        "check_roi_pool",
        fn,
        roi_pool_cases(),
        reference=roi_pool,
        verbose=verbose,
        mistakes=ROI_POOL,
    )
