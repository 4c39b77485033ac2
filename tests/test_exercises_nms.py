"""check_nms: right answers written differently pass, whatever order they visit boxes of equal
score in; the walkthrough's NMS is told both of its faults; indices must be int64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from tutorial_det.exercises import check_nms
from tutorial_det.exercises.mistakes.nms import NMS
from tutorial_det.nms import nms


def nms_loop(boxes, scores, iou_threshold):
    order = scores.sort(descending=True, stable=True).indices.tolist()
    rows = boxes.tolist()
    kept = []
    for i in order:
        if all(_iou(rows[i], rows[k]) <= iou_threshold for k in kept):
            kept.append(i)
    return torch.tensor(kept, dtype=torch.int64)


def _iou(a, b, plus=0.0):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + plus)
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + plus)
    area_a = (a[2] - a[0] + plus) * (a[3] - a[1] + plus)
    union = area_a + (b[2] - b[0] + plus) * (b[3] - b[1] + plus) - w * h
    return w * h / union if union > 0 else 0.0


def nms_numpy(boxes, scores, iou_threshold):
    b, order = boxes.numpy(), np.argsort(-scores.numpy(), kind="stable")
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    kept = []
    while order.size:
        i, order = order[0], order[1:]
        kept.append(i)
        wh = np.clip(
            np.minimum(b[i, 2:], b[order, 2:]) - np.maximum(b[i, :2], b[order, :2]), 0, None
        )
        inter = wh[:, 0] * wh[:, 1]
        union = area[i] + area[order] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = order[iou <= iou_threshold]
    return torch.from_numpy(np.asarray(kept, dtype=np.int64))


def nms_matrix(boxes, scores, iou_threshold):
    """Vectorised IoU matrix, then one pass over the boxes in score order."""
    from tutorial_det.boxes import box_iou

    order = scores.argsort(descending=True, stable=True)
    overlaps = box_iou(boxes[order], boxes[order]) > iou_threshold
    alive = torch.ones(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if alive[i]:
            alive[i + 1 :] &= ~overlaps[i, i + 1 :]
    return order[alive]


def nms_higher_index_first_on_ties(boxes, scores, iou_threshold):
    """Breaks score ties the other way (the last index first): also valid NMS."""
    flipped = torch.arange(len(scores) - 1, -1, -1)
    return flipped[nms(boxes[flipped], scores[flipped], iou_threshold)]


@pytest.mark.parametrize(
    "fn",
    [nms, torchvision.ops.nms, nms_loop, nms_numpy, nms_matrix, nms_higher_index_first_on_ties],
)
def test_right_answers_pass(fn):
    assert check_nms(fn, verbose=False)


def test_the_seed_notebooks_nms_is_told_its_visiting_order_and_its_plus_one():
    def nms_walkthrough(boxes, scores, iou_threshold):
        """Lesson 04's two faults: boxes visited by decreasing index, areas with a "+1"."""
        rows, kept = boxes.tolist(), []
        for i in reversed(range(len(rows))):
            if all(_iou(rows[i], rows[k], plus=1.0) <= iou_threshold for k in kept):
                kept.append(i)
        return torch.tensor(kept, dtype=torch.int64)

    result = check_nms(nms_walkthrough, verbose=False)
    assert [m.name for m in result.causes] == ["nms_sorts_indices", "nms_plus_one"]


@pytest.mark.parametrize(
    ("convert", "dtype"), [(torch.Tensor.float, "float32"), (torch.Tensor.int, "int32")]
)
def test_indices_must_be_int64_even_when_empty(convert, dtype):
    result = check_nms(lambda *args: convert(nms(*args)), verbose=False)
    assert not result and result.passed == 0
    assert f"[no boxes] expected int64 values, got {dtype}" in "\n".join(result.failures)


def test_float_indices_are_named():
    assert check_nms(lambda *args: nms(*args).float(), verbose=False).causes == [
        NMS.named("nms_float_indices")
    ]
