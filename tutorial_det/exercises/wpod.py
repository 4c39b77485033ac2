"""Checks for the WPOD-Net exercises of lesson 08: the warped unit square and the loss."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from tutorial_det.exercises.core import Case, CheckResult, run_check
from tutorial_det.exercises.mistakes.wpod import WARP_UNIT_SQUARE, WPOD_LOSS
from tutorial_det.wpod.geometry import UNIT_SQUARE, warp_unit_square
from tutorial_det.wpod.loss import wpod_loss


def warp_unit_square_cases() -> list[Case]:
    """Affine values ``[..., 6]`` whose warped unit-square corners ``[..., 4, 2]`` are known."""
    t = torch.tensor
    g = torch.Generator().manual_seed(0)
    return [
        Case(
            "identity",
            (t([1.0, 0, 0, 0, 1, 0]),),
            hint="corners in the order top-left (-0.5, -0.5), top-right, bottom-right, bottom-left",
            expected=UNIT_SQUARE.clone(),
        ),
        Case(
            "scale x by 4, y by 2, shift by (1, -3)",
            (t([4.0, 0, 1, 0, 2, -3]),),
            hint="x = a qx + b qy + tx and y = c qx + d qy + ty",
            expected=t([[-1.0, -4.0], [3.0, -4.0], [3.0, -2.0], [-1.0, -2.0]]),
        ),
        Case(
            "shear: b = 1 adds y to x",
            (t([1.0, 1, 0, 0, 1, 0]),),
            expected=t([[-1.0, -0.5], [0.0, -0.5], [1.0, 0.5], [0.0, 0.5]]),
        ),
        Case(
            "negative diagonal terms",
            (t([-2.0, 0, 0, 0, -1, 0]),),
            hint="the diagonal terms a and d are clamped at 0",
            expected=torch.zeros(4, 2),
        ),
        Case(
            "a batch [2, 3, 6] of random maps",
            (torch.randn(2, 3, 6, generator=g),),
            hint="any leading batch shape goes through: [..., 6] -> [..., 4, 2]",
        ),
        Case(
            "inputs on another device",
            (torch.randn(2, 3, 6, generator=g),),
            hint="every tensor used lives on the inputs' device",
            on_other_device=True,
        ),
    ]


def check_warp_unit_square(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``fn(affine [..., 6]) -> corners [..., 4, 2]``."""
    return run_check(
        "check_warp_unit_square",
        fn,
        warp_unit_square_cases(),
        reference=warp_unit_square,
        verbose=verbose,
        mistakes=WARP_UNIT_SQUARE,
    )


def _cell(p_object: float, affine: list[float], flag: float, corners: list[float]):
    pred = torch.tensor([p_object, 1 - p_object, *affine]).reshape(1, 8, 1, 1)
    target = torch.tensor([flag, *corners]).reshape(1, 9, 1, 1)
    return pred, target


def wpod_loss_cases() -> list[Case]:
    """``(pred [B, 8, H, W], target [B, 9, H, W])`` pairs with known mean-over-images losses."""
    square = UNIT_SQUARE.flatten().tolist()
    shifted = (UNIT_SQUARE + torch.tensor([0.1, 0.0])).flatten().tolist()
    identity = [1.0, 0, 0, 0, 1, 0]
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(3, 2, 4, 5, generator=g), dim=1)
    pred = torch.cat((probs, torch.randn(3, 6, 4, 5, generator=g)), dim=1)
    flag = (torch.rand(3, 1, 4, 5, generator=g) < 0.3).float()
    target = torch.cat((flag, torch.randn(3, 8, 4, 5, generator=g) * flag), dim=1)
    return [
        Case(
            "one object cell, corners off by 0.1 in x",
            _cell(0.8, identity, 1.0, shifted),
            hint="object cell: L1 over the 8 corner coordinates (4 * 0.1) plus -log(p_object)",
            expected=torch.tensor(0.4 - math.log(0.8)),
        ),
        Case(
            "one background cell",
            _cell(0.8, [3.0, 1, 2, 3, 4, 5], 0.0, shifted),
            hint="a background cell costs only -log(p_not_object); its affine values do not count",
            expected=torch.tensor(-math.log(0.2)),
        ),
        Case(
            "negative diagonal term",
            _cell(1.0, [-2.0, 0, 0, 0, 1, 0], 1.0, square),
            hint="the diagonal terms a and d are clamped at 0 before warping the square",
            expected=torch.tensor(2.0),
        ),
        Case(
            "probability exactly 0 on an object cell",
            _cell(0.0, identity, 1.0, square),
            hint="probabilities are clamped to at least 1e-9 inside the log",
            expected=torch.tensor(-math.log(1e-9)),
        ),
        Case(
            "random batch of 3 images, 4 x 5 cells",
            (pred, target),
            hint="sum over the cells of each image, then average over the images",
        ),
        Case(
            "inputs on another device",
            (pred, target),
            hint="every tensor used lives on the inputs' device",
            on_other_device=True,
        ),
    ]


def check_wpod_loss(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``fn(pred [B, 8, H, W], target [B, 9, H, W]) -> scalar`` (mean over
    images of the per-image sums)."""
    return run_check(
        "check_wpod_loss",
        fn,
        wpod_loss_cases(),
        reference=wpod_loss,
        verbose=verbose,
        mistakes=WPOD_LOSS,
    )
