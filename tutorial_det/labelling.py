"""Labelling anchors for the region proposal network (Faster R-CNN, Ren et al. 2015).

Lesson 03 teaches it: it applies the rules one at a time and gets :func:`label_anchors`'s
labels (its spot-the-bug, ``labels_by_rules``, lacks the IoU > 0 condition of the best-anchor
rule), then samples with :func:`sample_labels` and takes the targets from
:func:`anchor_targets`; lesson 05 reuses :func:`sample_labels` for the RoI head, and lesson 07
teaches :func:`match_priors`.

Every anchor gets a label from its IoU with the ground-truth boxes:

- ``1`` (object): IoU >= 0.7 with some ground truth, or the anchor is a best anchor of some ground
  truth (highest IoU with it, ties included, and that IoU > 0), so every ground truth that
  overlaps any anchor gets at least one positive;
- ``0`` (background): best IoU < 0.3;
- ``-1`` (ignored): anything in between; the loss skips it.

:func:`sample_labels` then keeps a balanced mini-batch (256 anchors, at most half positive) and
:func:`anchor_targets` adds the regression targets of the positives. Boxes are ``[N, 4]`` xyxy.

:func:`match_priors` is SSD's matching (every ground truth takes its best prior, then every prior
with IoU >= 0.5 takes its best ground truth): no ignored band and no sampling, since SSD's loss
mines hard negatives instead (:mod:`tutorial_det.ssd`).

Compared with torchvision (``_utils.Matcher(0.7, 0.3, allow_low_quality_matches=True)`` and
``BalancedPositiveNegativeSampler(256, 0.5)``): the same split and the same sample sizes, except
that (1) torchvision also makes "best anchors" of a ground truth that overlaps no anchor at all
(its best IoU is 0, so every anchor ties at 0 and all of them become positive), which we do not,
and (2) torchvision raises on an image with no ground truth, where every anchor here is negative.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tutorial_det.anchors import inside_anchors
from tutorial_det.boxes import box_iou, check_boxes, encode_boxes


def _check_thresholds(pos_thresh: float, neg_thresh: float) -> None:
    if not 0 <= neg_thresh <= pos_thresh <= 1 or pos_thresh <= 0:
        raise ValueError(
            f"thresholds must satisfy 0 <= neg_thresh <= pos_thresh <= 1 and pos_thresh > 0, "
            f"got pos_thresh={pos_thresh}, neg_thresh={neg_thresh}"
        )


def label_anchors(
    anchors: Tensor, gt_boxes: Tensor, pos_thresh: float = 0.7, neg_thresh: float = 0.3
) -> tuple[Tensor, Tensor]:
    """Label each anchor object (1), background (0) or ignored (-1) from its IoU with the ground truth.

    Args:
        anchors: ``[A, 4]`` xyxy.
        gt_boxes: ``[G, 4]`` xyxy. A zero-area box has IoU 0 with everything: it gets no positive.
        pos_thresh: best IoU at or above which an anchor is positive.
        neg_thresh: best IoU below which an anchor is negative (unless it is a best anchor).

    Returns:
        ``labels``: ``[A]`` int64 in {1, 0, -1}: 1 when the anchor's best IoU is >= ``pos_thresh``
        or the anchor has the highest IoU of all anchors with some ground truth (every tied anchor
        counts, and only when that highest IoU is > 0); else 0 when its best IoU is
        < ``neg_thresh``; else -1.

        ``matched_gt``: ``[A]`` int64, the index of the ground truth with the highest IoU for
        each anchor (the first on ties), defined for every anchor: it is the regression target's
        ground truth where ``labels == 1`` and means nothing elsewhere. A best anchor of ground
        truth ``g`` is matched to its own highest-IoU ground truth, which may be another one.

        With no ground truth (``G = 0``) every anchor is negative and ``matched_gt`` is all 0.
    """
    _check_thresholds(pos_thresh, neg_thresh)
    anchors = check_boxes(anchors, "anchors")
    gt_boxes = check_boxes(gt_boxes, "gt_boxes")
    num = anchors.shape[0]
    device = anchors.device
    if gt_boxes.shape[0] == 0 or num == 0:
        return (
            torch.zeros(num, dtype=torch.int64, device=device),
            torch.zeros(num, dtype=torch.int64, device=device),
        )
    iou = box_iou(anchors, gt_boxes.to(anchors.dtype), validate=False)  # [A, G], checked above
    best_iou, matched_gt = iou.max(dim=1)
    labels = torch.full((num,), -1, dtype=torch.int64, device=device)
    labels[best_iou < neg_thresh] = 0
    labels[best_iou >= pos_thresh] = 1
    gt_best = iou.max(dim=0).values  # [G]
    is_best = ((iou == gt_best[None, :]) & (gt_best[None, :] > 0)).any(dim=1)
    labels[is_best] = 1
    return labels, matched_gt


def sample_labels(
    labels: Tensor,
    batch_size_per_image: int = 256,
    positive_fraction: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Keep a random, balanced mini-batch of labelled anchors; set the others to -1 (ignored).

    Keeps ``min(#positives, int(batch_size_per_image * positive_fraction))`` positives and fills
    the batch with up to ``batch_size_per_image - kept positives`` negatives (the paper's 256
    anchors, up to 1:1), torchvision's ``BalancedPositiveNegativeSampler`` rule (whose argument
    names these are).

    Args:
        labels: ``[A]`` int64 in {1, 0, -1} (from :func:`label_anchors`).
        batch_size_per_image: anchors per image.
        positive_fraction: largest share of positives.
        generator: a CPU ``torch.Generator``; the choice is a function of its state alone (the
            permutations are drawn on the CPU whatever ``labels``' device), so it is
            deterministic given the generator.

    Returns:
        A new ``[A]`` int64 tensor: the kept positives (1) and negatives (0), -1 elsewhere.
    """
    if labels.ndim != 1 or labels.dtype != torch.int64:
        raise ValueError(
            f"labels must be a 1-D int64 tensor, got shape {list(labels.shape)}, {labels.dtype}"
        )
    bad = (labels < -1) | (labels > 1)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"labels[{i}] = {int(labels[i])} is not one of 1, 0, -1")
    if batch_size_per_image < 0 or not 0 <= positive_fraction <= 1:
        raise ValueError(
            "batch_size_per_image must be >= 0 and positive_fraction in [0, 1], got "
            f"{batch_size_per_image}, {positive_fraction}"
        )
    positive = torch.where(labels == 1)[0]
    negative = torch.where(labels == 0)[0]
    num_pos = min(positive.numel(), int(batch_size_per_image * positive_fraction))
    num_neg = min(negative.numel(), batch_size_per_image - num_pos)
    keep_pos = positive[
        torch.randperm(positive.numel(), generator=generator)[:num_pos].to(labels.device)
    ]
    keep_neg = negative[
        torch.randperm(negative.numel(), generator=generator)[:num_neg].to(labels.device)
    ]
    sampled = torch.full_like(labels, -1)
    sampled[keep_pos] = 1
    sampled[keep_neg] = 0
    return sampled


