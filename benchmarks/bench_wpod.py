"""WPOD-Net timings: the network's training step, decoding, quadrilateral IoU and rectification.

The quadrilateral IoU is compared with a loop calling it one pair at a time (what a per-pair
polygon library would do); there is no torchvision equivalent for any of these.
"""

from __future__ import annotations

import torch

from benchmarks.common import Row, time_ms
from tutorial_det.data.plates import PlatesDataset
from tutorial_det.wpod import WPODDetector, quad_iou, rectify


def run() -> list[Row]:
    torch.manual_seed(0)
    plates = PlatesDataset(16, seed=0)
    images, targets = zip(*[plates[i] for i in range(16)], strict=True)
    images, targets = list(images), list(targets)
    model = WPODDetector(width=0.5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def train_step():
        optimizer.zero_grad()
        sum(model(images, targets).values()).backward()
        optimizer.step()

    eval_model = WPODDetector(width=0.5, score_thresh=0.0).eval()

    def predict():
        with torch.no_grad():
            eval_model(images)

    corners = torch.cat([t["corners"] for t in targets])  # [16, 4, 2]
    many = torch.cat([corners + torch.tensor([dx, 0.0]) for dx in range(0, 30, 3)])  # [160, 4, 2]

    def pairwise_loop():
        return [[quad_iou(a[None], b[None]) for b in many[:40]] for a in many[:40]]

    return [
        Row("WPOD-Net train step, 16 x 128^2, width 0.5", time_ms(train_step, 2.0)),
        Row("WPOD-Net predict (every cell kept, NMS), 16 x 128^2", time_ms(predict, 1.0)),
        Row(
            "quad_iou 40 x 40 (vs one pair per call)",
            time_ms(lambda: quad_iou(many[:40], many[:40])),
            naive_ms=time_ms(pairwise_loop, 1.0),
        ),
        Row("quad_iou 160 x 160", time_ms(lambda: quad_iou(many, many))),
        Row("rectify 16 plates to 32 x 96", time_ms(lambda: rectify(images[0], corners, (32, 96)))),
    ]
