"""Non-maximum suppression on the RPN's sizes, threshold 0.7: 12000 proposal-like boxes on an
800 x 800 image (the paper's pre-NMS count in training) and 1000 on a 128 x 128 image (the
lessons' Faster R-CNN on synthetic shapes, eight such calls per training step).

- ``nms``: ours (blocked greedy sweep) vs ``torchvision.ops.nms`` (C++) vs the seed-style loop
  (``tutorial_det.naive.nms_loop``, one vectorised IoU row per kept box);
- ``batched_nms`` over 20 classes: ours (class-aware sweep) vs torchvision's (per-class loop
  at this size).
"""

from __future__ import annotations

import math

import torch
import torchvision

from benchmarks.common import Row, time_ms
from tutorial_det.naive import nms_loop
from tutorial_det.nms import batched_nms, nms


def proposals(n: int, generator: torch.Generator, image: int = 800) -> torch.Tensor:
    """``[n, 4]`` xyxy boxes like a region proposal network's: centres anywhere in an ``image``
    x ``image`` picture, sides log-uniform between 16 and ``image`` pixels, clipped to it."""
    centre = torch.rand(n, 2, generator=generator) * image
    low, high = math.log(16), math.log(image)
    size = torch.exp(torch.rand(n, 2, generator=generator) * (high - low) + low)
    return torch.cat((centre - size / 2, centre + size / 2), dim=1).clamp(0, image)


def run() -> list[Row]:
    g = torch.Generator().manual_seed(0)
    boxes = proposals(12000, g)
    scores = torch.rand(12000, generator=g)
    classes = torch.randint(0, 20, (12000,), generator=g)

    kept = nms(boxes, scores, 0.7)
    assert torch.equal(kept, torchvision.ops.nms(boxes, scores, 0.7))
    assert torch.equal(kept, nms_loop(boxes, scores, 0.7))
    small, small_scores = proposals(1000, g, image=128), torch.rand(1000, generator=g)
    kept_small = nms(small, small_scores, 0.7)
    assert torch.equal(kept_small, torchvision.ops.nms(small, small_scores, 0.7))
    kept_per_class = batched_nms(boxes, scores, classes, 0.7)
    assert torch.equal(
        kept_per_class.sort().values,
        torchvision.ops.batched_nms(boxes, scores, classes, 0.7).sort().values,
    )
    return [
        Row(
            "nms 12000 proposals, IoU 0.7",
            time_ms(lambda: nms(boxes, scores, 0.7)),
            time_ms(lambda: torchvision.ops.nms(boxes, scores, 0.7)),
            time_ms(lambda: nms_loop(boxes, scores, 0.7), min_run_time=1.0),
            note=f"{len(kept)} kept",
        ),
        Row(
            "nms 1000 proposals on 128 px, IoU 0.7",
            time_ms(lambda: nms(small, small_scores, 0.7)),
            time_ms(lambda: torchvision.ops.nms(small, small_scores, 0.7)),
            time_ms(lambda: nms_loop(small, small_scores, 0.7)),
            note=f"{len(kept_small)} kept",
        ),
        Row(
            "batched_nms 12000 proposals, 20 classes",
            time_ms(lambda: batched_nms(boxes, scores, classes, 0.7)),
            time_ms(lambda: torchvision.ops.batched_nms(boxes, scores, classes, 0.7)),
            note=f"{len(kept_per_class)} kept",
        ),
    ]
