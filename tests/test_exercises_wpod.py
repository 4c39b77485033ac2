"""check_warp_unit_square and check_wpod_loss: right answers written differently pass; the
lesson's warp without the clamp is named by that cause alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tutorial_det.exercises import check_warp_unit_square, check_wpod_loss
from tutorial_det.exercises.mistakes.wpod import WARP_UNIT_SQUARE
from tutorial_det.wpod.geometry import UNIT_SQUARE, warp_unit_square
from tutorial_det.wpod.loss import wpod_loss


def warp_by_matmul(affine):
    a, b, tx, c, d, ty = affine.unbind(-1)
    matrix = torch.stack((a.clamp(min=0), b, tx, c, d.clamp(min=0), ty), -1).unflatten(-1, (2, 3))
    corners = torch.cat((UNIT_SQUARE, torch.ones(4, 1)), dim=1).to(affine)  # [4, 3]
    return corners @ matrix.transpose(-1, -2)  # [..., 4, 2]


def warp_numpy(affine):
    v = affine.numpy()
    a, d = np.maximum(v[..., 0], 0), np.maximum(v[..., 4], 0)
    q = UNIT_SQUARE.numpy()
    x = a[..., None] * q[:, 0] + v[..., 1, None] * q[:, 1] + v[..., 2, None]
    y = v[..., 3, None] * q[:, 0] + d[..., None] * q[:, 1] + v[..., 5, None]
    return torch.from_numpy(np.stack([x, y], axis=-1))


@pytest.mark.parametrize("fn", [warp_unit_square, warp_by_matmul, warp_numpy])
def test_right_warps_pass(fn):
    assert check_warp_unit_square(fn, verbose=False)


def test_a_warp_without_the_clamp_is_named_by_that_cause_alone():
    def warp_without_clamp(affine):  # lesson 08's, its square on the inputs' device
        a, b, tx, c, d, ty = affine.unbind(-1)
        q = UNIT_SQUARE.to(affine)
        x = a[..., None] * q[:, 0] + b[..., None] * q[:, 1] + tx[..., None]
        y = c[..., None] * q[:, 0] + d[..., None] * q[:, 1] + ty[..., None]
        return torch.stack((x, y), dim=-1)

    result = check_warp_unit_square(warp_without_clamp, verbose=False)
    assert result.causes == [WARP_UNIT_SQUARE.named("warp_without_clamp")]


def wpod_loss_loop(pred, target):
    total = pred.new_zeros(())
    for p, t in zip(pred, target, strict=True):
        for i in range(p.shape[1]):
            for j in range(p.shape[2]):
                if t[0, i, j] == 1:
                    corners = warp_unit_square(p[2:, i, j]).flatten()
                    total = (
                        total
                        + (corners - t[1:, i, j]).abs().sum()
                        - p[0, i, j].clamp(min=1e-9).log()
                    )
                else:
                    total = total - p[1, i, j].clamp(min=1e-9).log()
    return total / len(pred)


def wpod_loss_by_terms(pred, target):
    flag = target[:, 0]
    corners = (
        warp_unit_square(pred[:, 2:].movedim(1, -1)).flatten(-2).movedim(-1, 1)
    )  # [B, 8, H, W]
    l1 = F.l1_loss(corners, target[:, 1:], reduction="none").sum(1)
    probability = torch.where(flag > 0, pred[:, 0], pred[:, 1]).clamp(min=1e-9)
    return ((l1 * flag - probability.log()).sum(dim=(1, 2))).mean()


@pytest.mark.parametrize("fn", [wpod_loss, wpod_loss_loop, wpod_loss_by_terms])
def test_right_losses_pass(fn):
    assert check_wpod_loss(fn, verbose=False)
