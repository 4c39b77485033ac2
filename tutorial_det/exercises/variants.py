"""The source documents' ways of doing a step, which lessons show next to the package's.

The documents this course grew from (README, "How to use the lessons") do some steps in a simpler
way than the papers, or with a bug. A lesson shows such a step beside the right one, so that the
difference can be seen and measured; the functions it needs for that live here, apart from the
library (the package never calls them). The spot-the-bug code a learner is meant to read stays in
the lesson itself.

Lesson 07 (SSD):

- :func:`simple_priors`: priors set up the simple way, one pixel size per feature map and the
  same aspect ratios on every map, where the paper (:func:`tutorial_det.anchors.prior_boxes`)
  gives each map its scales;
- :func:`hard_negative_mask_across_batch`: hard negatives ranked over the whole batch, where the
  paper (:func:`tutorial_det.ssd.hard_negative_mask`) ranks them per image;
- :func:`multibox_loss_tutorial_style`: the multibox loss with the SSD tutorial's two bugs (mining
  across the batch, negatives divided by their own count), each of which can be switched off,
  where the paper's is :func:`tutorial_det.ssd.multibox_loss`.

Boxes are ``[N, 4]`` xyxy pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from tutorial_det.anchors import anchor_base, grid_anchors
from tutorial_det.boxes import check_image_size
from tutorial_det.ssd import hard_negative_mask, multibox_loss


def simple_priors(
    image_size: int | Sequence[int],
    strides: Sequence[int],
    scales: Sequence[float],
    ratios: Sequence[float],
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """SSD priors set up the simple way: one box size in pixels per feature map, shared ratios.

    Feature map ``k`` has stride ``strides[k]`` (``image_size // stride`` cells a side) and every
    cell gets ``len(ratios)`` priors of area ``scales[k] ** 2`` pixels with ``h / w = ratio``
    (:func:`~tutorial_det.anchors.anchor_base`'s convention), centred on the cell centre. With
    ``strides=(4, 8, 16)``, ``scales=(10, 25, 40)``, ``ratios=(0.4, 0.8, 1.2)`` on a 128 x 128
    image: 3 maps of 32, 16 and 8 cells a side, 3 priors per cell, 3 * (1024 + 256 + 64) = 4032
    priors.

    Args:
        image_size: side of a square image, or ``(height, width)``.
        strides: input pixels per cell of each feature map.
        scales: one prior size (square root of the area, pixels) per feature map.
        ratios: height / width of the priors, the same on every map.

    Returns:
        ``[P, 4]`` xyxy pixels ordered (map, row, column, ratio): map by map, each map as
        :func:`~tutorial_det.anchors.grid_anchors` orders it.
    """
    height, width = check_image_size(
        (image_size, image_size) if isinstance(image_size, int) else image_size
    )
    if len(strides) == 0 or len(strides) != len(scales):
        raise ValueError(
            f"strides {tuple(strides)} and scales {tuple(scales)} must be non-empty and of the "
            "same length (one size per feature map)"
        )
    if min(strides) <= 0 or min(scales) <= 0:
        raise ValueError(
            f"strides and scales must be positive, got {tuple(strides)} and {tuple(scales)}"
        )
    levels = []
    for stride, scale in zip(strides, scales, strict=True):
        base = anchor_base(stride, ratios, (scale / stride,), dtype=torch.float64)
        levels.append(grid_anchors(base, (height // stride, width // stride), stride))
    return torch.cat(levels).to(dtype)


def hard_negative_mask_across_batch(
    background_loss: Tensor, positive: Tensor, neg_pos_ratio: float = 3.0
) -> Tensor:
    """Hard negatives mined over the whole batch, as the SSD tutorial's flattened loss does.

    The negatives of all images are ranked together and the ``min(ratio * positives,
    negatives)`` of the batch with the highest loss are kept, so one image with a large,
    confidently wrong background can take the whole quota while another image gets no negatives
    at all. Arguments and result as :func:`tutorial_det.ssd.hard_negative_mask` (``[B, P]``).
    """
    if background_loss.ndim != 2 or positive.shape != background_loss.shape:
        raise ValueError(
            f"background_loss and positive must both be [B, P], got {list(background_loss.shape)} "
            f"and {list(positive.shape)}"
        )
    one_row = hard_negative_mask(
        background_loss.reshape(1, -1), positive.reshape(1, -1), neg_pos_ratio
    )  # [1, B * P]
    return one_row.reshape(background_loss.shape)  # [B, P]


def multibox_loss_tutorial_style(
    cls_logits: Tensor,
    box_deltas: Tensor,
    labels: Tensor,
    target_deltas: Tensor,
    neg_pos_ratio: float = 3.0,
    *,
    across_batch: bool = True,
    split: bool = True,
) -> dict[str, Tensor]:
    """The multibox loss as the SSD tutorial writes it, with its two bugs (each can be turned off).

    With ``N`` the number of positives in the batch::

        classification  = sum_{Pos} CE / N + sum_{Neg} CE / |Neg|     (split=True)
                          (sum_{Pos} CE + sum_{Neg} CE) / N            (split=False, the paper)
        bbox_regression = sum_{Pos} smooth_L1 / N                      (the paper's)

    with ``Neg`` mined across the batch (:func:`hard_negative_mask_across_batch`,
    ``across_batch=True``) or per image (:func:`tutorial_det.ssd.hard_negative_mask`). Dividing
    the negatives by their own count weights one negative ``neg_pos_ratio`` times less than one
    positive, and makes the negatives' term an average that more negatives do not weigh more.
    With both switches off it is :func:`tutorial_det.ssd.multibox_loss`.

    Arguments and result as :func:`tutorial_det.ssd.multibox_loss` (which also checks them).
    """
    paper = multibox_loss(cls_logits, box_deltas, labels, target_deltas, neg_pos_ratio)
    ce = F.cross_entropy(cls_logits.flatten(0, 1), labels.flatten(), reduction="none")  # [B * P]
    ce = ce.reshape(labels.shape)  # [B, P]
    positive = labels > 0
    mine = hard_negative_mask_across_batch if across_batch else hard_negative_mask
    negative = mine(ce, positive, neg_pos_ratio)
    n = positive.sum().clamp(min=1)
    if split:
        classification = ce[positive].sum() / n + ce[negative].sum() / negative.sum().clamp(min=1)
    else:
        classification = (ce[positive].sum() + ce[negative].sum()) / n
    return {"classification": classification, "bbox_regression": paper["bbox_regression"]}
