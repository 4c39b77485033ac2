"""Boxes: formats, areas, IoU, clipping and the (dx, dy, dw, dh) box coding.

Lesson 00 teaches the formats and IoU (it builds ``box_iou_by_hand`` by broadcasting, the
reading of :func:`box_iou` without its checks, its 0 for an empty union and its faster memory
layout); lessons 03 and 04 the box coding.

Every box tensor in tutorial_det is a float tensor of shape ``[N, 4]`` in ``(x1, y1, x2, y2)``
pixel coordinates ("xyxy"), with no "+1" convention: a box from x=10 to x=20 is 10 pixels wide.
Other formats appear only at the edges, through the conversions here:

- ``xywh``: top-left corner, width, height (COCO annotations);
- ``cxcywh``: centre, width, height (SSD priors, the box coding);
- ``yxyx``: rows first, (y1, x1, y2, x2) (TensorFlow, and the seed notebook of lessons 00-06).

All functions accept empty inputs (zero boxes) and return empty, correctly shaped results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

FORMATS = ("xyxy", "xywh", "cxcywh", "yxyx")

#: Largest dw, dh that ``decode_boxes`` lets through: exp(log(1000/16)) = 62.5 times the anchor.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def check_boxes(boxes: Tensor, name: str = "boxes", *, ordered: bool = True) -> Tensor:
    """Validate a box tensor and return it as floating point.

    Args:
        boxes: ``[N, 4]`` tensor.
        name: how error messages refer to the argument.
        ordered: also require ``x2 >= x1`` and ``y2 >= y1`` (true for xyxy boxes).

    Raises:
        TypeError: ``boxes`` is not a tensor.
        ValueError: the shape is not ``[N, 4]``, a value is NaN or infinite, or (``ordered``) a box
            has ``x2 < x1`` or ``y2 < y1``; the message names the first offending box.
    """
    if not isinstance(boxes, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape [N, 4], got {type(boxes).__name__}"
        )
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape [N, 4], got {list(boxes.shape)}")
    if not boxes.is_floating_point():
        boxes = boxes.float()
    if boxes.numel() == 0:
        return boxes
    # One cheap test on the happy path; the culprit is looked for only when it fails.
    valid = torch.isfinite(boxes).all()
    if ordered:
        valid &= (boxes[:, 2:] >= boxes[:, :2]).all()
    if not bool(valid):
        finite = torch.isfinite(boxes).all(dim=1)
        if not bool(finite.all()):
            i = int((~finite).nonzero()[0])
            raise ValueError(f"{name}[{i}] = {boxes[i].tolist()} is not finite")
        bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise ValueError(
                f"{name}[{i}] = {boxes[i].tolist()} has x2 < x1 or y2 < y1; "
                "boxes must be (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2"
            )
    return boxes


# --------------------------------------------------------------------------- formats


def xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """``[N, 4]`` (x1, y1, x2, y2) -> ``[N, 4]`` (x1, y1, w, h)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``[N, 4]`` (x1, y1, w, h) -> ``[N, 4]`` (x1, y1, x2, y2)."""
    x1, y1, w, h = boxes.unbind(-1)
    return torch.stack((x1, y1, x1 + w, y1 + h), dim=-1)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """``[N, 4]`` (x1, y1, x2, y2) -> ``[N, 4]`` (cx, cy, w, h)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``[N, 4]`` (cx, cy, w, h) -> ``[N, 4]`` (x1, y1, x2, y2)."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def xyxy_to_yxyx(boxes: Tensor) -> Tensor:
    """``[N, 4]`` (x1, y1, x2, y2) -> ``[N, 4]`` (y1, x1, y2, x2). The swap is its own inverse."""
    return boxes[..., [1, 0, 3, 2]]


yxyx_to_xyxy = xyxy_to_yxyx

