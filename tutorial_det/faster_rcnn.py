"""Faster R-CNN assembled: backbone, region proposal network, RoI head, detections.

Lesson 06 assembles and trains it (lesson 04 trains its backbone and RPN alone).

:class:`FasterRCNN` follows torchvision's detection contract:

- training mode, ``model(images, targets)`` -> ``{"loss_objectness", "loss_rpn_box_reg",
  "loss_classifier", "loss_box_reg"}`` (the RPN's two terms, :func:`tutorial_det.rpn.rpn_loss`,
  and the RoI head's two, :func:`tutorial_det.roi.roi_head_loss`); ``fit`` trains on their sum;
- evaluation mode, ``model(images)`` -> one ``{"boxes" [D, 4] xyxy, "labels" [D], "scores" [D]}``
  per image (:func:`decode_detections`).

Images are ``[3, H, W]`` floats in [0, 1], a list (sizes may differ) or a ``[N, 3, H, W]``
batch. The model's :class:`~tutorial_det.input_transform.InputTransform` (``model.transform``)
normalises them (``image_mean``, ``image_std``) and pads the batch with zeros at the bottom and
right to a common size divisible by the backbone's ``size_divisible`` (16 for the default
backbone) or stride; each image keeps its own size for clipping proposals and detections. It does
not resize images: the defaults are sized for the 128 x 128 synthetic shapes (objects of about 12 to
64 px): a :class:`~tutorial_det.backbones.TinyBackbone` whose stride-8 stage is enriched top-down
with its stride-16 stage (:class:`TopDownBackbone`, 16 x 16 cells on 128 px), anchors of 16, 32 and
64 px at ratios 0.5, 1 and 2, a 256-wide RoI head on 7 x 7 RoIAlign grids with one bilinear sample
per bin (on RoIs of a few cells a 7 x 7 grid is already finer than the map; ``sampling_ratio=2``
costs about a third more per training step for the same mAP on the shapes).

:func:`build_faster_rcnn` is what :mod:`tutorial_det.models` registers as ``"faster_rcnn"``.
Boxes are ``[N, 4]`` xyxy pixels throughout.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tutorial_det.backbones import IMAGENET_MEAN, IMAGENET_STD, TinyBackbone, kaiming_init
from tutorial_det.boxes import clip_boxes, decode_boxes, remove_small_boxes
from tutorial_det.input_transform import InputTransform, check_targets
from tutorial_det.nms import batched_nms
from tutorial_det.roi import (
    ROI_BOX_WEIGHTS,
    RoIHead,
    proposal_targets,
    roi_head_loss,
)
from tutorial_det.rpn import ProposalSettings, RegionProposalNetwork

#: Proposal settings for 128 px images. The paper's 12000 / 2000 (training) and 6000 / 300 (test)
#: are for about 20000 anchors; a 128 px image has 2304 (16 x 16 cells x 9). The best 1000 of them
#: enter NMS, and 300 (training) or 150 (test) proposals cover its 1 to 4 objects many times over
#: at a fraction of the NMS and RoI-head cost. The minimum size is 4 px instead of 16: the
#: smallest objects are about 12 px, and 16 would remove their proposals.
SMALL_TRAIN_PROPOSALS = ProposalSettings(1000, 300, 0.7, 4.0)
SMALL_TEST_PROPOSALS = ProposalSettings(1000, 150, 0.7, 4.0)


class TopDownBackbone(nn.Module):
    """A stride-8 feature map that also sees what the stride-16 stage saw.

    On 128 x 128 images a stride-16 map has 8 x 8 cells, each wider than the smallest objects
    (about 12 px): their anchors are 16 px apart and RoI pooling reads them from a fraction of
    one cell. The stride-8 stage has 16 x 16 cells but a receptive field too small for the
    largest objects (about 64 px, 90 px once rotated). This module combines the two as one level
    of a feature pyramid network (Lin et al., 2017)::

        out = ReLU(conv3x3(conv1x1(stage 2) + upsample2x(conv1x1(stage 3))))

    (stages 2 and 3 of ``backbone.forward_stages``, counted from 0 as the layer names ``2.x`` and
    ``3.x`` of lesson 01 are, at strides 8 and 16; the stride-16 map upsampled by nearest
    neighbour.) ``forward(x)``: ``[N, 3, H, W] -> [N, channels, H / 8, W / 8]``.

    Attributes:
        backbone: the :class:`~tutorial_det.backbones.TinyBackbone` (four stages).
        out_channels: ``channels``; stride: 8.
        size_divisible: 16: input sizes that keep the two stages aligned cell for cell
            (:class:`FasterRCNN`'s ``transform`` pads to it).
    """

    def __init__(self, backbone: TinyBackbone | None = None, channels: int = 128) -> None:
        super().__init__()
        self.backbone = TinyBackbone() if backbone is None else backbone
        stages = getattr(self.backbone, "stage_channels", ())
        if len(stages) != 4:
            raise ValueError(
                "backbone must be a TinyBackbone with four stages (strides 2, 4, 8, 16), got "
                f"stage_channels {tuple(stages)}"
            )
        self.lateral = nn.Conv2d(stages[2], channels, 1)
        self.top_down = nn.Conv2d(stages[3], channels, 1)
        self.smooth = nn.Conv2d(channels, channels, 3, padding=1)
        kaiming_init(nn.ModuleList([self.lateral, self.top_down, self.smooth]))
        self.out_channels = channels
        self.stride = self.backbone.stride // 2
        self.size_divisible = self.backbone.stride

    def forward(self, x: Tensor) -> Tensor:
        stage3, stage4 = self.backbone.forward_stages(x)[2:]
        top = F.interpolate(self.top_down(stage4), size=stage3.shape[-2:], mode="nearest")
        return F.relu(self.smooth(self.lateral(stage3) + top))


def decode_detections(
    class_logits: Tensor,
    box_deltas: Tensor,
    rois: Tensor,
    image_size: Sequence[int],
    *,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    min_size: float = 1e-2,
    weights: Sequence[float] = ROI_BOX_WEIGHTS,
) -> dict[str, Tensor]:
    """Turn the RoI head's output for one image into detections.

    Softmax over the classes; decode every RoI's per-class deltas into one box per class, clip
    to the image; drop the background class, scores at or below ``score_thresh`` and boxes under
    ``min_size``; non-maximum suppression within each class
    (:func:`tutorial_det.nms.batched_nms` at ``nms_thresh``); keep the ``detections_per_img``
    best. A RoI can so give detections of several classes (torchvision's rule).

    Args:
        class_logits: ``[K, C]``; ``box_deltas``: ``[K, C, 4]``; ``rois``: ``[K, 4]`` xyxy.
        image_size: ``(height, width)``.

    Returns:
        ``{"boxes": [D, 4], "labels": [D] int64 in 1..C-1, "scores": [D]}``, best first.
    """
    num, classes = class_logits.shape
    scores = F.softmax(class_logits, dim=-1)[:, 1:]
    boxes = decode_boxes(box_deltas[:, 1:], rois, weights)  # [K, C - 1, 4]
    boxes = clip_boxes(boxes.reshape(-1, 4), image_size)  # [K * (C - 1), 4]
    labels = torch.arange(1, classes, device=scores.device).expand(num, classes - 1)  # [K, C - 1]
    scores, labels = scores.reshape(-1), labels.reshape(-1)  # [K * (C - 1)] each, RoI-major
    keep = torch.where(scores > score_thresh)[0]
    keep = keep[remove_small_boxes(boxes[keep], min_size)]
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, nms_thresh)[:detections_per_img]
    return {"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]}


class FasterRCNN(nn.Module):
    """Faster R-CNN (Ren et al., 2015) with a single feature map.

    Args:
        num_classes: classes including the background (the shapes data: 4).
        backbone: an ``nn.Module`` mapping ``[N, 3, H, W]`` to ``[N, C, H / s, W / s]`` with
            attributes ``out_channels`` (C) and ``stride`` (s); default
            :class:`TopDownBackbone` on a ``TinyBackbone()`` (stride 8, 128 channels).
        anchor_sizes: anchor sides in pixels at ratio 1 (multiples of nothing in particular:
            they become :func:`~tutorial_det.anchors.anchor_base` scales ``size / stride``).
        anchor_ratios: heights / widths of the anchors.
        rpn_mid_channels: width of the RPN's 3x3 conv (default: the backbone's channels).
        rpn_batch_size_per_image, rpn_positive_fraction, rpn_pos_thresh, rpn_neg_thresh,
        ignore_border_anchors, rpn_train_proposals, rpn_test_proposals: see
            :class:`~tutorial_det.rpn.RegionProposalNetwork`. Anchors crossing the border are
            labelled like the others by default (torchvision's choice; the paper ignores them):
            on 128 px images they are most of the large anchors.
        roi_batch_size_per_image, roi_positive_fraction, roi_pos_thresh: see
            :func:`tutorial_det.roi.proposal_targets`.
        pooling, pool_size, sampling_ratio, representation_size, paper_init: see
            :class:`tutorial_det.roi.RoIHead`.
        score_thresh, nms_thresh, detections_per_img: see :func:`decode_detections`.
        image_mean, image_std: per-channel normalisation applied inside the model (see
            :class:`~tutorial_det.input_transform.InputTransform`).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        backbone: nn.Module | None = None,
        anchor_sizes: Sequence[float] = (16, 32, 64),
        anchor_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        rpn_mid_channels: int | None = None,
        rpn_batch_size_per_image: int = 256,
        rpn_positive_fraction: float = 0.5,
        rpn_pos_thresh: float = 0.7,
        rpn_neg_thresh: float = 0.3,
        ignore_border_anchors: bool = False,
        rpn_train_proposals: ProposalSettings = SMALL_TRAIN_PROPOSALS,
        rpn_test_proposals: ProposalSettings = SMALL_TEST_PROPOSALS,
        roi_batch_size_per_image: int = 128,
        roi_positive_fraction: float = 0.25,
        roi_pos_thresh: float = 0.5,
        pooling: str = "align",
        pool_size: int = 7,
        sampling_ratio: int = 1,
        representation_size: int = 256,
        paper_init: bool = False,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if not (isinstance(num_classes, int) and num_classes >= 2):
            raise ValueError(
                f"num_classes counts the background, so it must be an int >= 2, got {num_classes!r}"
            )
        self.num_classes = num_classes
        self.backbone = TopDownBackbone() if backbone is None else backbone
        for attribute in ("out_channels", "stride"):
            if not isinstance(getattr(self.backbone, attribute, None), int):
                raise ValueError(
                    f"backbone must have an int attribute {attribute!r} (see "
                    "tutorial_det.backbones)"
                )
        stride = self.backbone.stride
        channels = self.backbone.out_channels
        self.rpn = RegionProposalNetwork(
            channels,
            stride=stride,
            ratios=anchor_ratios,
            scales=tuple(size / stride for size in anchor_sizes),
            mid_channels=rpn_mid_channels,
            pos_thresh=rpn_pos_thresh,
            neg_thresh=rpn_neg_thresh,
            batch_size_per_image=rpn_batch_size_per_image,
            positive_fraction=rpn_positive_fraction,
            ignore_border_anchors=ignore_border_anchors,
            train_proposals=rpn_train_proposals,
            test_proposals=rpn_test_proposals,
        )
        self.roi_head = RoIHead(
            channels,
            num_classes,
            pooling=pooling,
            output_size=pool_size,
            spatial_scale=1 / stride,
            sampling_ratio=sampling_ratio,
            representation_size=representation_size,
            paper_init=paper_init,
        )
        self.roi_batch_size_per_image = roi_batch_size_per_image
        self.roi_positive_fraction = roi_positive_fraction
        self.roi_pos_thresh = roi_pos_thresh
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.transform = InputTransform(
            image_mean,
            image_std,
            size_divisible=getattr(self.backbone, "size_divisible", stride),
        )

    # -------------------------------------------------------------- forward
    def forward(
        self, images: Sequence[Tensor] | Tensor, targets: Sequence[dict] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        batch, sizes = self.transform(images)
        if self.training:
            targets = check_targets(targets, len(batch), self.num_classes, batch.device)
        features = self.backbone(batch)
        proposals, losses = self.rpn(features, sizes, targets if self.training else None)
        if self.training:
            rois, labels, deltas = [], [], []
            for image_proposals, target in zip(proposals, targets, strict=True):
                r, c, d = proposal_targets(
                    image_proposals,
                    target["boxes"],
                    target["labels"],
                    batch_size_per_image=self.roi_batch_size_per_image,
                    positive_fraction=self.roi_positive_fraction,
                    pos_thresh=self.roi_pos_thresh,
                )
                rois.append(r)
                labels.append(c)
                deltas.append(d)
            class_logits, box_deltas = self.roi_head(features, rois)
            classifier, box = roi_head_loss(
                class_logits, box_deltas, torch.cat(labels), torch.cat(deltas)
            )
            return {**losses, "loss_classifier": classifier, "loss_box_reg": box}
        class_logits, box_deltas = self.roi_head(features, proposals)
        detections = []
        start = 0
        for image_proposals, size in zip(proposals, sizes, strict=True):
            end = start + len(image_proposals)
            detections.append(
                decode_detections(
                    class_logits[start:end],
                    box_deltas[start:end],
                    image_proposals,
                    size,
                    score_thresh=self.score_thresh,
                    nms_thresh=self.nms_thresh,
                    detections_per_img=self.detections_per_img,
                )
            )
            start = end
        return detections


def build_faster_rcnn(num_classes: int, **options) -> FasterRCNN:
    """:class:`FasterRCNN` for ``num_classes`` classes (background included); ``options`` are its
    keyword arguments."""
    return FasterRCNN(num_classes, **options)