def anchor_targets(
    anchors: Tensor,
    gt_boxes: Tensor,
    image_size: Sequence[int] | None = None,
    *,
    pos_thresh: float = 0.7,
    neg_thresh: float = 0.3,
    batch_size_per_image: int | None = 256,
    positive_fraction: float = 0.5,
    generator: torch.Generator | None = None,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
) -> tuple[Tensor, Tensor]:
    """The RPN's training targets for one image: labels and regression deltas for every anchor.

    Args:
        anchors: ``[A, 4]`` xyxy, e.g. from :func:`tutorial_det.anchors.grid_anchors`.
        gt_boxes: ``[G, 4]`` xyxy ground truth of the image (``G`` may be 0).
        image_size: ``(height, width)``: when given, anchors crossing the image border are
            ignored (-1), as in the paper's training; ground truths are labelled against the
            inside anchors only. None labels every anchor.
        pos_thresh, neg_thresh: see :func:`label_anchors`.
        batch_size_per_image: anchors kept by :func:`sample_labels`; None keeps every labelled
            anchor.
        positive_fraction, generator: see :func:`sample_labels`.
        weights: box-coding weights for :func:`tutorial_det.boxes.encode_boxes`.

    Returns:
        ``labels``: ``[A]`` int64 in {1, 0, -1} after sampling.
        ``deltas``: ``[A, 4]`` ``(dx, dy, dw, dh)`` from each positive anchor to its matched
        ground truth; zeros wherever ``labels != 1``.
    """
    anchors = check_boxes(anchors, "anchors")
    gt_boxes = check_boxes(gt_boxes, "gt_boxes").to(anchors.dtype)
    num = anchors.shape[0]
    if image_size is None:
        labels, matched_gt = label_anchors(anchors, gt_boxes, pos_thresh, neg_thresh)
    else:  # the inside anchors only: selecting them costs a wait for the GPU per image
        keep = inside_anchors(anchors, image_size)
        labels = torch.full((num,), -1, dtype=torch.int64, device=anchors.device)
        matched_gt = torch.zeros(num, dtype=torch.int64, device=anchors.device)
        labels[keep], matched_gt[keep] = label_anchors(
            anchors[keep], gt_boxes, pos_thresh, neg_thresh
        )
    if batch_size_per_image is not None:
        labels = sample_labels(labels, batch_size_per_image, positive_fraction, generator)
    deltas = torch.zeros_like(anchors)
    positive = torch.where(labels == 1)[0]  # indices: three selections, one wait for the GPU
    # A positive anchor overlaps its matched ground truth (IoU > 0), so both have positive sizes.
    deltas[positive] = encode_boxes(gt_boxes[matched_gt[positive]], anchors[positive], weights)
    return labels, deltas


