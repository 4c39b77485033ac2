"""Non-maximum suppression in each regime it meets, ours (``tutorial_det.nms``) against
``torchvision.ops.nms`` / ``batched_nms`` (C++), timed in turn in the same run, with exactly the
same boxes kept (the script checks it), and against lesson 04's loop (``tutorial_det.naive``)
where that finishes in reasonable time:

- dense: 12000 proposal-like boxes on an 800 x 800 image at IoU 0.7 (the paper's pre-NMS count
  in training: most boxes have near duplicates), and 1000 on a 128 x 128 image (the lessons'
  Faster R-CNN on synthetic shapes, eight such calls per training step);
- sparse: 5000 random boxes, most of them kept (three draws of 10-100 px boxes on a 1000 px
  image at IoU 0.5, one of 2-20 px boxes that nearly all survive);
- per class: ``batched_nms`` of the 12000 proposals over 20 classes;
- large: 100 000 proposal-like boxes on a 3000 x 3000 image at IoU 0.7 (one call each).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torchvision

from benchmarks.common import Row, interleaved_ms, once_ms, time_ms
from tutorial_det.naive import nms_loop
from tutorial_det.nms import batched_nms, nms


def proposals(n: int, generator: torch.Generator, image: int = 800) -> torch.Tensor:
    """``[n, 4]`` xyxy boxes like a region proposal network's: centres anywhere in an ``image``
    x ``image`` picture, sides log-uniform between 16 and ``image`` pixels, clipped to it."""
    centre = torch.rand(n, 2, generator=generator) * image
    low, high = math.log(16), math.log(image)
    size = torch.exp(torch.rand(n, 2, generator=generator) * (high - low) + low)
    return torch.cat((centre - size / 2, centre + size / 2), dim=1).clamp(0, image)


def random_boxes(
    n: int, generator: torch.Generator, image: int = 1000, sizes: tuple[int, int] = (10, 100)
) -> torch.Tensor:
    """``[n, 4]`` xyxy boxes with corners uniform in an ``image``-pixel square and sides uniform
    in ``sizes``: few overlaps, so NMS keeps most of them."""
    corner = torch.rand(n, 2, generator=generator) * image
    side = torch.rand(n, 2, generator=generator) * (sizes[1] - sizes[0]) + sizes[0]
    return torch.cat((corner, corner + side), dim=1)


def _nms_row(
    name: str,
    boxes: torch.Tensor,
    scores: torch.Tensor,
    threshold: float,
    loop: bool = False,
    slow: bool = False,
) -> Row:
    kept = nms(boxes, scores, threshold)
    assert torch.equal(kept, torchvision.ops.nms(boxes, scores, threshold)), name
    ours = partial(nms, boxes, scores, threshold)
    theirs = partial(torchvision.ops.nms, boxes, scores, threshold)
    if slow:  # seconds per call: one call each, in turn
        ours_ms, tv_ms = once_ms(ours), once_ms(theirs)
    else:
        ours_ms, tv_ms = interleaved_ms([ours, theirs])
    loop_ms = None
    if loop:
        assert torch.equal(nms_loop(boxes, scores, threshold), kept), name
        loop_ms = time_ms(partial(nms_loop, boxes, scores, threshold), min_run_time=1.0)
    return Row(name, ours_ms, tv_ms, loop_ms, note=f"{len(kept)} of {len(boxes)} kept")


def run() -> list[Row]:
    g = torch.Generator().manual_seed(0)
    boxes, scores = proposals(12000, g), torch.rand(12000, generator=g)
    classes = torch.randint(0, 20, (12000,), generator=g)
    small, small_scores = proposals(1000, g, image=128), torch.rand(1000, generator=g)
    rows = [
        _nms_row("nms dense: 12000 proposals, IoU 0.7", boxes, scores, 0.7, loop=True),
        _nms_row("nms dense: 1000 proposals on 128 px, IoU 0.7", small, small_scores, 0.7, True),
    ]
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        sparse, sparse_scores = random_boxes(5000, g), torch.rand(5000, generator=g)
        name = f"nms sparse: 5000 boxes of 10-100 px, IoU 0.5 (draw {seed})"
        rows.append(_nms_row(name, sparse, sparse_scores, 0.5, loop=seed == 0))
    g = torch.Generator().manual_seed(3)
    tiny, tiny_scores = random_boxes(5000, g, sizes=(2, 20)), torch.rand(5000, generator=g)
    rows.append(_nms_row("nms sparse: 5000 boxes of 2-20 px, IoU 0.5", tiny, tiny_scores, 0.5))

    kept = batched_nms(boxes, scores, classes, 0.7)
    theirs = torchvision.ops.batched_nms(boxes, scores, classes, 0.7)
    # torchvision's per-class path (over 1000 boxes) sorts by score without a stable sort
    assert torch.equal(kept.sort().values, theirs.sort().values)
    assert torch.equal(scores[kept], scores[theirs])
    ours_ms, tv_ms = interleaved_ms(
        [
            partial(batched_nms, boxes, scores, classes, 0.7),
            partial(torchvision.ops.batched_nms, boxes, scores, classes, 0.7),
        ]
    )
    name = "batched_nms: 12000 proposals, 20 classes, IoU 0.7"
    rows.append(Row(name, ours_ms, tv_ms, note=f"{len(kept)} of {len(boxes)} kept"))

    g = torch.Generator().manual_seed(4)
    large, large_scores = proposals(100_000, g, image=3000), torch.rand(100_000, generator=g)
    name = "nms large: 100000 proposals on 3000 px, IoU 0.7"
    rows.append(_nms_row(name, large, large_scores, 0.7, slow=True))
    return rows
