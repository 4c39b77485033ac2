"""fit's cost per step: torchvision's fasterrcnn_mobilenet_v3_large_320_fpn (random weights) on
small ShapesDataset images, trained through ``fit`` and through a bare PyTorch loop (same model,
data, optimizer and seed). The "torchvision" column holds the bare loop, so "ours / tv" is fit's
overhead (batch checks, the NaN check, history, progress bookkeeping). Each time is the median
step after one warm-up step."""

from __future__ import annotations

import statistics
import time

import torch
import torchvision

from benchmarks.common import Row
from tutorial_det.data import ShapesDataset
from tutorial_det.training import fit

IMAGE_SIZE = 128
BATCH = 4
WARMUP, MEASURED = 1, 4


def _model_and_optimizer():
    torch.manual_seed(0)
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=4,
        min_size=IMAGE_SIZE,  # keep the images small (the model's default resizes them to 320)
        max_size=IMAGE_SIZE,
    )
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def _bare_loop_ms(data) -> float:
    model, optimizer = _model_and_optimizer()
    model.train()
    times = []
    for start in range(0, (WARMUP + MEASURED) * BATCH, BATCH):
        t0 = time.perf_counter()
        items = [data[i] for i in range(start, start + BATCH)]
        images = [image for image, _ in items]
        targets = [target for _, target in items]
        losses = model(images, targets)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[WARMUP:]) * 1e3


def _fit_ms(data) -> float:
    model, optimizer = _model_and_optimizer()
    history = fit(
        model,
        data,
        optimizer=optimizer,
        max_steps=WARMUP + MEASURED,
        batch_size=BATCH,
        shuffle=False,  # the bare loop's batches, in the same order
        device="cpu",
        progress=False,
        log_every=None,
    )
    wall = [0.0, *history.wall_time]
    steps = [b - a for a, b in zip(wall, wall[1:], strict=False)]
    return statistics.median(steps[WARMUP:]) * 1e3


def run() -> list[Row]:
    data = ShapesDataset((WARMUP + MEASURED) * BATCH, image_size=IMAGE_SIZE)
    ours = _fit_ms(data)
    bare = _bare_loop_ms(data)
    return [
        Row(
            f"fit: fasterrcnn_mobilenet_320_fpn, {BATCH} x {IMAGE_SIZE}px, CPU",
            ours,
            bare,
            note=f"{1e3 / ours:.2f} steps/s; torchvision column = bare loop",
        )
    ]
