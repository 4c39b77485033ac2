"""Non-maximum suppression: ``nms`` and per-class ``batched_nms`` in pure torch.

Lesson 04 teaches NMS: it writes the greedy loop by hand (``nms_by_hand``, the loop of
:func:`tutorial_det.naive.nms_loop`, one kept box per iteration) and checks that it keeps the same
boxes in the same order as :func:`nms` here and torchvision's kernel; the sweep below is the
same algorithm with fewer, larger tensor operations.

A detector proposes many overlapping boxes for the same object. Greedy non-maximum suppression
keeps the best one and drops its near duplicates:

1. sort the boxes by decreasing score (ties: lower index first, a stable sort);
2. walk down the sorted list; a box that no kept box suppresses is kept;
3. a kept box suppresses every later box whose IoU with it is *greater than* the threshold.

Both functions have ``torchvision.ops.nms`` / ``torchvision.ops.batched_nms``'s contract and
return exactly their indices, computed with the same float arithmetic (the tests check this;
see :func:`batched_nms` for where torchvision's own two strategies differ). Boxes are
``[N, 4]`` xyxy pixels.

How the sweep is vectorised
---------------------------
Step 2 is inherently sequential (whether box ``j`` survives depends on whether the boxes before
it were kept), but it need not look at one box at a time. The sweep takes the next ``BLOCK``
undecided boxes (the highest-scoring ones still alive), resolves them among themselves from
their ``[BLOCK, BLOCK]`` "would suppress" matrix (a few vectorised passes, see
:func:`_resolve_block`), then compares only the boxes it kept with every box still alive after
the block in one IoU call (:func:`~tutorial_det.boxes.box_iou` with ``validate=False``: the
boxes were validated once, on entry), and drops the suppressed ones from the list. Each round is
a handful of tensor operations; the number of IoUs computed is about what the scalar loop
computes (kept boxes against the boxes still alive after them).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from tutorial_det.boxes import box_iou, check_boxes

#: Boxes resolved per round of the sweep: small enough that the in-block work stays tiny, large
#: enough that each round's tensor operations are not dominated by their fixed cost.
BLOCK = 128


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression (``torchvision.ops.nms``'s contract).

    Args:
        boxes: ``[N, 4]`` xyxy boxes (``x1 <= x2``, ``y1 <= y2``, finite).
        scores: ``[N]`` scores, no NaN.
        iou_threshold: in ``[0, 1]``; a box is dropped when its IoU with a kept box is strictly
            greater. 0 drops every box that overlaps a kept box at all; 1 drops nothing (two
            identical boxes have IoU exactly 1, which is not greater than 1).

    Returns:
        int64 ``[K]``: indices into ``boxes`` of the kept boxes, in decreasing order of score
        (equal scores: lower index first). Empty input gives an empty result.

    Two zero-area boxes have IoU 0 here (torchvision computes 0 / 0 = NaN); neither value exceeds
    a threshold in ``[0, 1]``, so the kept set is the same. The one known difference: two boxes
    whose union is a denormal number (below 1.2e-38 square pixels) get a smaller IoU from
    :func:`~tutorial_det.boxes.box_iou` than from torchvision.
    """
    boxes, scores, limit = _check_inputs(boxes, scores, iou_threshold)
    order = scores.sort(descending=True, stable=True).indices
    return order[_sweep(boxes[order], limit)]


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression within each class (``torchvision.ops.batched_nms``'s contract).

    A box is only ever suppressed by a kept box of its own class. Returns int64 indices into
    ``boxes`` of the kept boxes, in decreasing order of score (equal scores: lower index first).

    Three ways to get per-class NMS:

    - **A loop over classes**: run :func:`nms` on each class's boxes and merge the results by
      score. Exact, but one round of Python and tensor calls per class.
    - **The coordinate-offset trick** (torchvision, for small inputs): shift every box of class
      ``c`` by ``c * (max coordinate + 1)`` in x and y, so boxes of different classes can never
      overlap, and run one NMS over everything. One call, but (a) it assumes coordinates ``>= 0``:
      with negative coordinates the shifted classes overlap and suppress each other; (b) adding a
      large offset rounds the coordinates (float32 keeps 24 significant bits: at an offset of
      80 000 px the spacing of representable values is 1/128 px), so an IoU close to the
      threshold can land on the other side of it; (c) it still compares boxes of different
      classes, pairs that can never suppress each other.
    - **One sweep over the boxes sorted by class, then score** (used here): the greedy sweep of
      :func:`nms` with "box i suppresses box j" also requiring equal classes. Boxes of one
      class are contiguous in that order, so each round compares its boxes only with the later
      boxes of their own classes: the IoUs of the loop (exact, any coordinates), without its
      per-class overhead and without the trick's pairs of different classes. The kept boxes
      are then put in decreasing score order.

    torchvision uses the trick up to 1000 boxes on the CPU and the loop above that (whose final
    sort by score is not stable: equal scores may come out in any order). This function always
    returns the loop's boxes, equal scores by index; where the trick is exact (coordinates
    ``>= 0`` that the offsets do not round) that is the trick's answer too.

    Args:
        boxes: ``[N, 4]`` xyxy boxes.
        scores: ``[N]`` scores, no NaN.
        classes: ``[N]`` integer class of each box (torchvision calls it ``idxs``).
        iou_threshold: in ``[0, 1]``, as in :func:`nms`.
    """
    boxes, scores, limit = _check_inputs(boxes, scores, iou_threshold)
    if not isinstance(classes, Tensor):
        raise TypeError(
            f"classes must be a torch.Tensor of shape [N], got {type(classes).__name__}"
        )
    if classes.ndim != 1 or len(classes) != len(boxes):
        raise ValueError(
            f"classes must have shape [N] = [{len(boxes)}] (one class per box), "
            f"got {list(classes.shape)}"
        )
    if classes.is_floating_point() or classes.is_complex():
        raise TypeError(f"classes must be an integer tensor, got {classes.dtype}")
    classes = classes.to(boxes.device)
    order = scores.sort(descending=True, stable=True).indices
    order = order[classes[order].sort(stable=True).indices]  # by class, then as nms
    kept = order[_sweep(boxes[order], limit, classes[order])].sort().values
    return kept[scores[kept].sort(descending=True, stable=True).indices]


# --------------------------------------------------------------------------- the sweep


def _sweep(boxes: Tensor, limit: Tensor, classes: Tensor | None = None) -> Tensor:
    """Positions (int64, ascending) kept by greedy NMS among ``[N, 4]`` boxes in the order to
    visit them (decreasing score).

    ``limit`` is the threshold as a 0-dim tensor of the boxes' dtype (see :func:`_limit`).
    ``classes``, when given, must be sorted (the boxes are in score order within each class);
    a box then only suppresses boxes of its own class.
    """
    keep = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    alive = torch.arange(len(boxes), device=boxes.device)  # undecided, not suppressed, in order
    while len(alive):
        head, tail = alive[:BLOCK], alive[BLOCK:]
        head_boxes = boxes[head]
        over = box_iou(head_boxes, head_boxes, validate=False) > limit
        if classes is not None:
            over &= classes[head, None] == classes[None, head]
            # later boxes of the head's classes: a prefix of the tail, the rest are untouched
            reach = int(torch.searchsorted(classes[tail], classes[head[-1]], right=True))
        else:
            reach = len(tail)
        kept = _resolve_block(over)
        keep[head[kept]] = True
        if not reach:
            alive = tail
            continue
        near = tail[:reach]
        hit = box_iou(head_boxes[kept], boxes[near], validate=False) > limit
        if classes is not None:
            hit &= classes[head[kept], None] == classes[None, near]
        alive = torch.cat((near[~hit.any(dim=0)], tail[reach:]))
    return keep.nonzero().flatten()


def _resolve_block(over: Tensor) -> Tensor:
    """Greedy NMS within one block: ``[B, B]`` bool ``over[i, j]`` ("IoU above the threshold")
    for boxes in score order -> ``[B]`` bool, which boxes are kept.

    The greedy answer is the one solution of ``keep[j] = not any(keep[i] and over[i, j] for
    i < j)``. Iterating that equation from "all kept" fixes at least one more leading entry per
    pass, and a pass that changes nothing has reached the solution; on real boxes it takes two
    to four passes (chains where box 1 suppresses box 2 which would have suppressed box 3 are
    short), and never more than ``B + 1``.
    """
    over = over.triu(diagonal=1)
    keep = torch.ones(len(over), dtype=torch.bool, device=over.device)
    while True:
        update = ~(over & keep[:, None]).any(dim=0)
        if torch.equal(update, keep):
            return keep
        keep = update


# --------------------------------------------------------------------------- validation


def _check_inputs(
    boxes: Tensor, scores: Tensor, iou_threshold: float
) -> tuple[Tensor, Tensor, Tensor]:
    boxes = check_boxes(boxes)
    if boxes.dtype not in (torch.float32, torch.float64):
        boxes = boxes.float()  # half precision: compared in float32
    if not isinstance(scores, Tensor):
        raise TypeError(f"scores must be a torch.Tensor of shape [N], got {type(scores).__name__}")
    if scores.ndim != 1 or len(scores) != len(boxes):
        raise ValueError(
            f"scores must have shape [N] = [{len(boxes)}] (one score per box), "
            f"got {list(scores.shape)}"
        )
    if scores.dtype == torch.bool or scores.is_complex():
        raise TypeError(f"scores must be a real-valued tensor, got {scores.dtype}")
    if scores.is_floating_point():
        nan = torch.isnan(scores)
        if bool(nan.any()):
            raise ValueError(f"scores[{int(nan.nonzero()[0])}] is NaN")
    return boxes, scores.to(boxes.device), _limit(iou_threshold, boxes.dtype)


def _limit(iou_threshold: float, dtype: torch.dtype) -> Tensor:
    """The threshold as a 0-dim tensor of ``dtype`` such that, for every IoU value ``v`` of that
    dtype, ``v > limit`` exactly when ``v > iou_threshold`` (torchvision compares in double).

    Rounding 0.7 to float32 happens to round down; a threshold that rounds up (0.4999999999 ->
    0.5) would otherwise stop an IoU of exactly 0.5 from being suppressed.
    """
    if isinstance(iou_threshold, Tensor) and iou_threshold.numel() == 1:
        iou_threshold = iou_threshold.item()
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, numbers.Real):
        raise TypeError(f"iou_threshold must be a number, got {type(iou_threshold).__name__}")
    value = float(iou_threshold)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    limit = torch.tensor(value, dtype=dtype)
    if limit.item() > value:
        limit = torch.nextafter(limit, torch.tensor(-math.inf, dtype=dtype))
    return limit
