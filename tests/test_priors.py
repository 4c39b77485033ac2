"""SSD priors: the SSD tutorial's simple set-up, the paper's prior_boxes, SSD300's 8732 against
torchvision's DefaultBoxGenerator."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from tutorial_det.anchors import (
    SSD300_ASPECT_RATIOS,
    SSD300_FEATURE_SIZES,
    SSD300_STEPS,
    anchor_base,
    grid_anchors,
    prior_boxes,
    ssd300_priors,
    ssd_scales,
)
from tutorial_det.boxes import box_convert, xyxy_to_cxcywh
from tutorial_det.exercises.variants import simple_priors


def _torchvision_ssd300(clip: bool) -> torch.Tensor:
    """torchvision's SSD300 default boxes with our scales, ``[8732, 4]`` xyxy pixels."""
    generator = DefaultBoxGenerator(
        [list(r) for r in SSD300_ASPECT_RATIOS],
        scales=list(ssd_scales()),
        steps=list(SSD300_STEPS),
        clip=clip,
    )
    images = ImageList(torch.zeros(1, 3, 300, 300), [(300, 300)])
    features = [torch.zeros(1, 1, f, f) for f in SSD300_FEATURE_SIZES]
    return generator(images, features)[0]


# --------------------------------------------------------------------------- ssd_scales


def test_ssd_scales_are_the_papers_ssd300_set():
    torch.testing.assert_close(
        torch.tensor(ssd_scales(), dtype=torch.float64),
        torch.tensor([0.1, 0.2, 0.375, 0.55, 0.725, 0.9, 1.075], dtype=torch.float64),
    )
    # Without the separate first scale: the paper's formula over all six maps (step 0.14).
    torch.testing.assert_close(
        torch.tensor(ssd_scales(first=None), dtype=torch.float64),
        torch.tensor([0.2, 0.34, 0.48, 0.62, 0.76, 0.9, 1.04], dtype=torch.float64),
    )


def test_ssd_scales_rejects_too_few_maps():
    with pytest.raises(ValueError, match="two linearly spaced maps"):
        ssd_scales(num_maps=2, first=0.1)


# --------------------------------------------------------------------------- SSD300


@pytest.mark.parametrize("clip", [False, True])
def test_ssd300_priors_are_torchvisions_default_boxes(clip):
    ours = ssd300_priors(clip=clip)
    assert ours.shape == (8732, 4) and ours.dtype == torch.float32
    theirs = _torchvision_ssd300(clip)
    assert theirs.shape == (8732, 4)
    # Same boxes in the same order: ours are normalised (cx, cy, w, h), theirs xyxy pixels.
    torch.testing.assert_close(box_convert(ours, "cxcywh", "xyxy") * 300, theirs, atol=1e-4, rtol=0)


def test_ssd300_counts_per_map():
    priors = ssd300_priors()
    per_cell = (4, 6, 6, 6, 4, 4)
    counts = [f * f * a for f, a in zip(SSD300_FEATURE_SIZES, per_cell, strict=True)]
    assert counts == [5776, 2166, 600, 150, 36, 4] and sum(counts) == len(priors) == 8732
    # The first cell of conv4_3: centre (4/300, 4/300); squares 0.1 and sqrt(0.1 * 0.2); ratio 2.
    first = priors[:4].double()
    torch.testing.assert_close(
        first[:, :2], torch.full((4, 2), 4 / 300, dtype=torch.float64), atol=1e-7, rtol=0
    )
    s, s2 = 0.1, math.sqrt(0.1 * 0.2)
    expected_wh = [[s, s], [s2, s2], [s * math.sqrt(2), s / math.sqrt(2)]]
    expected_wh.append(expected_wh[-1][::-1])
    torch.testing.assert_close(
        first[:, 2:], torch.tensor(expected_wh, dtype=torch.float64), atol=1e-7, rtol=0
    )
    # The single cell of the last map sits in the middle; its ratio-2 prior is wider than the image
    # (0.9 * sqrt(2) = 1.27) unless clipped.
    last = priors[-4:]
    torch.testing.assert_close(last[:, :2], torch.full((4, 2), 0.5))
    assert last[2, 2] == pytest.approx(0.9 * math.sqrt(2), abs=1e-6)
    assert ssd300_priors(clip=True)[-4:, 2:].max() == 1.0


def test_prior_boxes_paper_centres_match_torchvision_without_steps():
    sizes, ratios = (5, 3, 1), [[2], [2, 3], [2]]
    scales = (0.2, 0.5, 0.8, 0.95)
    ours = prior_boxes(sizes, scales, ratios)
    generator = DefaultBoxGenerator(ratios, scales=list(scales), clip=False)
    theirs = generator._grid_default_boxes([[f, f] for f in sizes], [99, 99])
    torch.testing.assert_close(ours, theirs)
    # (j + 0.5) / f_k: the first of 5 cells is centred at 0.1, the middle one at 0.5.
    assert ours[0, 0].item() == pytest.approx(0.1) and ours[2 * 4 + 2 * 5 * 4, 0] == 0.5


