"""Train our Faster R-CNN and torchvision's FasterRCNN on the same backbone on the same synthetic
shapes, for the same wall-clock budget or the same number of steps over several seeds; compare
mAP on held-out images and time per step.

    .venv/bin/python -m benchmarks.train_faster_rcnn                   # 180 s per model
    .venv/bin/python -m benchmarks.train_faster_rcnn --seconds 60 --models ours
    .venv/bin/python -m benchmarks.train_faster_rcnn --models ours tv_matched --threads 1
    .venv/bin/python -m benchmarks.train_faster_rcnn --models ours tv_matched --steps 300 \
        --seeds 0 1 2                                                  # learning per step

The models:

- ``ours``: :func:`tutorial_det.faster_rcnn.build_faster_rcnn`: ``TopDownBackbone`` (TinyBackbone's
  stride-8 stage with its stride-16 stage added top-down), anchors 16/32/64 x 0.5/1/2, 1000
  boxes into NMS and 300 (training) / 150 (test) proposals, 256 anchors and 128 RoIs sampled per
  image, RoIAlign 7x7 and a 256-wide two-layer head (each setting has an option below);
- ``tv_matched``: :func:`torchvision_twin`: torchvision's ``FasterRCNN`` with the same backbone
  module (and the same initial backbone weights), anchors, proposal settings (counts, NMS, the
  4 px minimum size), sampling, pooling and head, so that the time per step and the learning per
  step compare the implementations. Given the same weights and ours' anchor placement and
  RoIAlign, it computes the same losses, gradients and detections as ours
  (``tests/test_faster_rcnn.py``); three choices stay each one's own: anchors centred on the
  cells (torchvision: on their top-left corners, rounded), ``roi_align(aligned=True)``
  (torchvision: ``aligned=False``), and two objectness logits per anchor with a softmax
  (torchvision: one with a sigmoid; under Adam the pair's difference moves twice as fast,
  ``tests/test_rpn.py``);
- ``tv_centred``: ``tv_matched`` with ours' anchor placement and ``roi_align(aligned=True)``
  (:func:`torchvision_twin` with ``our_geometry=True``), to measure what that choice is worth;
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

With ``--steps N --seeds S ...`` every model trains for exactly ``N`` steps instead, once per
seed, each run in its own process on ``--threads`` threads (``--processes`` runs at a time), and
the results do not depend on the machine's load. Seed ``s`` fixes the initial weights
(``torch.manual_seed(s)`` before building), the training stream (``ShapesDataset(seed=1000 +
s)``, the same batches for every model) and ``fit``'s random stream (the sampling of anchors and
RoIs); the learning rate warms up over the first 5 % of the steps and follows a cosine to zero
at step ``N`` (:func:`benchmarks.budget.step_cosine`). Every ``--eval-every`` steps the model is
scored on ``ShapesDataset(--val-size, seed=1)``. Printed: mAP@0.5 and mAP@[.5:.95] per model,
seed and evaluation step; their mean and standard deviation over the seeds; and, for ours
against each torchvision model, the mean and standard deviation of the per-seed difference (the
two see the same batches, so the difference is paired). On one machine a seed gives the same
numbers every time; :func:`train_for_steps` is the run, callable with ``device="cuda"`` and
``amp="bf16"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN as TorchvisionFasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign, RoIAlign, RoIPool

from benchmarks.budget import BudgetResult, describe_machine, fit_for_steps, train_on_budget
from tutorial_det.backbones import TinyBackbone
from tutorial_det.data import ShapesDataset, detection_collate, train_transforms
from tutorial_det.faster_rcnn import FasterRCNN, TopDownBackbone, build_faster_rcnn
from tutorial_det.rpn import ProposalSettings

NUM_CLASSES = 4  # background + circle, square, triangle
IMAGE_SIZE = 128
TARGET_MAP_50 = 0.9
ANCHOR_SIZES = (16, 32, 64)
ANCHOR_RATIOS = (0.5, 1.0, 2.0)
VAL_SEED = 1
TRAIN_SEED = 1000  # seed s of the step mode trains on ShapesDataset(seed=TRAIN_SEED + s)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The settings every model of a run shares (the command line's options of the same names).

    Attributes:
        lr: AdamW's peak learning rate; batch_size: images per step.
        pooling: ``"align"`` (RoIAlign) or ``"pool"`` (RoI max pooling); pool_size: its grid
            side; sampling_ratio: RoIAlign points per bin side.
        head_width: width of the RoI head's two fully connected layers.
        paper_init: our RoI head's outputs from N(0, 0.01) / N(0, 0.001).
        roi_samples, positive_fraction: RoIs sampled per image and their largest positive share.
        rpn_samples: anchors sampled per image.
        pre_nms, post_nms_train, post_nms_test: proposals entering NMS and kept after it.
        augment: flip / scale / colour jitter on the training images.
        val_size: held-out images.
    """

    lr: float = 1.5e-3
    batch_size: int = 8
    pooling: str = "align"
    pool_size: int = 7
    sampling_ratio: int = 1
    head_width: int = 256
    paper_init: bool = False
    roi_samples: int = 128
    positive_fraction: float = 0.25
    rpn_samples: int = 256
    pre_nms: int = 1000
    post_nms_train: int = 300
    post_nms_test: int = 150
    augment: bool = False
    val_size: int = 200


