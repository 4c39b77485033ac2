"""The region proposal network (RPN) of Faster R-CNN (Ren et al., NeurIPS 2015).

Lesson 04 teaches the head, the anchor order (:func:`to_anchor_order`) and the proposal layer
step by step before it calls :func:`propose`; lesson 06 teaches :func:`rpn_loss` term by term.

A small network slides over the backbone's feature map and, for every anchor of every cell,
predicts two things: how likely the anchor is to hold an object (**objectness**) and how to move
it onto that object (**box deltas**). The best moved anchors, thinned out by non-maximum
suppression, are the **proposals** the RoI head classifies. Boxes are ``[N, 4]`` xyxy pixels.

- :class:`RPNHead`: 3x3 conv + ReLU, then two 1x1 convs: ``2 A`` objectness logits (background,
  object) and ``4 A`` deltas per cell, for ``A`` anchors per cell.
- :func:`to_anchor_order`: ``[N, A * k, H, W] -> [N, H * W * A, k]``, the order of
  :func:`tutorial_det.anchors.grid_anchors` (row, column, anchor), so that prediction ``i`` belongs
  to anchor ``i``.
- :func:`candidate_boxes` and :func:`select_proposals` (together :func:`propose`): the proposal
  layer, in the paper's order: decode the deltas, clip to the image, drop boxes under
  ``min_size``; keep the ``pre_nms_top_n`` best, NMS at 0.7, keep the ``post_nms_top_n`` best.
- :func:`rpn_loss`: cross entropy over the sampled anchors + ``box_weight`` x smooth L1 over the
  positive ones, both divided by the number of sampled anchors (see its docstring).
- :class:`RegionProposalNetwork`: head, anchors, targets, proposals and loss for a batch.

Objectness as two logits per anchor (the paper's ``2k`` scores with a softmax) or as one
(torchvision's ``k`` logits with a sigmoid) is the same model: ``softmax((b, o))[1] =
sigmoid(o - b)``, and the two-class cross entropy of ``(b, o)`` is the binary cross entropy of
``o - b``. The tests use this to compare :func:`rpn_loss` with torchvision's RPN loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tutorial_det.anchors import anchor_base, grid_anchors
from tutorial_det.boxes import (
    check_boxes,
    check_image_size,
    clip_boxes,
    decode_boxes,
    remove_small_boxes,
)
from tutorial_det.labelling import anchor_targets
from tutorial_det.nms import nms

#: torchvision's smooth L1 transition point for both Faster R-CNN losses (the original Caffe
#: code's sigma = 3: beta = 1 / sigma**2). Below it the loss is quadratic, above it linear.
SMOOTH_L1_BETA = 1.0 / 9.0


# --------------------------------------------------------------------------- the head


class RPNHead(nn.Module):
    """The RPN's sliding network: ``[N, C, H, W]`` features -> objectness and deltas per anchor.

    A 3x3 conv (``mid_channels``, padding 1) and a ReLU, then two 1x1 convs side by side:
    ``cls_logits`` with ``2 A`` channels and ``bbox_pred`` with ``4 A``. Channel ``a * 2 + c`` of
    the logits is class ``c`` (0 background, 1 object) of anchor ``a`` of the cell; channel
    ``a * 4 + d`` of the deltas is delta ``d`` (dx, dy, dw, dh) of anchor ``a``. Every weight is
    drawn from N(0, 0.01) and every bias is 0 (the paper's initialisation), so an untrained head
    says "50 % object" and "do not move" everywhere.

    ``forward(features)`` returns the two maps ``([N, 2 A, H, W], [N, 4 A, H, W])``; pass them
    through :func:`to_anchor_order` to line them up with the anchors.
    """

    def __init__(self, in_channels: int, num_anchors: int, mid_channels: int | None = None):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_anchors", num_anchors)):
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        mid_channels = in_channels if mid_channels is None else mid_channels
        if not (isinstance(mid_channels, int) and mid_channels > 0):
            raise ValueError(f"mid_channels must be a positive int, got {mid_channels!r}")
        self.num_anchors = num_anchors
        self.conv = nn.Conv2d(in_channels, mid_channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(mid_channels, 2 * num_anchors, 1)
        self.bbox_pred = nn.Conv2d(mid_channels, 4 * num_anchors, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        x = F.relu(self.conv(features))
        return self.cls_logits(x), self.bbox_pred(x)


def to_anchor_order(output: Tensor, values_per_anchor: int) -> Tensor:
    """``[N, A * k, H, W]`` head output -> ``[N, H * W * A, k]`` in the anchors' order.

    Row ``(i * W + j) * A + a`` holds the ``k`` values of anchor ``a`` at row ``i``, column ``j``
    (channels ``a * k .. a * k + k - 1``): the order of
    :func:`tutorial_det.anchors.grid_anchors`. The permute puts the channels last, so that a
    cell's ``A * k`` values are contiguous, and the reshape splits them into ``A`` rows of ``k``.
    Reshaping without the permute would mix values of different cells into one row.
    """
    if output.ndim != 4:
        raise ValueError(f"output must have shape [N, A * k, H, W], got {list(output.shape)}")
    n, channels, height, width = output.shape
    if values_per_anchor < 1 or channels % values_per_anchor:
        raise ValueError(
            f"output has {channels} channels, not a multiple of values_per_anchor="
            f"{values_per_anchor}"
        )
    cells = output.permute(0, 2, 3, 1)  # [N, H, W, A * k]
    return cells.reshape(n, height * width * (channels // values_per_anchor), -1)  # [N, H*W*A, k]


def objectness_probability(logits: Tensor) -> Tensor:
    """``[..., 2]`` (background, object) logits -> ``[...]`` probability of "object"."""
    return logits.softmax(-1)[..., 1]


# --------------------------------------------------------------------------- proposals


@dataclass(frozen=True)
class ProposalSettings:
    """How many proposals the proposal layer keeps, and which.

    Attributes:
        pre_nms_top_n: best-scoring boxes that go into NMS.
        post_nms_top_n: best-scoring boxes kept after NMS (the proposals).
        nms_thresh: IoU above which NMS drops the lower-scoring of two boxes.
        min_size: boxes narrower or lower than this many pixels (after clipping) are dropped.

    The paper's values for an ~600-1000 px image: 12000 / 2000 while training, 6000 / 300 at
    test time, NMS 0.7, min size 16.
    """

    pre_nms_top_n: int = 12000
    post_nms_top_n: int = 2000
    nms_thresh: float = 0.7
    min_size: float = 16.0

    def __post_init__(self) -> None:
        for name in ("pre_nms_top_n", "post_nms_top_n"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0 <= self.nms_thresh <= 1:
            raise ValueError(f"nms_thresh must be in [0, 1], got {self.nms_thresh}")
        if not self.min_size >= 0:
            raise ValueError(f"min_size must be >= 0, got {self.min_size}")


TRAIN_PROPOSALS = ProposalSettings(12000, 2000)
TEST_PROPOSALS = ProposalSettings(6000, 300)


def candidate_boxes(
    anchors: Tensor, scores: Tensor, deltas: Tensor, image_size: Sequence[int], min_size: float
) -> tuple[Tensor, Tensor]:
    """First half of the proposal layer: decode, clip, drop small boxes.

    Args:
        anchors: ``[K, 4]`` xyxy.
        scores: ``[K]`` objectness (e.g. the foreground probability).
        deltas: ``[K, 4]`` predicted ``(dx, dy, dw, dh)`` (box-coding weights 1, 1, 1, 1).
        image_size: ``(height, width)`` the boxes are clipped to.
        min_size: smallest width and height kept, in pixels.

    Returns:
        ``(boxes [M, 4], scores [M])``: the decoded, clipped boxes at least ``min_size`` wide and
        high, in anchor order.
    """
    anchors = check_boxes(anchors, "anchors")
    if scores.shape != anchors.shape[:1] or deltas.shape != anchors.shape:
        raise ValueError(
            f"scores {list(scores.shape)} and deltas {list(deltas.shape)} must be [K] and "
            f"[K, 4] for the K = {len(anchors)} anchors"
        )
    boxes = decode_boxes(deltas, anchors)  # refuses NaN or infinite deltas
    # decoded from checked anchors and deltas: ordered, and finite once clipped
    boxes = clip_boxes(boxes, image_size, validate=False)
    keep = remove_small_boxes(boxes, min_size, validate=False)
    return boxes[keep], scores[keep]


def select_proposals(
    boxes: Tensor,
    scores: Tensor,
    pre_nms_top_n: int,
    nms_thresh: float,
    post_nms_top_n: int | None,
) -> tuple[Tensor, Tensor]:
    """Second half of the proposal layer: best ``pre_nms_top_n``, NMS, best ``post_nms_top_n``.

    Args:
        boxes: ``[M, 4]`` xyxy candidates; ``scores``: ``[M]``.
        pre_nms_top_n: how many of the best-scoring candidates enter NMS.
        nms_thresh: NMS IoU threshold (:func:`tutorial_det.nms.nms`).
        post_nms_top_n: how many NMS survivors to keep; None keeps them all.

    Returns:
        ``(boxes [P, 4], scores [P])`` in decreasing order of score.
    """
    top = scores.topk(min(pre_nms_top_n, len(scores))).indices
    boxes, scores = boxes[top], scores[top]
    keep = nms(boxes, scores, nms_thresh)[:post_nms_top_n]
    return boxes[keep], scores[keep]


def propose(
    anchors: Tensor,
    scores: Tensor,
    deltas: Tensor,
    image_size: Sequence[int],
    settings: ProposalSettings = TRAIN_PROPOSALS,
) -> tuple[Tensor, Tensor]:
    """The proposal layer for one image: :func:`candidate_boxes` then :func:`select_proposals`.

    Returns ``(boxes [P, 4] xyxy, scores [P])``, best first, ``P <= settings.post_nms_top_n``.
    """
    boxes, scores = candidate_boxes(anchors, scores, deltas, image_size, settings.min_size)
    return select_proposals(
        boxes, scores, settings.pre_nms_top_n, settings.nms_thresh, settings.post_nms_top_n
    )


# --------------------------------------------------------------------------- loss


def rpn_loss(
    logits: Tensor,
    deltas: Tensor,
    labels: Tensor,
    target_deltas: Tensor,
    box_weight: float = 1.0,
    beta: float = SMOOTH_L1_BETA,
) -> tuple[Tensor, Tensor]:
    """The RPN's two loss terms over a batch of sampled anchors.

    ::

        objectness = sum over sampled anchors of CE(logits, label) / S
        box        = box_weight * sum over positive anchors of smoothL1(deltas - targets) / S

    where ``S`` is the number of **sampled** anchors (labels 0 or 1) in the whole batch; the
    ignored anchors (-1) take no part. This is torchvision's normalisation (its
    ``RegionProposalNetwork.compute_loss``, with ``box_weight = 1``). The paper writes
    ``1/N_cls sum L_cls + lambda 1/N_reg sum p* L_reg`` with ``N_cls = 256`` (the mini-batch),
    ``N_reg ~ 2400`` (the number of anchor locations) and ``lambda = 10``: the box sum gets the
    weight ``10 / 2400 ~ 1 / 240``, close to the ``1 / 256`` here, so the two choices weigh the
    terms alike. The smooth L1 sums the four deltas of each positive anchor.

    Args:
        logits: ``[..., 2]`` (background, object) logits, e.g. ``[N, K, 2]``.
        deltas: ``[..., 4]`` predicted deltas, the same leading shape.
        labels: ``[...]`` int64 in {1, 0, -1} after sampling.
        target_deltas: ``[..., 4]`` regression targets (read only where ``labels == 1``).
        box_weight: the paper's lambda.
        beta: smooth L1's transition point (1 is the textbook smooth L1).

    Returns:
        ``(objectness_loss, box_loss)``, two scalars; both 0 (still connected to the graph)
        when no anchor is sampled.
    """
    lead = labels.shape
    if logits.shape != (*lead, 2) or deltas.shape != (*lead, 4):
        raise ValueError(
            f"logits {list(logits.shape)} and deltas {list(deltas.shape)} must be "
            f"{[*lead, 2]} and {[*lead, 4]} for labels of shape {list(lead)}"
        )
    if target_deltas.shape != deltas.shape:
        raise ValueError(
            f"target_deltas {list(target_deltas.shape)} must match deltas {list(deltas.shape)}"
        )
    if labels.dtype != torch.int64:
        raise TypeError(f"labels must be int64 in {{1, 0, -1}}, got {labels.dtype}")
    bad = (labels < -1) | (labels > 1)
    if bool(bad.any()):
        i = tuple(int(v) for v in bad.nonzero()[0])
        raise ValueError(f"labels{list(i)} = {int(labels[i])} is not one of 1, 0, -1")
    sampled = labels >= 0
    positive = labels == 1
    count = max(int(sampled.sum()), 1)
    objectness = F.cross_entropy(logits[sampled], labels[sampled], reduction="sum") / count
    box = F.smooth_l1_loss(deltas[positive], target_deltas[positive], beta=beta, reduction="sum")
    return objectness, box_weight * box / count


# --------------------------------------------------------------------------- the module


class RegionProposalNetwork(nn.Module):
    """Head, anchors, training targets, proposal layer and loss of the RPN, for a batch.

    Anchors: ``len(ratios) * len(scales)`` per cell (:func:`~tutorial_det.anchors.anchor_base`
    with ``stride``; a scale ``k`` anchor is ``stride * k`` pixels on a side at ratio 1).

    ``forward(features, image_sizes, targets=None)``:

    - ``features`` ``[N, C, H, W]``, the backbone's map of a batch whose image ``i`` is
      ``image_sizes[i] = (height, width)`` pixels (images may be smaller than the batch's padded
      size: each image's proposals are clipped to its own size);
    - returns ``(proposals, losses)``: one ``[P_i, 4]`` xyxy tensor per image (detached: the RoI
      head's loss does not flow back into the proposals' coordinates, torchvision's
      "approximate joint training"), and in training mode ``{"loss_objectness",
      "loss_rpn_box_reg"}`` (:func:`rpn_loss`), else ``{}``.

    Training targets come from :func:`tutorial_det.labelling.anchor_targets` (IoU >= ``pos_thresh``
    positive, < ``neg_thresh`` negative, the best anchors of each ground truth, then
    ``batch_size_per_image`` sampled with at most ``positive_fraction`` positives). With
    ``ignore_border_anchors`` the anchors crossing the image border are ignored, as in the
    paper; otherwise they are labelled like the others, as torchvision does.

    ``predict(features)`` gives the raw predictions in anchor order, for lessons and explorers.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        stride: int = 16,
        ratios: Sequence[float] = (0.5, 1.0, 2.0),
        scales: Sequence[float] = (8, 16, 32),
        mid_channels: int | None = None,
        pos_thresh: float = 0.7,
        neg_thresh: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        ignore_border_anchors: bool = True,
        train_proposals: ProposalSettings = TRAIN_PROPOSALS,
        test_proposals: ProposalSettings = TEST_PROPOSALS,
        box_weight: float = 1.0,
        beta: float = SMOOTH_L1_BETA,
    ) -> None:
        super().__init__()
        base = anchor_base(stride, ratios, scales)
        self.head = RPNHead(in_channels, len(base), mid_channels)
        self.stride = stride
        self.register_buffer("base_anchors", base, persistent=False)
        self.pos_thresh = pos_thresh
        self.neg_thresh = neg_thresh
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.ignore_border_anchors = ignore_border_anchors
        self.train_proposals = train_proposals
        self.test_proposals = test_proposals
        self.box_weight = box_weight
        self.beta = beta
        self._anchors: dict[tuple[int, int], Tensor] = {}

    @property
    def num_anchors(self) -> int:
        """Anchors per cell, ``A``."""
        return len(self.base_anchors)

    def anchors(self, feature_size: Sequence[int]) -> Tensor:
        """``[H * W * A, 4]`` xyxy anchors of an ``(H, W)`` map (cached per size and device)."""
        key = (int(feature_size[0]), int(feature_size[1]))
        cached = self._anchors.get(key)
        if cached is None or cached.device != self.base_anchors.device:
            cached = grid_anchors(self.base_anchors, key, self.stride)
            self._anchors[key] = cached
        return cached

    def predict(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(anchors [K, 4], logits [N, K, 2], deltas [N, K, 4])`` for ``[N, C, H, W]`` features,
        ``K = H * W * A``; row ``k`` of every tensor refers to the same anchor."""
        if features.ndim != 4:
            raise ValueError(f"features must be [N, C, H, W], got {list(features.shape)}")
        logit_map, delta_map = self.head(features)
        anchors = self.anchors(features.shape[-2:])
        return anchors, to_anchor_order(logit_map, 2), to_anchor_order(delta_map, 4)

    def forward(
        self,
        features: Tensor,
        image_sizes: Sequence[Sequence[int]],
        targets: Sequence[dict[str, Tensor]] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        if len(image_sizes) != len(features):
            raise ValueError(
                f"image_sizes has {len(image_sizes)} entries for a batch of {len(features)}"
            )
        anchors, logits, deltas = self.predict(features)
        settings = self.train_proposals if self.training else self.test_proposals
        scores = objectness_probability(logits.detach())
        proposals = [  # float32 pixel coordinates, even under autocast (decode_boxes)
            propose(anchors, s, d, check_image_size(size), settings)[0]
            for s, d, size in zip(scores, deltas.detach(), image_sizes, strict=True)
        ]
        if not self.training:
            return proposals, {}
        if targets is None or len(targets) != len(features):
            raise ValueError(
                f"in training mode the RPN needs one target per image ({len(features)}), got "
                f"{None if targets is None else len(targets)}"
            )
        labels, target_deltas = [], []
        for target, size in zip(targets, image_sizes, strict=True):
            image_labels, image_deltas = anchor_targets(
                anchors,
                target["boxes"],
                size if self.ignore_border_anchors else None,
                pos_thresh=self.pos_thresh,
                neg_thresh=self.neg_thresh,
                batch_size_per_image=self.batch_size_per_image,
                positive_fraction=self.positive_fraction,
            )
            labels.append(image_labels)
            target_deltas.append(image_deltas)
        objectness, box = rpn_loss(
            logits,
            deltas,
            torch.stack(labels),
            torch.stack(target_deltas),
            self.box_weight,
            self.beta,
        )
        return proposals, {"loss_objectness": objectness, "loss_rpn_box_reg": box}
