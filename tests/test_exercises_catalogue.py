"""Every catalogued mistake fails its check, and the check names it, first, in one sentence."""

from __future__ import annotations

import re
from functools import partial

import pytest

from tutorial_det.exercises import (
    check_anchor_base,
    check_average_precision,
    check_box_iou,
    check_grid_anchors,
    check_hard_negative_mining,
    check_label_anchors,
    check_match_priors,
    check_nms,
    check_proposal_targets,
    check_receptive_field,
    check_roi_head_loss,
    check_roi_pool,
    check_rpn_loss,
    check_to_anchor_order,
    check_train_epoch,
    check_warp_unit_square,
    check_wpod_loss,
)
from tutorial_det.exercises.mistakes.anchors import ANCHOR_BASE, GRID_ANCHORS
from tutorial_det.exercises.mistakes.backbones import RECEPTIVE_FIELD
from tutorial_det.exercises.mistakes.boxes import BOX_IOU
from tutorial_det.exercises.mistakes.faster_rcnn import (
    PROPOSAL_TARGETS,
    ROI_HEAD_LOSS,
    RPN_LOSS,
    TO_ANCHOR_ORDER,
)
from tutorial_det.exercises.mistakes.labelling import LABEL_ANCHORS
from tutorial_det.exercises.mistakes.metrics import AVERAGE_PRECISION
from tutorial_det.exercises.mistakes.nms import NMS
from tutorial_det.exercises.mistakes.roi import ROI_POOL
from tutorial_det.exercises.mistakes.ssd import HARD_NEGATIVE_MINING, MATCH_PRIORS
from tutorial_det.exercises.mistakes.training import TRAIN_EPOCH
from tutorial_det.exercises.mistakes.wpod import WARP_UNIT_SQUARE, WPOD_LOSS

#: Each check with its catalogue, under the name its report starts with.
CHECKS = {
    "check_box_iou": (check_box_iou, BOX_IOU),
    "check_receptive_field": (check_receptive_field, RECEPTIVE_FIELD),
    "check_anchor_base": (check_anchor_base, ANCHOR_BASE),
    "check_grid_anchors": (check_grid_anchors, GRID_ANCHORS),
    "check_label_anchors": (check_label_anchors, LABEL_ANCHORS),
    "check_nms": (check_nms, NMS),
    "check_to_anchor_order": (check_to_anchor_order, TO_ANCHOR_ORDER),
    "check_roi_pool": (check_roi_pool, ROI_POOL),
    "check_proposal_targets": (check_proposal_targets, PROPOSAL_TARGETS),
    "check_rpn_loss": (check_rpn_loss, RPN_LOSS),
    "check_roi_head_loss": (check_roi_head_loss, ROI_HEAD_LOSS),
    "check_match_priors": (check_match_priors, MATCH_PRIORS),
    "check_hard_negative_mining": (check_hard_negative_mining, HARD_NEGATIVE_MINING),
    "check_warp_unit_square": (check_warp_unit_square, WARP_UNIT_SQUARE),
    "check_wpod_loss": (check_wpod_loss, WPOD_LOSS),
    "check_train_epoch": (check_train_epoch, TRAIN_EPOCH),
    **{
        f"check_average_precision ({method})": (
            partial(check_average_precision, method=method),
            catalogue,
        )
        for method, catalogue in AVERAGE_PRECISION.items()
    },
}

MISTAKES = [
    pytest.param(name, mistake, id=f"{name}-{mistake.name}")
    for name, (_, catalogue) in CHECKS.items()
    for mistake in catalogue
]


@pytest.mark.parametrize(("name", "mistake"), MISTAKES)
def test_each_mistake_fails_and_is_named_first(name, mistake):
    check, _ = CHECKS[name]
    result = check(mistake.fn, verbose=False)
    assert not result, f"{mistake.name} passes {name}"
    assert result.causes and result.causes[0] is mistake, result.report()
    assert result.headline == f"{name}: {mistake.cause}"


@pytest.mark.parametrize("name", CHECKS)
def test_every_check_has_at_least_four_mistakes_with_distinct_names(name):
    _, catalogue = CHECKS[name]
    names = [mistake.name for mistake in catalogue]
    assert len(names) >= 4 and len(set(names)) == len(names)


@pytest.mark.parametrize(("name", "mistake"), MISTAKES)
def test_each_cause_is_one_short_sentence(name, mistake):
    cause = mistake.cause
    assert cause[0].isupper() and cause.endswith(".") and len(cause) <= 200, cause
    # a full stop followed by a capital would start a second sentence
    assert not re.search(r"\. [A-Z]", cause), cause
