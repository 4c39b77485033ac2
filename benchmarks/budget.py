"""Training a detector for a fixed wall-clock budget, for the benchmark scripts that compare
detectors "after three minutes on this CPU" (``benchmarks/train_*.py``).

- :func:`clock_cosine` / :func:`step_cosine`: a learning-rate factor for ``LambdaLR`` that warms
  up, then follows a cosine to zero at the end of the budget (in seconds or in steps), so a
  loaded machine gets fewer steps but a complete schedule.
- :func:`describe_machine`: sets torch's thread count and returns the line every run prints
  first (versions, threads, load average), since timings depend on the machine's load.
- :func:`train_on_budget`: ``fit`` for the budget, copying the weights every few seconds (cheap),
  then evaluating the copies on held-out data after training, so evaluation never eats into the
  budget; returns steps, median time per step, the final mAP and when mAP@0.5 first reached a
  target.
- :func:`fit_for_steps`: ``fit`` for a fixed number of steps with the same optimizer, clipping and
  :func:`step_cosine`, scoring the model on held-out data as it goes (the step mode of
  ``train_faster_rcnn.py``, and the GPU check's training comparison).
"""

from __future__ import annotations

import copy
import functools
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from tutorial_det.training import evaluate_map, fit


def describe_machine(threads: int | None = None) -> str:
    """Use ``threads`` torch threads (None: leave torch's default) and describe the run:
    ``"torch ..., torchvision ..., N threads, load average L"``."""
    if threads:
        torch.set_num_threads(threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return (
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{torch.get_num_threads()} threads, load average {load:.1f}"
    )


def clock_cosine(budget_s: float, warmup: float = 0.05) -> Callable[[int], float]:
    """A ``LambdaLR`` factor that follows the wall clock from its first call: linear warm-up over
    the first ``warmup`` of ``budget_s`` seconds, then a cosine from 1 to 0 at ``budget_s``."""
    start: list[float] = []

    def factor(_step: int) -> float:
        now = time.perf_counter()
        if not start:
            start.append(now)
        return _warm_cosine(min(1.0, (now - start[0]) / budget_s), warmup)

    return factor


def step_cosine(steps: int, warmup: float = 0.05) -> Callable[[int], float]:
    """The same schedule over ``steps`` optimizer steps."""
    return lambda step: _warm_cosine(min(1.0, step / steps), warmup)


def _warm_cosine(t: float, warmup: float) -> float:
    if t < warmup:
        return max(t / warmup, 0.01)
    return 0.5 * (1 + math.cos(math.pi * (t - warmup) / (1 - warmup)))


@dataclass
class BudgetResult:
    """What :func:`train_on_budget` measured.

    Attributes:
        steps: optimizer steps done; s_per_step: their median wall time.
        map_50, map: mAP@0.5 and mAP@[.5:.95] of the final weights on the held-out data.
        steps_to_target, seconds_to_target: the first snapshot whose mAP@0.5 reached the target
            (NaN when none did).
        params_m: parameters, in millions.
    """

    steps: int
    s_per_step: float
    map_50: float
    map: float
    steps_to_target: float
    seconds_to_target: float
    params_m: float


def train_on_budget(
    model: nn.Module,
    train_data,
    val_data,
    *,
    seconds: float,
    lr: float,
    batch_size: int,
    snapshot_every: float = 20.0,
    target_map_50: float = 0.9,
    label: str = "model",
    **fit_options,
) -> BudgetResult:
    """Train ``model`` on ``train_data`` for ``seconds`` with AdamW (weight decay 1e-4), gradient
    clipping at 10 and :func:`clock_cosine`; snapshot the weights every ``snapshot_every``
    seconds and at the end; afterwards evaluate each snapshot on ``val_data`` (printing one line
    per snapshot to stderr). ``fit_options`` go to :func:`tutorial_det.training.fit`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, clock_cosine(seconds))
    snapshots: list[tuple[int, float, dict]] = []
    started = time.perf_counter()
    state = {"step": 0, "last": started}

    def snapshot(m: nn.Module) -> dict[str, float]:
        """``fit``'s eval_fn, called after every step: copy the weights when one is due."""
        state["step"] += 1
        now = time.perf_counter()
        if now - state["last"] >= snapshot_every or now - started >= seconds:
            snapshots.append((state["step"], now - started, copy.deepcopy(m.state_dict())))
            state["last"] = now
        return {}

    history = fit(
        model,
        train_data,
        optimizer=optimizer,
        scheduler=scheduler,
        max_seconds=seconds,
        batch_size=batch_size,
        grad_clip_norm=10.0,
        eval_fn=snapshot,
        eval_every=1,
        log_every=None,
        progress=False,
        **fit_options,
    )
    reached = (math.nan, math.nan)
    final: dict[str, float] = {}
    for step, elapsed, weights in snapshots:
        model.load_state_dict(weights)
        final = evaluate_map(model, val_data, batch_size=25, device=fit_options.get("device"))
        print(
            f"  {label} step {step} ({elapsed:.0f} s): mAP@0.5 {final['map_50']:.3f}, "
            f"mAP {final['map']:.3f}",
            file=sys.stderr,
            flush=True,
        )
        if final["map_50"] >= target_map_50 and math.isnan(reached[0]):
            reached = (step, elapsed)
    return BudgetResult(
        steps=len(history.step),
        s_per_step=statistics.median(
            b - a for a, b in zip(history.wall_time, history.wall_time[1:], strict=False)
        ),
        map_50=final["map_50"],
        map=final["map"],
        steps_to_target=reached[0],
        seconds_to_target=reached[1],
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
    )


def fit_for_steps(
    model: nn.Module,
    train_data,
    val_data,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    eval_every: int,
    seed: int,
    device: str | torch.device = "cpu",
    amp: bool | str = False,
    **fit_options,
):
    """Train ``model`` for ``steps`` steps with AdamW (weight decay 1e-4), gradient clipping at 10
    and :func:`step_cosine`, in ``train_data``'s order; score it on ``val_data``
    (:func:`~tutorial_det.training.evaluate_map`) every ``eval_every`` steps and at the end.
    ``fit_options`` go to :func:`tutorial_det.training.fit`. Returns fit's ``History`` (the
    scores in ``history.metrics``)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, step_cosine(steps))
    return fit(
        model,
        train_data,
        optimizer=optimizer,
        scheduler=scheduler,
        max_steps=steps,
        batch_size=batch_size,
        shuffle=False,
        grad_clip_norm=10.0,
        eval_fn=functools.partial(evaluate_map, data=val_data, batch_size=25, device=device),
        eval_every=eval_every,
        log_every=None,
        progress=False,
        seed=seed,
        device=device,
        amp=amp,
        **fit_options,
    )
