"""tutorial_det.nms: known answers, edge cases, the exact torchvision contract, the naive loop."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import t
from hypothesis import given
from hypothesis import strategies as st

from tutorial_det import nms as N
from tutorial_det.exercises import check_nms
from tutorial_det.naive import nms_loop

# --------------------------------------------------------------------------- strategies


@st.composite
def grid_boxes(draw, max_n: int = 40):
    """Boxes on a coarse integer grid with scores from a few values: many identical boxes,
    zero-area boxes, exact score ties and IoUs that land exactly on round thresholds."""
    n = draw(st.integers(0, max_n))
    corner = st.integers(0, 6)
    size = st.integers(0, 4)
    rows = draw(st.lists(st.tuples(corner, corner, size, size), min_size=n, max_size=n))
    boxes = torch.tensor([(x, y, x + w, y + h) for x, y, w, h in rows], dtype=torch.float32)
    scores = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=n, max_size=n))
    return boxes.reshape(-1, 4), torch.tensor(scores, dtype=torch.float32)


@st.composite
def float_boxes(draw, max_n: int = 30):
    """Boxes with arbitrary float32 corners; each side 0 or at least 2**-10 pixels (denormal
    areas have their own test, test_denormal_areas)."""
    n = draw(st.integers(0, max_n))
    coord = st.floats(0, 500, width=32)
    size = st.one_of(st.just(0.0), st.floats(2**-10, 300, width=32))
    rows = draw(st.lists(st.tuples(coord, coord, size, size), min_size=n, max_size=n))
    boxes = torch.tensor([(x, y, x + w, y + h) for x, y, w, h in rows], dtype=torch.float32)
    score = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0, 1, width=32))
    scores = draw(st.lists(score, min_size=n, max_size=n))
    return boxes.reshape(-1, 4), torch.tensor(scores, dtype=torch.float32)


thresholds = st.one_of(st.sampled_from([0.0, 0.5, 0.7, 1.0, 0.4999999999, 1 / 3]), st.floats(0, 1))


# --------------------------------------------------------------------------- known answers


def test_known_answer_keeps_best_and_disjoint_boxes():
    boxes = t([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9]])
    scores = t([0.9, 0.8, 0.7, 0.95])
    # box 3 (best) overlaps 0 with IoU 0.9 and 1 with IoU 72/118; box 2 overlaps nothing
    assert N.nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert N.nms(boxes, scores, 0.65).tolist() == [3, 1, 2]
    assert N.nms(boxes, scores, 0.95).tolist() == [3, 0, 1, 2]


def test_sorts_by_score_not_by_index():
    """The walkthrough sorted the indices (``order.argsort()``): box 0 would win here."""
    boxes = t([[0, 0, 10, 10], [0, 0, 10, 10.5]])
    assert N.nms(boxes, t([0.1, 0.9]), 0.5).tolist() == [1]


def test_suppresses_only_strictly_above_threshold():
    boxes = t([[0, 0, 2, 1], [0, 0, 1, 1]])  # IoU exactly 0.5
    scores = t([1.0, 0.5])
    assert N.nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert N.nms(boxes, scores, 0.49).tolist() == [0]
    # 0.4999999999 rounds up to 0.5 in float32; the comparison must still see 0.5 > threshold
    assert N.nms(boxes, scores, 0.4999999999).tolist() == [0]
    assert torchvision.ops.nms(boxes, scores, 0.4999999999).tolist() == [0]


def test_threshold_zero_and_one():
    boxes = t([[0, 0, 10, 10], [10, 0, 20, 10], [9, 0, 19, 10], [0, 0, 10, 10]])
    scores = t([1.0, 0.9, 0.8, 0.7])
    # 0: any overlap suppresses; touching boxes (IoU 0) survive
    assert N.nms(boxes, scores, 0.0).tolist() == [0, 1]
    # 1: nothing exceeds IoU 1, even an identical box
    assert N.nms(boxes, scores, 1.0).tolist() == [0, 1, 2, 3]


def test_ties_keep_the_lower_index():
    boxes = t([[0, 0, 10, 10]] * 3 + [[20, 20, 30, 30]] * 2)
    assert N.nms(boxes, torch.ones(5), 0.5).tolist() == [0, 3]


def test_zero_area_boxes_are_never_suppressed():
    boxes = t([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10]])
    assert N.nms(boxes, t([1, 0.9, 0.8]), 0.0).tolist() == [0, 1, 2]


def test_chain_across_many_blocks():
    """Each box overlaps its neighbour (IoU 2/3) but not the next one (IoU 3/7): greedy keeps
    every other box. 300 boxes span several rounds of the blocked sweep."""
    x = torch.arange(300, dtype=torch.float32) * 2
    boxes = torch.stack([x, torch.zeros_like(x), x + 10, torch.full_like(x, 10)], dim=1)
    scores = torch.linspace(1, 0, 300)
    assert N.nms(boxes, scores, 0.5).tolist() == list(range(0, 300, 2))
    # reversed scores: the walk starts at the other end
    assert N.nms(boxes, scores.flip(0), 0.5).tolist() == list(range(299, -1, -2))


def test_empty_input():
    kept = N.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert kept.dtype == torch.int64 and kept.shape == (0,)
    kept = N.batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert kept.dtype == torch.int64 and kept.shape == (0,)


@pytest.mark.parametrize(
    "empty", [torch.empty((0,)), torch.zeros(0, 4), torch.zeros(0, 4, dtype=torch.float64)]
)
def test_batched_empty_boxes_of_any_shape_like_torchvision(empty):
    """torchvision returns an empty result for any empty ``boxes`` (``torch.empty((0,))``
    included), whatever the scores and classes; so do we."""
    args = (empty, torch.empty(0), torch.empty(0, dtype=torch.int64), 0.5)
    expected = torchvision.ops.batched_nms(*args)
    kept = N.batched_nms(*args)
    assert kept.dtype == expected.dtype == torch.int64
    assert kept.shape == expected.shape == (0,)
    with pytest.raises(ValueError, match="iou_threshold must be in"):
        N.batched_nms(empty, torch.empty(0), torch.empty(0, dtype=torch.int64), 1.5)


def test_nms_of_one_dimensional_empty_boxes_is_refused_like_torchvision():
    with pytest.raises(RuntimeError, match="2d tensor"):
        torchvision.ops.nms(torch.empty((0,)), torch.empty(0), 0.5)
    with pytest.raises(ValueError, match=r"boxes must have shape \[N, 4\], got \[0\]"):
        N.nms(torch.empty((0,)), torch.empty(0), 0.5)


def test_single_box_and_all_identical_boxes():
    assert N.nms(t([[0, 0, 1, 1]]), t([0.3]), 0.5).tolist() == [0]
    boxes = t([[0, 0, 10, 10]] * 300)  # more than a block: the best (first) one survives
    assert N.nms(boxes, torch.ones(300), 0.5).tolist() == [0]
    assert N.nms(boxes, torch.ones(300), 1.0).tolist() == list(range(300))


def test_float64_and_integer_boxes():
    boxes = t([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    scores = t([0.9, 0.8, 0.7])
    # IoU(0, 1) = 81 / 119 = 0.68
    assert N.nms(boxes.double(), scores.double(), 0.5).tolist() == [0, 2]
    assert N.nms(boxes.double(), scores.double(), 0.7).tolist() == [0, 1, 2]
    assert N.nms(boxes.long(), scores, 0.5).tolist() == [0, 2]
    assert N.nms(boxes, scores.long(), 0.7).tolist() == [0, 1, 2]


# --------------------------------------------------------------------------- vs torchvision


@given(data=grid_boxes(), threshold=thresholds)
def test_matches_torchvision_with_ties(data, threshold, device):
    """On every device, the indices torchvision's CPU kernel keeps (its CUDA kernel compares
    IoUs with the threshold in float32, its CPU kernel in float64, as ours everywhere)."""
    boxes, scores = data
    kept = N.nms(boxes.to(device), scores.to(device), threshold)
    assert torch.equal(kept.cpu(), torchvision.ops.nms(boxes, scores, threshold))


@given(data=float_boxes(), threshold=thresholds)
def test_matches_torchvision_float_boxes(data, threshold, device):
    boxes, scores = data
    kept = N.nms(boxes.to(device), scores.to(device), threshold)
    assert torch.equal(kept.cpu(), torchvision.ops.nms(boxes, scores, threshold))


@given(data=float_boxes(), threshold=thresholds)
def test_matches_torchvision_float64(data, threshold):
    boxes, scores = (v.double() for v in data)
    assert torch.equal(
        N.nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold)
    )


def test_matches_torchvision_on_proposals():
    """Proposal-like boxes, more than the sweep's block many times over."""
    g = torch.Generator().manual_seed(0)
    centre = torch.rand(1500, 2, generator=g) * 800
    size = torch.exp(torch.empty(1500, 2).uniform_(2.8, 6.7, generator=g))
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1).clamp(0, 800)
    scores = torch.rand(1500, generator=g).mul(50).round()  # many ties
    for threshold in (0.3, 0.7):
        expected = torchvision.ops.nms(boxes, scores, threshold)
        assert torch.equal(N.nms(boxes, scores, threshold), expected)


