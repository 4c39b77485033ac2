"""Train the small SSD and torchvision's SSDlite (or any registered detector) for the same
wall-clock budget on the same synthetic shapes; compare mAP on held-out images and time per step.

    .venv/bin/python -m benchmarks.train_ssd                  # 180 s per model: ssd, ssdlite
    .venv/bin/python -m benchmarks.train_ssd --seconds 60 --models ssd
    .venv/bin/python -m benchmarks.train_ssd --models ssd torchvision_frcnn --threads 1

The models:

- ``ssd``: the registry's small SSD (:func:`tutorial_det.ssd.build_ssd`: half-width
  TinyBackbone, heads at strides 8 to 64, 1360 priors on 128 px images);
- ``tv_matched``: torchvision's ``SSD`` on the small SSD's backbone and extra stages, with the
  same priors per cell, 3x3 heads, thresholds and normalisation (torchvision's own head
  initialisation, matcher and loss), so that the time per step compares the implementations;
- ``ssdlite``: torchvision's ``ssdlite320_mobilenet_v3_large(weights=None,
  weights_backbone=None)``, which resizes every image to 320 x 320 as it is built to;
- any other name of :data:`tutorial_det.models.MODELS` with its default options, e.g.
  ``torchvision_frcnn`` (torchvision's MobileNetV3-FPN Faster R-CNN at 320 px).

Every model sees the same stream of 128 x 128 images (``ShapesDataset(seed=0)``: a new image
every time, so nothing repeats and no augmentation is needed), batches of ``--batch-size``,
AdamW, gradient clipping at 10 and a learning rate that follows the clock
(:func:`benchmarks.budget.clock_cosine`). Weights are copied every ``--snapshot-every`` seconds
and evaluated after training on ``ShapesDataset(--val-size, seed=1)``, so evaluation never eats
into the budget. Printed per model: steps, median seconds per step, mAP@0.5 and mAP@[.5:.95] at
the end, and the first snapshot (step, seconds) whose mAP@0.5 reached 0.9. Timings depend on the
machine's load (printed); ``--threads`` sets torch's threads.
"""

from __future__ import annotations

import argparse
import sys
from collections import OrderedDict

import torch
import torchvision
from torch import nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD as TorchvisionSSD
from torchvision.models.detection.ssd import SSDHead

from benchmarks.budget import describe_machine, train_on_budget
from tutorial_det.backbones import IMAGENET_MEAN, IMAGENET_STD
from tutorial_det.data import ShapesDataset
from tutorial_det.models import build_model
from tutorial_det.ssd import SSD

NUM_CLASSES = 4  # background + circle, square, triangle


class _SSDFeatures(nn.Module):
    """Our SSD's backbone and extra stages as a torchvision SSD backbone: the four feature maps
    (strides 8 to 64) as an ordered dict. torchvision normalises the images itself."""

    def __init__(self, ssd: SSD) -> None:
        super().__init__()
        self.backbone, self.extras = ssd.backbone, ssd.extras

    def forward(self, x: torch.Tensor) -> OrderedDict:
        stages = self.backbone.forward_stages(x)
        features = [stages[2], stages[3]]
        for extra in self.extras:
            features.append(extra(features[-1]))
        return OrderedDict((str(k), f) for k, f in enumerate(features))


def torchvision_ssd_matched(num_classes: int = NUM_CLASSES, image_size: int = 128) -> nn.Module:
    """torchvision's ``SSD`` on our small SSD's backbone and extra stages, with the same priors
    (its ``DefaultBoxGenerator`` with our scales, aspect ratios and steps: on 128 x 128 images the
    same 1360 boxes in the same order), 3x3 heads, decoding thresholds and image normalisation;
    torchvision's own head initialisation, matcher and loss."""
    ours = SSD(num_classes)
    channels = [head.in_channels for head in ours.cls_heads]
    return TorchvisionSSD(
        _SSDFeatures(ours),
        DefaultBoxGenerator(
            [list(r) for r in ours.aspect_ratios], scales=list(ours.scales), steps=ours.strides
        ),
        (image_size, image_size),
        num_classes,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        head=SSDHead(channels, list(ours.priors_per_cell), num_classes),
        score_thresh=ours.score_thresh,
        nms_thresh=ours.nms_thresh,
        detections_per_img=ours.detections_per_img,
        topk_candidates=ours.topk_candidates,
    )


def build(name: str, seed: int = 0) -> nn.Module:
    """The model called ``name``, its weights drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    if name == "tv_matched":
        return torchvision_ssd_matched()
    if name == "ssdlite":
        return torchvision.models.detection.ssdlite320_mobilenet_v3_large(
            weights=None, weights_backbone=None, num_classes=NUM_CLASSES
        )
    return build_model(name, NUM_CLASSES)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="training budget per model")
    parser.add_argument("--models", nargs="+", default=["ssd", "ssdlite"])
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--snapshot-every", type=float, default=20.0, help="seconds")
    parser.add_argument("--val-size", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args(argv)
    print(
        f"{describe_machine(args.threads)}; "
        f"budget {args.seconds:g} s per model, batch {args.batch_size}, lr {args.lr:g}, "
        f"{args.val_size} held-out images"
    )
    results = {}
    for name in args.models:
        print(f"training {name} ...", file=sys.stderr, flush=True)
        results[name] = train_on_budget(
            build(name),
            ShapesDataset(1_000_000, seed=0),
            ShapesDataset(args.val_size, seed=1),
            seconds=args.seconds,
            lr=args.lr,
            batch_size=args.batch_size,
            snapshot_every=args.snapshot_every,
            label=name,
            shuffle=False,  # a million distinct images: the order does not matter
            device="cpu",
        )
    print("| model | params (M) | steps | s / step | mAP@0.5 | mAP | mAP@0.5 >= 0.9 at (step, s) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r.params_m:.2f} | {r.steps} | {r.s_per_step:.3f} | {r.map_50:.3f} | "
            f"{r.map:.3f} | {r.steps_to_target:g}, {r.seconds_to_target:.0f} |"
        )
    if "ssd" in results:
        for name, r in results.items():
            if name != "ssd":
                print(f"{name} / ssd time per step: {r.s_per_step / results['ssd'].s_per_step:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
