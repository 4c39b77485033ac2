"""The RoI head, Faster R-CNN's second stage (lesson 05).

:func:`proposal_targets` picks, per image, the proposals the head learns from (the ground truths
added, 128 sampled with at most 25 % positives at IoU >= 0.5) with their classes and box targets
(weights 10, 10, 5, 5); :class:`RoIHead` pools them (:func:`roi_pool` or torchvision's RoIAlign)
and runs two fully connected layers with ReLUs into class logits and per-class box deltas;
:func:`roi_head_loss` is its cross entropy plus smooth L1 on the positives' own-class deltas,
both divided by the number of sampled RoIs (torchvision's ``fastrcnn_loss``).

RoI pooling, the op the head runs on, is :mod:`tutorial_det.roi_pool` (torchvision, likewise,
keeps ``roi_pool`` in ``ops``, apart from its ``RoIHeads``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from tutorial_det.boxes import box_iou, check_boxes, encode_boxes
from tutorial_det.labelling import sample_labels
from tutorial_det.roi_pool import check_output_size, check_spatial_scale, roi_pool
from tutorial_det.rpn import SMOOTH_L1_BETA

# --------------------------------------------------------------------------- the RoI head
#
# Faster R-CNN's second stage, for each image: pick a mini-batch of proposals to learn from and
# give each its class and box targets (:func:`proposal_targets`); pool every proposal's features
# to a fixed grid, run them through fully connected layers and predict class logits and one set
# of box deltas per class (:class:`RoIHead`); compare the two (:func:`roi_head_loss`).

#: The RoI head's box-coding weights (wx, wy, ww, wh): its targets are small (a proposal is
#: already near its object), so they are scaled up to roughly unit variance (Fast R-CNN).
ROI_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)

POOLINGS = ("align", "pool")


def proposal_targets(
    proposals: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    *,
    batch_size_per_image: int = 128,
    positive_fraction: float = 0.25,
    pos_thresh: float = 0.5,
    neg_thresh_lo: float = 0.0,
    add_ground_truth: bool = True,
    weights: Sequence[float] = ROI_BOX_WEIGHTS,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The RoIs one image trains the RoI head on, with their class and box targets.

    1. The ground-truth boxes join the proposals (``add_ground_truth``): early in training the
       proposals are poor, and the ground truths are perfect positives.
    2. Each candidate takes the ground truth it overlaps most. IoU >= ``pos_thresh`` makes it
       positive (class of that ground truth), ``neg_thresh_lo <= IoU < pos_thresh`` negative
       (class 0, background), anything else is left out.
    3. :func:`tutorial_det.labelling.sample_labels` keeps ``batch_size_per_image`` of them with at
       most ``positive_fraction`` positives (Fast R-CNN's 128 per image, 25 %: at most 32
       positives, the rest filled with negatives).
    4. Positives get regression targets ``encode_boxes(gt, roi, weights)``; negatives zeros.

    Args:
        proposals: ``[P, 4]`` xyxy (may hold degenerate boxes: they overlap nothing).
        gt_boxes: ``[G, 4]`` xyxy; ``G`` may be 0, then every candidate is background.
        gt_labels: ``[G]`` int64 classes, 1 or more (0 is the background).
        generator: a CPU ``torch.Generator`` for the sampling (default: torch's global one).

    Returns:
        ``rois [S, 4]`` (positives first), ``labels [S]`` int64 (0 for negatives),
        ``target_deltas [S, 4]`` (zeros for negatives), ``S <= batch_size_per_image``.
    """
    # Labels and targets are computed in float32 at least, whatever precision the proposals
    # come in: in float16 a 220 px box's area plus another's overflows (above 65504) and its IoU
    # with itself reads 0; in bfloat16 a target like log(220 / 216) is off by 15 %.
    proposals = check_boxes(proposals, "proposals")
    proposals = proposals.to(torch.promote_types(proposals.dtype, torch.float32))
    gt_boxes = check_boxes(gt_boxes, "gt_boxes").to(proposals)
    if not isinstance(gt_labels, Tensor) or gt_labels.shape != gt_boxes.shape[:1]:
        raise ValueError(
            f"gt_labels must be a [G] = [{len(gt_boxes)}] tensor (one class per box), got "
            f"{list(gt_labels.shape) if isinstance(gt_labels, Tensor) else type(gt_labels)}"
        )
    if gt_labels.is_floating_point() or (len(gt_labels) and int(gt_labels.min()) < 1):
        raise ValueError(
            f"gt_labels must be integer classes >= 1 (0 is the background), got {gt_labels.tolist()}"
        )
    if not 0 <= neg_thresh_lo <= pos_thresh <= 1:
        raise ValueError(
            f"need 0 <= neg_thresh_lo <= pos_thresh <= 1, got {neg_thresh_lo}, {pos_thresh}"
        )
    candidates = torch.cat((proposals, gt_boxes)) if add_ground_truth else proposals
    if len(gt_boxes):
        best_iou, matched = box_iou(candidates, gt_boxes, validate=False).max(dim=1)
    else:
        best_iou = candidates.new_zeros(len(candidates))
        matched = torch.zeros(len(candidates), dtype=torch.int64, device=candidates.device)
    labels = torch.full((len(candidates),), -1, dtype=torch.int64, device=candidates.device)
    labels[(best_iou >= neg_thresh_lo) & (best_iou < pos_thresh)] = 0
    labels[best_iou >= pos_thresh] = 1
    sampled = sample_labels(labels, batch_size_per_image, positive_fraction, generator)
    positive = torch.where(sampled == 1)[0]
    keep = torch.cat((positive, torch.where(sampled == 0)[0]))
    rois = candidates[keep]
    classes = torch.zeros(len(keep), dtype=torch.int64, device=candidates.device)
    deltas = torch.zeros_like(rois)
    if len(positive):
        gt = matched[positive]
        classes[: len(positive)] = gt_labels.to(classes.device)[gt]
        # a positive overlaps its ground truth (IoU >= pos_thresh > 0): both have positive sizes
        deltas[: len(positive)] = encode_boxes(gt_boxes[gt], candidates[positive], weights)
    return rois, classes, deltas


