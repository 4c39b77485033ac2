"""check_box_iou: right answers written differently pass; lesson 00's box_iou_by_hand (no guard
for an empty union) is named by that cause."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from tutorial_det.boxes import box_iou
from tutorial_det.exercises import check_box_iou
from tutorial_det.exercises.mistakes.boxes import BOX_IOU


def iou_loop(boxes1, boxes2):
    out = torch.zeros(len(boxes1), len(boxes2))
    for i, (ax1, ay1, ax2, ay2) in enumerate(boxes1.tolist()):
        for j, (bx1, by1, bx2, by2) in enumerate(boxes2.tolist()):
            w = max(0.0, min(ax2, bx2) - max(ax1, bx1))
            h = max(0.0, min(ay2, by2) - max(ay1, by1))
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - w * h
            out[i, j] = w * h / union if union > 0 else 0.0
    return out


def iou_numpy(boxes1, boxes2):
    a, b = boxes1.numpy()[:, None, :], boxes2.numpy()[None, :, :]
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = np.prod(a[..., 2:] - a[..., :2], -1) + np.prod(b[..., 2:] - b[..., :2], -1) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_torchvision(boxes1, boxes2):
    return torchvision.ops.box_iou(boxes1, boxes2).nan_to_num(0.0)


@pytest.mark.parametrize("fn", [box_iou, iou_loop, iou_numpy, iou_torchvision])
def test_right_answers_pass(fn, capsys):
    assert check_box_iou(fn)
    assert capsys.readouterr().out == "check_box_iou: all 10 cases pass.\n"


def test_the_lessons_box_iou_by_hand_is_told_about_the_empty_union():
    def box_iou_by_hand(boxes1, boxes2):  # lesson 00's broadcasting version
        area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
        area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
        top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
        bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
        inter = (bottom_right - top_left).clamp(min=0).prod(-1)
        return inter / (area1[:, None] + area2[None, :] - inter)

    result = check_box_iou(box_iou_by_hand, verbose=False)
    assert result.causes == [BOX_IOU.named("iou_zero_over_zero")]
    assert result.failures == ["[zero-area boxes] expected [[0], [0]], got [[nan], [0]]"]


def test_a_transposed_matrix_is_named_with_the_shapes():
    result = check_box_iou(lambda a, b: box_iou(b, a), verbose=False)
    assert result.causes == [BOX_IOU.named("iou_transposed")]
    assert "expected shape [0, 2], got shape [2, 0]" in result.report()