# --------------------------------------------------------------------------- SSD matching


def match_priors(priors: Tensor, gt_boxes: Tensor, pos_thresh: float = 0.5) -> Tensor:
    """SSD's matching: the ground truth each prior (default box) must predict, or none.

    Two rules, as in the SSD paper (Liu et al. 2016, section 2.2):

    1. **best prior, forced**: every ground truth takes the prior it overlaps most, even below the
       threshold, so that no object is left without a positive. The assignment is a greedy
       bipartite matching (MultiBox's and the original Caffe model's): repeatedly the highest
       remaining IoU of the ``[G, P]`` matrix pairs its ground truth and prior, and both leave
       the matrix, so two objects whose best prior is the same prior get distinct priors (the
       second its next best). It stops when the highest remaining IoU is 0.
    2. **threshold**: every other prior whose highest IoU with any ground truth is
       ``>= pos_thresh`` takes that ground truth (the first one on ties). A prior taken in
       step 1 keeps the ground truth it was given there.

    torchvision's ``SSDMatcher`` gives the same answer whenever the ground truths' best priors
    are distinct (the usual case); when two share one, it hands that prior to the later ground
    truth and the earlier one keeps only its rule-2 matches, possibly none.

    Args:
        priors: ``[P, 4]`` xyxy.
        gt_boxes: ``[G, 4]`` xyxy with positive width and height (``G`` may be 0).
        pos_thresh: IoU at or above which rule 2 matches.

    Returns:
        ``[P]`` int64: the index of the matched ground truth, ``-1`` for background. With no
        ground truth every prior is background.

    Raises:
        ValueError: a ground truth has zero width or height (it overlaps no prior and its
            regression target, a log of its size, is infinite; torchvision's SSD refuses it too),
            or ``pos_thresh`` is not in ``(0, 1]``.
    """
    if not 0 < pos_thresh <= 1:
        raise ValueError(f"pos_thresh must be in (0, 1], got {pos_thresh}")
    priors = check_boxes(priors, "priors")
    gt_boxes = check_boxes(gt_boxes, "gt_boxes").to(priors.dtype)
    empty = (gt_boxes[:, 2] <= gt_boxes[:, 0]) | (gt_boxes[:, 3] <= gt_boxes[:, 1])
    if bool(empty.any()):
        i = int(empty.nonzero()[0])
        raise ValueError(
            f"gt_boxes[{i}] = {gt_boxes[i].tolist()} has zero width or height: no prior can match "
            "it and its box target would be infinite; remove such boxes from the target"
        )
    num_priors, num_gt = priors.shape[0], gt_boxes.shape[0]
    matched = torch.full((num_priors,), -1, dtype=torch.int64, device=priors.device)
    if num_gt == 0 or num_priors == 0:
        return matched
    iou = box_iou(gt_boxes, priors, validate=False)  # [G, P], checked above
    best_iou, best_gt = iou.max(dim=0)
    matched = torch.where(best_iou >= pos_thresh, best_gt, matched)
    # Rule 1, one pair per round, all on the device: the pair is read as tensors (never as
    # Python numbers, which would wait for the GPU twice per object), and a round whose highest
    # IoU is 0 changes nothing, as every later one (the loop may stop early, not late).
    remaining = iou.clone()
    for _ in range(num_gt):
        value, flat = remaining.flatten().max(dim=0, keepdim=True)  # [1], [1]
        g, p = flat // num_priors, flat % num_priors
        matched[p] = torch.where(value > 0, g, matched[p])
        remaining[g, :] = -1
        remaining[:, p] = -1
    return matched