# --------------------------------------------------------------------------- prior_boxes


@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    data=st.data(),
)
def test_prior_boxes_properties(sizes, data):
    m = len(sizes)
    scales = sorted(data.draw(st.lists(st.floats(0.05, 1.2), min_size=m + 1, max_size=m + 1)))
    ratios = [
        data.draw(st.lists(st.sampled_from([2.0, 3.0, 0.25]), max_size=2, unique=True))
        for _ in range(m)
    ]
    priors = prior_boxes(sizes, scales, ratios).double()
    per_cell = [2 + 2 * len(r) for r in ratios]
    assert len(priors) == sum(f * f * a for f, a in zip(sizes, per_cell, strict=True))
    start = 0
    for k, (f, a) in enumerate(zip(sizes, per_cell, strict=True)):
        level = priors[start : start + f * f * a].reshape(f, f, a, 4)
        start += f * f * a
        # Every prior of a cell shares the cell's centre; rows go down, columns right.
        centres = (torch.arange(f, dtype=torch.float64) + 0.5) / f
        torch.testing.assert_close(level[..., 0], centres[None, :, None].expand(f, f, a))
        torch.testing.assert_close(level[..., 1], centres[:, None, None].expand(f, f, a))
        # Areas: s_k^2 for every prior but the second, which is s_k * s_{k+1}.
        areas = level[0, 0, :, 2] * level[0, 0, :, 3]
        expected = torch.full((a,), scales[k] ** 2, dtype=torch.float64)
        expected[1] = scales[k] * scales[k + 1]
        torch.testing.assert_close(areas, expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scales": (0.2, 0.4)}, "one more scale than maps"),
        ({"aspect_ratios": [[1, 2], [2]]}, "contains 1"),
        ({"aspect_ratios": [[-2], [2]]}, "positive"),
        ({"steps": (8, 16)}, "image_size is needed"),
        ({"steps": (8,), "image_size": 64}, "one value per feature map"),
        ({"feature_sizes": (4, 0)}, r"feature_sizes\[1\]"),
    ],
)
def test_prior_boxes_bad_input_names_the_argument(kwargs, message):
    args = {"feature_sizes": (4, 2), "scales": (0.2, 0.4, 0.8), "aspect_ratios": [[2], [2]]}
    with pytest.raises(ValueError, match=message):
        prior_boxes(**(args | kwargs))


def test_prior_boxes_with_steps_on_a_rectangular_image():
    # A 2 x 3 map with a step of 10 on a 20 x 30 (h x w) image: centres at x = 5, 15, 25 px.
    priors = prior_boxes([(2, 3)], (0.5, 0.5), [[]], steps=(10,), image_size=(20, 30))
    assert priors.shape == (2 * 3 * 2, 4)
    torch.testing.assert_close(priors[0:6:2, 0], torch.tensor([5 / 30, 15 / 30, 25 / 30]))
    torch.testing.assert_close(priors[6, 1], torch.tensor(15 / 20))


# ---------------------------------------------------------------- the SSD tutorial's simple priors


def test_simple_priors_count_and_first_boxes():
    priors = simple_priors(128, strides=(4, 8, 16), scales=(10, 25, 40), ratios=(0.4, 0.8, 1.2))
    assert priors.shape == (3 * (32 * 32 + 16 * 16 + 8 * 8), 4) == (4032, 4)
    cxcywh = xyxy_to_cxcywh(priors.double())
    # First cell of the stride-4 map: centre (2, 2), area 10^2, h / w = 0.4.
    torch.testing.assert_close(cxcywh[0, :2], torch.tensor([2.0, 2.0], dtype=torch.float64))
    w, h = cxcywh[0, 2], cxcywh[0, 3]
    assert float(w * h) == pytest.approx(100) and float(h / w) == pytest.approx(0.4)
    # The stride-8 map starts after 32 * 32 * 3 priors, with a 25 px prior on (4, 4).
    level2 = cxcywh[3072]
    assert level2[:2].tolist() == pytest.approx([4, 4])
    assert float(level2[2] * level2[3]) == pytest.approx(625)


def test_simple_priors_are_grid_anchors_level_by_level():
    priors = simple_priors((64, 96), strides=(16, 32), scales=(20, 40), ratios=(0.5, 1, 2))
    expected = torch.cat(
        [
            grid_anchors(anchor_base(16, (0.5, 1, 2), (20 / 16,)), (4, 6), 16),
            grid_anchors(anchor_base(32, (0.5, 1, 2), (40 / 32,)), (2, 3), 32),
        ]
    )
    torch.testing.assert_close(priors, expected)


