"""Checks for the anchor exercises of lesson 02."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tutorial_det.anchors import anchor_base, grid_anchors
from tutorial_det.exercises.core import Case, CheckResult, run_check
from tutorial_det.exercises.mistakes.anchors import ANCHOR_BASE, GRID_ANCHORS

#: The nine default anchors (stride 16, ratios 0.5/1/2, scales 8/16/32), xyxy.
DEFAULT_ANCHOR_BASE = torch.tensor(
    [
        [-82.50967, -37.254833, 98.50967, 53.254833],
        [-173.01933, -82.50967, 189.01933, 98.50967],
        [-354.03867, -173.01933, 370.03867, 189.01933],
        [-56.0, -56.0, 72.0, 72.0],
        [-120.0, -120.0, 136.0, 136.0],
        [-248.0, -248.0, 264.0, 264.0],
        [-37.254833, -82.50967, 53.254833, 98.50967],
        [-82.50967, -173.01933, 98.50967, 189.01933],
        [-173.01933, -354.03867, 189.01933, 370.03867],
    ]
)


def anchor_base_cases() -> list[Case]:
    """Cases for ``fn(stride, ratios, scales) -> [len(ratios) * len(scales), 4]`` xyxy."""
    return [
        Case(
            "one square anchor",
            (16, (1.0,), (2,)),
            hint="a square anchor of scale 2 at stride 16 is 32 x 32, centred on (8, 8)",
            expected=torch.tensor([[-8.0, -8.0, 24.0, 24.0]]),
        ),
        Case(
            "ratio 2 means twice as high as wide",
            (16, (2.0,), (1,)),
            hint="ratio = h / w: h = stride * scale * sqrt(ratio), w = stride * scale / sqrt(ratio)",
        ),
        Case(
            "centre on the first cell's centre (stride / 2, stride / 2)",
            (32, (1.0,), (1,)),
            hint="the first cell covers pixels 0..stride, so its centre is stride / 2, not 0",
        ),
        Case(
            "order: ratio by ratio, scale by scale within a ratio",
            (8, (0.5, 1.0), (1, 2, 4)),
            hint="anchor i * len(scales) + j has ratios[i] and scales[j]: loop over ratios outside",
        ),
        Case(
            "Faster R-CNN's nine anchors",
            (16, (0.5, 1.0, 2.0), (8, 16, 32)),
            hint="the columns are x1, y1, x2, y2 (xyxy), not y1, x1, y2, x2",
            expected=DEFAULT_ANCHOR_BASE,
        ),
    ]


def check_anchor_base(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``fn(stride, ratios, scales) -> [A, 4]`` xyxy first-cell anchors."""
    return run_check(
        "check_anchor_base",
        fn,
        anchor_base_cases(),
        reference=anchor_base,
        verbose=verbose,
        mistakes=ANCHOR_BASE,
    )


def grid_anchors_cases() -> list[Case]:
    """Cases for ``fn(base [A, 4], feature_size (H, W), stride) -> [H * W * A, 4]`` xyxy."""
    one = anchor_base(16, (1.0,), (1,))
    return [
        Case(
            "one anchor, one cell",
            (one, (1, 1), 16),
            hint="the first cell's anchors are the base itself",
            expected=one,
        ),
        Case(
            "one anchor, 1 row x 3 columns",
            (one, (1, 3), 16),
            hint="moving one column right adds stride to x1 and x2",
        ),
        Case(
            "one anchor, 3 rows x 1 column",
            (one, (3, 1), 16),
            hint="moving one row down adds stride to y1 and y2",
        ),
        Case(
            "row-major order on a 2 x 3 grid",
            (one, (2, 3), 16),
            hint=(
                "anchor i * W + j must sit in row i, column j: loop over rows (y) outside and "
                "columns (x) inside. Looping over x outside (column-major, as the walkthrough "
                "does) puts anchors and the head's (N, H, W, A) predictions at different places"
            ),
        ),
        Case(
            "nine anchors per cell on a 4 x 5 grid",
            (anchor_base(), (4, 5), 16),
            hint="all A anchors of a cell come together: index (i * W + j) * A + a",
        ),
        Case(
            "stride 32",
            (anchor_base(32, (0.5, 1.0, 2.0), (4,)), (3, 2), 32),
            hint="the shift between cells is the stride passed in, not a fixed 16",
        ),
        Case(
            "empty feature map",
            (anchor_base(), (0, 5), 16),
            hint="H = 0 rows should give an empty [0, 4] tensor",
            expected=torch.zeros(0, 4),
        ),
    ]


def check_grid_anchors(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``fn(base, feature_size, stride) -> [H * W * A, 4]`` (row, column, anchor)."""
    return run_check(
        "check_grid_anchors",
        fn,
        grid_anchors_cases(),
        reference=grid_anchors,
        verbose=verbose,
        mistakes=GRID_ANCHORS,
    )
