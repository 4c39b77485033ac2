"""What a training run recorded, step by step: the losses, the learning rate, the metrics.

Lesson 09 (training at scale) teaches it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class History:
    """The record of a :func:`~tutorial_det.training.fit` run; one entry per optimizer step.

    Losses are the values the model returned for the step's batch (under torch.distributed, the
    mean over the processes). A resumed run continues the history of the run it resumes.

    Attributes:
        step: global step number, from 1.
        epoch: the epoch each step belonged to, from 0.
        loss: the total loss (the sum of the terms).
        terms: each loss term by name (``"loss_classifier"``, ``"loss_box_reg"``, ...).
        lr: the learning rate of the optimizer's first parameter group during the step.
        grad_norm: the gradient norm before clipping (only when ``grad_clip_norm`` was set).
        wall_time: seconds since training started (resumed runs continue the count).
        data_time: seconds the step waited for its batch.
        metrics: one dict per evaluation: ``{"step", "epoch", <metric name>: value, ...}``.
        device, amp, world_size: how the run was made (``amp`` is ``None``, ``"bf16"`` or
            ``"fp16"``).
    """

    step: list[int] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    wall_time: list[float] = field(default_factory=list)
    data_time: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    device: str = "cpu"
    amp: str | None = None
    world_size: int = 1

    def record_step(
        self,
        step: int,
        epoch: int,
        terms: dict[str, float],
        lr: float,
        wall_time: float,
        data_time: float,
        grad_norm: float | None = None,
    ) -> None:
        """Append one step. Every step must report the same loss terms."""
        if self.step and set(terms) != set(self.terms):
            raise ValueError(
                f"step {step}: the model returned loss terms {sorted(terms)}, earlier steps "
                f"returned {sorted(self.terms)}; a model must return the same terms every step"
            )
        self.step.append(step)
        self.epoch.append(epoch)
        self.loss.append(math.fsum(terms.values()))
        for name, value in terms.items():
            self.terms.setdefault(name, []).append(value)
        self.lr.append(lr)
        self.wall_time.append(wall_time)
        self.data_time.append(data_time)
        if grad_norm is not None:
            self.grad_norm.append(grad_norm)

    def record_metrics(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        """Append one evaluation's metrics."""
        self.metrics.append({"step": step, "epoch": epoch, **metrics})

    @property
    def steps_per_second(self) -> float:
        """Optimizer steps per second over the recorded steps (NaN with fewer than two)."""
        if len(self.step) < 2 or self.wall_time[-1] <= self.wall_time[0]:
            return math.nan
        return (len(self.step) - 1) / (self.wall_time[-1] - self.wall_time[0])

    def metric(self, name: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of one metric over the evaluations that reported it."""
        rows = [m for m in self.metrics if name in m]
        if not rows:
            known = sorted({k for m in self.metrics for k in m} - {"step", "epoch"})
            raise KeyError(f"no metric {name!r} in this history (it has {known})")
        return [int(m["step"]) for m in rows], [float(m[name]) for m in rows]

    def state_dict(self) -> dict[str, Any]:
        """The history as plain lists and dicts (checkpoints store it)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> History:
        """The inverse of :meth:`state_dict`."""
        return cls(**state)

    def __repr__(self) -> str:
        if not self.step:
            return "History(no steps)"
        last = self.metrics[-1] if self.metrics else {}
        values = [f"{k}={v:.4g}" for k, v in last.items() if k not in ("step", "epoch")]
        shown = ", ".join(values[:4]) + (", ..." if len(values) > 4 else "")
        return (
            f"History({len(self.step)} steps to step {self.step[-1]}, epoch {self.epoch[-1]}, "
            f"last loss {self.loss[-1]:.4g}, {self.steps_per_second:.3g} steps/s"
            + (f", last metrics: {shown}" if shown else "")
            + ")"
        )
