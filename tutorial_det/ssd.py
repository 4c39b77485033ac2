"""SSD, the single-shot multibox detector (Liu et al., ECCV 2016), small enough for a CPU.

Lesson 07 teaches it: priors, matching, the loss step by step (per-image hard negative mining
by hand, checked against :func:`hard_negative_mask`), training and decoding.

SSD puts a fixed set of priors ("default boxes", :func:`tutorial_det.anchors.prior_boxes`) on
several feature maps, small priors on the fine maps and large ones on the coarse maps, and a
3x3 convolution on every map predicts, for every prior, class scores (background included) and
four box deltas. There is no proposal stage: one forward pass gives the detections.

Training, for each image:

1. :func:`prior_targets`: match priors to ground truths
   (:func:`tutorial_det.labelling.match_priors`: each ground truth takes its best prior, then
   every prior with IoU >= 0.5 takes its best ground truth) and encode the matched boxes with
   the variances (0.1, 0.2), i.e. the box-coding weights (10, 10, 5, 5) of
   :func:`tutorial_det.boxes.encode_boxes`.
2. :func:`multibox_loss`: softmax cross-entropy on the positives and on the hard negatives
   (:func:`hard_negative_mask`: per image, the ``3 x positives`` background priors with the
   highest loss), plus smooth L1 on the positives' deltas, everything divided by ``N``, the number
   of positives in the batch.

At inference (:func:`decode_detections`): softmax, decode the deltas, clip to the image, keep
per class the scores above a threshold (at most ``topk_candidates``), per-class NMS
(:func:`tutorial_det.nms.batched_nms`), the best ``detections_per_img``.

:class:`SSD` assembles these with :class:`~tutorial_det.backbones.TinyBackbone` for 128 x 128
images: heads on the backbone's stride-8 and stride-16 maps and on two extra stride-2 stages
(strides 32 and 64), following torchvision's detection contract (a dict of losses in training
mode, a list of ``{"boxes", "labels", "scores"}`` in eval mode). Boxes are ``[N, 4]`` xyxy pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tutorial_det.anchors import prior_boxes
from tutorial_det.backbones import IMAGENET_MEAN, IMAGENET_STD, TinyBackbone, kaiming_init
from tutorial_det.boxes import (
    box_convert,
    check_boxes,
    clip_boxes,
    decode_boxes,
    encode_boxes,
)
from tutorial_det.input_transform import InputTransform, check_targets
from tutorial_det.labelling import match_priors
from tutorial_det.nms import batched_nms

#: SSD's variances (0.1, 0.2) as box-coding weights: dx = (x - xa) / (0.1 wa) = 10 (x - xa) / wa.
SSD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)

#: The small SSD's priors: strides of its four maps, scales (fractions of the image side, one more
#: than maps) and ratios other than 1. On 128 px images the square priors are 16, 32, 56 and
#: 90 px, for the shapes data's objects of about 12 to 80 px.
SMALL_SSD_STRIDES = (8, 16, 32, 64)
SMALL_SSD_SCALES = (0.125, 0.25, 0.44, 0.7, 1.0)
SMALL_SSD_ASPECT_RATIOS = ((2,), (2,), (2,), (2,))


# --------------------------------------------------------------------------- targets


def prior_targets(
    priors: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pos_thresh: float = 0.5,
    weights: Sequence[float] = SSD_WEIGHTS,
) -> tuple[Tensor, Tensor]:
    """Training targets of one image: a class and box deltas for every prior.

    Args:
        priors: ``[P, 4]`` xyxy pixels.
        gt_boxes: ``[G, 4]`` xyxy pixels, positive widths and heights (``G`` may be 0).
        gt_labels: ``[G]`` int64 object classes, ``>= 1`` (0 is the background).
        pos_thresh: see :func:`tutorial_det.labelling.match_priors`.
        weights: box-coding weights (SSD's variances 0.1, 0.2 are (10, 10, 5, 5)).

    Returns:
        ``labels``: ``[P]`` int64, the matched ground truth's class, 0 for background.
        ``deltas``: ``[P, 4]`` ``(dx, dy, dw, dh)`` from each positive prior to its ground truth,
        0 for background.
    """
    gt_boxes = check_boxes(gt_boxes, "gt_boxes")
    if not isinstance(gt_labels, Tensor) or gt_labels.shape != (gt_boxes.shape[0],):
        shape = list(gt_labels.shape) if isinstance(gt_labels, Tensor) else type(gt_labels)
        raise ValueError(f"gt_labels must be a tensor of shape [{gt_boxes.shape[0]}], got {shape}")
    if gt_labels.is_floating_point() or (gt_labels.numel() and int(gt_labels.min()) < 1):
        raise ValueError(
            f"gt_labels must be integer object classes >= 1 (0 is the background), got "
            f"{gt_labels.tolist()}"
        )
    matched = match_priors(priors, gt_boxes, pos_thresh)
    positive = matched >= 0
    labels = torch.zeros(len(priors), dtype=torch.int64, device=priors.device)
    labels[positive] = gt_labels.to(priors.device)[matched[positive]]
    deltas = torch.zeros(len(priors), 4, dtype=priors.dtype, device=priors.device)
    deltas[positive] = encode_boxes(
        gt_boxes.to(priors)[matched[positive]], priors[positive], weights
    )
    return labels, deltas


# --------------------------------------------------------------------------- the loss


def hard_negative_mask(
    background_loss: Tensor, positive: Tensor, neg_pos_ratio: float = 3.0
) -> Tensor:
    """Which background priors the classification loss keeps: the hardest negatives.

    Nearly every prior is background; training on all of them would drown the few positives in
    easy negatives. SSD keeps, per image, the ``neg_pos_ratio x`` (3 x) as many negatives as the
    image has positives, those with the highest background loss (the priors the model most
    wrongly believes to be objects).

    Args:
        background_loss: ``[B, P]`` loss of each prior against the background class
            (``-log softmax(logits)[..., 0]``), used for ranking only.
        positive: ``[B, P]`` bool, the priors matched to an object.
        neg_pos_ratio: negatives kept per positive: image ``b`` keeps its
            ``min(ratio * pos_b, neg_b)`` hardest negatives, so an image without objects keeps
            none. (The SSD tutorial mines across the batch instead:
            :func:`tutorial_det.exercises.variants.hard_negative_mask_across_batch`.)

    Returns:
        ``[B, P]`` bool, true for the kept negatives (never a positive). Equal losses are ranked
        by prior index (a stable sort), so the result is deterministic.
    """
    if background_loss.ndim != 2 or positive.shape != background_loss.shape:
        raise ValueError(
            f"background_loss and positive must both be [B, P], got {list(background_loss.shape)} "
            f"and {list(positive.shape)}"
        )
    if positive.dtype != torch.bool:
        raise TypeError(f"positive must be a bool tensor, got {positive.dtype}")
    if neg_pos_ratio < 0:
        raise ValueError(f"neg_pos_ratio must be >= 0, got {neg_pos_ratio}")
    num_pos = positive.sum(dim=1, keepdim=True)
    quota = torch.minimum(neg_pos_ratio * num_pos, (~positive).sum(dim=1, keepdim=True))
    ranked = background_loss.detach().masked_fill(positive, -torch.inf)
    order = ranked.sort(dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(order.shape[1], device=order.device).expand_as(order)
    )
    return rank < quota


def multibox_loss(
    cls_logits: Tensor,
    box_deltas: Tensor,
    labels: Tensor,
    target_deltas: Tensor,
    neg_pos_ratio: float = 3.0,
) -> dict[str, Tensor]:
    """SSD's multibox loss: softmax cross-entropy with hard negative mining, and smooth L1.

    With ``N`` the number of positive (matched) priors in the batch, ``Pos`` the positives and
    ``Neg`` the mined negatives (:func:`hard_negative_mask`)::

        classification  = (sum_{Pos} CE(logits, label) + sum_{Neg} CE(logits, 0)) / N
        bbox_regression = sum_{Pos} smooth_L1(deltas - targets) / N      (beta 1, summed over 4)

    The paper's total is ``classification + alpha * bbox_regression`` with ``alpha = 1``. With
    no positive in the batch nothing is mined and both terms are 0 (the sums are divided by
    ``max(N, 1)``, torchvision's choice; the paper sets the loss to 0 when ``N = 0``): never NaN.

    Args:
        cls_logits: ``[B, P, C]`` class scores, column 0 the background.
        box_deltas: ``[B, P, 4]`` predicted deltas.
        labels: ``[B, P]`` int64 targets in ``[0, C)`` (from :func:`prior_targets`).
        target_deltas: ``[B, P, 4]`` (only the positives' rows are read).
        neg_pos_ratio: negatives per positive (3 in the paper).

    Returns:
        ``{"classification": scalar, "bbox_regression": scalar}`` (torchvision's SSD names).
        ``SSD.compute_loss`` in torchvision gives the same values for the same matches.

    The SSD tutorial's version, with the negatives mined across the batch and divided by their
    own count, is :func:`tutorial_det.exercises.variants.multibox_loss_tutorial_style`.
    """
    if cls_logits.ndim != 3:
        raise ValueError(f"cls_logits must be [B, P, C], got {list(cls_logits.shape)}")
    batch, num_priors, num_classes = cls_logits.shape
    for name, value, shape in (
        ("box_deltas", box_deltas, (batch, num_priors, 4)),
        ("labels", labels, (batch, num_priors)),
        ("target_deltas", target_deltas, (batch, num_priors, 4)),
    ):
        if tuple(value.shape) != shape:
            raise ValueError(f"{name} must have shape {list(shape)}, got {list(value.shape)}")
    if labels.dtype != torch.int64:
        raise TypeError(f"labels must be int64, got {labels.dtype}")
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}) for {num_classes} classes, got values from "
            f"{int(labels.min())} to {int(labels.max())}"
        )
    ce = F.cross_entropy(
        cls_logits.reshape(-1, num_classes), labels.reshape(-1), reduction="none"
    )  # [B * P]
    ce = ce.reshape(batch, num_priors)  # [B, P]
    positive = labels > 0
    negative = hard_negative_mask(ce, positive, neg_pos_ratio)
    n = positive.sum().clamp(min=1)
    box = F.smooth_l1_loss(box_deltas[positive], target_deltas[positive], reduction="sum")
    cls = (ce[positive].sum() + ce[negative].sum()) / n
    return {"classification": cls, "bbox_regression": box / n}


# --------------------------------------------------------------------------- decoding


def decode_detections(
    cls_logits: Tensor,
    box_deltas: Tensor,
    priors: Tensor,
    image_size: Sequence[int],
    score_thresh: float = 0.01,
    nms_thresh: float = 0.45,
    topk_candidates: int = 200,
    detections_per_img: int = 100,
) -> dict[str, Tensor]:
    """Detections of one image from its head outputs (torchvision's SSD post-processing).

    Softmax over the classes; decode every prior's deltas (weights (10, 10, 5, 5)) and clip the
    boxes to the image; for each object class keep the priors scoring above ``score_thresh``, at
    most ``topk_candidates`` of them; per-class NMS at ``nms_thresh``
    (:func:`tutorial_det.nms.batched_nms`); keep the ``detections_per_img`` best.

    Args:
        cls_logits: ``[P, C]``; box_deltas: ``[P, 4]``; priors: ``[P, 4]`` xyxy pixels.
        image_size: ``(height, width)``.

    Returns:
        ``{"boxes": [D, 4] xyxy, "scores": [D], "labels": [D] int64 >= 1}``, by decreasing score.
    """
    scores = cls_logits.softmax(dim=-1)
    boxes = clip_boxes(decode_boxes(box_deltas, priors, SSD_WEIGHTS), image_size)
    kept_boxes, kept_scores, kept_labels = [], [], []
    for label in range(1, scores.shape[1]):
        score = scores[:, label]
        candidates = torch.where(score > score_thresh)[0]
        top = score[candidates].topk(min(topk_candidates, len(candidates)))
        kept_boxes.append(boxes[candidates[top.indices]])
        kept_scores.append(top.values)
        kept_labels.append(torch.full_like(top.indices, label))
    boxes, scores, labels = torch.cat(kept_boxes), torch.cat(kept_scores), torch.cat(kept_labels)
    keep = batched_nms(boxes, scores, labels, nms_thresh)[:detections_per_img]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


# --------------------------------------------------------------------------- the model


class LoneValueBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that normalises with its running statistics (and leaves them as they
    are) when a training batch holds a single value per channel, where batch statistics do not
    exist: one image whose map is 1 x 1, as the last extra stage gives for a 64 px image.
    ``nn.BatchNorm2d`` raises there instead."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        LoneValueBatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class SSD(nn.Module):
    """A small SSD: TinyBackbone, two extra stages, a 3x3 conv head per feature map.

    The backbone is a :class:`~tutorial_det.backbones.TinyBackbone` with half its default width
    in the first three stages (16-32-64-128 channels): about 0.14 G multiply-adds per 128 x 128
    image instead of 0.39, and on the shapes data it reaches the same mAP after the same number
    of steps, so it trains about three times faster on a CPU. Feature maps: the backbone's
    stride-8 (64 channels) and stride-16 (128) outputs, then two extra stages (1x1 conv to half
    the channels, 3x3 conv with stride 2, each with BatchNorm and ReLU) at strides 32 and 64: on
    a 128 x 128 image 16², 8², 4² and 2² cells. Each map ``k`` has the priors of
    :func:`tutorial_det.anchors.prior_boxes` (scales ``scales[k]`` and ``sqrt(scales[k] *
    scales[k+1])``, plus the ``aspect_ratios[k]`` pairs; 4 per cell by default: 1360 priors on
    128 x 128), centred on the cell centres ``((j + 0.5) stride, (i + 0.5) stride)``.

    Images are ``[3, H, W]`` floats in [0, 1], a list or a ``[B, 3, H, W]`` batch (H and W
    divisible by 64 keep the maps aligned with the priors' steps). The model's
    :class:`~tutorial_det.input_transform.InputTransform` (``model.transform``) normalises them
    with ``image_mean`` and ``image_std``; images of different sizes are padded at the bottom and
    right to the largest, the priors laid on the padded size, and each image's detections clipped
    to its own size.

    ``model(images, targets)`` in training mode: ``{"classification", "bbox_regression"}``
    (:func:`multibox_loss`); ``model(images)`` in eval mode: one ``{"boxes", "labels", "scores"}``
    per image (:func:`decode_detections`). ``head_outputs(images)`` returns the raw
    ``cls_logits [B, P, C]``, ``box_deltas [B, P, 4]`` and the ``priors [P, 4]`` they refer to.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        widths: Sequence[int] = (16, 32, 64, 128),
        depths: Sequence[int] = (1, 1, 2, 2),
        extra_channels: Sequence[int] = (128, 128),
        scales: Sequence[float] = SMALL_SSD_SCALES,
        aspect_ratios: Sequence[Sequence[float]] = SMALL_SSD_ASPECT_RATIOS,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        pos_thresh: float = 0.5,
        neg_pos_ratio: float = 3.0,
        score_thresh: float = 0.01,
        nms_thresh: float = 0.45,
        topk_candidates: int = 200,
        detections_per_img: int = 100,
    ) -> None:
        super().__init__()
        if not (isinstance(num_classes, int) and num_classes >= 2):
            raise ValueError(
                f"num_classes counts the background, so it must be an int >= 2, got {num_classes!r}"
            )
        if len(widths) != 4:
            raise ValueError(
                f"widths must give four backbone stages (strides 2, 4, 8, 16), got {tuple(widths)}"
            )
        num_maps = 2 + len(extra_channels)
        if len(aspect_ratios) != num_maps or len(scales) != num_maps + 1:
            raise ValueError(
                f"{num_maps} feature maps need {num_maps} aspect_ratios and {num_maps + 1} scales, "
                f"got {len(aspect_ratios)} and {len(scales)}"
            )
        self.num_classes = num_classes
        self.backbone = TinyBackbone(widths, depths)
        channels = [self.backbone.stage_channels[2], self.backbone.stage_channels[3]]
        extras = []
        for c_out in extra_channels:
            c_in = channels[-1]
            extras.append(
                nn.Sequential(
                    *_conv_bn_relu(c_in, c_in // 2, 1), *_conv_bn_relu(c_in // 2, c_out, 3, 2)
                )
            )
            channels.append(c_out)
        self.extras = nn.ModuleList(extras)
        kaiming_init(self.extras)
        self.strides = tuple(8 * 2**k for k in range(num_maps))
        self.scales = tuple(float(s) for s in scales)
        self.aspect_ratios = tuple(tuple(r) for r in aspect_ratios)
        self.priors_per_cell = tuple(2 + 2 * len(r) for r in self.aspect_ratios)
        self.cls_heads = nn.ModuleList(
            nn.Conv2d(c, a * num_classes, 3, padding=1)
            for c, a in zip(channels, self.priors_per_cell, strict=True)
        )
        self.box_heads = nn.ModuleList(
            nn.Conv2d(c, a * 4, 3, padding=1)
            for c, a in zip(channels, self.priors_per_cell, strict=True)
        )
        for head in (*self.cls_heads, *self.box_heads):
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)
        self.transform = InputTransform(image_mean, image_std)
        self.pos_thresh = pos_thresh
        self.neg_pos_ratio = neg_pos_ratio
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.topk_candidates = topk_candidates
        self.detections_per_img = detections_per_img
        self._priors: dict[tuple, Tensor] = {}

    def priors_for(
        self, feature_sizes: Sequence[Sequence[int]], image_size: Sequence[int]
    ) -> Tensor:
        """``[P, 4]`` xyxy pixel priors for maps of ``feature_sizes`` on an image of
        ``(height, width)`` (cached per size, on the model's device)."""
        key = (tuple(map(tuple, feature_sizes)), tuple(image_size))
        device = self.transform.image_mean.device
        if key not in self._priors or self._priors[key].device != device:
            normalised = prior_boxes(
                [tuple(s) for s in feature_sizes],
                self.scales,
                self.aspect_ratios,
                steps=self.strides,
                image_size=image_size,
            )
            height, width = image_size
            scale = torch.tensor([width, height, width, height], dtype=torch.float32)
            self._priors[key] = (box_convert(normalised, "cxcywh", "xyxy") * scale).to(device)
        return self._priors[key]

    def head_outputs(self, images: Sequence[Tensor] | Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(cls_logits [B, P, C], box_deltas [B, P, 4], priors [P, 4] xyxy)`` for a batch."""
        return self._heads(self.transform(images)[0])

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The head outputs for a normalised, padded batch ``x`` ``[B, 3, H, W]``."""
        stages = self.backbone.forward_stages(x)
        features = [stages[2], stages[3]]
        for extra in self.extras:
            features.append(extra(features[-1]))
        batch = x.shape[0]
        cls_logits = torch.cat(
            [
                head(f).permute(0, 2, 3, 1).reshape(batch, -1, self.num_classes)  # [B, H*W*A, C]
                for head, f in zip(self.cls_heads, features, strict=True)
            ],
            dim=1,
        )  # [B, P, C]
        box_deltas = torch.cat(
            [
                head(f).permute(0, 2, 3, 1).reshape(batch, -1, 4)  # [B, H*W*A, 4]
                for head, f in zip(self.box_heads, features, strict=True)
            ],
            dim=1,
        )  # [B, P, 4]
        priors = self.priors_for([f.shape[-2:] for f in features], x.shape[-2:])
        return cls_logits, box_deltas, priors

    def forward(
        self, images: Sequence[Tensor] | Tensor, targets: Sequence[dict] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        x, sizes = self.transform(images)
        if self.training:
            targets = check_targets(targets, len(x), self.num_classes, x.device)
        cls_logits, box_deltas, priors = self._heads(x)
        if self.training:
            labels, deltas = [], []
            for i, target in enumerate(targets):
                try:
                    image_labels, image_deltas = prior_targets(
                        priors, target["boxes"], target["labels"], self.pos_thresh
                    )
                except ValueError as error:
                    raise ValueError(f"targets[{i}]: {error}") from error
                labels.append(image_labels)
                deltas.append(image_deltas)
            labels = torch.stack(labels)
            return multibox_loss(
                cls_logits, box_deltas, labels, torch.stack(deltas), self.neg_pos_ratio
            )
        return [
            decode_detections(
                logits,
                deltas,
                priors,
                size,
                self.score_thresh,
                self.nms_thresh,
                self.topk_candidates,
                self.detections_per_img,
            )
            for logits, deltas, size in zip(cls_logits, box_deltas, sizes, strict=True)
        ]


def build_ssd(num_classes: int, **options) -> SSD:
    """The small :class:`SSD` for ``num_classes`` classes (background included); ``options`` are
    :class:`SSD`'s keyword arguments."""
    return SSD(num_classes, **options)
