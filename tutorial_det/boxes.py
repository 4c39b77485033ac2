"""Boxes: formats, areas, IoU, clipping and the (dx, dy, dw, dh) box coding.

Lesson 00 teaches the formats and IoU (it builds ``box_iou_by_hand`` by broadcasting, the
reading of :func:`box_iou` without its checks, its 0 for an empty union and its faster memory
layout); lessons 03 and 04 the box coding.

Every box tensor in tutorial_det is a float tensor of shape ``[N, 4]`` in ``(x1, y1, x2, y2)``
pixel coordinates ("xyxy"), with no "+1" convention: a box from x=10 to x=20 is 10 pixels wide.
Other formats appear only at the edges, through the conversions here:

- ``xywh``: top-left corner, width, height (COCO annotations);
- ``cxcywh``: centre, width, height (SSD priors, the box coding);
- ``yxyx``: rows first, (y1, x1, y2, x2) (TensorFlow, and the walkthrough of lessons 00-06).

All functions accept empty inputs (zero boxes) and return empty, correctly shaped results.
"""

from __future__ import annotations

import math
import numbers
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

    Integer boxes become float32; float16 and bfloat16 boxes stay as they are (the functions
    here that multiply coordinates compute them in float32, as torchvision does).

    Raises:
        TypeError: ``boxes`` is not a tensor, or holds booleans or complex numbers.
        ValueError: the shape is not ``[N, 4]``, a value is NaN or infinite, or (``ordered``) a box
            has ``x2 < x1`` or ``y2 < y1``; the message names the first offending box.

    The happy path costs one host synchronisation (reading one bool); code that calls the box
    functions many times on boxes it validated once passes ``validate=False`` to them.
    """
    boxes = _as_boxes(boxes, name)
    if boxes.numel() == 0:
        return boxes
    # One cheap test on the happy path; the culprit is looked for only when it fails.
    valid = torch.isfinite(boxes).all()
    if ordered:
        valid &= (boxes[:, 2:] >= boxes[:, :2]).all()
    if not bool(valid):
        _raise_first_bad_box(boxes, name, ordered)
    return boxes


def _as_boxes(boxes: Tensor, name: str) -> Tensor:
    """:func:`check_boxes` without looking at the values: type, dtype and shape only."""
    if not isinstance(boxes, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape [N, 4], got {type(boxes).__name__}"
        )
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{name} must hold real coordinates, got a {boxes.dtype} tensor")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape [N, 4], got {list(boxes.shape)}")
    return boxes if boxes.is_floating_point() else boxes.float()


def _check_paired(first: Tensor, second: Tensor, names: tuple[str, str], pairing: str) -> None:
    """Raise a ValueError unless two box tensors have the same shape (``pairing`` says why)."""
    if first.shape != second.shape:
        raise ValueError(
            f"{names[0]} {list(first.shape)} and {names[1]} {list(second.shape)} must have the "
            f"same shape: {pairing}"
        )


def _raise_first_bad_box(boxes: Tensor, name: str, ordered: bool) -> None:
    """Raise a ValueError naming the first non-finite (or, ``ordered``, inverted) box."""
    rows = boxes.reshape(-1, 4)
    finite = torch.isfinite(rows).all(dim=1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0])
        raise ValueError(f"{name}[{i}] = {rows[i].tolist()} is not finite")
    bad = (rows[:, 2] < rows[:, 0]) | (rows[:, 3] < rows[:, 1])
    if ordered and bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{name}[{i}] = {rows[i].tolist()} has x2 < x1 or y2 < y1; "
            "boxes must be (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2"
        )


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


def box_area(boxes: Tensor, *, validate: bool = True) -> Tensor:
    """Areas ``[N]`` of ``[N, 4]`` xyxy boxes (zero for degenerate boxes); float16 and bfloat16
    boxes are measured in float32, as torchvision does (a 256 px square covers 65536 square
    pixels, more than float16 holds). ``validate=False`` skips :func:`check_boxes`."""
    boxes = _upcast(check_boxes(boxes) if validate else boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


#: Elements of the ``[rows, M]`` pieces :func:`box_iou` computes one at a time: each piece's
#: temporaries stay in a CPU's cache, and the peak memory stays close to the result's own.
IOU_PIECE = 1 << 16


def box_iou(boxes1: Tensor, boxes2: Tensor, *, validate: bool = True) -> Tensor:
    """Intersection over union of every pair: ``[N, 4]`` x ``[M, 4]`` xyxy -> ``[N, M]``.

    IoU(a, b) = area(a ∩ b) / (area(a) + area(b) - area(a ∩ b)). A pair whose union is empty
    (two zero-area boxes) has IoU 0, never NaN. float16 and bfloat16 boxes are computed, and
    returned, in float32 with torchvision's numbers (in float16 the union of two 181 px squares
    is already more than its largest value, 65504; bfloat16 keeps only 8 bits of each IoU).

    Vectorised by broadcasting: the corners of the intersection are ``max`` of the top-left and
    ``min`` of the bottom-right corners. Each coordinate is taken as one contiguous row
    (``boxes.T.contiguous()``), so every ``[N, M]`` operation broadcasts a column against a row
    of plain numbers (broadcasting ``[N, 1, 2]`` corner pairs against ``[1, M, 2]``, the textbook
    form, computes the same numbers two to five times slower on a CPU); the longer list goes
    along the rows (a result with rows of two numbers, anchors against two ground truths, is
    computed as its transpose and returned as a transposed view). The result is written
    :data:`IOU_PIECE` elements at a time, each piece's arithmetic done in place.

    ``validate=False`` skips :func:`check_boxes` (and its host synchronisation), for code that
    validated its boxes once and calls this many times (the NMS sweep, the labelling of a
    training step).
    """
    if validate:
        boxes1, boxes2 = check_boxes(boxes1, "boxes1"), check_boxes(boxes2, "boxes2")
    if len(boxes1) > len(boxes2):
        return box_iou(boxes2, boxes1, validate=False).T
    a, b = boxes1.T.contiguous(), boxes2.T.contiguous()  # [4, N], [4, M]
    if _tracked(a, b):  # one piece, and no arithmetic in place: autograd records every step
        inter, union = _intersection_union(a[:, :, None], b[:, None, :])
        return inter / union
    dtype = torch.promote_types(*(torch.float32 if t.dtype in _HALF else t.dtype for t in (a, b)))
    iou = torch.empty(len(boxes1), len(boxes2), dtype=dtype, device=a.device)
    rows = max(1, IOU_PIECE // max(1, len(boxes2)))
    for start in range(0, len(boxes1), rows):
        piece = slice(start, start + rows)
        torch.div(*_intersection_union(a[:, piece, None], b[:, None, :]), out=iou[piece])
    return iou


def elementwise_box_iou(boxes1: Tensor, boxes2: Tensor, *, validate: bool = True) -> Tensor:
    """IoU of ``boxes1[i]`` with ``boxes2[i]``: ``[N, 4]`` and ``[N, 4]`` xyxy -> ``[N]``, the
    same numbers as ``box_iou(boxes1, boxes2).diagonal()`` (the NMS sweep uses it on the
    pairs of boxes that can overlap). ``validate=False`` skips :func:`check_boxes`."""
    if validate:
        boxes1, boxes2 = check_boxes(boxes1, "boxes1"), check_boxes(boxes2, "boxes2")
        _check_paired(boxes1, boxes2, ("boxes1", "boxes2"), "one pair of boxes per row")
    inter, union = _intersection_union(boxes1.T, boxes2.T)
    return inter / union


def _intersection_union(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Intersection areas and unions (1 where the union is 0: the intersection is 0 there too,
    and 0 / 1 = 0, neither NaN nor a NaN gradient) of boxes given as coordinate rows ``a`` and
    ``b`` (``[4, ...]`` each, broadcastable). Computed in place where nothing needs a gradient.

    float16 and bfloat16 boxes go as in torchvision: the intersection's sides are subtracted in
    the boxes' own precision, everything else in float32."""
    width = _upcast(torch.minimum(a[2], b[2]) - torch.maximum(a[0], b[0]))
    height = _upcast(torch.minimum(a[3], b[3]) - torch.maximum(a[1], b[1]))
    a, b = _upcast(a), _upcast(b)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    if _tracked(a, b):
        inter = width.clamp(min=0) * height.clamp(min=0)
        union = area_a + area_b - inter
        return inter, torch.where(union > 0, union, 1.0)
    inter = width.clamp_(min=0).mul_(height.clamp_(min=0))
    union = torch.add(area_a, area_b, out=height).sub_(inter)
    return inter, union.masked_fill_(union <= 0, 1.0)


