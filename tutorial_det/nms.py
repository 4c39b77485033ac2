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
it were kept), but it need not look at one box at a time. The sweep here (:func:`_sweep`) takes
the next ``BLOCK`` undecided boxes (the highest-scoring ones still alive), resolves them among
themselves from their ``[BLOCK, BLOCK]`` "would suppress" matrix (a few vectorised passes, see
:func:`_resolve_block`), then compares only the boxes it kept with the boxes still alive after
the block, and drops the suppressed ones: the lesson's step, for a block of boxes at once. The
number of IoUs computed is about what the scalar loop computes (kept boxes against the boxes
still alive after them).

Which later boxes can a kept box suppress? Only boxes that overlap it along x, and, for a
threshold ``t > 0``, none more than ``1 / t`` times as wide (the IoU of two boxes is at most
the narrower width over the wider one). So box ``j`` is a candidate for kept box ``i`` only if
``x1_j`` lies between ``x1_i - w_i / t`` and ``x2_i``: with the boxes sorted by ``x1`` once, one
contiguous run, found by binary search (:class:`_Candidates`). Each round compares its kept
boxes either with every box still alive, as one ``[kept, alive]`` IoU matrix, or, when the runs
hold far fewer pairs (small boxes spread over a large image, most of them kept), with the boxes
of their runs only, pair by pair. Both give the same IoUs, computed as torchvision does; the
boxes are validated once, on entry.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from tutorial_det.boxes import box_iou, check_boxes, elementwise_box_iou

#: Boxes resolved per round of the sweep: small enough that the in-block work stays tiny, large
#: enough that each round's tensor operations are not dominated by their fixed cost.
BLOCK = 128

#: What comparing one candidate pair costs, in entries of the ``[kept, alive]`` IoU matrix
#: (gathering the two boxes of a pair costs more than broadcasting a row against a column): a
#: round compares pairs when its runs hold fewer than ``kept * alive / PAIR_COST`` of them.
PAIR_COST = 8

#: IoU matrices up to this many entries (a block against 1000 boxes, the proposals of one
#: 128 px image) are computed as they are: looking for candidate pairs would cost more than it
#: saves.
SMALL_MATRIX = 1 << 17


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
    return order[_sweep(boxes[order], limit, float(iou_threshold))]


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
    if isinstance(boxes, Tensor) and boxes.numel() == 0:  # torchvision: any empty boxes
        _limit(iou_threshold, torch.float32)
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
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
    kept = order[_sweep(boxes[order], limit, float(iou_threshold), classes[order])].sort().values
    return kept[scores[kept].sort(descending=True, stable=True).indices]


# --------------------------------------------------------------------------- the sweep


def _sweep(boxes: Tensor, limit: Tensor, threshold: float, classes: Tensor | None = None) -> Tensor:
    """Positions (int64, ascending) kept by greedy NMS among ``[N, 4]`` boxes in the order to
    visit them (decreasing score).

    ``limit`` is the threshold as a 0-dim tensor of the boxes' dtype (see :func:`_limit`),
    ``threshold`` the same as a float. ``classes``, when given, must be sorted (the boxes are in
    score order within each class); a box then only suppresses boxes of its own class.
    """
    keep = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    suppressed = torch.zeros_like(keep)  # by the pairs compared so far
    alive = torch.arange(len(boxes), device=boxes.device)  # undecided, in order
    candidates = _Candidates(boxes, threshold, classes)  # sorted on first use
    if classes is not None:  # the position after the last box of each box's class
        class_end = torch.searchsorted(classes, classes, right=True)
    while len(alive):
        head, tail = alive[:BLOCK], alive[BLOCK:]
        head_boxes = boxes[head]
        over = box_iou(head_boxes, head_boxes, validate=False) > limit
        if classes is not None:
            over &= classes[head, None] == classes[None, head]
        kept = head[_resolve_block(over)]
        keep[kept] = True
        if classes is not None:
            # later boxes of the head's classes: a prefix of the tail, the rest are untouched
            reach = int(torch.searchsorted(tail, class_end[head[-1]]))
        else:
            reach = len(tail)
        near = tail[:reach]  # the boxes the kept ones may suppress
        matrix = len(kept) * len(near)  # entries of their IoU matrix
        pairs = candidates.pairs(kept, matrix) if matrix > SMALL_MATRIX else None
        if pairs is not None:  # few boxes can overlap the kept ones: compare those pairs only
            i, j = pairs
            after = j > head[-1]  # the boxes of a run that come after the block
            if classes is not None:
                after &= classes[i] == classes[j]
            i, j = i[after], j[after]
            hit = elementwise_box_iou(boxes[i], boxes[j], validate=False) > limit
            suppressed[j[hit]] = True
            alive = tail[~suppressed[tail]]
        else:  # one IoU matrix of the kept boxes and those alive after the block
            hit = box_iou(boxes[kept], boxes[near], validate=False) > limit
            if classes is not None:
                hit &= classes[kept, None] == classes[None, near]
            alive = torch.cat((near[~hit.any(dim=0)], tail[reach:]))
    return keep.nonzero().flatten()


