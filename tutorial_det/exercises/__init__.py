"""Automatic feedback for the lessons' exercises: ``check_*(your_function)`` runs your function on
known answers, edge cases and random inputs, compares it with the reference implementation and,
when a case fails, names the mistake your function makes (from the catalogue of realistic
mistakes in :mod:`tutorial_det.exercises.mistakes`), then shows the smallest failing case with
what was expected and what came back."""

from tutorial_det.exercises.anchors import check_anchor_base, check_grid_anchors
from tutorial_det.exercises.backbones import check_receptive_field
from tutorial_det.exercises.boxes import check_box_iou
from tutorial_det.exercises.core import (
    Case,
    Catalogue,
    CheckResult,
    Mistake,
    compare_tensors,
    run_check,
)
from tutorial_det.exercises.faster_rcnn import (
    check_proposal_targets,
    check_roi_head_loss,
    check_rpn_loss,
    check_to_anchor_order,
)
from tutorial_det.exercises.labelling import check_label_anchors
from tutorial_det.exercises.metrics import check_average_precision
from tutorial_det.exercises.nms import check_nms
from tutorial_det.exercises.roi import check_roi_pool
from tutorial_det.exercises.ssd import check_hard_negative_mining, check_match_priors
from tutorial_det.exercises.training import check_train_epoch
from tutorial_det.exercises.wpod import check_warp_unit_square, check_wpod_loss

__all__ = [
    "Case",
    "Catalogue",
    "CheckResult",
    "Mistake",
    "check_anchor_base",
    "check_average_precision",
    "check_box_iou",
    "check_grid_anchors",
    "check_hard_negative_mining",
    "check_label_anchors",
    "check_match_priors",
    "check_nms",
    "check_proposal_targets",
    "check_receptive_field",
    "check_roi_head_loss",
    "check_roi_pool",
    "check_rpn_loss",
    "check_to_anchor_order",
    "check_train_epoch",
    "check_warp_unit_square",
    "check_wpod_loss",
    "compare_tensors",
    "run_check",
]
