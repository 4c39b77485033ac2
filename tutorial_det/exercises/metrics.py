"""Checks for the evaluation exercises of lesson 10."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tutorial_det.exercises.core import Case, CheckResult, run_check
from tutorial_det.exercises.mistakes.metrics import AVERAGE_PRECISION
from tutorial_det.metrics import METHODS, average_precision

_HINTS = {
    "all_points": "sum, over the points where recall grows, (recall step) x (envelope there)",
    "11_points": "average the envelope at the 11 recall levels 0, 0.1, ..., 1 (divide by 11)",
    "coco_101": "average the envelope at the 101 recall levels 0, 0.01, ..., 1 (divide by 101)",
}


def _curve(flags: str, num_gts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(recall, precision) float64 ``[N]`` after each detection of a ranking such as "tftft"."""
    tp = torch.tensor([f == "t" for f in flags], dtype=torch.float64).cumsum(0)
    seen = torch.arange(1, len(flags) + 1, dtype=torch.float64)
    return tp / num_gts, tp / seen


def average_precision_cases(method: str) -> list[Case]:
    """Known answers, edge cases and random rankings for ``fn(recall [N], precision [N]) -> AP``."""
    known = {
        "all_points": 0.7555555555555555,
        "11_points": 0.7636363636363636,
        "coco_101": 0.7564356435643564,
    }
    g = torch.Generator().manual_seed(0)
    random_flags = "".join("tf"[int(v)] for v in torch.rand(40, generator=g) < 0.6)
    t = torch.tensor
    return [
        Case(
            "3 objects, ranking TP FP TP FP TP",
            _curve("tftft", 3),
            hint=_HINTS[method],
            expected=t(known[method], dtype=torch.float64),
        ),
        Case(
            "a perfect detector",
            _curve("tt", 2),
            hint="precision 1 at every recall gives AP 1",
            expected=t(1.0, dtype=torch.float64),
        ),
        Case(
            "precision dips and recovers",
            _curve("tfftt", 4),
            hint="the envelope, precision[i] -> max(precision[i:]), is what is averaged",
        ),
        Case(
            "recall stops at 0.5",
            _curve("ttt", 6),
            hint="recall levels the curve never reaches count with precision 0",
        ),
        Case(
            "recall lands exactly on a level (0.5)",
            _curve("ttf", 4),
            hint="a level r is reached when recall >= r (not > r)",
        ),
        Case(
            "only false positives",
            _curve("fff", 2),
            hint="no true positive: AP is 0, not NaN",
            expected=t(0.0, dtype=torch.float64),
        ),
        Case(
            "no detections at all",
            _curve("", 2),
            hint="an empty curve has AP 0",
            expected=t(0.0, dtype=torch.float64),
        ),
        # 31 objects: no recall k / 31 lands exactly on a level, where float rounding of the
        # levels themselves (0.1 * 3 != 0.3) would decide.
        Case("40 random detections, 31 objects", _curve(random_flags, 31)),
    ]


def check_average_precision(
    fn: Callable, method: str = "all_points", verbose: bool = True
) -> CheckResult:
    """Check a learner's ``fn(recall [N], precision [N]) -> AP`` (a float or 0-d tensor) for one
    of ``"all_points"`` (VOC 2010+), ``"11_points"`` (VOC 2007) or ``"coco_101"`` (COCO)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}")
    return run_check(
        f"check_average_precision ({method})",
        fn,
        average_precision_cases(method),
        reference=lambda recall, precision: average_precision(recall, precision, method),
        verbose=verbose,
        mistakes=AVERAGE_PRECISION[method],
    )