def _tracked(a: Tensor, b: Tensor) -> bool:
    """Whether autograd records operations on ``a`` or ``b``."""
    return torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)


_HALF = (torch.float16, torch.bfloat16)


def _upcast(boxes: Tensor) -> Tensor:
    """float16 and bfloat16 boxes as float32 (torchvision's ``_upcast``); others unchanged."""
    return boxes.float() if boxes.dtype in _HALF else boxes


def clip_boxes(boxes: Tensor, image_size: Sequence[float], *, validate: bool = True) -> Tensor:
    """Clamp ``[N, 4]`` xyxy boxes to an image of ``image_size = (height, width)``.

    x is clamped to ``[0, width]`` and y to ``[0, height]``, the size taken as given, fractions
    of a pixel included (``torchvision.ops.clip_boxes_to_image``). ``validate=False`` skips
    :func:`check_boxes`.
    """
    height, width = _image_extent(image_size)
    boxes = check_boxes(boxes) if validate else boxes
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)


def remove_small_boxes(boxes: Tensor, min_size: float, *, validate: bool = True) -> Tensor:
    """Indices (int64, ascending) of the ``[N, 4]`` xyxy boxes whose width and height are both
    at least ``min_size`` (``torchvision.ops.remove_small_boxes``'s contract). ``min_size`` must
    be a number (NaN would remove every box). ``validate=False`` skips :func:`check_boxes`."""
    if isinstance(min_size, Tensor) and min_size.numel() == 1:
        min_size = min_size.item()
    if isinstance(min_size, bool) or not isinstance(min_size, numbers.Real):
        raise TypeError(f"min_size must be a number of pixels, got {type(min_size).__name__}")
    if math.isnan(min_size):
        raise ValueError("min_size is NaN; it must be a number of pixels")
    boxes = check_boxes(boxes) if validate else boxes
    ws = boxes[:, 2] - boxes[:, 0]
    hs = boxes[:, 3] - boxes[:, 1]
    return torch.where((ws >= min_size) & (hs >= min_size))[0]


