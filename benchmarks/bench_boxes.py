"""box_iou: ours vs torchvision.ops.box_iou vs the seed-style double loop, on the lesson's sizes
(the 8940 inside anchors of an 800 x 800 image against 2 ground truths) and on a square case."""

from __future__ import annotations

import torch
import torchvision

from benchmarks.common import Row, time_ms
from tutorial_det.boxes import box_iou
from tutorial_det.naive import box_iou_loop


def _boxes(n: int, generator: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator) * 700
    wh = torch.rand(n, 2, generator=generator) * 300 + 1
    return torch.cat((xy, xy + wh), dim=1)


def run() -> list[Row]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for n, m, with_loop in ((8940, 2, True), (2000, 2000, False)):
        a, b = _boxes(n, g), _boxes(m, g)
        assert torch.allclose(box_iou(a, b), torchvision.ops.box_iou(a, b), atol=1e-6)
        ours = time_ms(lambda a=a, b=b: box_iou(a, b))
        tv = time_ms(lambda a=a, b=b: torchvision.ops.box_iou(a, b))
        naive = (
            time_ms(lambda a=a, b=b: box_iou_loop(a, b), min_run_time=0.2) if with_loop else None
        )
        rows.append(Row(f"box_iou {n} x {m}", ours, tv, naive))
    return rows
