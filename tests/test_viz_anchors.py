"""Anchor drawings: the cell grid, one cell, anchors, the overlap of two boxes, labelled anchors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tutorial_det.anchors import anchor_base, grid_anchors
from tutorial_det.boxes import box_area, box_iou
from tutorial_det.viz import (
    LABEL_COLOURS,
    draw_anchors,
    draw_cell,
    draw_cell_grid,
    draw_labelled_anchors,
    draw_overlap,
)


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def _area(patch) -> float:
    return patch.get_width() * patch.get_height()


def test_cell_grid_draws_one_line_per_cell_border(ax):
    lines = draw_cell_grid(ax, (48, 64), 16)  # 3 rows x 4 columns of cells
    segments = lines.get_segments()
    assert len(segments) == 5 + 4  # x = 0, 16, 32, 48, 64 and y = 0, 16, 32, 48
    xs = sorted({float(s[0][0]) for s in segments if s[0][0] == s[1][0]})
    assert xs == [0, 16, 32, 48, 64]
    assert lines in ax.collections
    with pytest.raises(ValueError, match="stride"):
        draw_cell_grid(ax, (48, 64), 0)


def test_cell_is_the_stride_square_at_row_and_column(ax):
    patch = draw_cell(ax, row=2, column=3, stride=16)
    assert patch.get_xy() == (48, 32) and patch.get_width() == 16 and patch.get_height() == 16
    (centre,) = ax.lines
    assert (centre.get_xdata()[0], centre.get_ydata()[0]) == (56, 40)  # ((3 + .5) 16, (2 + .5) 16)


def test_anchors_crossing_the_border_are_dashed(ax):
    base = anchor_base()  # first cell: every one of the nine crosses the top-left border
    inside_one = torch.tensor([[100.0, 100, 228, 228]])
    patches = draw_anchors(ax, torch.cat((base, inside_one)), image_size=(800, 800))
    assert len(patches) == 10 == len(ax.patches)
    styles = [p.get_linestyle() for p in patches]
    assert styles[:9] == ["--"] * 9 and styles[9] == "-"
    # without an image size nothing is dashed; given colours are used per anchor
    patches = draw_anchors(ax, base[:2], colours=["red", "blue"])
    assert [p.get_linestyle() for p in patches] == ["-", "-"]
    assert patches[1].get_edgecolor()[:3] == pytest.approx(mcolors.to_rgb("blue"))
    with pytest.raises(ValueError, match="colours has 1 entries for 2 anchors"):
        draw_anchors(ax, base[:2], colours=["red"])


def test_overlap_of_two_corner_boxes(ax):
    drawn = draw_overlap(ax, (20, 20, 120, 120), (70, 70, 170, 170))
    (inter,) = drawn["intersection"]
    assert inter.get_xy() == (70, 70) and _area(inter) == 2500
    assert len(drawn["union"]) == 4  # left + top of A, right + bottom of B
    assert sum(_area(p) for p in drawn["union"]) == 20000 - 2 * 2500
    assert len(drawn["outlines"]) == 2 and len(ax.patches) == 7


def test_overlap_of_disjoint_nested_and_equal_boxes(ax):
    apart = draw_overlap(ax, (0, 0, 10, 10), (10, 0, 20, 10))  # touching edges: no overlap
    assert apart["intersection"] == [] and len(apart["union"]) == 2
    nested = draw_overlap(ax, (0, 0, 100, 100), (40, 40, 60, 60))
    assert _area(nested["intersection"][0]) == 400
    assert len(nested["union"]) == 4 and sum(_area(p) for p in nested["union"]) == 10000 - 400
    same = draw_overlap(ax, (5, 5, 15, 25), (5, 5, 15, 25))
    assert same["union"] == [] and _area(same["intersection"][0]) == 200


@given(st.tuples(*[st.integers(0, 60)] * 4), st.tuples(*[st.integers(0, 60)] * 4))
def test_overlap_regions_tile_the_union_exactly(a, b):
    box_a = (a[0], a[1], a[0] + a[2] + 1, a[1] + a[3] + 1)
    box_b = (b[0], b[1], b[0] + b[2] + 1, b[1] + b[3] + 1)
    fig, ax = plt.subplots()
    drawn = draw_overlap(ax, box_a, box_b)
    plt.close(fig)
    boxes = torch.tensor([box_a, box_b], dtype=torch.float64)
    area_a, area_b = box_area(boxes).tolist()
    inter = sum(_area(p) for p in drawn["intersection"])
    rest = sum(_area(p) for p in drawn["union"])
    assert inter + rest == pytest.approx(area_a + area_b - inter)  # the shading is the union
    assert inter / (inter + rest) == pytest.approx(float(box_iou(boxes[:1], boxes[1:])))
    # no two shaded regions overlap, so each shade is uniform
    regions = torch.tensor(
        [
            [*p.get_xy(), p.get_x() + p.get_width(), p.get_y() + p.get_height()]
            for p in drawn["union"] + drawn["intersection"]
        ],
        dtype=torch.float64,
    ).reshape(-1, 4)
    pairwise = box_iou(regions, regions) - torch.eye(len(regions), dtype=torch.float64)
    assert pairwise.abs().max().item() == pytest.approx(0, abs=1e-12)


def test_labelled_anchors_one_collection_per_label(ax):
    anchors = grid_anchors(anchor_base(16, (1.0,), (1,)), (2, 3), 16)  # 6 anchors
    labels = torch.tensor([1, 0, 0, -1, 0, 1])
    drawn = draw_labelled_anchors(ax, anchors, labels)
    assert {k: len(c.get_paths()) for k, c in drawn.items()} == {1: 2, 0: 3, -1: 1}
    assert list(drawn) == [-1, 0, 1]  # positives drawn last, on top
    assert drawn[1].get_edgecolor()[0][:3] == pytest.approx(mcolors.to_rgb(LABEL_COLOURS[1]))
    assert drawn[0].get_label() == "negative (3)"
    # the first positive's outline is its anchor
    corners = drawn[1].get_paths()[0].vertices[:4]
    assert corners.min(axis=0).tolist() == [0, 0] and corners.max(axis=0).tolist() == [16, 16]
    only = draw_labelled_anchors(ax, anchors, labels, show=(1,))
    assert list(only) == [1]


def test_labelled_anchors_reject_bad_input(ax):
    anchors = torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"labels must have shape \[3\]"):
        draw_labelled_anchors(ax, anchors, torch.zeros(2))
    with pytest.raises(ValueError, match="show holds 2"):
        draw_labelled_anchors(ax, anchors, torch.zeros(3), show=(1, 2))
    empty = draw_labelled_anchors(ax, torch.zeros(0, 4), torch.zeros(0))
    assert all(len(c.get_paths()) == 0 for c in empty.values())
