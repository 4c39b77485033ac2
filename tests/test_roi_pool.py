"""tutorial_det.roi_pool.roi_pool: known answers, torchvision's exact numbers and gradients, edge
cases, the naive loop."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import t
from hypothesis import given
from hypothesis import strategies as st

from tutorial_det import roi_pool as R
from tutorial_det.exercises import check_roi_pool
from tutorial_det.naive import roi_pool_loop


def ramp(h: int, w: int) -> torch.Tensor:
    """A [1, 1, h, w] map whose cell (y, x) holds y * w + x."""
    return torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)


# --------------------------------------------------------------------------- strategies


@st.composite
def pooling_cases(draw):
    """Feature maps (integer-valued, so ties are common, or continuous), RoIs that may stick
    out of the map, lie entirely off it or have their corners the wrong way round, every
    output size and scale."""
    batch, channels = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, channels, height, width, generator=g)
    if draw(st.booleans()):
        features = features.mul(2).round().clamp(min=0)  # ReLU-like: many equal values
    scale = draw(st.sampled_from([1.0, 0.5, 0.25, 1 / 16, 0.3]))
    k = draw(st.integers(0, 12))
    corners = torch.rand(k, 4, generator=g) * 1.4 - 0.2  # a little beyond the image
    corners = corners * torch.tensor([width, height, width, height]) / scale
    if draw(st.booleans()):
        corners = corners.sort(dim=1).values[:, [0, 1, 2, 3]]  # mostly well-formed boxes
        corners = torch.stack([corners[:, 0], corners[:, 1], corners[:, 3], corners[:, 2]], 1)
    if draw(st.booleans()):
        corners = corners.round()  # exact halves after scaling (0.5 -> round away from 0)
    index = torch.randint(0, batch, (k, 1), generator=g).float()
    rois = torch.cat([index, corners], dim=1)
    size = draw(st.one_of(st.integers(1, 7), st.tuples(st.integers(1, 7), st.integers(1, 7))))
    return features, rois, size, scale


# --------------------------------------------------------------------------- known answers


def test_whole_map_into_quadrants():
    features = ramp(4, 4)
    # corners (0, 0) and (3, 3): cells 0..3 inclusive, 4 cells each way, bins of 2 cells
    out = R.roi_pool(features, t([[0, 0, 0, 3, 3]]), 2)
    assert out.tolist() == [[[[5.0, 7.0], [13.0, 15.0]]]]


def test_coordinates_round_half_away_from_zero():
    features = ramp(1, 8)
    # x1 = 5 * 0.5 = 2.5 rounds to 3 (torch.round would give 2, truncation 2)
    out = R.roi_pool(features, t([[0, 5, 0, 5, 0]]), 1, spatial_scale=0.5)
    assert out.item() == 3.0
    assert torchvision.ops.roi_pool(features, t([[0, 5, 0, 5, 0]]), 1, 0.5).item() == 3.0
    # 1.8 rounds to 2, not 1 (the walkthrough's .long() truncation)
    assert R.roi_pool(features, t([[0, 1.8, 0, 1.8, 0]]), 1).item() == 2.0


def test_overlapping_bins_and_roi_width():
    features = ramp(1, 5)
    # cells 0..4: 5 cells into 2 bins of 2.5: [floor(0), ceil(2.5)) = 0..2, [2, 5) = 2..4
    out = R.roi_pool(features, t([[0, 0, 0, 4, 0]]), (1, 2))
    assert out.tolist() == [[[[2.0, 4.0]]]]


def test_malformed_roi_is_one_cell():
    features = ramp(3, 3)
    # x2 < x1, y2 < y1: one cell, (2, 2); 1 / 2 cell per bin, and every bin rounds out to it
    out = R.roi_pool(features, t([[0, 2, 2, 0, 0]]), 2)
    assert out.tolist() == [[[[8.0, 8.0], [8.0, 8.0]]]]
    assert torch.equal(out, torchvision.ops.roi_pool(features, t([[0, 2, 2, 0, 0]]), 2))


def test_bins_off_the_map_are_zero():
    features = ramp(2, 2) - 10  # all negative: a zero can only come from an empty bin
    out = R.roi_pool(features, t([[0, 1, 0, 2, 1], [0, 10, 10, 20, 20]]), (1, 2))
    assert out.tolist() == [[[[-7.0, 0.0]]], [[[0.0, 0.0]]]]


def test_first_maximum_gets_the_gradient():
    features = torch.zeros(1, 1, 2, 3, requires_grad=True)  # all cells tie
    R.roi_pool(features, t([[0, 0, 0, 2, 1]]), 1).sum().backward()
    assert features.grad.tolist() == [[[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]]


def test_list_of_boxes_and_empty_rois():
    features = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    boxes = [t([[0, 0, 3, 3], [1, 1, 5, 5]]), t([[2, 0, 5, 2]])]
    rois = t([[0, 0, 0, 3, 3], [0, 1, 1, 5, 5], [1, 2, 0, 5, 2]])
    assert torch.equal(R.roi_pool(features, boxes, 2), R.roi_pool(features, rois, 2))
    assert R.roi_pool(features, torch.zeros(0, 5), (2, 3)).shape == (0, 3, 2, 3)
    assert R.roi_pool(features, [torch.zeros(0, 4), torch.zeros(0, 4)], 2).shape == (0, 3, 2, 2)


# --------------------------------------------------------------------------- vs torchvision


@given(case=pooling_cases(), double=st.booleans())
def test_matches_torchvision_values_and_gradients(case, double):
    features, rois, size, scale = case
    if double:
        features, rois = features.double(), rois.double()
    ours_in = features.clone().requires_grad_()
    theirs_in = features.clone().requires_grad_()
    ours = R.roi_pool(ours_in, rois, size, scale)
    theirs = torchvision.ops.roi_pool(theirs_in, rois, size, scale)
    assert torch.equal(ours, theirs)
    # without a gradient to route, the maxima are taken without their cells: same numbers
    assert torch.equal(R.roi_pool(features, rois, size, scale), theirs)
    upstream = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1), dtype=ours.dtype)
    ours.backward(upstream)
    theirs.backward(upstream)
    # the same additions in the same order: equal to the last bit
    assert torch.equal(ours_in.grad, theirs_in.grad)


def test_non_finite_features_match_torchvision():
    features = ramp(3, 4).repeat(1, 3, 1, 1)
    features[0, 0, :, :2] = float("nan")
    features[0, 1] = float("-inf")
    features[0, 2, 0, 0] = float("inf")
    rois = t([[0, 0, 0, 3, 2], [0, 0, 0, 1, 2], [0, 1, 0, 2, 2], [0, 2, 1, 3, 2]])
    for size in (1, 2):  # bins of NaN only, and bins mixing NaN and numbers
        ours_in = features.clone().requires_grad_()
        theirs_in = features.clone().requires_grad_()
        ours = R.roi_pool(ours_in, rois, size)
        theirs = torchvision.ops.roi_pool(theirs_in, rois, size)
        assert torch.equal(ours, theirs)
        assert not ours.isnan().any()
        assert torch.equal(R.roi_pool(features, rois, size), theirs)
        ours.sum().backward()
        theirs.sum().backward()
        assert torch.equal(ours_in.grad, theirs_in.grad)  # none to the all-NaN bins


def test_matches_torchvision_on_the_lesson_size(device):
    """128 proposals on a stride-16 map of a 800 x 800 image, 7 x 7 bins, on every device
    (torchvision's numbers are the CPU kernel's)."""
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 16, 50, 50, generator=g).relu()
    centre = torch.rand(128, 2, generator=g) * 800
    size = torch.exp(torch.empty(128, 2).uniform_(2.8, 6.7, generator=g))
    corners = torch.cat([centre - size / 2, centre + size / 2], 1).clamp(0, 800)
    rois = torch.cat([torch.randint(0, 2, (128, 1), generator=g).float(), corners], 1)
    expected = torchvision.ops.roi_pool(features, rois, 7, 1 / 16)
    ours = R.roi_pool(features.to(device), rois.to(device), 7, 1 / 16)
    assert ours.device == features.to(device).device and torch.equal(ours.cpu(), expected)


def test_one_bin_over_a_large_map():
    """A single 1 x 1 bin of 200 x 200 = 40000 cells (more than an int16 can count) with many
    equal maxima: torchvision's value and first arg-max."""
    g = torch.Generator().manual_seed(0)
    features = torch.randint(0, 5, (1, 2, 200, 200), generator=g).float()
    rois = t([[0, 0, 0, 199, 199], [0, 3, 5, 150, 190]])
    ours_in, theirs_in = features.clone().requires_grad_(), features.clone().requires_grad_()
    ours = R.roi_pool(ours_in, rois, 1)
    theirs = torchvision.ops.roi_pool(theirs_in, rois, 1)
    assert torch.equal(ours, theirs)
    ours.sum().backward()
    theirs.sum().backward()
    assert torch.equal(ours_in.grad, theirs_in.grad)