class RoIHead(nn.Module):
    """Classify pooled proposals and refine their boxes, one box per class.

    ``pool`` (RoI max pooling, :func:`roi_pool`, or torchvision's ``roi_align`` with
    ``aligned=True`` and ``sampling_ratio`` points per bin side) turns every RoI into a
    ``[C, s, s]`` grid; two fully connected layers **each followed by a ReLU** make a
    ``representation_size`` vector (without the ReLUs the two layers would multiply into a single
    linear map); then ``cls_score`` gives ``num_classes`` logits (background included) and
    ``bbox_pred`` ``num_classes x 4`` deltas (weights :data:`ROI_BOX_WEIGHTS`).

    The two output layers keep PyTorch's default ``nn.Linear`` initialisation (uniform within
    ``1 / sqrt(fan_in)``, as torchvision's ``FastRCNNPredictor``). ``paper_init=True`` draws them
    from N(0, 0.01) and N(0, 0.001) with zero biases instead (the Fast R-CNN paper): the head
    then starts from uniform class probabilities and zero deltas, but its tiny weights also scale
    down every gradient the two losses send back into ``fc6``, ``fc7`` and the backbone, and on the
    synthetic shapes with AdamW the detector learns slower (in a three-minute run of
    ``benchmarks/train_faster_rcnn.py --paper-init`` it reached mAP@0.5 = 0.9 about 70 steps
    later and ended 0.01 lower).

    ``forward(features [N, C, H, W], rois)`` with ``rois`` a list of ``N`` ``[K_i, 4]`` xyxy
    tensors in image pixels returns ``class_logits [K, num_classes]`` and
    ``box_deltas [K, num_classes, 4]``, ``K = sum K_i``, RoIs in the order given.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        pooling: str = "align",
        output_size: int = 7,
        spatial_scale: float = 1 / 16,
        sampling_ratio: int = 2,
        representation_size: int = 256,
        paper_init: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not one of {POOLINGS}")
        if not (isinstance(num_classes, int) and num_classes >= 2):
            raise ValueError(
                f"num_classes counts the background, so it must be an int >= 2, got {num_classes!r}"
            )
        self.pooling = pooling
        self.output_size = check_output_size(output_size)
        self.spatial_scale = check_spatial_scale(spatial_scale)
        self.sampling_ratio = sampling_ratio
        self.num_classes = num_classes
        inputs = in_channels * self.output_size[0] * self.output_size[1]
        self.fc6 = nn.Linear(inputs, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)
        self.cls_score = nn.Linear(representation_size, num_classes)
        self.bbox_pred = nn.Linear(representation_size, num_classes * 4)
        if paper_init:
            nn.init.normal_(self.cls_score.weight, std=0.01)
            nn.init.normal_(self.bbox_pred.weight, std=0.001)
            nn.init.zeros_(self.cls_score.bias)
            nn.init.zeros_(self.bbox_pred.bias)

    def pool(self, features: Tensor, rois: Sequence[Tensor]) -> Tensor:
        """``[K, C, s, s]`` pooled features of every RoI (images in order), in the features'
        dtype. Pooling reads the map in float32 at least: the RoIs are pixel coordinates, which
        half precision would round (bfloat16 to 1 px at 200 px)."""
        dtype = torch.promote_types(features.dtype, torch.float32)
        rois = [r.to(dtype) for r in rois]
        if self.pooling == "pool":
            pooled = roi_pool(features.to(dtype), rois, self.output_size, self.spatial_scale)
        else:
            pooled = torchvision.ops.roi_align(
                features.to(dtype),
                rois,
                self.output_size,
                self.spatial_scale,
                self.sampling_ratio,
                aligned=True,
            )
        return pooled.to(features.dtype)

    def forward(self, features: Tensor, rois: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        x = self.pool(features, rois).flatten(1)  # [K, C, s, s] -> [K, C * s * s]
        x = F.relu(self.fc6(x))
        x = F.relu(self.fc7(x))
        deltas = self.bbox_pred(x).reshape(len(x), self.num_classes, 4)  # [K, num_classes, 4]
        return self.cls_score(x), deltas


def roi_head_loss(
    class_logits: Tensor,
    box_deltas: Tensor,
    labels: Tensor,
    target_deltas: Tensor,
    beta: float = SMOOTH_L1_BETA,
) -> tuple[Tensor, Tensor]:
    """The RoI head's two loss terms over the sampled RoIs of a batch.

    ::

        classifier = mean over the S sampled RoIs of CE(class_logits, label)
        box        = sum over positive RoIs of smoothL1(deltas[label] - target) / S

    Only the deltas of a positive RoI's **own class** are compared with its target (the other
    classes' deltas get no gradient from it); negatives have no box loss. Both terms are divided
    by ``S``, the number of sampled RoIs (positives and negatives), as torchvision's
    ``fastrcnn_loss`` does: positives and negatives come from the same sample, so this is the
    RoI head's own count, not the RPN's.

    Args:
        class_logits: ``[S, C]``.
        box_deltas: ``[S, C, 4]`` (per-class deltas).
        labels: ``[S]`` int64 classes in ``[0, C)``, 0 = background.
        target_deltas: ``[S, 4]`` (read only for positives).
        beta: smooth L1's transition point.

    Returns:
        ``(classifier_loss, box_loss)``; both 0 (connected to the graph) when ``S = 0``.
    """
    if class_logits.ndim != 2:
        raise ValueError(f"class_logits must be [S, C], got {list(class_logits.shape)}")
    num, classes = class_logits.shape
    if box_deltas.shape != (num, classes, 4) or target_deltas.shape != (num, 4):
        raise ValueError(
            f"box_deltas {list(box_deltas.shape)} and target_deltas {list(target_deltas.shape)} "
            f"must be {[num, classes, 4]} and {[num, 4]}"
        )
    if labels.shape != (num,) or labels.dtype != torch.int64:
        raise ValueError(f"labels must be int64 [{num}], got {labels.dtype} {list(labels.shape)}")
    bad = (labels < 0) | (labels >= classes)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"labels[{i}] = {int(labels[i])} is not a class in [0, {classes})")
    if num == 0:
        zero = class_logits.sum() * 0 + box_deltas.sum() * 0
        return zero, zero.clone()
    classifier = F.cross_entropy(class_logits, labels)
    positive = torch.where(labels > 0)[0]
    box = F.smooth_l1_loss(
        box_deltas[positive, labels[positive]],
        target_deltas[positive],
        beta=beta,
        reduction="sum",
    )
    return classifier, box / num
