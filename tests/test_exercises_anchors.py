"""check_anchor_base and check_grid_anchors: right answers written differently pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorial_det.anchors import anchor_base, grid_anchors
from tutorial_det.exercises import check_anchor_base, check_grid_anchors
from tutorial_det.exercises.mistakes.anchors import GRID_ANCHORS


def base_loop(stride, ratios, scales):
    rows = []
    for ratio in ratios:
        for scale in scales:
            h, w = stride * scale * ratio**0.5, stride * scale / ratio**0.5
            rows.append(
                [stride / 2 - w / 2, stride / 2 - h / 2, stride / 2 + w / 2, stride / 2 + h / 2]
            )
    return torch.tensor(rows)


def base_numpy(stride, ratios, scales):
    root = np.sqrt(np.asarray(ratios, dtype=np.float64))[:, None]
    size = stride * np.asarray(scales, dtype=np.float64)[None, :]
    h, w = (size * root).ravel(), (size / root).ravel()
    c = stride / 2
    return torch.from_numpy(np.stack([c - w / 2, c - h / 2, c + w / 2, c + h / 2], axis=1)).float()


def base_from_centre_and_size(stride, ratios, scales):
    pairs = torch.cartesian_prod(
        torch.tensor(ratios, dtype=torch.float64), torch.tensor(scales, dtype=torch.float64)
    )
    half = (
        torch.stack((1 / pairs[:, 0].sqrt(), pairs[:, 0].sqrt()), dim=1) * stride * pairs[:, 1:] / 2
    )
    centre = torch.full_like(half, stride / 2)
    return torch.cat((centre - half, centre + half), dim=1).float()


@pytest.mark.parametrize("fn", [anchor_base, base_loop, base_numpy, base_from_centre_and_size])
def test_right_anchor_bases_pass(fn):
    assert check_anchor_base(fn, verbose=False)


def grid_loop(base, feature_size, stride):
    rows, columns = feature_size
    out = [
        base + base.new_tensor([j, i, j, i]) * stride for i in range(rows) for j in range(columns)
    ]
    return torch.cat(out) if out else base.new_zeros(0, 4)


def grid_numpy(base, feature_size, stride):
    ys, xs = np.mgrid[0 : feature_size[0], 0 : feature_size[1]] * stride
    shifts = np.stack([xs, ys, xs, ys], axis=-1).reshape(-1, 1, 4)
    return torch.from_numpy((shifts + base.numpy()[None]).reshape(-1, 4)).to(base.dtype)


def grid_cartesian(base, feature_size, stride):
    cells = torch.cartesian_prod(torch.arange(feature_size[0]), torch.arange(feature_size[1]))
    shifts = (cells.flip(1).repeat(1, 2) * stride).to(base)  # (x, y, x, y), row-major
    return (shifts[:, None, :] + base[None]).reshape(-1, 4)


@pytest.mark.parametrize("fn", [grid_anchors, grid_loop, grid_numpy, grid_cartesian])
def test_right_grids_pass(fn):
    assert check_grid_anchors(fn, verbose=False)


def test_the_lessons_x_outer_loop_is_named_column_major():
    def anchors_x_then_y(base, feature_size, stride):  # lesson 02's spot-the-bug
        rows, columns = feature_size
        out = [
            base + torch.tensor([j, i, j, i]) * stride for j in range(columns) for i in range(rows)
        ]
        return torch.cat(out) if out else base.new_zeros(0, 4)

    result = check_grid_anchors(anchors_x_then_y, verbose=False)
    assert result.causes == [GRID_ANCHORS.named("grid_column_major")] and result.passed == 4