def build(name: str, recipe: Recipe, seed: int = 0) -> nn.Module:
    """The model called ``name`` with the recipe's settings, its weights drawn after
    ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    if name == "ours":
        train = ProposalSettings(recipe.pre_nms, recipe.post_nms_train, 0.7, 4.0)
        test = ProposalSettings(recipe.pre_nms, recipe.post_nms_test, 0.7, 4.0)
        return build_faster_rcnn(
            NUM_CLASSES,
            anchor_sizes=ANCHOR_SIZES,
            anchor_ratios=ANCHOR_RATIOS,
            rpn_batch_size_per_image=recipe.rpn_samples,
            rpn_train_proposals=train,
            rpn_test_proposals=test,
            roi_batch_size_per_image=recipe.roi_samples,
            roi_positive_fraction=recipe.positive_fraction,
            pooling=recipe.pooling,
            pool_size=recipe.pool_size,
            sampling_ratio=recipe.sampling_ratio,
            representation_size=recipe.head_width,
            paper_init=recipe.paper_init,
        )
    if name == "tv_peer":  # the project notes' configuration: plain stride-16 TinyBackbone
        return TorchvisionFasterRCNN(
            TinyBackbone(),
            NUM_CLASSES,
            rpn_anchor_generator=AnchorGenerator((ANCHOR_SIZES,), (ANCHOR_RATIOS,)),
            box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
            box_batch_size_per_image=128,
            min_size=IMAGE_SIZE,  # no resizing: 128 px in, 128 px through the network
            max_size=IMAGE_SIZE,
        )
    if name in ("tv_matched", "tv_centred"):  # ours' backbone, anchors, settings and head
        ours = build("ours", recipe, seed)
        torch.manual_seed(seed)  # the same backbone weights as ours
        return torchvision_twin(ours, our_geometry=name == "tv_centred")
    raise ValueError(f"unknown model {name!r}; choose ours, tv_matched, tv_centred or tv_peer")


def torchvision_twin(ours: FasterRCNN, *, our_geometry: bool = False) -> TorchvisionFasterRCNN:
    """torchvision's ``FasterRCNN`` built like ``ours``, with fresh weights: a
    :class:`~tutorial_det.faster_rcnn.TopDownBackbone`, ours' anchor sizes and ratios (those of
    this benchmark), proposal settings (the minimum size included), anchor and RoI sampling,
    pooling (RoIAlign or RoI max pooling, grid size, sampling ratio) and RoI head widths; images
    of 128 px are not resized.

    Two choices stay torchvision's unless ``our_geometry``: its anchors are centred on the cells'
    top-left corners and rounded to whole pixels (ours on the cells' centres) and its RoIAlign
    is ``aligned=False`` (ours ``aligned=True``). Its objectness is one logit per anchor with a
    sigmoid (ours two with a softmax: the same model, see ``tests/test_rpn.py`` for how Adam
    trains the two).
    """
    rpn, head = ours.rpn, ours.roi_head
    train, test = rpn.train_proposals, rpn.test_proposals
    size = head.output_size[0]
    anchors = AnchorGenerator((ANCHOR_SIZES,), (ANCHOR_RATIOS,))
    if our_geometry:
        anchors.cell_anchors = [rpn.base_anchors.clone()]  # centred on the first cell's centre
    backbone = TopDownBackbone()
    model = TorchvisionFasterRCNN(
        backbone,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(["0"], size, head.sampling_ratio),
        box_head=TwoMLPHead(head.fc6.in_features, head.fc6.out_features),
        box_predictor=FastRCNNPredictor(head.fc7.out_features, ours.num_classes),
        rpn_pre_nms_top_n_train=train.pre_nms_top_n,
        rpn_post_nms_top_n_train=train.post_nms_top_n,
        rpn_pre_nms_top_n_test=test.pre_nms_top_n,
        rpn_post_nms_top_n_test=test.post_nms_top_n,
        rpn_nms_thresh=train.nms_thresh,
        rpn_batch_size_per_image=rpn.batch_size_per_image,
        rpn_positive_fraction=rpn.positive_fraction,
        box_batch_size_per_image=ours.roi_batch_size_per_image,
        box_positive_fraction=ours.roi_positive_fraction,
        min_size=IMAGE_SIZE,  # no resizing: 128 px in, 128 px through the network
        max_size=IMAGE_SIZE,
    )
    model.rpn.min_size = train.min_size  # its default is 1e-3 px
    # FasterRCNN accepts only a MultiScaleRoIAlign when built; it calls any module alike
    if head.pooling == "pool":
        model.roi_heads.box_roi_pool = _OneMap(RoIPool(size, head.spatial_scale))
    elif our_geometry:
        align = RoIAlign(size, head.spatial_scale, head.sampling_ratio, aligned=True)
        model.roi_heads.box_roi_pool = _OneMap(align)
    return model


class _OneMap(nn.Module):
    """One of torchvision's RoI ops on the ``"0"`` feature map, with the ``(features, proposals,
    image_sizes)`` call of its ``MultiScaleRoIAlign``, for FasterRCNN's ``box_roi_pool``."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, features, proposals, image_sizes):
        return self.op(features["0"], proposals)


