"""Average precision from a precision-recall curve: VOC's all-point and 11-point rules, COCO's 101.

Lesson 10 (evaluation) teaches it.

A detector's ranked output, scored against the ground truth, gives one point per detection:
``recall = TP so far / number of ground truths`` and ``precision = TP so far / detections so far``.
Every rule first replaces precision by its *envelope* (the best precision reachable at this
recall or higher: a reverse running maximum), so the curve never goes up again; then

- ``"all_points"`` (VOC 2010+) takes the exact area under the envelope;
- ``"11_points"`` (VOC 2007) averages the envelope at recall 0, 0.1, ..., 1;
- ``"coco_101"`` (COCO) averages it at recall 0, 0.01, ..., 1.

A recall level the curve never reaches contributes precision 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

METHODS = ("all_points", "11_points", "coco_101")


def _linspace(start: float, stop: float, num: int) -> Tensor:
    """``num`` evenly spaced float64 values, bit for bit what ``numpy.linspace`` returns.

    pycocotools compares recalls with ``np.linspace`` values exactly (``3 / 100`` and
    ``3 * 0.01`` are different floats), so the thresholds have to be the very same numbers.
    """
    values = torch.arange(num, dtype=torch.float64) * ((stop - start) / (num - 1)) + start
    values[-1] = stop
    return values


#: COCO's 101 recall levels 0, 0.01, ..., 1 (the floats pycocotools uses).
COCO_RECALL_THRESHOLDS = _linspace(0.0, 1.0, 101)
#: COCO's 10 IoU thresholds 0.5, 0.55, ..., 0.95 (the floats pycocotools uses).
COCO_IOU_THRESHOLDS = _linspace(0.5, 0.95, 10)
#: VOC 2007's 11 recall levels 0, 0.1, ..., 1.
VOC11_RECALL_THRESHOLDS = torch.arange(11, dtype=torch.float64) / 10


def average_precision(recall, precision, method: str = "all_points") -> Tensor:
    """Average precision of one precision-recall curve, or of a batch of them.

    Args:
        recall: ``[N]`` recall after each of the ``N`` ranked detections, non-decreasing; or
            ``[..., N]`` for a batch of curves. A shorter curve in a batch is padded by repeating
            its last recall with precision 0, which changes none of the three rules' results.
        precision: same shape, precision after each detection.
        method: ``"all_points"``, ``"11_points"`` or ``"coco_101"`` (see the module docstring).

    Returns:
        ``[]`` (or ``[...]``): the average precision, 0 for an empty curve (``N = 0``), in
        ``precision``'s floating dtype (float32 for non-float input).

    Raises:
        ValueError: unknown method, shapes that differ, values outside [0, 1] or NaN, or a
            recall that goes down.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}")
    recall = torch.as_tensor(recall)
    precision = torch.as_tensor(precision)
    out_dtype = precision.dtype if precision.is_floating_point() else torch.float32
    if recall.shape != precision.shape or recall.ndim == 0:
        raise ValueError(
            "recall and precision must have the same shape [N] (or [..., N]), got "
            f"{list(recall.shape)} and {list(precision.shape)}"
        )
    recall = recall.detach().to("cpu", torch.float64)
    precision = precision.detach().to("cpu", torch.float64)
    for name, values in (("recall", recall), ("precision", precision)):
        outside = ~((values >= 0) & (values <= 1))  # also catches NaN
        if bool(outside.any()):
            where = tuple(int(i) for i in outside.nonzero()[0])
            raise ValueError(f"{name}{list(where)} = {values[where].item()} is not in [0, 1]")
    drops = recall[..., 1:] < recall[..., :-1]
    if bool(drops.any()):
        where = tuple(int(i) for i in drops.nonzero()[0])
        raise ValueError(
            f"recall must be non-decreasing along its last dimension, but recall{list(where)} "
            f"= {recall[where].item():.6g} is followed by a smaller value: rank the detections by "
            "descending score before accumulating TP and FP"
        )

    zeros = precision.new_zeros(*precision.shape[:-1], 1)
    # Envelope: precision[i] becomes max(precision[i:]). A trailing 0 stands for "recall never
    # gets there" in both rules below.
    padded = torch.cat((precision, zeros), dim=-1)
    envelope = padded.flip(-1).cummax(-1).values.flip(-1)
    if method == "all_points":
        # Area under the envelope: sum of (recall step) x (envelope at the step's end).
        steps = torch.diff(recall, dim=-1, prepend=zeros)
        ap = (steps * envelope[..., :-1]).sum(-1)
    else:
        levels = COCO_RECALL_THRESHOLDS if method == "coco_101" else VOC11_RECALL_THRESHOLDS
        levels = levels.expand(*recall.shape[:-1], len(levels)).contiguous()
        # First detection whose recall reaches each level (N, the trailing 0, when none does).
        first = torch.searchsorted(recall.contiguous(), levels, side="left")
        ap = envelope.gather(-1, first).mean(-1)
    return ap.to(out_dtype)