def check_image_size(image_size: Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` in whole pixels as two ints. ValueError unless it is two positive,
    whole numbers: a size such as 10.7 is refused rather than cut to 10."""
    height, width = _image_extent(image_size)
    if height != int(height) or width != int(width):
        raise ValueError(
            f"image_size must be whole pixels (height, width), got {tuple(image_size)}"
        )
    return int(height), int(width)


def _image_extent(image_size: Sequence[float]) -> tuple[float, float]:
    """``(height, width)`` as two positive, finite floats, or a ValueError naming the size."""
    try:
        height, width = (float(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"image_size must be (height, width), two numbers, got {image_size!r}"
        ) from None
    if not (0 < height < math.inf and 0 < width < math.inf):
        raise ValueError(
            f"image_size must be (height, width) with positive values, got {tuple(image_size)}"
        )
    return height, width


# --------------------------------------------------------------------------- box coding


def _weights(weights: Sequence[float]) -> tuple[float, float, float, float]:
    if len(weights) != 4 or min(weights) <= 0:
        raise ValueError(f"weights must be four positive numbers (wx, wy, ww, wh), got {weights}")
    return tuple(float(w) for w in weights)  # type: ignore[return-value]


def _raise_zero_size(boxes: Tensor, name: str) -> None:
    """Raise a ValueError naming the first of ``boxes`` with zero width or height, if any."""
    rows = boxes.reshape(-1, 4)
    bad = (rows[:, 2] <= rows[:, 0]) | (rows[:, 3] <= rows[:, 1])
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{name}[{i}] = {rows[i].tolist()} has zero width or height; "
            "the box coding divides by widths and takes logs of them"
        )


def encode_boxes(
    gt_boxes: Tensor,
    anchors: Tensor,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    *,
    validate: bool = True,
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
        validate: check both box tensors (finite, positive sizes: one host synchronisation);
            False for boxes the caller has checked.

    Returns:
        ``[N, 4]`` deltas ``(dx, dy, dw, dh)`` (``torchvision``'s ``BoxCoder.encode_single``).
    """
    if validate:
        gt_boxes, anchors = _as_boxes(gt_boxes, "gt_boxes"), _as_boxes(anchors, "anchors")
        _check_paired(gt_boxes, anchors, ("gt_boxes", "anchors"), "one ground truth per anchor")
        both = torch.cat((gt_boxes, anchors.to(gt_boxes.dtype)))
        sizes = both[:, 2:] - both[:, :2]
        if not bool(torch.isfinite(both).all() & (sizes > 0).all()):
            for boxes, name in ((gt_boxes, "gt_boxes"), (anchors, "anchors")):
                _raise_first_bad_box(boxes, name, ordered=True)
                _raise_zero_size(boxes, name)
    wx, wy, ww, wh = _weights(weights)
    wa = anchors[:, 2] - anchors[:, 0]
    ha = anchors[:, 3] - anchors[:, 1]
    w = gt_boxes[:, 2] - gt_boxes[:, 0]
    h = gt_boxes[:, 3] - gt_boxes[:, 1]
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
    *,
    validate: bool = True,
) -> Tensor:
    """Apply deltas to anchors: the inverse of :func:`encode_boxes`.

    Args:
        deltas: ``[..., 4]`` ``(dx, dy, dw, dh)``; e.g. ``[N, 4]``, or ``[N, K, 4]`` for one box
            per class.
        anchors: ``[N, 4]`` xyxy (or any shape broadcastable to ``deltas``).
        weights: the weights the deltas were encoded with.
        clamp: upper bound on ``dw / ww`` and ``dh / wh`` before ``exp``: without it an untrained
            head's large outputs overflow to ``inf`` boxes.
        validate: check that ``deltas`` and ``anchors`` are finite and the anchors ordered (one
            host synchronisation); False for inputs the caller has checked.

    Returns:
        xyxy boxes of the shape of ``deltas``, in its dtype, except that float16 and bfloat16
        deltas (a head under autocast) are decoded in float32: the boxes are pixel coordinates,
        and in float16 a 300 px coordinate moves in steps of 0.25 px, in bfloat16 of 2. Finite
        deltas on finite anchors never give NaN (a
        huge ``dx`` gives an infinite box, which :func:`clip_boxes` brings back to the image),
        as long as the anchors are less than about 1e36 pixels wide.

    Raises:
        ValueError: (``validate``) a NaN or infinite delta (an untrained or diverged head),
            named with its row, or a bad anchor.
    """
    if not isinstance(deltas, Tensor) or deltas.dtype == torch.bool or deltas.is_complex():
        raise TypeError(f"deltas must be a real-valued tensor, got {_describe(deltas)}")
    if not isinstance(anchors, Tensor) or anchors.dtype == torch.bool or anchors.is_complex():
        raise TypeError(f"anchors must be a real-valued tensor, got {_describe(anchors)}")
    if deltas.shape[-1:] != (4,):
        raise ValueError(f"deltas must have shape [..., 4], got {list(deltas.shape)}")
    if anchors.shape[-1:] != (4,):
        raise ValueError(f"anchors must have shape [..., 4], got {list(anchors.shape)}")
    if not deltas.is_floating_point():
        deltas = deltas.float()
    if validate and deltas.numel() + anchors.numel():
        ordered = (anchors[..., 2:] >= anchors[..., :2]).all()
        if not bool(torch.isfinite(deltas).all() & torch.isfinite(anchors).all() & ordered):
            rows = deltas.reshape(-1, 4)
            bad = ~torch.isfinite(rows).all(dim=1)
            if bool(bad.any()):
                i = int(bad.nonzero()[0])
                where = f"deltas[{i}]" if deltas.ndim == 2 else f"deltas.reshape(-1, 4)[{i}]"
                raise ValueError(
                    f"{where} = {rows[i].tolist()} is not finite: the head that predicted it has "
                    "diverged or was given NaN"
                )
            _raise_first_bad_box(anchors, "anchors", ordered=True)
    wx, wy, ww, wh = _weights(weights)
    if deltas.ndim == anchors.ndim + 1:
        anchors = anchors.unsqueeze(-2)
    deltas = _upcast(deltas)
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


def _describe(value: object) -> str:
    return f"a {value.dtype} tensor" if isinstance(value, Tensor) else type(value).__name__