def _training_transforms(recipe: Recipe):
    return train_transforms("shapes", IMAGE_SIZE) if recipe.augment else None


def train_and_evaluate(name: str, recipe: Recipe, args: argparse.Namespace) -> BudgetResult:
    return train_on_budget(
        build(name, recipe),
        ShapesDataset(1_000_000, seed=0, transforms=_training_transforms(recipe)),
        ShapesDataset(recipe.val_size, seed=VAL_SEED),
        seconds=args.seconds,
        lr=recipe.lr,
        batch_size=recipe.batch_size,
        snapshot_every=args.snapshot_every,
        target_map_50=TARGET_MAP_50,
        label=name,
        shuffle=False,  # a million distinct images: the order does not matter
        device="cpu",
        num_workers=args.workers,
    )


# --------------------------------------------------------------------------- equal steps


@dataclasses.dataclass
class StepRun:
    """What :func:`train_for_steps` measured for one model and one seed.

    Attributes:
        name, seed, steps: the run.
        evaluations: ``(step, mAP@0.5, mAP@[.5:.95])`` at every evaluation, in order.
        losses: each loss term's mean over the last tenth of the steps.
        s_per_step: median wall time of a step (depends on the machine's load).
    """

    name: str
    seed: int
    steps: int
    evaluations: list[tuple[int, float, float]]
    losses: dict[str, float]
    s_per_step: float


