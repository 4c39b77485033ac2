"""Checks for the training-loop exercise of lesson 09: one epoch written by hand, compared with
:func:`tutorial_det.training.fit` on a toy detector.

The learner's function::

    train_epoch(model, batches, optimizer, scheduler=None) -> float

trains ``model`` on every ``(images, targets)`` batch once (loss = the sum of the model's loss
terms), steps ``scheduler`` (an epoch-based schedule) once at the end, and returns the mean of the
batches' losses as a Python float. The check runs it and ``fit(..., epochs=1)`` from the same
weights and compares the returned mean, the weights after the epoch and the learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_det.exercises.core import Case, CheckResult, compare_tensors, run_check
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


def _outcome(train_epoch: Callable, sizes: list[int], seed: int, schedule: bool, momentum: float):
    """Run ``train_epoch`` from a fresh toy setup; what the comparison looks at."""
    model, optimizer, scheduler = _setup(seed, schedule, momentum)
    model.train()
    returned = train_epoch(model, _toy_batches(sizes, seed), optimizer, scheduler)
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    return returned, weights, optimizer.param_groups[0]["lr"]


def _compare(got: Any, expected: Any) -> str | None:
    returned, weights, lr = got
    want_mean, want_weights, want_lr = expected
    if isinstance(returned, torch.Tensor):
        if returned.requires_grad:
            return (
                "returned a tensor that still holds the computation graph of every batch (memory "
                "grows each step): accumulate loss.item(), a float"
            )
        if returned.numel() != 1:
            return f"returned a tensor of shape {list(returned.shape)}, expected one number"
        returned = returned.item()
    if not isinstance(returned, float | int) or isinstance(returned, bool):
        return f"returned {type(returned).__name__}, expected the mean loss as a float"
    if not math.isclose(lr, want_lr, rel_tol=1e-9):
        return (
            f"the learning rate after the epoch is {lr:.6g}, expected {want_lr:.6g}: step an "
            "epoch-based scheduler once per epoch, after the last batch"
        )
    problem = compare_tensors(weights, want_weights)
    if problem is not None:
        return (
            f"the weights after the epoch differ from fit's: {problem}. Zero the gradients "
            "before each backward and step the optimizer once per batch"
        )
    if not math.isclose(returned, want_mean, rel_tol=1e-5, abs_tol=1e-7):
        hint = (
            " (was the loss accumulated at all?)"
            if returned == 0
            else " (the mean of the batches' total losses, sum of the terms, nothing added)"
        )
        return f"returned mean loss {returned:.6g}, expected {want_mean:.6g}{hint}"
    return None


def train_epoch_cases() -> list[Case]:
    """Epochs of the toy detector: ``(batch sizes, seed, with a scheduler, SGD momentum)``."""
    return [
        Case(
            "three batches of two images, an epoch-based schedule (factor 0.5 per epoch)",
            ([2, 2, 2], 0, True, 0.0),
            hint="loss = sum of the loss terms; backward; optimizer.step(); scheduler.step() "
            "once after the loop",
        ),
        Case(
            "momentum: stale gradients would be carried into the next step",
            ([3, 3, 3, 3], 1, False, 0.9),
            hint="optimizer.zero_grad() before each backward",
        ),
        Case("a single batch", ([4], 2, True, 0.0), hint="the mean of one value is that value"),
        Case(
            "batches of different sizes: the mean is over batches, as in fit's history",
            ([1, 4, 2], 3, False, 0.0),
            hint="divide the sum of the batch losses by the number of batches",
        ),
    ]


def check_train_epoch(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``train_epoch(model, batches, optimizer, scheduler=None) -> float`` (see
    the module docstring) against ``fit`` on :class:`ToyDetector`."""
    return run_check(
        "check_train_epoch",
        lambda *case: _outcome(fn, *case),
        train_epoch_cases(),
        reference=lambda *case: _outcome(_run_fit, *case),
        compare=_compare,
        verbose=verbose,
    )
