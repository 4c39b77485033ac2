"""Checks for the SSD lesson's exercises (lesson 07): prior matching and hard negative mining."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tutorial_det.exercises.core import Case, CheckResult, run_check
from tutorial_det.exercises.mistakes.ssd import HARD_NEGATIVE_MINING, MATCH_PRIORS
from tutorial_det.labelling import match_priors
from tutorial_det.ssd import hard_negative_mask


def _mining_reference(background_loss, positive, neg_pos_ratio):
    return hard_negative_mask(background_loss, positive, neg_pos_ratio)


def hard_negative_mining_cases() -> list[Case]:
    """Cases for ``fn(background_loss [B, P], positive [B, P] bool, neg_pos_ratio) -> [B, P]
    bool``. Losses are distinct, so the answer does not depend on how ties are broken."""
    t = torch.tensor
    g = torch.Generator().manual_seed(7)
    losses = torch.rand(4, 300, generator=g)
    positives = torch.rand(4, 300, generator=g) < 0.03
    positives[3] = False
    return [
        Case(
            "one positive: the three negatives with the highest loss",
            (
                t([[0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.05, 0.4]]),
                t([[1, 0, 0, 0, 0, 0, 0, 0]]).bool(),
                3,
            ),
            hint="the 3 x positives negatives with the highest loss are kept",
            expected=t([[0, 1, 0, 1, 0, 1, 0, 0]]).bool(),
        ),
        Case(
            "a positive is never a negative, whatever its loss",
            (t([[5.0, 0.9, 0.3, 0.7, 0.2, 0.8]]), t([[1, 0, 0, 0, 0, 0]]).bool(), 3),
            hint="only negatives are ranked",
            expected=t([[0, 1, 0, 1, 0, 1]]).bool(),
        ),
        Case(
            "fewer negatives than 3 x positives: every negative is kept",
            (t([[0.5, 0.4, 0.3, 0.2, 0.1, 0.6]]), t([[1, 1, 0, 0, 1, 0]]).bool(), 3),
            hint="the quota is min(3 x positives, number of negatives)",
            expected=t([[0, 0, 1, 1, 0, 1]]).bool(),
        ),
        Case(
            "an image without positives keeps no negatives",
            (t([[0.5, 0.4, 0.3, 0.2]]), t([[0, 0, 0, 0]]).bool(), 3),
            hint="3 x 0 positives = 0 negatives",
            expected=t([[0, 0, 0, 0]]).bool(),
        ),
        Case(
            "per image, not across the batch",
            (
                t(
                    [
                        [0.1, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0],
                        [0.1, 0.5, 0.4, 0.3, 0.2, 0.15, 0.25, 0.05],
                    ]
                ),
                t([[1, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]]).bool(),
                3,
            ),
            hint="each image keeps 3 x its own positives (the first image's losses are larger)",
            expected=t([[0, 1, 1, 1, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0, 0, 0]]).bool(),
        ),
        Case(
            "neg_pos_ratio = 1",
            (t([[0.1, 0.9, 0.3, 0.7, 0.2, 0.8]]), t([[1, 0, 0, 0, 1, 0]]).bool(), 1),
            hint="neg_pos_ratio negatives per positive",
            expected=t([[0, 1, 0, 0, 0, 1]]).bool(),
        ),
        Case(
            "four images of 300 priors, random losses (the last image has no positive)",
            (losses, positives, 3),
            hint="each image keeps min(3 x positives, negatives) negatives",
        ),
        Case(
            "inputs on another device",
            (losses, positives, 3),
            hint="every tensor made inside lives on the inputs' device",
            on_other_device=True,
        ),
    ]


def check_hard_negative_mining(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``fn(background_loss, positive, neg_pos_ratio) -> kept negatives``
    (``[B, P]`` float, ``[B, P]`` bool, a number -> ``[B, P]`` bool), mined per image."""
    return run_check(
        "check_hard_negative_mining",
        fn,
        hard_negative_mining_cases(),
        reference=_mining_reference,
        verbose=verbose,
        mistakes=HARD_NEGATIVE_MINING,
    )


