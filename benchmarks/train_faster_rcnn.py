"""Train our Faster R-CNN and torchvision's FasterRCNN on the same backbone for the same
wall-clock budget on the same synthetic shapes; compare mAP on held-out images and time per step.

    .venv/bin/python -m benchmarks.train_faster_rcnn                   # 180 s per model
    .venv/bin/python -m benchmarks.train_faster_rcnn --seconds 60 --models ours
    .venv/bin/python -m benchmarks.train_faster_rcnn --models ours tv_matched --threads 1

The models:

- ``ours``: :func:`tutorial_det.faster_rcnn.build_faster_rcnn`: ``TopDownBackbone`` (TinyBackbone's
  stride-8 stage with its stride-16 stage added top-down), anchors 16/32/64 x 0.5/1/2, 1000
  boxes into NMS and 300 (training) / 150 (test) proposals, 256 anchors and 128 RoIs sampled per
  image, RoIAlign 7x7 and a 256-wide two-layer head (each setting has an option below);
- ``tv_matched``: torchvision's ``FasterRCNN`` with the same backbone module, anchors, proposal
  counts, sampling, pooling and head, so that the time per step compares the implementations;
- ``tv_peer``: torchvision's ``FasterRCNN`` as in the project notes: the plain stride-16
  ``TinyBackbone`` (32-64-128-128), one anchor level (16/32/64 x 0.5/1/2), RoIAlign 7x7, 128
  RoIs per image and its defaults otherwise (a 1024-wide head, 2000 training proposals).

Every model sees the same stream of 128 x 128 training images (``ShapesDataset(seed=0)``, a new
image every step, with the shapes training augmentation when ``--augment``) and is trained by
:func:`benchmarks.budget.train_on_budget`: AdamW, gradient clipping at 10, a learning rate that
warms up over the first 5 % of the budget and follows a cosine to zero at its end (the schedule
follows the clock, so a loaded machine gets fewer steps but a complete schedule), the weights
copied every ``--snapshot-every`` seconds and evaluated after training on
``ShapesDataset(--val-size, seed=1)``, so evaluation never eats into the budget. Printed per
model: steps, median seconds per step, mAP@0.5 and mAP@[.5:.95] at the end, and the first
snapshot (step and seconds) whose mAP@0.5 reached 0.9; then the ratios of time per step.

Timings depend on the machine's load (the load average is printed at the start and the end):
torch's threads wait for each other, and on a busy machine two threads can be slower than one
(``--threads 1``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN as TorchvisionFasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign, RoIPool

from benchmarks.budget import BudgetResult, describe_machine, train_on_budget
from tutorial_det.backbones import TinyBackbone
from tutorial_det.data import ShapesDataset, detection_collate, train_transforms
from tutorial_det.faster_rcnn import TopDownBackbone, build_faster_rcnn
from tutorial_det.rpn import ProposalSettings

NUM_CLASSES = 4  # background + circle, square, triangle
IMAGE_SIZE = 128
TARGET_MAP_50 = 0.9
ANCHOR_SIZES = (16, 32, 64)
ANCHOR_RATIOS = (0.5, 1.0, 2.0)


def build(name: str, args: argparse.Namespace) -> nn.Module:
    """The model called ``name``, seeded, with the benchmark's settings."""
    torch.manual_seed(0)
    train = ProposalSettings(args.pre_nms, args.post_nms_train, 0.7, 4.0)
    test = ProposalSettings(args.pre_nms, args.post_nms_test, 0.7, 4.0)
    if name == "ours":
        return build_faster_rcnn(
            NUM_CLASSES,
            anchor_sizes=ANCHOR_SIZES,
            anchor_ratios=ANCHOR_RATIOS,
            rpn_batch_size_per_image=args.rpn_samples,
            rpn_train_proposals=train,
            rpn_test_proposals=test,
            roi_batch_size_per_image=args.roi_samples,
            roi_positive_fraction=args.positive_fraction,
            pooling=args.pooling,
            pool_size=args.pool_size,
            sampling_ratio=args.sampling_ratio,
            representation_size=args.head_width,
            paper_init=args.paper_init,
        )
    common = {
        "rpn_anchor_generator": AnchorGenerator((ANCHOR_SIZES,), (ANCHOR_RATIOS,)),
        "min_size": IMAGE_SIZE,  # no resizing: 128 px in, 128 px through the network
        "max_size": IMAGE_SIZE,
    }
    if name == "tv_peer":  # the project notes' configuration: plain stride-16 TinyBackbone
        return TorchvisionFasterRCNN(
            TinyBackbone(),
            NUM_CLASSES,
            box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
            box_batch_size_per_image=128,
            **common,
        )
    if name == "tv_matched":  # ours' backbone, anchors, proposal counts, sampling and head
        backbone = TopDownBackbone()
        size = args.pool_size
        pool = (
            MultiScaleRoIAlign(["0"], size, args.sampling_ratio)
            if args.pooling == "align"
            else _SingleLevelRoIPool(size, 1 / backbone.stride)
        )
        return TorchvisionFasterRCNN(
            backbone,
            box_roi_pool=pool,
            box_head=TwoMLPHead(backbone.out_channels * size * size, args.head_width),
            box_predictor=FastRCNNPredictor(args.head_width, NUM_CLASSES),
            rpn_batch_size_per_image=args.rpn_samples,
            rpn_pre_nms_top_n_train=args.pre_nms,
            rpn_post_nms_top_n_train=args.post_nms_train,
            rpn_pre_nms_top_n_test=args.pre_nms,
            rpn_post_nms_top_n_test=args.post_nms_test,
            box_batch_size_per_image=args.roi_samples,
            box_positive_fraction=args.positive_fraction,
            **common,
        )
    raise ValueError(f"unknown model {name!r}; choose ours, tv_matched or tv_peer")