def random_boxes(n, seed, image=1000.0, sizes=(10.0, 100.0)):
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=g) * image
    side = torch.rand(n, 2, generator=g) * (sizes[1] - sizes[0]) + sizes[0]
    return torch.cat([corner, corner + side], dim=1), torch.rand(n, generator=g)


@pytest.fixture(params=["pairs", "matrix"])
def comparison(request, monkeypatch):
    """Every round of the sweep compares its kept boxes pair by pair with the candidates of
    their x runs (``pairs``), or as one IoU matrix with every box alive (``matrix``)."""
    if request.param == "pairs":
        monkeypatch.setattr(N, "SMALL_MATRIX", 0)
        monkeypatch.setattr(N, "PAIR_COST", 0)
    else:
        monkeypatch.setattr(N, "SMALL_MATRIX", 2**62)
    return request.param


@pytest.mark.parametrize(
    ("sizes", "threshold"),
    [((10, 100), 0.5), ((2, 20), 0.5), ((2, 20), 0.0), ((10, 300), 0.1), ((1, 400), 0.9)],
)
def test_sparse_boxes_match_torchvision(comparison, sizes, threshold):
    """Random boxes, most of them kept: each comparison gives torchvision's indices."""
    boxes, scores = random_boxes(1500, seed=sizes[0], sizes=sizes)
    expected = torchvision.ops.nms(boxes, scores, threshold)
    assert torch.equal(N.nms(boxes, scores, threshold), expected)
    assert torch.equal(N.nms(boxes.double(), scores, threshold), expected)


