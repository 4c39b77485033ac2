"""WPOD-Net's loss: corners of the affine-warped unit square against the plate's, plus log losses.

Lesson 08 (WPOD-Net) teaches it.

For each output cell ``(i, j)`` of image ``b`` (``pred`` and ``target`` as in :func:`wpod_loss`):

- **affine term**, object cells only: the six affine values warp the unit square
  (:func:`~tutorial_det.wpod.geometry.warp_unit_square`, diagonal terms clamped at 0) and the L1
  distance of its four corners to the target corners, summed over the 8 coordinates;
- **object term**, object cells: ``-log(p_object)``;
- **background term**, non-object cells: ``-log(p_not_object)``.

Probabilities are clamped to ``[EPS, 1]`` inside the log, so a confident mistake costs at most
``-log(EPS)`` (about 20.7) instead of infinity. Each term is summed over the cells of an image
(the training code this lesson grew from does the same); images are then averaged (``"mean"``),
summed (``"sum"``) or returned one by one (``"none"``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from tutorial_det.wpod.geometry import warp_unit_square

#: Lower clamp of the probabilities inside the log.
EPS = 1e-9

REDUCTIONS = ("mean", "sum", "none")


def _check(pred: Tensor, target: Tensor, reduction: str) -> None:
    for name, value, channels in (("pred", pred, 8), ("target", target, 9)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if value.ndim != 4 or value.shape[1] != channels:
            raise ValueError(
                f"{name} must have shape [B, {channels}, H, W], got {list(value.shape)}"
            )
    if pred.shape[0] != target.shape[0] or pred.shape[2:] != target.shape[2:]:
        raise ValueError(
            f"pred {list(pred.shape)} and target {list(target.shape)} must agree in batch size "
            "and grid size (B, H, W)"
        )
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of {REDUCTIONS}")


def wpod_loss_terms(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """The three terms per image: ``{"affine", "object", "background"}``, each ``[B]``.

    Same arguments as :func:`wpod_loss`, whose ``"none"`` result is their sum.
    """
    _check(pred, target, "none")
    flag = target[:, 0]  # [B, H, W]
    affine = pred[:, 2:].permute(0, 2, 3, 1)  # [B, H, W, 6]
    corners = warp_unit_square(affine).flatten(-2)  # [B, H, W, 8]: x1, y1, ..., x4, y4
    wanted = target[:, 1:].permute(0, 2, 3, 1)  # [B, H, W, 8]
    l1 = ((corners - wanted).abs().sum(dim=-1) * flag).sum(dim=(1, 2))
    object_term = (-torch.log(pred[:, 0].clamp(EPS, 1.0)) * flag).sum(dim=(1, 2))
    background = (-torch.log(pred[:, 1].clamp(EPS, 1.0)) * (1 - flag)).sum(dim=(1, 2))
    return {"affine": l1, "object": object_term, "background": background}


def wpod_loss(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """WPOD-Net's loss (see the module docstring).

    Args:
        pred: ``[B, 8, H, W]``: channel 0 the object probability, 1 the non-object probability
            (a softmax pair), 2-7 the affine values ``(a, b, tx, c, d, ty)``.
        target: ``[B, 9, H, W]``: channel 0 the object flag (1 / 0), 1-8 the plate's corners
            ``x1, y1, ..., x4, y4`` in the cell's frame (:func:`~tutorial_det.wpod.encode_targets`).
        reduction: ``"mean"`` over images (a scalar), ``"sum"`` (a scalar) or ``"none"`` (``[B]``).

    Raises:
        TypeError, ValueError: an argument has the wrong type or shape, or the reduction is
            unknown; the message says which.
    """
    _check(pred, target, reduction)
    per_image = sum(wpod_loss_terms(pred, target).values())
    if reduction == "none":
        return per_image
    if reduction == "sum":
        return per_image.sum()
    return per_image.mean() if len(per_image) else per_image.sum()