def match_priors_cases() -> list[Case]:
    """Cases for ``fn(priors [P, 4], gt_boxes [G, 4]) -> matched [P]`` (IoU threshold 0.5)."""
    t = torch.tensor
    gt = t([[0.0, 0, 10, 10]])
    g = torch.Generator().manual_seed(3)
    xy = torch.rand(40, 2, generator=g) * 100
    priors = torch.cat((xy, xy + 10 + torch.rand(40, 2, generator=g) * 30), dim=1)
    gxy = torch.rand(3, 2, generator=g) * 80
    gts = torch.cat((gxy, gxy + 15 + torch.rand(3, 2, generator=g) * 20), dim=1)
    return [
        Case(
            "priors with IoU >= 0.5 match, the threshold is inclusive",
            # IoU 1, 0.5 exactly, 0.4, 0.
            (t([[0.0, 0, 10, 10], [0, 0, 10, 20], [0, 0, 4, 10], [50, 50, 60, 60]]), gt),
            hint="matched = index of the best ground truth where IoU >= 0.5, else -1",
            expected=t([0, 0, -1, -1]),
        ),
        Case(
            "a ground truth's best prior matches even below 0.5",
            # IoU 0.4 and 0.2: no prior reaches 0.5; the first is the best.
            (t([[0.0, 0, 4, 10], [0, 0, 2, 10]]), gt),
            hint="each object takes its best prior, whatever that IoU",
            expected=t([0, -1]),
        ),
        Case(
            "each prior takes its best ground truth",
            (
                t([[0.0, 0, 10, 10], [100, 100, 110, 110], [50, 50, 60, 60]]),
                t([[100.0, 100, 110, 110], [0, 0, 10, 10]]),
            ),
            hint="a prior takes the object it overlaps most",
            expected=t([1, 0, -1]),
        ),
        Case(
            "two objects with the same best prior get different priors",
            # Both ground truths overlap prior 0 most, ground truth 1 more (IoU 0.8 vs 0.54), so
            # it takes prior 0 and ground truth 0 takes its next best, prior 1 (IoU 0.33).
            (
                t([[0.0, 0, 10, 10], [-8, 0, 2, 10]]),
                t([[-3.0, 0, 7, 10], [0, 0, 8, 10]]),
            ),
            hint="rule 1 is greedy: the highest IoU in the whole matrix first, then that object "
            "and that prior leave the matrix",
            expected=t([1, 0]),
        ),
        Case(
            "a prior forced to its object keeps it",
            # Object 1 takes prior 1 (IoU 1), then object 0 its best left, prior 0 (IoU 0.75),
            # although prior 0 overlaps object 1 more (IoU 0.8).
            (t([[0.0, 0, 10, 8], [0, 0, 10, 10]]), t([[0.0, 0, 10, 6], [0, 0, 10, 10]])),
            hint="rule 2 gives a prior its best object only where rule 1 gave it none",
            expected=t([0, 1]),
        ),
        Case(
            "an object that overlaps no prior gets none",
            (t([[0.0, 0, 10, 10], [20, 20, 30, 30]]), t([[100.0, 100, 110, 110]])),
            hint="rule 1 stops when the highest IoU left is 0",
            expected=t([-1, -1]),
        ),
        Case(
            "no ground truth: every prior is background",
            (t([[0.0, 0, 10, 10], [5, 5, 15, 15]]), torch.zeros(0, 4)),
            hint="with G = 0 every prior is background (-1)",
            expected=t([-1, -1]),
        ),
        Case("40 random priors, 3 random objects", (priors, gts)),
    ]


def check_match_priors(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``fn(priors, gt_boxes) -> matched`` (``[P, 4]``, ``[G, 4]`` xyxy ->
    ``[P]`` int64 ground-truth index or -1), SSD's matching at IoU 0.5."""
    return run_check(
        "check_match_priors",
        fn,
        match_priors_cases(),
        reference=match_priors,
        verbose=verbose,
        mistakes=MATCH_PRIORS,
    )