@given(data=float_boxes(max_n=60), threshold=thresholds, seed=st.integers(0, 99))
def test_both_comparisons_match_torchvision(data, threshold, seed):
    """Arbitrary boxes (zero-area ones, ties, thresholds on IoU values) through each comparison,
    with and without classes."""
    boxes, scores = data
    classes = torch.randint(0, 3, (len(boxes),), generator=torch.Generator().manual_seed(seed))
    expected = torchvision.ops.nms(boxes, scores, threshold)
    per_class = N.batched_nms(boxes, scores, classes, threshold)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(N, "SMALL_MATRIX", 0)
        patch.setattr(N, "PAIR_COST", 0)
        assert torch.equal(N.nms(boxes, scores, threshold), expected)
        assert torch.equal(N.batched_nms(boxes, scores, classes, threshold), per_class)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(N, "SMALL_MATRIX", 2**62)
        assert torch.equal(N.nms(boxes, scores, threshold), expected)
        assert torch.equal(N.batched_nms(boxes, scores, classes, threshold), per_class)


def test_sparse_boxes_per_class_match_torchvision(comparison):
    boxes, scores = random_boxes(1500, seed=7, sizes=(5, 60))
    classes = torch.randint(0, 5, (1500,), generator=torch.Generator().manual_seed(7))
    ours = N.batched_nms(boxes, scores, classes, 0.3)
    theirs = torchvision.ops.batched_nms(boxes, scores, classes, 0.3)
    assert sorted(ours.tolist()) == sorted(theirs.tolist())
    assert torch.equal(scores[ours], scores[theirs])