class _SingleLevelRoIPool(nn.Module):
    """torchvision's RoIPool with the ``(features, proposals, image_sizes)`` call of its
    ``MultiScaleRoIAlign``, for FasterRCNN's ``box_roi_pool`` on a one-map backbone."""

    def __init__(self, output_size: int, spatial_scale: float) -> None:
        super().__init__()
        self.pool = RoIPool(output_size, spatial_scale)

    def forward(self, features, proposals, image_sizes):
        return self.pool(features["0"], proposals)


def train_and_evaluate(name: str, args: argparse.Namespace) -> BudgetResult:
    transforms = train_transforms("shapes", IMAGE_SIZE) if args.augment else None
    return train_on_budget(
        build(name, args),
        ShapesDataset(1_000_000, seed=0, transforms=transforms),
        ShapesDataset(args.val_size, seed=1),
        seconds=args.seconds,
        lr=args.lr,
        batch_size=args.batch_size,
        snapshot_every=args.snapshot_every,
        target_map_50=TARGET_MAP_50,
        label=name,
        shuffle=False,  # a million distinct images: the order does not matter
        device="cpu",
        num_workers=args.workers,
    )


def interleaved_step_times(
    names: list[str], args: argparse.Namespace, steps: int
) -> dict[str, float]:
    """Median seconds per training step of each model, the models taking turns on the same
    batches (one step each, in turn), so that a change in the machine's load hits all of them
    alike. The first 5 rounds are warm-up and not counted."""
    data = ShapesDataset(steps * args.batch_size, seed=2)
    models = {name: build(name, args).train() for name in names}
    optimizers = {
        name: torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        for name, model in models.items()
    }
    times: dict[str, list[float]] = {name: [] for name in names}
    for step in range(steps):
        images, targets = detection_collate(
            [data[i] for i in range(step * args.batch_size, (step + 1) * args.batch_size)]
        )
        for name, model in models.items():
            start = time.perf_counter()
            losses = model(images, targets)
            optimizers[name].zero_grad()
            sum(losses.values()).backward()
            optimizers[name].step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values[5:]) for name, values in times.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="training budget per model")
    parser.add_argument(
        "--interleaved-steps",
        type=int,
        default=60,
        help="steps per model for the interleaved time per step (0: skip)",
    )
    parser.add_argument("--models", nargs="+", default=["ours", "tv_matched", "tv_peer"])
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--pooling", choices=("align", "pool"), default="align")
    parser.add_argument("--pool-size", type=int, default=7)
    parser.add_argument(
        "--sampling-ratio", type=int, default=1, help="RoIAlign points per bin side"
    )
    parser.add_argument("--head-width", type=int, default=256)
    parser.add_argument(
        "--paper-init", action="store_true", help="RoI head outputs from N(0, 0.01) / N(0, 0.001)"
    )
    parser.add_argument("--roi-samples", type=int, default=128, help="RoIs sampled per image")
    parser.add_argument("--positive-fraction", type=float, default=0.25, help="of the RoIs")
    parser.add_argument("--rpn-samples", type=int, default=256, help="anchors sampled per image")
    parser.add_argument("--pre-nms", type=int, default=1000, help="proposals entering NMS")
    parser.add_argument("--post-nms-train", type=int, default=300, help="proposals kept")
    parser.add_argument("--post-nms-test", type=int, default=150, help="proposals kept")
    parser.add_argument("--augment", action="store_true", help="flip / scale / colour jitter")
    parser.add_argument("--snapshot-every", type=float, default=20.0, help="seconds")
    parser.add_argument("--val-size", type=int, default=200)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args(argv)
    print(
        describe_machine(args.threads)
        + "; "
        + ", ".join(f"{key}={value}" for key, value in vars(args).items())
    )
    results = {}
    for name in args.models:
        print(f"training {name} ...", file=sys.stderr, flush=True)
        results[name] = train_and_evaluate(name, args)
    print(
        "| model | params (M) | steps | s / step | mAP@0.5 | mAP | "
        "first snapshot with mAP@0.5 >= 0.9 (step, s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r.params_m:.2f} | {r.steps} | {r.s_per_step:.3f} | {r.map_50:.3f} | "
            f"{r.map:.3f} | {r.steps_to_target:g}, {r.seconds_to_target:.0f} |"
        )
    for peer in ("tv_matched", "tv_peer"):
        if {"ours", peer} <= set(results):
            ratio = results["ours"].s_per_step / results[peer].s_per_step
            print(f"ours / {peer} time per step (the runs above, one after the other): {ratio:.2f}")
    if args.interleaved_steps:
        print(f"interleaved, {args.interleaved_steps} steps each ...", file=sys.stderr, flush=True)
        medians = interleaved_step_times(args.models, args, args.interleaved_steps)
        print(
            "interleaved time per step (s): "
            + ", ".join(f"{name} {value:.3f}" for name, value in medians.items())
        )
        for peer in ("tv_matched", "tv_peer"):
            if {"ours", peer} <= set(medians):
                print(
                    f"ours / {peer} time per step (interleaved): {medians['ours'] / medians[peer]:.2f}"
                )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
