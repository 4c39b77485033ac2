"""Naive loop versions of the vectorised operations, the way the lessons first write them.

Lesson 00 writes the IoU loop (``box_iou_loop``), lesson 02 the anchor loop, lesson 04 the NMS
loop (``nms_by_hand``) and lesson 05 RoI max pooling bin by bin.

They are the readable baseline the notebooks start from and the benchmarks compare against
(``benchmarks/``); the package itself never calls them. Each returns what its vectorised
counterpart returns (up to float rounding: the loops compute in Python doubles), so a test can
check one against the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from tutorial_det.boxes import box_iou


def anchors_loop(
    feature_size: Sequence[int],
    stride: float = 16,
    ratios: Sequence[float] = (0.5, 1.0, 2.0),
    scales: Sequence[float] = (8, 16, 32),
) -> Tensor:
    """Every anchor of an ``(H, W)`` feature map, one Python loop iteration per anchor.

    Same result as ``grid_anchors(anchor_base(stride, ratios, scales), feature_size, stride)``:
    ``[H * W * A, 4]`` xyxy float32, rows in the outer loop and columns in the inner one
    (row-major, the order of a head's output permuted to ``(N, H, W, A)``).
    """
    rows = []
    for i in range(int(feature_size[0])):
        cy = (i + 0.5) * stride
        for j in range(int(feature_size[1])):
            cx = (j + 0.5) * stride
            for ratio in ratios:
                for scale in scales:
                    h = stride * scale * math.sqrt(ratio)
                    w = stride * scale / math.sqrt(ratio)
                    rows.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def box_iou_loop(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of every pair of ``[N, 4]`` and ``[M, 4]`` xyxy boxes, one pair at a time in Python
    floats: ``[N, M]`` float32, equal to ``boxes.box_iou`` up to float32 rounding (a pair with no
    overlap, including two zero-area boxes, has IoU 0)."""
    out = torch.zeros(len(boxes1), len(boxes2))
    for i, (ax1, ay1, ax2, ay2) in enumerate(boxes1.tolist()):
        area_a = (ax2 - ax1) * (ay2 - ay1)
        for j, (bx1, by1, bx2, by2) in enumerate(boxes2.tolist()):
            overlap_w = min(ax2, bx2) - max(ax1, bx1)
            overlap_h = min(ay2, by2) - max(ay1, by1)
            if overlap_w > 0 and overlap_h > 0:
                inter = overlap_w * overlap_h
                out[i, j] = inter / (area_a + (bx2 - bx1) * (by2 - by1) - inter)
    return out


def nms_loop(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression, one kept box per loop iteration.

    Sort the boxes by decreasing score; take the best remaining box, keep it, drop every
    remaining box whose IoU with it is above ``iou_threshold``; repeat until none remain.
    Same indices as ``nms.nms`` and ``torchvision.ops.nms`` (int64, in decreasing score order).

    Two mistakes of the walkthrough this avoids: it sorted ``order.argsort()`` (the positions
    of an already sorted list, not the scores), which visits the boxes in a meaningless order,
    and it measured boxes with a "+1" pixel convention the rest of the notebook does not use.
    """
    order = scores.sort(descending=True, stable=True).indices
    keep = []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(int(best))
        iou = box_iou(boxes[best][None], boxes[order])[0]
        # float32 IoUs compared in double, like torchvision: exact for any threshold
        order = order[iou.double() <= iou_threshold]
    return torch.tensor(keep, dtype=torch.int64)


def roi_pool_loop(
    features: Tensor, rois: Tensor, output_size: int | Sequence[int], spatial_scale: float = 1.0
) -> Tensor:
    """Fast R-CNN RoI max pooling, one RoI and one bin at a time.

    ``features`` ``[B, C, H, W]`` (finite), ``rois`` ``[K, 5]`` rows ``(batch index, x1, y1, x2,
    y2)`` in image pixels -> ``[K, C, h, w]``, the numbers of ``roi_pool.roi_pool`` and
    ``torchvision.ops.roi_pool``: corners scaled and rounded (halves away from zero), the RoI
    ``x2 - x1 + 1`` cells wide (at least 1), bin ``j`` spanning cells ``floor(j * size / w)`` to
    ``ceil((j + 1) * size / w)`` clamped to the map, an empty bin 0. The arithmetic runs in the
    features' dtype, as torchvision's kernel does.

    The walkthrough truncated the scaled coordinates with ``.long()`` (so 0.9 became 0) and
    cropped ``[y1 : y2 + 1, x1 : x2 + 1]`` before an adaptive max pool: wrong cells, and empty
    crops for boxes that fall off the map. The gradient of ``amax`` is split evenly between
    tied maxima, where torchvision gives it all to the first one.
    """
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    _, channels, height, width = features.shape
    dtype = features.dtype
    scale = torch.tensor(spatial_scale, dtype=dtype)
    pooled = features.new_zeros(len(rois), channels, out_h, out_w)
    for k, (index, *corners) in enumerate(rois.to(dtype)):
        x1, y1, x2, y2 = (_round_half_away(float(c * scale)) for c in corners)
        bin_h = torch.tensor(max(y2 - y1 + 1, 1), dtype=dtype) / out_h
        bin_w = torch.tensor(max(x2 - x1 + 1, 1), dtype=dtype) / out_w
        for i in range(out_h):
            top = min(max(math.floor(float(i * bin_h)) + y1, 0), height)
            bottom = min(max(math.ceil(float((i + 1) * bin_h)) + y1, 0), height)
            for j in range(out_w):
                left = min(max(math.floor(float(j * bin_w)) + x1, 0), width)
                right = min(max(math.ceil(float((j + 1) * bin_w)) + x1, 0), width)
                if bottom > top and right > left:
                    cells = features[int(index), :, top:bottom, left:right]
                    pooled[k, :, i, j] = cells.amax(dim=(1, 2))
    return pooled


def _round_half_away(value: float) -> int:
    """C's ``round``: to the nearest integer, halves away from zero (Python's ``round`` sends
    halves to the even neighbour)."""
    whole = math.trunc(value)
    if abs(value - whole) >= 0.5:
        whole += 1 if value > 0 else -1
    return whole
