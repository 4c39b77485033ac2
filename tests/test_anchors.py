"""Anchors: the first cell's anchors, the grid, the inside-image mask; against torchvision's
AnchorGenerator and the seed-style loop."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from tutorial_det.anchors import anchor_base, grid_anchors, inside_anchors
from tutorial_det.boxes import xyxy_to_cxcywh
from tutorial_det.exercises import check_anchor_base, check_grid_anchors
from tutorial_det.exercises.anchors import DEFAULT_ANCHOR_BASE
from tutorial_det.naive import anchors_loop

# --------------------------------------------------------------------------- anchor_base


def test_anchor_base_is_the_seeds_nine_anchors_in_xyxy():
    base = anchor_base()
    assert base.shape == (9, 4) and base.dtype == torch.float32
    # ratio 0.5, scale 8: h = 128 * sqrt(0.5) = 90.51, w = 128 / sqrt(0.5) = 181.02, centre (8, 8)
    torch.testing.assert_close(base[0], torch.tensor([-82.50967, -37.254833, 98.50967, 53.254833]))
    torch.testing.assert_close(base[4], torch.tensor([-120.0, -120.0, 136.0, 136.0]))
    torch.testing.assert_close(base, DEFAULT_ANCHOR_BASE)


@given(
    stride=st.sampled_from([4, 8, 16, 32, 64]),
    ratios=st.lists(st.floats(0.1, 10), min_size=1, max_size=4),
    scales=st.lists(st.floats(0.5, 40), min_size=1, max_size=4),
)
def test_anchor_base_geometry(stride, ratios, scales):
    base = anchor_base(stride, ratios, scales, dtype=torch.float64)
    cx, cy, w, h = xyxy_to_cxcywh(base).unbind(1)
    assert base.shape == (len(ratios) * len(scales), 4)
    torch.testing.assert_close(cx, torch.full_like(cx, stride / 2))
    torch.testing.assert_close(cy, torch.full_like(cy, stride / 2))
    ratio = torch.tensor([r for r in ratios for _ in scales], dtype=torch.float64)
    scale = torch.tensor([s for _ in ratios for s in scales], dtype=torch.float64)
    torch.testing.assert_close(h / w, ratio)  # ratio = h / w, ratio-major order
    torch.testing.assert_close(w * h, (stride * scale) ** 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stride": 0}, "stride"),
        ({"ratios": ()}, "ratios must hold"),
        ({"ratios": (1.0, -2.0)}, "ratios must all be positive"),
        ({"scales": (0,)}, "scales must all be positive"),
    ],
)
def test_anchor_base_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        anchor_base(**kwargs)


# --------------------------------------------------------------------------- grid_anchors


def test_800_by_800_gives_22500_anchors_8940_inside(anchors_800):
    assert anchors_800.shape == (22500, 4)
    inside = inside_anchors(anchors_800, (800, 800))
    assert inside.dtype == torch.bool and inside.shape == (22500,)
    assert int(inside.sum()) == 8940


def test_grid_is_row_major_and_centred_on_cells():
    base = anchor_base()
    height, width, stride = 3, 5, 16  # not square: a row/column swap cannot go unnoticed
    grid = grid_anchors(base, (height, width), stride).reshape(height, width, 9, 4)
    centres = xyxy_to_cxcywh(grid.reshape(-1, 4)).reshape(height, width, 9, 4)[..., :2]
    cols = (torch.arange(width) + 0.5) * stride
    rows = (torch.arange(height) + 0.5) * stride
    torch.testing.assert_close(centres[..., 0], cols[None, :, None].expand(height, width, 9))
    torch.testing.assert_close(centres[..., 1], rows[:, None, None].expand(height, width, 9))
    torch.testing.assert_close(grid[2, 4], base + torch.tensor([64.0, 32, 64, 32]))


def test_grid_lines_up_with_a_permuted_head_output():
    """Anchor k and prediction k of a [N, A*4, H, W] head output permuted to (N, H, W, A) and
    flattened sit at the same cell, and for the same base anchor."""
    num_anchors, height, width, stride = 3, 4, 6, 16
    base = anchor_base(stride, (0.5, 1.0, 2.0), (2,))
    out = torch.zeros(1, num_anchors * 4, height, width)
    for a in range(num_anchors):  # each predicted box says where it was produced: (row, col, a)
        out[0, 4 * a + 0] = torch.arange(height)[:, None].float()
        out[0, 4 * a + 1] = torch.arange(width)[None, :].float()
        out[0, 4 * a + 2] = a
    where = out.permute(0, 2, 3, 1).reshape(1, -1, 4)[0]
    anchors = grid_anchors(base, (height, width), stride)
    centre = xyxy_to_cxcywh(anchors)[:, :2]
    torch.testing.assert_close(centre[:, 0], (where[:, 1] + 0.5) * stride)
    torch.testing.assert_close(centre[:, 1], (where[:, 0] + 0.5) * stride)
    torch.testing.assert_close(
        anchors - anchors.new_tensor(stride) * where[:, [1, 0, 1, 0]], base[where[:, 2].long()]
    )


def test_grid_matches_the_loop():
    torch.testing.assert_close(
        grid_anchors(anchor_base(), (7, 4), 16), anchors_loop((7, 4)), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        grid_anchors(anchor_base(8, (1.0,), (2, 3)), (3, 2), 8),
        anchors_loop((3, 2), 8, (1.0,), (2, 3)),
    )


def test_grid_edge_cases():
    base = anchor_base(dtype=torch.float64)
    empty = grid_anchors(base, (0, 7), 16)
    assert empty.shape == (0, 4) and empty.dtype == torch.float64
    with pytest.raises(ValueError, match="feature_size"):
        grid_anchors(base, (5,), 16)
    with pytest.raises(ValueError, match="stride"):
        grid_anchors(base, (5, 5), 0)
    with pytest.raises(ValueError, match=r"base\[0\] .* not on the first cell's centre \(16, 16\)"):
        grid_anchors(base, (5, 5), 32)
    with pytest.raises(ValueError, match=r"base\[0\].*x2 < x1"):
        grid_anchors(torch.tensor([[10.0, 0, 0, 10]]), (2, 2), 10)


def test_inside_anchors_border_and_bad_size():
    anchors = torch.tensor(
        [[0.0, 0, 800, 800], [-0.01, 0, 10, 10], [0, 0, 10, 800.01], [790, 0, 800, 10]]
    )
    assert inside_anchors(anchors, (800, 800)).tolist() == [True, False, False, True]
    assert inside_anchors(anchors, (800, 900)).tolist() == [True, False, False, True]
    assert inside_anchors(anchors, (900, 700)).tolist() == [False, False, True, False]
    assert inside_anchors(torch.zeros(0, 4), (8, 8)).shape == (0,)
    with pytest.raises(ValueError, match="image_size"):
        inside_anchors(anchors, (800,))


# --------------------------------------------------------------------------- torchvision


def test_ours_equals_torchvisions_anchor_generator_plus_half_a_stride(anchors_800):
    """torchvision centres its cell anchors on 0, rounds them, and shifts them to each cell's
    top-left corner; its sizes are the square roots of the areas (stride * scale)."""
    stride, scales, ratios = 16, (8, 16, 32), (0.5, 1.0, 2.0)
    generator = AnchorGenerator(sizes=(tuple(stride * s for s in scales),), aspect_ratios=(ratios,))
    images = ImageList(torch.zeros(1, 3, 800, 800), [(800, 800)])
    theirs = generator(images, [torch.zeros(1, 512, 50, 50)])[0]
    assert theirs.shape == anchors_800.shape
    gap = (anchors_800 - (theirs + stride / 2)).abs()
    assert gap.max() <= 0.5 + 1e-4  # their rounding to whole pixels
    assert gap.max() > 0.4  # ... which is really there (181.02 / 2 rounds to 91)
    square = torch.tensor([0, 0, 0, 1, 1, 1, 0, 0, 0], dtype=torch.bool).repeat(2500)
    torch.testing.assert_close(anchors_800[square], theirs[square] + stride / 2)  # no rounding
    # their cell anchors, unrounded, are ours moved to the origin
    cell = anchor_base() - stride / 2
    torch.testing.assert_close(generator.cell_anchors[0], cell.round())


# --------------------------------------------------------------------------- exercises


def test_exercise_checks_accept_the_reference_and_catch_the_seed_bugs():
    assert check_anchor_base(anchor_base, verbose=False)
    assert check_grid_anchors(grid_anchors, verbose=False)

    def yxyx_base(stride, ratios, scales):
        return anchor_base(stride, ratios, scales)[:, [1, 0, 3, 2]]

    def seed_loop(base, feature_size, stride):  # x outside, y inside, like the walkthrough
        rows = [
            base[a] + torch.tensor([x * stride, y * stride] * 2, dtype=base.dtype)
            for x in range(feature_size[1])
            for y in range(feature_size[0])
            for a in range(len(base))
        ]
        return torch.stack(rows) if rows else base.new_zeros(0, 4)

    wrong_base = check_anchor_base(yxyx_base, verbose=False)
    assert not wrong_base and wrong_base.causes[0].name == "anchors_ratio_w_over_h"
    wrong_grid = check_grid_anchors(seed_loop, verbose=False)
    assert not wrong_grid
    assert wrong_grid.causes[0].name == "grid_column_major"
    # one cell, one row, one column and the empty grid look the same in either order
    assert (wrong_grid.passed, wrong_grid.total) == (4, 7)
