"""How well plates are found: detection rate at a quadrilateral IoU, and corner error in pixels.

Lesson 08 (WPOD-Net) teaches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tutorial_det.metrics import match_detections
from tutorial_det.wpod.geometry import check_quads, quad_iou


def evaluate_plates(
    predictions: Sequence[dict[str, Any]],
    targets: Sequence[dict[str, Any]],
    iou_threshold: float = 0.5,
) -> dict[str, float]:
    """Match predicted plates to true plates by quadrilateral IoU, image by image.

    Detections are matched greedily by descending score
    (:func:`tutorial_det.metrics.match_detections`, each plate at most once). A true positive's
    corner error is the mean distance, in pixels, between its four corners and those of the
    plate it overlaps most: the plate it matched whenever the true plates do not overlap and
    ``iou_threshold >= 0.5`` (a quadrilateral then reaches that IoU with at most one of them), as
    on the synthetic plates.

    Args:
        predictions: per image ``{"corners" [D, 4, 2], "scores" [D], ...}``.
        targets: per image ``{"corners" [G, 4, 2], ...}``.

    Returns:
        ``{"images", "plates", "detected", "detection_rate", "false_positives",
        "corner_error_px"}``; ``corner_error_px`` is the mean over detected plates (NaN when
        none is detected), ``detection_rate`` is 0 when there are no plates.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    plates = detected = false_positives = 0
    errors = []
    for i, (pred, target) in enumerate(zip(predictions, targets, strict=True)):
        truth = check_quads(target["corners"], f"targets[{i}]['corners']").double().cpu()
        found = check_quads(pred["corners"], f"predictions[{i}]['corners']").double().cpu()
        scores = torch.as_tensor(pred["scores"]).cpu()
        if len(scores) != len(found):
            raise ValueError(f"predictions[{i}]: {len(scores)} scores for {len(found)} corners")
        order = scores.argsort(descending=True, stable=True)
        found = found[order]
        ious = quad_iou(found, truth)  # [D, G]
        tp, fp = match_detections(ious, iou_threshold)
        plates += len(truth)
        detected += int(tp.sum())
        false_positives += int(fp.sum())
        if bool(tp.any()):
            partner = ious[tp].argmax(dim=1)
            distance = (found[tp] - truth[partner]).norm(dim=-1).mean(dim=1)
            errors.append(distance)
    corner_error = float(torch.cat(errors).mean()) if errors else float("nan")
    return {
        "images": len(targets),
        "plates": plates,
        "detected": detected,
        "detection_rate": detected / plates if plates else 0.0,
        "false_positives": false_positives,
        "corner_error_px": corner_error,
    }
