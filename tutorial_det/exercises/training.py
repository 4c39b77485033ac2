"""Checks for the training-loop exercise of lesson 09: one epoch written by hand, compared with
:func:`tutorial_det.training.fit` on a toy detector.

The learner's function::

    train_epoch(model, batches, optimizer, scheduler=None) -> float

trains ``model`` on every ``(images, targets)`` batch once (loss = the sum of the model's loss
terms), steps ``scheduler`` (an epoch-based schedule) once at the end, and returns the mean of the
batches' losses as a Python float. The check runs it and ``fit(..., epochs=1)`` from the same
weights and compares, as separate cases, the learning rate after the epoch, the weights after
the epoch and the returned mean: so that two mistakes that spoil different things are told apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_det.exercises.core import Case, CheckResult, compare_tensors, run_check
from tutorial_det.exercises.mistakes.training import TRAIN_EPOCH
from tutorial_det.training import fit


class ToyDetector(nn.Module):
    """A detector small enough to check a loop with: it predicts one box and one class per image
    from the image's mean colour (``[3, H, W]`` images, targets with ``"boxes"`` ``[N, 4]`` and
    ``"labels"`` ``[N]``; the first object counts). Training mode returns ``{"loss_box",
    "loss_cls"}``, each a mean over the batch."""

    def __init__(self, num_classes: int = 3, size: float = 16.0):
        super().__init__()
        self.size = size
        self.box = nn.Linear(3, 4)
        self.cls = nn.Linear(3, num_classes)

    def forward(self, images, targets=None):
        colour = torch.stack([image.mean(dim=(1, 2)) for image in images])
        boxes, logits = self.box(colour) * self.size, self.cls(colour)
        if not self.training:
            scores, labels = logits.softmax(-1).max(-1)
            return [
                {
                    "boxes": boxes[i : i + 1],
                    "labels": labels[i : i + 1],
                    "scores": scores[i : i + 1],
                }
                for i in range(len(images))
            ]
        gt_boxes = torch.stack([t["boxes"][0] for t in targets])
        gt_labels = torch.stack([t["labels"][0] for t in targets])
        return {
            "loss_box": F.smooth_l1_loss(boxes / self.size, gt_boxes / self.size),
            "loss_cls": F.cross_entropy(logits, gt_labels),
        }


class _OnePass:
    """Batches that ``fit`` takes as an iterable of ready batches (not as a data set of items)."""

    def __init__(self, batches: list):
        self.batches = batches

    def __iter__(self) -> Iterator:
        return iter(self.batches)


def _toy_batches(sizes: list[int], seed: int) -> list[tuple[list[torch.Tensor], list[dict]]]:
    g = torch.Generator().manual_seed(seed)
    batches = []
    for n in sizes:
        images = [torch.rand(3, 8, 8, generator=g) for _ in range(n)]
        corners = torch.rand(n, 2, generator=g) * 8
        boxes = torch.cat((corners, corners + 4 + torch.rand(n, 2, generator=g) * 4), dim=1)
        labels = torch.randint(0, 3, (n,), generator=g)
        batches.append(
            (images, [{"boxes": boxes[i : i + 1], "labels": labels[i : i + 1]} for i in range(n)])
        )
    return batches


def _setup(seed: int, schedule: bool, momentum: float):
    torch.manual_seed(seed)
    model = ToyDetector()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=momentum)
    scheduler = (
        torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.5**epoch) if schedule else None
    )
    return model, optimizer, scheduler


def _run_fit(model, batches, optimizer, scheduler):
    """The reference: ``fit`` for one epoch over the batches, in order, per-epoch schedule."""
    history = fit(
        model,
        _OnePass(batches),
        optimizer=optimizer,
        scheduler=scheduler,
        scheduler_interval="epoch",
        epochs=1,
        device="cpu",
        progress=False,
        log_every=None,
    )
    return math.fsum(history.loss) / len(history.loss)


#: What a case looks at after the epoch.
ASPECTS = {
    "lr": "the learning rate after the epoch",
    "weights": "the weights after the epoch",
    "mean": "the mean loss returned",
}


def _aspects_of_one_epoch() -> Callable:
    """``call(train_epoch, sizes, seed, schedule, momentum, aspect)``: one aspect of the epoch,
    trained once per function and set-up (the three aspects of an epoch share one run)."""
    runs: dict[tuple, tuple] = {}

    def call(train_epoch: Callable, sizes, seed, schedule, momentum, aspect) -> Any:
        key = (train_epoch, tuple(sizes), seed, schedule, momentum)
        if key not in runs:
            model, optimizer, scheduler = _setup(seed, schedule, momentum)
            model.train()
            returned = train_epoch(model, _toy_batches(sizes, seed), optimizer, scheduler)
            weights = torch.cat([p.detach().flatten() for p in model.parameters()])
            runs[key] = (returned, weights, optimizer.param_groups[0]["lr"])
        returned, weights, lr = runs[key]
        return {"lr": lr, "weights": weights, "mean": returned}[aspect]

    return call


def _compare(got: Any, expected: Any) -> str | None:
    """Compare one aspect: a learning rate or a mean (numbers), or the weights (a tensor)."""
    if isinstance(expected, torch.Tensor) and not expected.requires_grad:
        problem = compare_tensors(got, expected)
        return None if problem is None else f"the weights differ from fit's: {problem}"
    if isinstance(got, torch.Tensor):
        if got.requires_grad:
            if isinstance(expected, torch.Tensor):  # two answers that both hold a graph
                return None
            return "returned a tensor that still holds the computation graph, not a float"
        if got.numel() != 1:
            return f"returned a tensor of shape {list(got.shape)}, expected one number"
        got = got.item()
    if not isinstance(got, float | int) or isinstance(got, bool):
        return f"returned {type(got).__name__}, expected a float"
    if isinstance(expected, torch.Tensor):
        return "expected a tensor that holds the graph, got a number"
    if math.isclose(got, expected, rel_tol=1e-5, abs_tol=1e-7):
        return None
    return f"expected {expected:.6g}, got {got:.6g}"


#: The epochs the check runs: ``(batch sizes, seed, with a scheduler, SGD momentum)``.
EPOCHS = {
    "three batches, the rate halved each epoch": ([2, 2, 2], 0, True, 0.0),
    "four batches, momentum 0.9": ([3, 3, 3, 3], 1, False, 0.9),
    "one batch, the rate halved each epoch": ([4], 2, True, 0.0),
    "batches of 1, 4 and 2 images": ([1, 4, 2], 3, False, 0.0),
}


def train_epoch_cases() -> list[Case]:
    """Each epoch of :data:`EPOCHS`, looked at from each aspect of :data:`ASPECTS`."""
    return [
        Case(f"{epoch}: {what}", (*setup, aspect))
        for epoch, setup in EPOCHS.items()
        for aspect, what in ASPECTS.items()
    ]


def check_train_epoch(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``train_epoch(model, batches, optimizer, scheduler=None) -> float`` (see
    the module docstring) against ``fit`` on :class:`ToyDetector`."""
    return run_check(
        "check_train_epoch",
        fn,
        train_epoch_cases(),
        reference=_run_fit,
        compare=_compare,
        verbose=verbose,
        mistakes=TRAIN_EPOCH,
        call=_aspects_of_one_epoch(),
    )
