"""Run a detection model over a data set and collect its predictions next to the ground truth.

Lessons 06, 08 and 10 evaluate their trained detectors with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from tutorial_det.data.collate import detection_collate
from tutorial_det.metrics import mean_average_precision
from tutorial_det.runtime import model_device, pick_device
from tutorial_det.training.batches import check_batch, images_to, is_map_style, targets_to


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 4,
    collate_fn: Callable | None = None,
    num_workers: int = 0,
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, Any]]]:
    """Predict every image of ``data`` in eval mode, under ``torch.no_grad``.

    Args:
        model: a torchvision-style detector; ``model(images)`` in eval mode returns one
            ``{"boxes" [K, 4] xyxy, "labels" [K], "scores" [K]}`` per image. It is put back in
            the mode (train or eval) and on the device it was in.
        data: a map-style data set of ``(image, target)`` items, read in order, or an iterable of
            ready ``(images, targets)`` batches.
        device: where to predict; default the model's own device
            (:func:`~tutorial_det.runtime.model_device`), so that evaluating in the middle of a
            training run (``fit``'s ``eval_fn``) never moves the model away from its optimizer.
            Another device moves the model there for the call only.
        batch_size, collate_fn, num_workers: how a data set is batched.

    Returns:
        ``(predictions, targets)``: two lists with one entry per image, in the data's order, every
        tensor on the CPU; ready for ``tutorial_det.metrics.mean_average_precision``.
    """
    home = model_device(model)
    device = home if device is None else pick_device(device)
    if is_map_style(data):
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        data = DataLoader(
            data,
            batch_size=batch_size,
            shuffle=False,
            collate_fn=collate_fn or detection_collate,
            num_workers=num_workers,
        )
    was_training = model.training
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    moved = device != home
    if moved:
        model.to(device)
    model.eval()
    predictions: list[dict[str, torch.Tensor]] = []
    targets: list[dict[str, Any]] = []
    try:
        for i, batch in enumerate(data):
            images, batch_targets = check_batch(batch, f"batch {i}")
            outputs = model(images_to(images, device))
            if not isinstance(outputs, list | tuple) or len(outputs) != len(images):
                raise TypeError(
                    f"batch {i}: in eval mode the model must return one dict per image "
                    f"({len(images)}), got {type(outputs).__name__}"
                )
            for j, out in enumerate(outputs):
                if not isinstance(out, Mapping) or not {"boxes", "scores", "labels"} <= set(out):
                    raise TypeError(
                        f"batch {i}, image {j}: a prediction must be a dict with boxes, labels "
                        f"and scores, got {out if not isinstance(out, Mapping) else sorted(out)}"
                    )
                predictions.append({k: v.detach().cpu() for k, v in out.items()})
            targets += targets_to(batch_targets, torch.device("cpu"))
    finally:
        if moved:
            model.to(home)
        model.train(was_training)
    return predictions, targets


def evaluate_map(
    model: nn.Module,
    data: Any,
    *,
    iou_thresholds: Sequence[float] | None = None,
    max_detections: int = 100,
    **evaluate_options: Any,
) -> dict[str, float]:
    """:func:`evaluate` then :func:`tutorial_det.metrics.mean_average_precision`: the model's COCO
    and VOC metrics on ``data`` as plain numbers (``map``, ``map_50``, ``map_75``, ``mar_100``,
    ``voc_map_50``, ...; -1 where a value is undefined). Per-class values are left out.

    ``iou_thresholds`` and ``max_detections`` go to ``mean_average_precision``,
    ``evaluate_options`` (``device``, ``batch_size``, ...) to :func:`evaluate`. As ``fit``'s
    ``eval_fn``: ``fit(..., eval_fn=functools.partial(evaluate_map, data=val_set))``.
    """
    predictions, targets = evaluate(model, data, **evaluate_options)
    metrics = mean_average_precision(
        predictions,
        targets,
        iou_thresholds=iou_thresholds,
        max_detections=max_detections,
        class_metrics=False,
    )
    return {
        name: float(value)
        for name, value in metrics.items()
        if "per_class" not in name and name != "classes"
    }