_TO_XYXY = {
    "xyxy": lambda b: b,
    "xywh": xywh_to_xyxy,
    "cxcywh": cxcywh_to_xyxy,
    "yxyx": yxyx_to_xyxy,
}
_FROM_XYXY = {
    "xyxy": lambda b: b,
    "xywh": xyxy_to_xywh,
    "cxcywh": xyxy_to_cxcywh,
    "yxyx": xyxy_to_yxyx,
}


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``[N, 4]`` boxes between ``"xyxy"``, ``"xywh"``, ``"cxcywh"`` and ``"yxyx"``.

    Same contract as ``torchvision.ops.box_convert`` (which has no ``yxyx``); goes through xyxy.
    """
    for fmt, role in ((in_fmt, "in_fmt"), (out_fmt, "out_fmt")):
        if fmt not in FORMATS:
            raise ValueError(f"{role}={fmt!r} is not one of {FORMATS}")
    boxes = check_boxes(boxes, ordered=False)
    return _FROM_XYXY[out_fmt](_TO_XYXY[in_fmt](boxes))


# --------------------------------------------------------------------------- geometry


def box_area(boxes: Tensor) -> Tensor:
    """Areas ``[N]`` of ``[N, 4]`` xyxy boxes (zero for degenerate boxes)."""
    boxes = check_boxes(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair: ``[N, 4]`` x ``[M, 4]`` xyxy -> ``[N, M]``.

    IoU(a, b) = area(a ∩ b) / (area(a) + area(b) - area(a ∩ b)). A pair whose union is empty
    (two zero-area boxes) has IoU 0, never NaN. Vectorised by broadcasting: the corners of the
    intersection are ``max`` of the top-left and ``min`` of the bottom-right corners (see
    :func:`iou_matrix` for the memory layout that makes it fast).
    """
    return iou_matrix(check_boxes(boxes1, "boxes1"), check_boxes(boxes2, "boxes2"))


