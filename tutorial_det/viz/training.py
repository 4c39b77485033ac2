"""Training curves: the losses of a :class:`~tutorial_det.training.History`, and its metrics."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D


def smooth_curve(values: Sequence[float], smoothing: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (TensorBoard's smoothing).

    ``smoothing`` in ``[0, 1)``: 0 returns the values unchanged, 0.9 averages over roughly the
    last ten. The correction divides by ``1 - smoothing**(i + 1)``, so the curve starts at the
    first value instead of creeping up from zero. Returns a float array of the same length.
    """
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    out = np.empty(len(values), dtype=np.float64)
    average = 0.0
    for i, value in enumerate(values):
        average = smoothing * average + (1 - smoothing) * float(value)
        out[i] = average / (1 - smoothing ** (i + 1))
    return out


def plot_history(
    history,
    ax: Axes | None = None,
    *,
    metrics: Sequence[str] | None = None,
    smoothing: float = 0.9,
    log_scale: bool = False,
) -> list[Line2D]:
    """Plot the total loss and each loss term against the step, and the metrics.

    Each loss is drawn twice in one colour: faint as recorded, bold after :func:`smooth_curve`.
    Metrics (from ``fit``'s ``eval_fn``) go on a second y axis on the right, one marker per
    evaluation.

    Args:
        history: a :class:`~tutorial_det.training.History`.
        ax: the axes for the losses (a new figure when None).
        metrics: the metrics to draw (``["map", "map_50"]``); default every one recorded.
        smoothing: see :func:`smooth_curve`.
        log_scale: a logarithmic loss axis.

    Returns:
        The lines drawn: for each loss its raw and its smoothed line, then one line per metric.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    steps = list(history.step)
    series = {"loss": history.loss, **history.terms} if steps else {}
    lines: list[Line2D] = []
    for i, (name, values) in enumerate(series.items()):
        colour = f"C{i % 10}"
        lines += ax.plot(steps, values, color=colour, alpha=0.25, linewidth=1)
        lines += ax.plot(
            steps,
            smooth_curve(values, smoothing),
            color=colour,
            linewidth=2.5 if name == "loss" else 1.5,
            label=name,
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss" + (f" (smoothed {smoothing})" if smoothing else ""))
    if log_scale:
        ax.set_yscale("log")
    if metrics is None:
        recorded = (k for m in history.metrics for k in m if k not in ("step", "epoch"))
        metrics = list(dict.fromkeys(recorded))
    handles = [line for line in lines if not line.get_label().startswith("_")]
    if metrics:
        metric_ax = ax.twinx()
        metric_ax.set_ylabel("metric")
        for j, name in enumerate(metrics):
            metric_steps, values = history.metric(name)
            (line,) = metric_ax.plot(
                metric_steps,
                values,
                marker="o",
                linestyle="--",
                color=f"C{(len(series) + j) % 10}",
                label=name,
            )
            lines.append(line)
            handles.append(line)
    if handles:
        ax.legend(handles=handles, loc="best", fontsize=8)
    return lines
