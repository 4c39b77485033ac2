"""WPOD-Net (Silva and Jung, ECCV 2018): licence plates as affine-warped squares.

Lesson 08 teaches it layer by layer and term by term.

A fully convolutional network predicts, for every 16 x 16-pixel cell, whether a plate is there
and a 2 x 3 affine map that warps a unit square onto the plate's four corners. The package:

- :mod:`~tutorial_det.wpod.network`: the network (:class:`WPODNet`), ``[B, 3, H, W]`` ->
  ``[B, 8, H/16, W/16]``, with a width multiplier;
- :mod:`~tutorial_det.wpod.targets`: alpha, positive cells and the ``[B, 9, H, W]`` targets;
- :mod:`~tutorial_det.wpod.loss`: :func:`wpod_loss` (affine L1 + two log losses);
- :mod:`~tutorial_det.wpod.decode`: :func:`decode_detections` (threshold, corners to pixels, NMS);
- :mod:`~tutorial_det.wpod.geometry`: :func:`warp_unit_square`, :func:`homography`,
  :func:`rectify` (a plate to a frontal picture), :func:`quad_iou`, :func:`quad_area`;
- :mod:`~tutorial_det.wpod.model`: :class:`WPODDetector` in torchvision's contract and
  :func:`build_wpod` (the ``"wpod"`` model of :mod:`tutorial_det.models`);
- :mod:`~tutorial_det.wpod.evaluation`: :func:`evaluate_plates` (detection rate, corner error);
- :mod:`~tutorial_det.wpod.draw`: :func:`draw_quads` (plates on matplotlib axes);
- :mod:`~tutorial_det.wpod.training`: :func:`train_on_plates`, fed by a threaded sample pool.

Corners are always ``[N, 4, 2]`` ``(x, y)`` pixels, top-left, top-right, bottom-right,
bottom-left of the plate as it reads.
"""

from tutorial_det.wpod.decode import decode_detections
from tutorial_det.wpod.draw import draw_quads
from tutorial_det.wpod.evaluation import evaluate_plates
from tutorial_det.wpod.geometry import (
    UNIT_SQUARE,
    check_quads,
    homography,
    quad_area,
    quad_iou,
    rectify,
    warp_unit_square,
)
from tutorial_det.wpod.loss import wpod_loss, wpod_loss_terms
from tutorial_det.wpod.model import WPODDetector, build_wpod
from tutorial_det.wpod.network import STRIDE, WPODNet
from tutorial_det.wpod.targets import (
    PAPER_ALPHA,
    PLATES_ALPHA,
    POS_THRESH,
    alpha_for_sizes,
    encode_targets,
    positive_cells,
)
from tutorial_det.wpod.training import pool_batches, train_on_plates

__all__ = [
    "POS_THRESH",
    "PAPER_ALPHA",
    "PLATES_ALPHA",
    "STRIDE",
    "UNIT_SQUARE",
    "WPODDetector",
    "WPODNet",
    "alpha_for_sizes",
    "build_wpod",
    "check_quads",
    "decode_detections",
    "draw_quads",
    "encode_targets",
    "evaluate_plates",
    "homography",
    "pool_batches",
    "positive_cells",
    "quad_area",
    "quad_iou",
    "rectify",
    "train_on_plates",
    "warp_unit_square",
    "wpod_loss",
    "wpod_loss_terms",
]
