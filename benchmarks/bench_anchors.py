"""Anchors and anchor labelling on the lessons' sizes (800 x 800 image, stride 16, 9 anchors).

- generating the 22500 anchors: ``grid_anchors(anchor_base())`` vs torchvision's
  ``AnchorGenerator`` vs the seed-style Python loop (``tutorial_det.naive.anchors_loop``);
- labelling the 22500 anchors against 20 ground truths: ``label_anchors`` (IoU included) vs
  torchvision's ``Matcher(0.7, 0.3, allow_low_quality_matches=True)`` on its own IoU matrix.
"""

from __future__ import annotations

import torch
import torchvision
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from benchmarks.common import Row, time_ms
from tutorial_det.anchors import anchor_base, grid_anchors
from tutorial_det.labelling import label_anchors
from tutorial_det.naive import anchors_loop


def _ground_truth(n: int, generator: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator) * 600
    wh = torch.rand(n, 2, generator=generator) * 300 + 20
    return torch.cat((xy, (xy + wh).clamp(max=800)), dim=1)


def run() -> list[Row]:
    stride, size = 16, (50, 50)

    def ours() -> torch.Tensor:
        return grid_anchors(anchor_base(stride), size, stride)

    generator = AnchorGenerator(sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),))
    images = ImageList(torch.zeros(1, 3, 800, 800), [(800, 800)])
    features = [torch.zeros(1, 512, *size)]

    anchors = ours()
    assert torch.allclose(anchors, anchors_loop(size, stride), atol=1e-4)
    assert (anchors - generator(images, features)[0] - stride / 2).abs().max() <= 0.5 + 1e-4
    rows = [
        Row(
            "anchors 800x800 (22500)",
            time_ms(ours),
            time_ms(lambda: generator(images, features)),
            time_ms(lambda: anchors_loop(size, stride), min_run_time=0.3),
            note="tv: cell anchors rounded, shifted to cell corners",
        )
    ]

    gt = _ground_truth(20, torch.Generator().manual_seed(0))
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)

    def theirs() -> torch.Tensor:
        return matcher(torchvision.ops.box_iou(gt, anchors))

    labels, _ = label_anchors(anchors, gt)
    matches = theirs()
    assert torch.equal(labels == 1, matches >= 0) and torch.equal(labels == 0, matches == -1)
    rows.append(
        Row(
            "label 22500 anchors x 20 gt",
            time_ms(lambda: label_anchors(anchors, gt)),
            time_ms(theirs),
            note="both include the IoU matrix",
        )
    )
    return rows
