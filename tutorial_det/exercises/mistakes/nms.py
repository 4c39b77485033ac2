"""Mistakes in the non-maximum suppression of lesson 04 (``check_nms``: ``fn(boxes [N, 4],
scores [N], iou_threshold) -> kept indices [K]`` int64, best first, torchvision's contract).

The right sweep visits the boxes in decreasing order of score, keeps the first box still in the
running and drops the remaining boxes whose IoU with it is above the threshold."""

from __future__ import annotations

import torch

from tutorial_det.exercises.core import Catalogue

NMS = Catalogue()


def _iou_one(box, others, plus=0.0):
    """IoU ``[M]`` of one xyxy box with ``others`` ``[M, 4]``; ``plus`` 1 is the "+1" mistake."""
    w = (torch.minimum(box[2], others[:, 2]) - torch.maximum(box[0], others[:, 0]) + plus).clamp(
        min=0
    )
    h = (torch.minimum(box[3], others[:, 3]) - torch.maximum(box[1], others[:, 1]) + plus).clamp(
        min=0
    )
    inter = w * h
    area = (box[2] - box[0] + plus) * (box[3] - box[1] + plus)
    areas = (others[:, 2] - others[:, 0] + plus) * (others[:, 3] - others[:, 1] + plus)
    union = area + areas - inter
    return torch.where(union > 0, inter / union, 0.0)


def _sweep(boxes, order, stays, plus=0.0):
    """Visit ``order``: keep the first box, drop the rest where ``stays(iou)`` is false, repeat."""
    kept = []
    while len(order) > 0:
        best, order = order[0], order[1:]
        kept.append(int(best))
        order = order[stays(_iou_one(boxes[best], boxes[order], plus))]
    return kept


def _by_score(scores):
    return scores.sort(descending=True, stable=True).indices


@NMS.add(
    "Your sweep visits the boxes in decreasing order of their index, as when the indices are "
    "sorted instead of the scores: visit them in decreasing order of score."
)
def nms_sorts_indices(boxes, scores, iou_threshold):
    order = torch.arange(len(scores)).argsort(descending=True)  # the indices sorted, not scores
    kept = _sweep(boxes, order, lambda iou: iou <= iou_threshold)
    return torch.tensor(kept, dtype=torch.int64)


@NMS.add("Your sweep visits the worst box first (ascending scores): sort with descending=True.")
def nms_ascending_scores(boxes, scores, iou_threshold):
    kept = _sweep(boxes, scores.argsort(), lambda iou: iou <= iou_threshold)
    return torch.tensor(kept, dtype=torch.int64)


@NMS.add(
    'You add 1 to widths and heights (the "+1 pixel" convention), which inflates the IoU of '
    "small boxes; in this course a box from x = 0 to x = 2 is 2 pixels wide."
)
def nms_plus_one(boxes, scores, iou_threshold):
    kept = _sweep(boxes, _by_score(scores), lambda iou: iou <= iou_threshold, plus=1.0)
    return torch.tensor(kept, dtype=torch.int64)


@NMS.add(
    "You also drop boxes whose IoU equals the threshold; a box is dropped only when its IoU is "
    "strictly above it (IoU > threshold)."
)
def nms_drops_at_threshold(boxes, scores, iou_threshold):
    kept = _sweep(boxes, _by_score(scores), lambda iou: iou < iou_threshold)
    return torch.tensor(kept, dtype=torch.int64)


@NMS.add(
    "Your indices are floats (torch.Tensor(kept) makes float32); indices are int64: "
    "torch.tensor(kept, dtype=torch.int64)."
)
def nms_float_indices(boxes, scores, iou_threshold):
    return torch.Tensor(_sweep(boxes, _by_score(scores), lambda iou: iou <= iou_threshold))


@NMS.add(
    "With no box kept you return a float tensor (torch.tensor([]) is float32): give "
    "dtype=torch.int64 so that the empty result is int64 too."
)
def nms_float_when_empty(boxes, scores, iou_threshold):
    return torch.tensor(_sweep(boxes, _by_score(scores), lambda iou: iou <= iou_threshold))


@NMS.add(
    "Boxes that were themselves dropped still drop others; only a kept box suppresses, so decide "
    "box by box, in order of score."
)
def nms_dropped_boxes_suppress(boxes, scores, iou_threshold):
    order = _by_score(scores)
    ranked = boxes[order]
    iou = torch.stack([_iou_one(box, ranked) for box in ranked]) if len(ranked) else scores[:0]
    overlapped = (iou > iou_threshold).triu(diagonal=1).any(dim=0)  # by ANY better box
    return order[~overlapped]


@NMS.add(
    "You return the kept indices sorted by index; return them in the order they were kept, best "
    "score first."
)
def nms_sorted_by_index(boxes, scores, iou_threshold):
    kept = _sweep(boxes, _by_score(scores), lambda iou: iou <= iou_threshold)
    return torch.tensor(sorted(kept), dtype=torch.int64)


@NMS.add(
    "Two empty boxes give IoU 0 / 0 = NaN and your sweep drops a box whose IoU is NaN: count an "
    "empty union as IoU 0."
)
def nms_nan_iou(boxes, scores, iou_threshold):
    kept = []
    order = _by_score(scores)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while len(order) > 0:
        best, order = order[0], order[1:]
        kept.append(int(best))
        wh = (
            torch.min(boxes[best, 2:], boxes[order, 2:])
            - torch.max(boxes[best, :2], boxes[order, :2])
        ).clamp(min=0)
        inter = wh[:, 0] * wh[:, 1]
        order = order[inter / (areas[best] + areas[order] - inter) <= iou_threshold]
    return torch.tensor(kept, dtype=torch.int64)


@NMS.add(
    "You write into the scores you were given (marking dropped boxes in place): work on a copy, "
    "e.g. scores.clone()."
)
def nms_edits_scores(boxes, scores, iou_threshold):
    kept = []
    while len(scores) > 0 and scores.max() >= 0:
        best = int(scores.argmax())
        kept.append(best)
        scores[best] = -1.0
        scores[(_iou_one(boxes[best], boxes) > iou_threshold) & (scores >= 0)] = -1.0
    return torch.tensor(kept, dtype=torch.int64)
