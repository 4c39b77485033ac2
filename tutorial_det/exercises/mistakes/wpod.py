"""Mistakes in the WPOD-Net exercises of lesson 08: the warped unit square
(``check_warp_unit_square``: ``fn(affine [..., 6]) -> [..., 4, 2]``) and the loss
(``check_wpod_loss``: ``fn(pred [B, 8, H, W], target [B, 9, H, W]) -> scalar``).

Right: ``affine`` holds ``(a, b, tx, c, d, ty)``, the rows of ``[[max(a, 0), b, tx], [c, max(d, 0),
ty]]``; corner ``k`` is that matrix times ``(q_k, 1)`` for the unit square's corners top-left
(-0.5, -0.5), top-right, bottom-right, bottom-left. The loss sums over the cells of each image
the L1 distance of the warped corners to the target's (object cells), ``-log p_object`` (object
cells) and ``-log p_not_object`` (other cells), probabilities clamped to at least 1e-9, and
averages the images."""

from __future__ import annotations

import torch

from tutorial_det.exercises.core import Catalogue
from tutorial_det.wpod.geometry import UNIT_SQUARE

WARP_UNIT_SQUARE = Catalogue()
WPOD_LOSS = Catalogue()


def _warp(a, b, tx, c, d, ty, square):
    """Corners ``[..., 4, 2]`` of ``square`` ``[4, 2]`` under the map (no clamping here)."""
    qx, qy = square[:, 0], square[:, 1]
    x = a[..., None] * qx + b[..., None] * qy + tx[..., None]
    y = c[..., None] * qx + d[..., None] * qy + ty[..., None]
    return torch.stack((x, y), dim=-1)


def _clamped(affine):
    """Right: the six values with the diagonal terms a and d clamped at 0."""
    a, b, tx, c, d, ty = affine.unbind(-1)
    return a.clamp(min=0), b, tx, c, d.clamp(min=0), ty


@WARP_UNIT_SQUARE.add(
    "You do not clamp the diagonal terms a and d at 0, so the map can mirror the square: use "
    "max(a, 0) and max(d, 0)."
)
def warp_without_clamp(affine):
    return _warp(*affine.unbind(-1), UNIT_SQUARE.to(affine))


@WARP_UNIT_SQUARE.add(
    "You clamp the off-diagonal terms b and c; the clamped ones are the diagonal terms a and d "
    "(values 0 and 4 of (a, b, tx, c, d, ty))."
)
def warp_clamps_off_diagonal(affine):
    a, b, tx, c, d, ty = affine.unbind(-1)
    return _warp(a, b.clamp(min=0), tx, c.clamp(min=0), d, ty, UNIT_SQUARE.to(affine))


@WARP_UNIT_SQUARE.add(
    "You read the six values as (a, b, c, d, tx, ty); they are the matrix's two rows, "
    "(a, b, tx) and (c, d, ty)."
)
def warp_translation_last(affine):
    a, b, c, d, tx, ty = affine.unbind(-1)
    return _warp(a.clamp(min=0), b, tx, c, d.clamp(min=0), ty, UNIT_SQUARE.to(affine))


@WARP_UNIT_SQUARE.add("Your corners are (y, x); each corner is (x, y), x first.")
def warp_y_first(affine):
    return _warp(*_clamped(affine), UNIT_SQUARE.to(affine)).flip(-1)


@WARP_UNIT_SQUARE.add(
    "Your corners come top-left, top-right, bottom-left, bottom-right; the order goes round the "
    "square: top-left, top-right, bottom-right, bottom-left."
)
def warp_z_order(affine):
    return _warp(*_clamped(affine), UNIT_SQUARE.to(affine))[..., [0, 1, 3, 2], :]


@WARP_UNIT_SQUARE.add(
    "Your unit square runs from 0 to 1; WPOD-Net's is centred on the cell, from -0.5 to 0.5."
)
def warp_square_from_zero(affine):
    return _warp(*_clamped(affine), UNIT_SQUARE.to(affine) + 0.5)


@WARP_UNIT_SQUARE.add(
    "Your unit square stays on the CPU (UNIT_SQUARE without .to(affine)), which fails for inputs "
    "on a GPU: move it to the inputs' device."
)
def warp_square_on_cpu(affine):
    return _warp(*_clamped(affine), UNIT_SQUARE)


@WARP_UNIT_SQUARE.add(
    "You clamp in place (clamp_), which changes the affine values you were given: clamp into new "
    "tensors (clamp, not clamp_)."
)
def warp_clamps_in_place(affine):
    affine[..., 0].clamp_(min=0)
    affine[..., 4].clamp_(min=0)
    return _warp(*affine.unbind(-1), UNIT_SQUARE.to(affine))