def test_denormal_areas():
    """Two boxes whose union is a denormal number of square pixels still overlap fully."""
    boxes = t([[0, 0, 1e-45, 300], [0, 0, 1e-45, 300]])
    assert torch.equal(N.nms(boxes, t([1, 0.5]), 0.5), torchvision.ops.nms(boxes, t([1, 0.5]), 0.5))


# --------------------------------------------------------------------------- batched


def test_batched_known_answer():
    boxes = t([[0, 0, 10, 10], [0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]])
    scores = t([0.5, 0.9, 0.8, 0.7])
    classes = torch.tensor([0, 1, 1, 0])
    # class 1: box 1 suppresses box 2; class 0: boxes 0 and 3 do not overlap; box 0 and box 1
    # are identical but of different classes. Result in decreasing score order.
    assert N.batched_nms(boxes, scores, classes, 0.5).tolist() == [1, 3, 0]


@given(
    data=grid_boxes(), threshold=thresholds, n_classes=st.integers(1, 4), seed=st.integers(0, 99)
)
def test_batched_matches_torchvision(data, threshold, n_classes, seed):
    """Small inputs: torchvision uses its coordinate-offset trick, exact on integer corners."""
    boxes, scores = data
    g = torch.Generator().manual_seed(seed)
    classes = torch.randint(0, n_classes, (len(boxes),), generator=g)
    expected = torchvision.ops.batched_nms(boxes, scores, classes, threshold)
    assert torch.equal(N.batched_nms(boxes, scores, classes, threshold), expected)


@given(data=float_boxes(), threshold=thresholds, seed=st.integers(0, 99))
def test_batched_is_nms_per_class(data, threshold, seed):
    boxes, scores = data
    classes = torch.randint(-2, 3, (len(boxes),), generator=torch.Generator().manual_seed(seed))
    kept = N.batched_nms(boxes, scores, classes, threshold)
    per_class = torch.cat(
        [
            torch.nonzero(classes == c).flatten()[
                N.nms(boxes[classes == c], scores[classes == c], threshold)
            ]
            for c in classes.unique()
        ]
        + [torch.zeros(0, dtype=torch.int64)]
    )
    assert sorted(kept.tolist()) == sorted(per_class.tolist())
    # decreasing score, equal scores by index
    order = sorted(kept.tolist(), key=lambda i: (-scores[i].item(), i))
    assert kept.tolist() == order


def test_batched_matches_torchvision_per_class_path():
    """More than 1000 boxes: torchvision loops over classes; its final sort is not stable, so
    compare the kept set and the scores in order."""
    g = torch.Generator().manual_seed(1)
    centre = torch.rand(1200, 2, generator=g) * 400
    size = torch.rand(1200, 2, generator=g) * 100 + 5
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    scores = torch.rand(1200, generator=g).mul(20).round()
    classes = torch.randint(0, 7, (1200,), generator=g)
    ours = N.batched_nms(boxes, scores, classes, 0.5)
    theirs = torchvision.ops.batched_nms(boxes, scores, classes, 0.5)
    assert sorted(ours.tolist()) == sorted(theirs.tolist())
    assert torch.equal(scores[ours], scores[theirs])


def test_batched_handles_negative_coordinates():
    """The coordinate-offset trick needs corners >= 0: here it shifts class 1 onto class 0."""
    boxes = t([[-100, -100, 0, 0], [-100, -100, 0, 0]])  # the trick moves class 1 by 1 px
    scores, classes = t([1.0, 0.9]), torch.tensor([0, 1])
    assert N.batched_nms(boxes, scores, classes, 0.5).tolist() == [0, 1]
    assert torchvision.ops.batched_nms(boxes, scores, classes, 0.5).tolist() == [0]