def test_simple_priors_rejects_mismatched_lists_and_sizes():
    with pytest.raises(ValueError, match="one size per feature map"):
        simple_priors(128, strides=(4, 8), scales=(10,), ratios=(1,))
    with pytest.raises(
        ValueError, match=r"strides and scales must be positive, got \(4, 8\) and \(10, 0\)"
    ):
        simple_priors(128, strides=(4, 8), scales=(10, 0), ratios=(1,))


# --------------------------------------------------------------------------- PriorsExplorer


@pytest.fixture
def explorer():
    import matplotlib

    matplotlib.use("Agg")
    from tutorial_det.widgets.priors import PriorsExplorer

    gt = torch.tensor([[21.0, 14, 82, 75], [96, 43, 115, 62], [7, 72, 19, 83]])
    return PriorsExplorer(torch.ones(3, 128, 128), gt, [1, 1, 3], ("bg", "circle", "sq", "tri"))


def test_priors_explorer_starts_on_the_finest_map(explorer):
    view = explorer.view
    assert (view.level, view.stride, view.feature_size, view.cell) == (0, 8, (16, 16), (8, 8))
    assert view.priors_per_cell == 4 and view.level_total == 1024
    # Cell (8, 8) is centred at (68, 68); its priors are 16, sqrt(0.125 * 0.25) * 128 = 22.6 px.
    centres = (view.cell_priors[:, :2] + view.cell_priors[:, 2:]) / 2
    torch.testing.assert_close(centres, torch.full((4, 2), 68.0))
    sides = view.cell_priors[:, 2:] - view.cell_priors[:, :2]
    torch.testing.assert_close(sides[0], torch.tensor([16.0, 16.0]))
    torch.testing.assert_close(sides[1], torch.full((2,), math.sqrt(0.125 * 0.25) * 128))
    assert view.matched.tolist() == [-1] * 4 and view.matched_gt == []
    assert "16 x 16 cells" in explorer.sentence and "matched: none" in explorer.sentence


def test_priors_explorer_cell_matches_the_big_object(explorer):
    explorer.level.value = 2  # stride 32; the cell under (68, 68) is (2, 2)
    assert explorer.view.cell == (2, 2) and explorer.scale.value == pytest.approx(0.44)
    with explorer.hold():
        explorer.row.value = 1
        explorer.column.value = 1
    view = explorer.view
    # The 0.44 x 128 = 56.32 px square prior centred at (48, 48) spans 19.84..76.16: it
    # overlaps the 61 x 61 box (21..82, 14..75) on 55.16 x 55.16 px.
    side, inter = 0.44 * 128, 55.16**2
    assert view.iou[0, 0].item() == pytest.approx(inter / (side**2 + 61**2 - inter), rel=1e-5)
    assert view.matched[0].item() == 0 and view.matched_gt == [0]
    assert "Best IoU with a ground truth: 0.79, prior 0 with gt 0 (circle)." in explorer.sentence
    assert explorer.sentence.endswith("IoU >= 0.5: 4 of 4; ground truths matched: gt 0 (circle).")
    assert "IoU &gt;= 0.5" in explorer.summary.value  # the same sentence, as HTML
    assert [t.get_text() for t in explorer.ax.texts] == [
        "gt 0 (circle)", "gt 1 (circle)", "gt 2 (tri)"
    ]  # fmt: skip
    # The matched ground truth is drawn shaded: one filled patch besides the yellow cell.
    filled = [p for p in explorer.ax.patches if p.get_fill()]
    assert len(filled) == 2
    # Raising the threshold above every IoU leaves nothing matched.
    explorer.threshold.value = 0.95
    assert explorer.view.matched_gt == []


def test_priors_explorer_agrees_with_the_models_priors(explorer):
    from tutorial_det.ssd import SSD

    model_priors = SSD(4, widths=(4, 4, 4, 4), extra_channels=(4, 4)).priors_for(
        [(16, 16), (8, 8), (4, 4), (2, 2)], (128, 128)
    )
    with explorer.hold():
        explorer.level.value = 1
        explorer.row.value = 3
        explorer.column.value = 6
    start = 16 * 16 * 4 + (3 * 8 + 6) * 4
    torch.testing.assert_close(explorer.view.cell_priors, model_priors[start : start + 4])


def test_priors_explorer_ratios_and_scale(explorer):
    explorer.ratios.value = "2, 3"
    assert explorer.view.priors_per_cell == 6 and explorer.view.level_total == 16 * 16 * 6
    explorer.scale.value = 0.25
    sides = explorer.view.cell_priors[:, 2:] - explorer.view.cell_priors[:, :2]
    torch.testing.assert_close(sides[0], torch.tensor([32.0, 32.0]))
    w, h = sides[4].tolist()  # ratio 3: w / h = 3, area 32^2
    assert w / h == pytest.approx(3) and w * h == pytest.approx(1024, rel=1e-5)
    explorer.ratios.value = ""
    assert explorer.view.priors_per_cell == 2
    explorer.ratios.value = "1, 2"
    assert explorer.view is None and "leave out 1" in explorer.sentence