class _Candidates:
    """The boxes that can overlap a box by more than the threshold, as runs of the boxes sorted
    by ``x1`` (by class first, then ``x1``, when there are classes).

    Box ``j`` can have IoU > ``t`` with box ``i`` only if they overlap along x (``x1_j < x2_i``
    and ``x2_j > x1_i``) and ``w_j < w_i / t``, so ``x1_j = x2_j - w_j > x1_i - w_i / t``; also
    ``x1_j > x1_i - w_j >= x1_i - (widest box)``. Those bounds, widened a little against
    rounding, are computed in float64; classes are laid side by side along one axis, far apart,
    so that every run stays within its class (pairs of different classes are also dropped
    later, so the layout only saves work)."""

    def __init__(self, boxes: Tensor, threshold: float, classes: Tensor | None) -> None:
        self.boxes, self.threshold, self.classes = boxes, threshold, classes
        self.keys: Tensor | None = None

    def _sort(self) -> None:
        x1, x2 = self.boxes[:, 0].double(), self.boxes[:, 2].double()
        width = x2 - x1
        widest = float(width.max()) if len(width) else 0.0
        t = self.threshold
        reach = width / t if t > 0 else torch.full_like(width, widest)
        reach = reach.clamp(max=widest) * (1 + 2**-10)
        slack = (x1.abs() + x2.abs() + reach) * 2**-40  # float64 rounding, many times over
        shift = torch.zeros_like(x1)
        classes = self.classes
        if classes is not None and len(classes):
            rank = torch.cat((classes.new_zeros(1), (classes[1:] != classes[:-1]).cumsum(0)))
            span = float((x2 + reach).max() - (x1 - reach).min()) + 1
            shift = rank.double() * span
        self.low = x1 - reach - slack + shift  # [N]: a box's run starts at this key ...
        self.high = x2 + slack + shift  # ... and ends at this one
        self.keys, self.by_x = (x1 + shift).sort(stable=True)

    def pairs(self, kept: Tensor, matrix: int) -> tuple[Tensor, Tensor] | None:
        """``(i, j)``: every kept box ``i`` (positions, ``[k]``) repeated along with each box
        ``j`` of its run, two ``[P]`` int64 tensors; None when ``P * PAIR_COST`` would reach
        ``matrix``, the size of the IoU matrix that would otherwise be computed."""
        if self.keys is None:
            self._sort()
        first = torch.searchsorted(self.keys, self.low[kept])
        count = torch.searchsorted(self.keys, self.high[kept], right=True) - first
        total = int(count.sum())
        if total * PAIR_COST >= matrix:
            return None
        start = torch.repeat_interleave(first - (count.cumsum(0) - count), count)
        run = self.by_x[start + torch.arange(total, device=kept.device)]
        return torch.repeat_interleave(kept, count), run


def _resolve_block(over: Tensor) -> Tensor:
    """Greedy NMS within one block: ``[B, B]`` bool ``over[i, j]`` ("IoU above the threshold")
    for boxes in score order -> ``[B]`` bool, which boxes are kept.

    The greedy answer is the one solution of ``keep[j] = not any(keep[i] and over[i, j] for
    i < j)``. Iterating that equation from "all kept" fixes at least one more leading entry per
    pass, and a pass that changes nothing has reached the solution; on real boxes it takes two
    to four passes (chains where box 1 suppresses box 2 which would have suppressed box 3 are
    short), and never more than ``B + 1``.
    """
    position = torch.arange(len(over), device=over.device)
    over = over & (position[:, None] < position[None, :])  # only earlier boxes suppress
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
