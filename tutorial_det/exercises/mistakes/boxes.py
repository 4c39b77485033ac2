"""Mistakes in the IoU of lesson 00 (``check_box_iou``): ``fn(boxes1 [N, 4], boxes2 [M, 4]) ->
[N, M]``, xyxy boxes."""

from __future__ import annotations

import torch

from tutorial_det.exercises.core import Catalogue

BOX_IOU = Catalogue()


def _area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # [N]


def _overlap(boxes1, boxes2):
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # [N, M, 2]
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # [N, M, 2]
    wh = (bottom_right - top_left).clamp(min=0)
    return wh[..., 0] * wh[..., 1]  # [N, M]


def _ratio(inter, union):
    return torch.where(union > 0, inter / union, 0.0)


@BOX_IOU.add(
    'You add 1 to widths and heights (the "+1 pixel" convention); in this course a box from '
    "x = 0 to x = 10 is 10 pixels wide."
)
def iou_plus_one(boxes1, boxes2):
    area1 = (boxes1[:, 2] - boxes1[:, 0] + 1) * (boxes1[:, 3] - boxes1[:, 1] + 1)
    area2 = (boxes2[:, 2] - boxes2[:, 0] + 1) * (boxes2[:, 3] - boxes2[:, 1] + 1)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    wh = (torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:]) - top_left + 1).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return _ratio(inter, area1[:, None] + area2[None, :] - inter)


@BOX_IOU.add("Your union counts the intersection twice: it is area(a) + area(b) - intersection.")
def iou_union_keeps_overlap(boxes1, boxes2):
    return _ratio(_overlap(boxes1, boxes2), _area(boxes1)[:, None] + _area(boxes2)[None, :])


@BOX_IOU.add(
    "You do not clamp the overlap's width and height at 0, so boxes apart in both x and y get a "
    "positive intersection (negative times negative): clamp(min=0) before multiplying."
)
def iou_without_clamp(boxes1, boxes2):
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    wh = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:]) - top_left
    inter = wh[..., 0] * wh[..., 1]
    return _ratio(inter, _area(boxes1)[:, None] + _area(boxes2)[None, :] - inter)


@BOX_IOU.add("Two empty boxes give 0 / 0 = NaN: where the union is 0, the IoU is 0.")
def iou_zero_over_zero(boxes1, boxes2):
    inter = _overlap(boxes1, boxes2)
    return inter / (_area(boxes1)[:, None] + _area(boxes2)[None, :] - inter)


@BOX_IOU.add(
    "Your matrix is transposed: row i belongs to boxes1[i] and column j to boxes2[j], [N, M]."
)
def iou_transposed(boxes1, boxes2):
    inter = _overlap(boxes2, boxes1)
    return _ratio(inter, _area(boxes2)[:, None] + _area(boxes1)[None, :] - inter)


@BOX_IOU.add(
    "You divide the intersection by the first box's area (intersection over area), not by the "
    "union."
)
def iou_over_first_area(boxes1, boxes2):
    return _ratio(_overlap(boxes1, boxes2), _area(boxes1)[:, None].expand(-1, len(boxes2)))


@BOX_IOU.add(
    "Your intersection takes the smaller top-left and the larger bottom-right corner: that is "
    "the box around both, not their overlap (max of the top-left corners, min of the "
    "bottom-right ones)."
)
def iou_min_max_swapped(boxes1, boxes2):
    top_left = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])
    wh = (torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:]) - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return _ratio(inter, _area(boxes1)[:, None] + _area(boxes2)[None, :] - inter)


@BOX_IOU.add(
    "You write into the boxes you were given (an in-place `-=` on a slice changes the caller's "
    "tensor): compute widths and heights into new tensors."
)
def iou_edits_its_input(boxes1, boxes2):
    boxes1[:, 2:] -= boxes1[:, :2]  # now (x1, y1, w, h): the caller's boxes are changed
    boxes2[:, 2:] -= boxes2[:, :2]
    area1 = boxes1[:, 2] * boxes1[:, 3]
    area2 = boxes2[:, 2] * boxes2[:, 3]
    far1, far2 = boxes1[:, :2] + boxes1[:, 2:], boxes2[:, :2] + boxes2[:, 2:]
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    wh = (torch.min(far1[:, None], far2[None, :]) - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return _ratio(inter, area1[:, None] + area2[None, :] - inter)