# --------------------------------------------------------------------------- loss


def _terms(pred, target, warp=lambda affine: _warp(*_clamped(affine), UNIT_SQUARE.to(affine))):
    """Right per-cell terms ``[B, H, W]``: flag, corner L1, -log p_object, -log p_not_object."""
    flag = target[:, 0]
    corners = warp(pred[:, 2:].permute(0, 2, 3, 1)).flatten(-2)  # [B, H, W, 8]
    l1 = (corners - target[:, 1:].permute(0, 2, 3, 1)).abs().sum(dim=-1)
    return flag, l1, -pred[:, 0].clamp(min=1e-9).log(), -pred[:, 1].clamp(min=1e-9).log()


def _per_image(values):
    """Right: the sum over each image's cells ``[B]``."""
    return values.sum(dim=(1, 2))


@WPOD_LOSS.add(
    "You do not clamp the probabilities inside the log, so a probability of 0 costs infinity: "
    "use log(p.clamp(min=1e-9))."
)
def wpod_loss_without_clamp(pred, target):
    flag, l1, _, _ = _terms(pred, target)
    log_loss = -(flag * pred[:, 0].log() + (1 - flag) * pred[:, 1].log())
    return _per_image(flag * l1 + log_loss).mean()


@WPOD_LOSS.add(
    "You average over the cells; each image's terms are summed over its cells, then the images "
    "are averaged."
)
def wpod_loss_mean_over_cells(pred, target):
    flag, l1, object_term, background = _terms(pred, target)
    return (flag * (l1 + object_term) + (1 - flag) * background).mean()


@WPOD_LOSS.add("You sum over the images; the per-image sums are averaged over the batch.")
def wpod_loss_sum_over_images(pred, target):
    flag, l1, object_term, background = _terms(pred, target)
    return _per_image(flag * (l1 + object_term) + (1 - flag) * background).sum()


@WPOD_LOSS.add(
    "Your corner term counts every cell; only object cells (flag 1) have corners to match."
)
def wpod_loss_corners_everywhere(pred, target):
    flag, l1, object_term, background = _terms(pred, target)
    return _per_image(l1 + flag * object_term + (1 - flag) * background).mean()


@WPOD_LOSS.add(
    "You warp with the diagonal terms unclamped; clamp a and d at 0 before warping the square, "
    "as in warp_unit_square."
)
def wpod_loss_unclamped_warp(pred, target):
    terms = _terms(
        pred, target, warp=lambda affine: _warp(*affine.unbind(-1), UNIT_SQUARE.to(affine))
    )
    flag, l1, object_term, background = terms
    return _per_image(flag * (l1 + object_term) + (1 - flag) * background).mean()


@WPOD_LOSS.add(
    "You square the corner distances; WPOD-Net's corner term is L1, the sum of absolute "
    "differences."
)
def wpod_loss_squared_corners(pred, target):
    flag, _, object_term, background = _terms(pred, target)
    corners = _warp(*_clamped(pred[:, 2:].permute(0, 2, 3, 1)), UNIT_SQUARE.to(pred)).flatten(-2)
    squared = (corners - target[:, 1:].permute(0, 2, 3, 1)).square().sum(dim=-1)
    return _per_image(flag * (squared + object_term) + (1 - flag) * background).mean()


@WPOD_LOSS.add(
    "You leave out the background term; cells without an object cost -log(p_not_object)."
)
def wpod_loss_without_background(pred, target):
    flag, l1, object_term, _ = _terms(pred, target)
    return _per_image(flag * (l1 + object_term)).mean()


@WPOD_LOSS.add(
    "You read channel 1 as the object probability; channel 0 is p_object and channel 1 "
    "p_not_object."
)
def wpod_loss_channels_swapped(pred, target):
    flag, l1, object_term, background = _terms(pred, target)
    return _per_image(flag * (l1 + background) + (1 - flag) * object_term).mean()


@WPOD_LOSS.add(
    "Your unit square stays on the CPU (UNIT_SQUARE without .to(...)), which fails for inputs on "
    "a GPU: move it to the inputs' device."
)
def wpod_loss_square_on_cpu(pred, target):
    terms = _terms(pred, target, warp=lambda affine: _warp(*_clamped(affine), UNIT_SQUARE))
    flag, l1, object_term, background = terms
    return _per_image(flag * (l1 + object_term) + (1 - flag) * background).mean()