def iou_matrix(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """:func:`box_iou` without validating its inputs, for loops that validated their boxes once
    and call it many times (the NMS sweep): ``[N, 4]`` x ``[M, 4]`` float xyxy -> ``[N, M]``.

    Each coordinate is taken as one contiguous row (``boxes.T.contiguous()``), so every ``[N, M]``
    operation broadcasts a column against a row of plain numbers; broadcasting ``[N, 1, 2]``
    corner pairs against ``[1, M, 2]`` (the textbook form) computes the same numbers two to five
    times slower on a CPU. The longer list goes along the rows (a result with rows of two
    numbers, anchors against two ground truths, is computed as its transpose and returned as a
    transposed view).
    """
    if len(boxes1) > len(boxes2):
        return iou_matrix(boxes2, boxes1).T
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    a, b = boxes1.T.contiguous(), boxes2.T.contiguous()
    width = (torch.minimum(a[2, :, None], b[2]) - torch.maximum(a[0, :, None], b[0])).clamp(min=0)
    height = (torch.minimum(a[3, :, None], b[3]) - torch.maximum(a[1, :, None], b[1])).clamp(min=0)
    inter = width * height
    union = area1[:, None] + area2 - inter
    # A union of 0 means two empty boxes: their intersection is 0 too, and 0 / 1 = 0, not NaN
    # (nor a NaN gradient). Every positive union is left exactly as it is.
    return inter / torch.where(union > 0, union, 1.0)


def clip_boxes(boxes: Tensor, image_size: Sequence[int]) -> Tensor:
    """Clamp ``[N, 4]`` xyxy boxes to an image of ``image_size = (height, width)``.

    x is clamped to ``[0, width]`` and y to ``[0, height]`` (``torchvision.ops.clip_boxes_to_image``).
    """
    height, width = check_image_size(image_size)
    boxes = check_boxes(boxes)
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices (int64, ascending) of the ``[N, 4]`` xyxy boxes whose width and height are both
    at least ``min_size`` (``torchvision.ops.remove_small_boxes``'s contract)."""
    boxes = check_boxes(boxes)
    ws = boxes[:, 2] - boxes[:, 0]
    hs = boxes[:, 3] - boxes[:, 1]
    return torch.where((ws >= min_size) & (hs >= min_size))[0]


def check_image_size(image_size: Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` as two ints; ValueError unless it is two positive numbers."""
    if len(image_size) != 2 or min(image_size) <= 0:
        raise ValueError(
            f"image_size must be (height, width) with positive values, got {image_size}"
        )
    return int(image_size[0]), int(image_size[1])


# --------------------------------------------------------------------------- box coding


def _weights(weights: Sequence[float]) -> tuple[float, float, float, float]:
    if len(weights) != 4 or min(weights) <= 0:
        raise ValueError(f"weights must be four positive numbers (wx, wy, ww, wh), got {weights}")
    return tuple(float(w) for w in weights)  # type: ignore[return-value]


def _positive_sizes(boxes: Tensor, name: str) -> tuple[Tensor, Tensor]:
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    bad = (widths <= 0) | (heights <= 0)
    if bool(bad.any()):
        i = int(bad.flatten().nonzero()[0])
        raise ValueError(
            f"{name}[{i}] = {boxes.reshape(-1, 4)[i].tolist()} has zero width or height; "
            "the box coding divides by widths and takes logs of them"
        )
    return widths, heights


def encode_boxes(
    gt_boxes: Tensor, anchors: Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)
) -> Tensor:
    """Regression targets that move each anchor onto its ground truth.

    For anchor (centre ``xa, ya``, size ``wa, ha``) and ground truth (``x, y, w, h``)::

        dx = wx * (x - xa) / wa      dy = wy * (y - ya) / ha
        dw = ww * log(w / wa)        dh = wh * log(h / ha)

    Args:
        gt_boxes: ``[N, 4]`` xyxy, the ground truth matched to each anchor (positive sizes).
        anchors: ``[N, 4]`` xyxy (positive sizes).
        weights: ``(wx, wy, ww, wh)``; Faster R-CNN's RPN uses (1, 1, 1, 1), its RoI head
            (10, 10, 5, 5), SSD's variances (0.1, 0.2) are weights (10, 10, 5, 5).

    Returns:
        ``[N, 4]`` deltas ``(dx, dy, dw, dh)`` (``torchvision``'s ``BoxCoder.encode_single``).
    """
    gt_boxes = check_boxes(gt_boxes, "gt_boxes")
    anchors = check_boxes(anchors, "anchors")
    if gt_boxes.shape != anchors.shape:
        raise ValueError(
            f"gt_boxes {list(gt_boxes.shape)} and anchors {list(anchors.shape)} must have the same "
            "shape: one matched ground truth per anchor"
        )
    wx, wy, ww, wh = _weights(weights)
    wa, ha = _positive_sizes(anchors, "anchors")
    w, h = _positive_sizes(gt_boxes, "gt_boxes")
    xa = anchors[:, 0] + 0.5 * wa
    ya = anchors[:, 1] + 0.5 * ha
    x = gt_boxes[:, 0] + 0.5 * w
    y = gt_boxes[:, 1] + 0.5 * h
    return torch.stack(
        (wx * (x - xa) / wa, wy * (y - ya) / ha, ww * torch.log(w / wa), wh * torch.log(h / ha)),
        dim=1,
    )


def decode_boxes(
    deltas: Tensor,
    anchors: Tensor,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    clamp: float = BBOX_XFORM_CLIP,
) -> Tensor:
    """Apply deltas to anchors: the inverse of :func:`encode_boxes`.

    Args:
        deltas: ``[..., 4]`` ``(dx, dy, dw, dh)``; e.g. ``[N, 4]``, or ``[N, K, 4]`` for one box
            per class.
        anchors: ``[N, 4]`` xyxy (or any shape broadcastable to ``deltas``).
        weights: the weights the deltas were encoded with.
        clamp: upper bound on ``dw / ww`` and ``dh / wh`` before ``exp``: without it an untrained
            head's large outputs overflow to ``inf`` boxes.

    Returns:
        xyxy boxes of the shape of ``deltas``.
    """
    if deltas.shape[-1:] != (4,):
        raise ValueError(f"deltas must have shape [..., 4], got {list(deltas.shape)}")
    if anchors.shape[-1:] != (4,):
        raise ValueError(f"anchors must have shape [..., 4], got {list(anchors.shape)}")
    wx, wy, ww, wh = _weights(weights)
    if deltas.ndim == anchors.ndim + 1:
        anchors = anchors.unsqueeze(-2)
    anchors = anchors.to(deltas.dtype)
    wa = anchors[..., 2] - anchors[..., 0]
    ha = anchors[..., 3] - anchors[..., 1]
    xa = anchors[..., 0] + 0.5 * wa
    ya = anchors[..., 1] + 0.5 * ha
    dx, dy, dw, dh = deltas.unbind(-1)
    x = dx / wx * wa + xa
    y = dy / wy * ha + ya
    w = torch.exp((dw / ww).clamp(max=clamp)) * wa
    h = torch.exp((dh / wh).clamp(max=clamp)) * ha
    return torch.stack((x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h), dim=-1)