# --------------------------------------------------------------------------- naive loop


@given(case=pooling_cases())
def test_naive_loop_matches(case):
    features, rois, size, scale = case
    assert torch.equal(
        roi_pool_loop(features, rois, size, scale), R.roi_pool(features, rois, size, scale)
    )


# --------------------------------------------------------------------------- validation


def test_rejects_bad_input():
    features = torch.zeros(2, 3, 5, 5)
    with pytest.raises(ValueError, match=r"features must have shape \[B, C, H, W\]"):
        R.roi_pool(torch.zeros(3, 5, 5), t([[0, 0, 0, 1, 1]]), 2)
    with pytest.raises(TypeError, match="features must be float32 or float64"):
        R.roi_pool(features.long(), t([[0, 0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match=r"rois must have shape \[K, 5\]"):
        R.roi_pool(features, t([[0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match=r"rois\[1\] has batch index 2.0; .* \[0, 2\)"):
        R.roi_pool(features, t([[0, 0, 0, 1, 1], [2, 0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match=r"rois\[0\] has batch index 0.5"):
        R.roi_pool(features, t([[0.5, 0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match=r"rois\[:, 1:\]\[0\].*not finite"):
        R.roi_pool(features, t([[0, 0, float("nan"), 1, 1]]), 2)
    with pytest.raises(ValueError, match="one \\[K_i, 4\\] tensor per image: 2 images, got 1"):
        R.roi_pool(features, [t([[0, 0, 1, 1]])], 2)
    with pytest.raises(ValueError, match=r"rois\[1\] must have shape \[N, 4\]"):
        R.roi_pool(features, [t([[0, 0, 1, 1]]), torch.zeros(1, 5)], 2)
    for bad in (0, (2, 0), (2, 2, 2), "7", 2.5):
        with pytest.raises(ValueError, match="output_size"):
            R.roi_pool(features, t([[0, 0, 0, 1, 1]]), bad)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="spatial_scale must be positive"):
            R.roi_pool(features, t([[0, 0, 0, 1, 1]]), 2, bad)


# --------------------------------------------------------------------------- exercise check


def test_check_roi_pool_passes_correct_functions():
    assert check_roi_pool(R.roi_pool, verbose=False)
    assert check_roi_pool(roi_pool_loop, verbose=False)
    assert check_roi_pool(torchvision.ops.roi_pool, verbose=False)


@pytest.mark.parametrize(
    ("quantise", "cases"),
    [
        (torch.floor, {"round the scaled corners, don't truncate", "halves round away from zero"}),
        (torch.round, {"halves round away from zero"}),
    ],
)
def test_check_roi_pool_names_the_mistake(quantise, cases):
    """A learner who quantises the corners with ``quantise`` instead of C's round."""

    def pool(features, rois, size, scale):
        snapped = torch.cat([rois[:, :1], quantise(rois[:, 1:] * scale) / scale], dim=1)
        return R.roi_pool(features, snapped, size, scale)

    result = check_roi_pool(pool, verbose=False)
    failed = {failure.split("]")[0].lstrip("[") for failure in result.failures}
    assert cases <= failed