# --------------------------------------------------------------------------- naive loop


@given(data=float_boxes(), threshold=thresholds)
def test_naive_loop_matches(data, threshold):
    boxes, scores = data
    assert torch.equal(nms_loop(boxes, scores, threshold), N.nms(boxes, scores, threshold))


@given(data=grid_boxes(), threshold=thresholds)
def test_naive_loop_matches_with_ties(data, threshold):
    boxes, scores = data
    assert torch.equal(nms_loop(boxes, scores, threshold), N.nms(boxes, scores, threshold))


# --------------------------------------------------------------------------- validation


def test_rejects_bad_input():
    boxes, scores = t([[0, 0, 1, 1], [0, 0, 2, 2]]), t([1, 0.5])
    with pytest.raises(ValueError, match=r"boxes must have shape \[N, 4\]"):
        N.nms(torch.zeros(2, 5), scores, 0.5)
    with pytest.raises(ValueError, match=r"boxes\[1\].*x2 < x1"):
        N.nms(t([[0, 0, 1, 1], [5, 0, 4, 1]]), scores, 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \[N\] = \[2\].*got \[3\]"):
        N.nms(boxes, t([1, 2, 3]), 0.5)
    with pytest.raises(ValueError, match=r"scores\[1\] is NaN"):
        N.nms(boxes, t([1, float("nan")]), 0.5)
    with pytest.raises(TypeError, match="scores must be a torch.Tensor"):
        N.nms(boxes, [1, 0.5], 0.5)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="iou_threshold must be in"):
            N.nms(boxes, scores, bad)
    with pytest.raises(TypeError, match="iou_threshold must be a number"):
        N.nms(boxes, scores, "0.5")
    with pytest.raises(ValueError, match=r"classes must have shape \[N\] = \[2\]"):
        N.batched_nms(boxes, scores, torch.zeros(3, dtype=torch.int64), 0.5)
    with pytest.raises(TypeError, match="classes must be an integer tensor"):
        N.batched_nms(boxes, scores, torch.zeros(2), 0.5)


# --------------------------------------------------------------------------- exercise check


def greedy(boxes, scores, threshold, *, by_index=False, inclusive=False, plus_one=False):
    """A learner's NMS with switchable mistakes."""
    order = torch.arange(len(boxes)) if by_index else scores.sort(descending=True, stable=True)[1]
    pad = 1.0 if plus_one else 0.0
    area = (boxes[:, 2] - boxes[:, 0] + pad) * (boxes[:, 3] - boxes[:, 1] + pad)
    keep = []
    while len(order):
        i, order = order[0], order[1:]
        keep.append(int(i))
        w = torch.minimum(boxes[i, 2], boxes[order, 2]) - torch.maximum(
            boxes[i, 0], boxes[order, 0]
        )
        h = torch.minimum(boxes[i, 3], boxes[order, 3]) - torch.maximum(
            boxes[i, 1], boxes[order, 1]
        )
        inter = (w + pad).clamp(min=0) * (h + pad).clamp(min=0)
        iou = inter / (area[i] + area[order] - inter)
        order = order[~(iou >= threshold if inclusive else iou > threshold)]
    return torch.tensor(keep, dtype=torch.int64)


def test_check_nms_passes_correct_functions():
    assert check_nms(N.nms, verbose=False)
    assert check_nms(nms_loop, verbose=False)
    assert check_nms(greedy, verbose=False)


@pytest.mark.parametrize(
    ("mistake", "case"),
    [
        ({"by_index": True}, "sort by the scores, not by the indices"),
        ({"inclusive": True}, "suppress only when IoU > threshold"),
        ({"plus_one": True}, "no '+1' in widths and areas"),
    ],
)
def test_check_nms_names_the_mistake(mistake, case):
    result = check_nms(lambda *args: greedy(*args, **mistake), verbose=False)
    assert not result
    assert any(f"[{case}]" in failure for failure in result.failures)