def train_for_steps(
    name: str,
    seed: int,
    recipe: Recipe = Recipe(),
    *,
    steps: int = 300,
    eval_every: int = 75,
    device: str = "cpu",
    amp: bool | str = False,
    threads: int | None = 1,
    **fit_options,
) -> StepRun:
    """Train model ``name`` for ``steps`` steps with seed ``seed`` (see the module docstring) and
    score it on the held-out images every ``eval_every`` steps and at the end
    (:func:`benchmarks.budget.fit_for_steps`).

    Args:
        device: where to train and evaluate (``"cpu"``, ``"cuda"``, ...).
        amp: ``fit``'s mixed precision (``False``, or ``"bf16"`` on CUDA); evaluation runs in
            float32.
        threads: torch's CPU threads for this process (None: leave torch's default).
        fit_options: more of ``fit``'s options (``num_workers``, ``max_seconds``, ...).
    """
    if threads:
        torch.set_num_threads(threads)
    model = build(name, recipe, seed)
    train = ShapesDataset(
        steps * recipe.batch_size, seed=TRAIN_SEED + seed, transforms=_training_transforms(recipe)
    )
    val = ShapesDataset(recipe.val_size, seed=VAL_SEED)
    history = fit_for_steps(
        model,
        train,
        val,
        steps=steps,
        lr=recipe.lr,
        batch_size=recipe.batch_size,
        eval_every=eval_every,
        seed=seed,
        device=device,
        amp=amp,
        **fit_options,
    )
    tail = max(1, steps // 10)
    return StepRun(
        name=name,
        seed=seed,
        steps=len(history.step),
        evaluations=[(m["step"], m["map_50"], m["map"]) for m in history.metrics],
        losses={term: statistics.fmean(v[-tail:]) for term, v in history.terms.items()},
        s_per_step=statistics.median(
            b - a for a, b in zip(history.wall_time, history.wall_time[1:], strict=False)
        ),
    )


def compare_for_steps(
    names: list[str],
    seeds: list[int],
    recipe: Recipe = Recipe(),
    *,
    processes: int = 2,
    **run_options,
) -> list[StepRun]:
    """:func:`train_for_steps` for every model and seed, ``processes`` runs at a time, each in
    its own process; ``run_options`` go to :func:`train_for_steps`. Runs in (seed, model)
    order."""
    jobs = [(name, seed) for seed in seeds for name in names]
    runs: dict[tuple[str, int], StepRun] = {}
    context = multiprocessing.get_context("spawn")  # a fresh torch in every process
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = {
            pool.submit(train_for_steps, name, seed, recipe, **run_options): (name, seed)
            for name, seed in jobs
        }
        for future in as_completed(futures):
            run = future.result()
            runs[futures[future]] = run
            print(
                f"  {run.name} seed {run.seed}: "
                + ", ".join(f"step {s} mAP@0.5 {a:.3f} mAP {b:.3f}" for s, a, b in run.evaluations)
                + f" ({run.s_per_step:.2f} s / step)",
                file=sys.stderr,
                flush=True,
            )
    return [runs[job] for job in jobs]


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def step_report(runs: list[StepRun]) -> str:
    """Markdown tables of :func:`compare_for_steps`' runs: every run; mean ± standard deviation
    over the seeds per model; ours minus each other model, seed by seed, as mean ± standard
    deviation."""
    names = list(dict.fromkeys(run.name for run in runs))
    steps = [e[0] for e in runs[0].evaluations]
    columns = [f"mAP@0.5 @{s}" for s in steps] + [f"mAP @{s}" for s in steps]
    header = ["| model | seed | " + " | ".join(columns) + " |", "|---" * (2 + len(columns)) + "|"]

    def cells(evaluations: list[tuple[int, float, float]]) -> list[float]:
        return [e[1] for e in evaluations] + [e[2] for e in evaluations]

    lines = list(header)
    for run in runs:
        lines.append(
            f"| {run.name} | {run.seed} | "
            + " | ".join(f"{v:.3f}" for v in cells(run.evaluations))
            + " |"
        )
    lines += ["", *header]
    by_name = {name: [cells(r.evaluations) for r in runs if r.name == name] for name in names}
    for name, rows in by_name.items():
        lines.append(
            f"| {name} | mean ± sd of {len(rows)} | "
            + " | ".join(_mean_sd(list(column)) for column in zip(*rows, strict=True))
            + " |"
        )
    if "ours" in by_name:
        for peer in names:
            if peer == "ours":
                continue
            pairs = {r.seed: cells(r.evaluations) for r in runs if r.name == peer}
            differences = [
                [a - b for a, b in zip(cells(r.evaluations), pairs[r.seed], strict=True)]
                for r in runs
                if r.name == "ours" and r.seed in pairs
            ]
            lines.append(
                f"| ours - {peer} | mean ± sd of {len(differences)} | "
                + " | ".join(_mean_sd(list(column)) for column in zip(*differences, strict=True))
                + " |"
            )
    lines += ["", "loss terms over the last tenth of the steps (mean over the seeds):"]
    for name in names:
        terms = [r.losses for r in runs if r.name == name]
        lines.append(
            f"  {name}: "
            + ", ".join(
                f"{term} {statistics.fmean(t[term] for t in terms):.4f}" for term in terms[0]
            )
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- time per step


def interleaved_step_times(names: list[str], recipe: Recipe, steps: int) -> dict[str, float]:
    """Median seconds per training step of each model, the models taking turns on the same
    batches (one step each, in turn), so that a change in the machine's load hits all of them
    alike. The first 5 rounds are warm-up and not counted."""
    data = ShapesDataset(steps * recipe.batch_size, seed=2)
    models = {name: build(name, recipe).train() for name in names}
    optimizers = {
        name: torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
        for name, model in models.items()
    }
    times: dict[str, list[float]] = {name: [] for name in names}
    batch = recipe.batch_size
    for step in range(steps):
        images, targets = detection_collate(
            [data[i] for i in range(step * batch, (step + 1) * batch)]
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
        "--steps", type=int, default=None, help="train every model for this many steps instead"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="with --steps")
    parser.add_argument("--eval-every", type=int, default=75, help="steps, with --steps")
    parser.add_argument("--processes", type=int, default=2, help="runs at a time, with --steps")
    parser.add_argument(
        "--interleaved-steps",
        type=int,
        default=60,
        help="steps per model for the interleaved time per step (0: skip)",
    )
    parser.add_argument("--models", nargs="+", default=["ours", "tv_matched", "tv_peer"])
    defaults = Recipe()
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--pooling", choices=("align", "pool"), default=defaults.pooling)
    parser.add_argument("--pool-size", type=int, default=defaults.pool_size)
    parser.add_argument(
        "--sampling-ratio",
        type=int,
        default=defaults.sampling_ratio,
        help="RoIAlign points per bin side",
    )
    parser.add_argument("--head-width", type=int, default=defaults.head_width)
    parser.add_argument(
        "--paper-init", action="store_true", help="RoI head outputs from N(0, 0.01) / N(0, 0.001)"
    )
    parser.add_argument(
        "--roi-samples", type=int, default=defaults.roi_samples, help="RoIs sampled per image"
    )
    parser.add_argument(
        "--positive-fraction", type=float, default=defaults.positive_fraction, help="of the RoIs"
    )
    parser.add_argument(
        "--rpn-samples", type=int, default=defaults.rpn_samples, help="anchors sampled per image"
    )
    parser.add_argument(
        "--pre-nms", type=int, default=defaults.pre_nms, help="proposals entering NMS"
    )
    parser.add_argument(
        "--post-nms-train", type=int, default=defaults.post_nms_train, help="proposals kept"
    )
    parser.add_argument(
        "--post-nms-test", type=int, default=defaults.post_nms_test, help="proposals kept"
    )
    parser.add_argument("--augment", action="store_true", help="flip / scale / colour jitter")
    parser.add_argument("--snapshot-every", type=float, default=20.0, help="seconds")
    parser.add_argument("--val-size", type=int, default=defaults.val_size)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: all; with --steps: 1 per process)",
    )
    args = parser.parse_args(argv)
    recipe = Recipe(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(Recipe)}
    )
    if args.steps is not None:
        print(
            describe_machine(args.threads or 1)  # the threads of each training process
            + "; "
            + ", ".join(f"{key}={value}" for key, value in vars(args).items())
        )
        runs = compare_for_steps(
            args.models,
            args.seeds,
            recipe,
            processes=args.processes,
            steps=args.steps,
            eval_every=args.eval_every,
            threads=args.threads or 1,
        )
        print(step_report(runs))
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        return 0
    print(
        describe_machine(args.threads)
        + "; "
        + ", ".join(f"{key}={value}" for key, value in vars(args).items())
    )
    results = {}
    for name in args.models:
        print(f"training {name} ...", file=sys.stderr, flush=True)
        results[name] = train_and_evaluate(name, recipe, args)
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
        medians = interleaved_step_times(args.models, recipe, args.interleaved_steps)
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
