"""tutorial_det.boxes: known answers, properties, edge cases and torchvision cross-checks."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from conftest import t, xyxy_boxes
from hypothesis import assume, given
from hypothesis import strategies as st
from torchvision.models.detection._utils import BoxCoder

from tutorial_det import boxes as B

# --------------------------------------------------------------------------- formats


def test_conversions_known_answers():
    xyxy = t([[10, 20, 50, 80]])
    assert B.xyxy_to_xywh(xyxy).tolist() == [[10, 20, 40, 60]]
    assert B.xyxy_to_cxcywh(xyxy).tolist() == [[30, 50, 40, 60]]
    assert B.xyxy_to_yxyx(xyxy).tolist() == [[20, 10, 80, 50]]
    assert B.box_convert(t([[30, 50, 40, 60]]), "cxcywh", "xywh").tolist() == [[10, 20, 40, 60]]


def test_yxyx_centre_uses_height_not_width():
    """The walkthrough's yxyx_hwyx computed the y centre with the width; ours goes through xyxy."""
    yxyx = t([[20, 30, 400, 500]])  # y1, x1, y2, x2: height 380, width 470
    cx, cy, w, h = B.box_convert(yxyx, "yxyx", "cxcywh")[0].tolist()
    assert (cx, cy, w, h) == (265.0, 210.0, 470.0, 380.0)


@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
@given(boxes=xyxy_boxes())
def test_conversions_match_torchvision(fmt, boxes):
    ours = B.box_convert(boxes, "xyxy", fmt)
    theirs = torchvision.ops.box_convert(boxes, "xyxy", fmt)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(B.box_convert(theirs, fmt, "xyxy"), boxes, atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh", "yxyx"])
@given(boxes=xyxy_boxes())
def test_conversions_round_trip(fmt, boxes):
    back = B.box_convert(B.box_convert(boxes, "xyxy", fmt), fmt, "xyxy")
    torch.testing.assert_close(back, boxes, atol=1e-3, rtol=1e-5)


def test_convert_rejects_unknown_format_and_bad_shape():
    with pytest.raises(ValueError, match="in_fmt='xy'"):
        B.box_convert(t([[0, 0, 1, 1]]), "xy", "xyxy")
    with pytest.raises(ValueError, match=r"shape \[N, 4\], got \[2, 3\]"):
        B.box_convert(torch.zeros(2, 3), "xyxy", "xywh")


def test_empty_inputs_keep_their_shape():
    empty = torch.zeros(0, 4)
    for fmt in B.FORMATS:
        assert B.box_convert(empty, "xyxy", fmt).shape == (0, 4)
    assert B.box_area(empty).shape == (0,)
    assert B.box_iou(empty, t([[0, 0, 1, 1]])).shape == (0, 1)
    assert B.box_iou(t([[0, 0, 1, 1]]), empty).shape == (1, 0)
    assert B.clip_boxes(empty, (10, 10)).shape == (0, 4)
    assert B.remove_small_boxes(empty, 1).shape == (0,)
    assert B.encode_boxes(empty, empty).shape == (0, 4)
    assert B.decode_boxes(empty, empty).shape == (0, 4)


# --------------------------------------------------------------------------- IoU


def test_iou_known_answers():
    a = t([[0, 0, 10, 10]])
    b = t([[0, 0, 10, 10], [5, 0, 15, 10], [2, 2, 4, 4], [10, 0, 20, 10], [20, 20, 30, 30]])
    torch.testing.assert_close(B.box_iou(a, b), t([[1.0, 50 / 150, 4 / 100, 0.0, 0.0]]))


def test_iou_of_zero_area_boxes_is_zero_not_nan():
    point = t([[5, 5, 5, 5]])
    line = t([[0, 5, 10, 5]])
    iou = B.box_iou(torch.cat((point, line, t([[0, 0, 10, 10]]))), torch.cat((point, line)))
    assert not torch.isnan(iou).any()
    assert iou.tolist() == [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]


def test_iou_has_no_nan_gradient_for_empty_boxes():
    boxes = t([[5, 5, 5, 5], [0, 0, 4, 4]]).requires_grad_()
    B.box_iou(boxes, boxes).sum().backward()
    assert torch.isfinite(boxes.grad).all()


@given(a=xyxy_boxes(max_n=6), b=xyxy_boxes(max_n=6))
def test_iou_symmetric_and_bounded(a, b):
    iou = B.box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    torch.testing.assert_close(iou, B.box_iou(b, a).T)
    assert ((iou >= 0) & (iou <= 1 + 1e-6)).all()


@given(a=xyxy_boxes(min_n=1, min_size=0.5))
def test_iou_with_itself_is_one(a):
    torch.testing.assert_close(B.box_iou(a, a).diagonal(), torch.ones(len(a)))


@given(a=xyxy_boxes(max_n=6, min_size=0.5), b=xyxy_boxes(max_n=6, min_size=0.5))
def test_iou_matches_torchvision(a, b, device):
    a, b = a.to(device), b.to(device)
    torch.testing.assert_close(B.box_iou(a, b), torchvision.ops.box_iou(a, b))


def test_iou_rejects_bad_input_naming_the_box():
    with pytest.raises(ValueError, match=r"boxes2\[1\] = \[5.0, 5.0, 1.0, 9.0\] has x2 < x1"):
        B.box_iou(t([[0, 0, 1, 1]]), t([[0, 0, 1, 1], [5, 5, 1, 9]]))
    with pytest.raises(ValueError, match=r"boxes1\[0\].*not finite"):
        B.box_iou(t([[0, 0, float("nan"), 1]]), t([[0, 0, 1, 1]]))
    with pytest.raises(ValueError, match=r"boxes1 must have shape \[N, 4\], got \[4\]"):
        B.box_iou(t([0, 0, 1, 1]), t([[0, 0, 1, 1]]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        B.box_iou([[0, 0, 1, 1]], t([[0, 0, 1, 1]]))


def test_iou_accepts_integer_boxes():
    torch.testing.assert_close(
        B.box_iou(torch.tensor([[0, 0, 10, 10]]), torch.tensor([[5, 0, 15, 10]])), t([[1 / 3]])
    )


def random_boxes(n, seed, image=600.0, largest=400.0):
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=g) * image
    return torch.cat([corner, corner + torch.rand(n, 2, generator=g) * largest + 1], dim=1)


@pytest.mark.parametrize(("n", "m"), [(7, 300), (300, 7), (50, 50)])
def test_iou_in_pieces_is_torchvisions(monkeypatch, n, m):
    """The result is written a few rows at a time, in place: the same numbers to the bit."""
    monkeypatch.setattr(B, "IOU_PIECE", 64)
    a, b = random_boxes(n, seed=n), random_boxes(m, seed=m + 1)
    assert torch.equal(B.box_iou(a, b), torchvision.ops.box_iou(a, b))
    a, b = a.double(), b.double()
    assert torch.equal(B.box_iou(a, b), torchvision.ops.box_iou(a, b))


def test_elementwise_iou_is_the_diagonal():
    a, b = random_boxes(200, seed=0), random_boxes(200, seed=1)
    b[:50] = a[:50]  # some identical pairs, IoU 1
    expected = torchvision.ops.box_iou(a, b).diagonal()
    assert torch.equal(B.elementwise_box_iou(a, b), expected)
    assert torch.equal(B.elementwise_box_iou(a, b, validate=False), expected)
    with pytest.raises(ValueError, match="same shape"):
        B.elementwise_box_iou(a, b[:3])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_area_and_iou_in_float32(dtype):
    """float16 / bfloat16 boxes are measured in float32, as torchvision does: large boxes no
    longer overflow, and IoUs keep float32's precision."""
    big = torch.tensor([[0.0, 0, 256, 256], [128, 0, 384, 256]], dtype=dtype)
    assert B.box_area(big).tolist() == [65536.0, 65536.0]  # float16 stops at 65504
    assert torch.equal(B.box_iou(big, big), t([[1, 1 / 3], [1 / 3, 1]]))
    boxes = random_boxes(300, seed=2).to(dtype)
    ours = B.box_iou(boxes, boxes[:40])
    assert ours.dtype == torch.float32 and torch.isfinite(ours).all()
    assert torch.equal(ours, torchvision.ops.box_iou(boxes, boxes[:40]))
    assert torch.equal(B.box_area(boxes), torchvision.ops.box_area(boxes))
    # against the same boxes in float32: only the intersection's sides, subtracted in the
    # boxes' own precision (as torchvision), differ
    exact = B.box_iou(boxes.float(), boxes[:40].float())
    torch.testing.assert_close(ours, exact, atol=0.01 if dtype == torch.bfloat16 else 2e-3, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_box_ops_under_cpu_autocast(dtype):
    """Under autocast, float32 boxes give their float32 numbers, and boxes a half-precision
    layer produced give torchvision's float32 numbers."""
    boxes = random_boxes(64, seed=3)
    layer = torch.nn.Linear(4, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(4))
        layer.bias.zero_()
    outside = B.box_iou(boxes, boxes[:9])
    with torch.autocast("cpu", dtype=dtype):
        halved = layer(boxes)  # the identity, computed (and rounded) in half precision
        assert halved.dtype == dtype
        inside = B.box_iou(boxes, boxes[:9])
        ours = B.box_iou(halved, halved[:9])
        theirs = torchvision.ops.box_iou(halved, halved[:9])
        areas = B.box_area(halved)
    assert torch.equal(inside, outside)
    assert ours.dtype == torch.float32 and torch.equal(ours, theirs)
    assert torch.equal(areas, torchvision.ops.box_area(halved))
    torch.testing.assert_close(ours, outside, atol=0.03, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_deltas_decode_to_float32_boxes(dtype):
    """A head's half-precision deltas become float32 pixel coordinates: the same boxes as
    decoding the same deltas in float32 (in bfloat16 a 300 px coordinate moves in steps of 2)."""
    anchors = t([[290.0, 290, 310, 310], [0, 0, 100, 50]])
    deltas = t([[0.3, -0.2, 0.1, 0.05], [0.0, 0.0, 0.0, 0.0]]).to(dtype)
    boxes = B.decode_boxes(deltas, anchors)
    assert boxes.dtype == torch.float32
    assert torch.equal(boxes, B.decode_boxes(deltas.float(), anchors))
    assert B.decode_boxes(deltas, anchors.to(dtype)).dtype == torch.float32
    assert boxes[1].tolist() == [0.0, 0.0, 100.0, 50.0]  # zero deltas give the anchor back


def test_rejects_boolean_and_complex_boxes():
    with pytest.raises(TypeError, match=r"boxes must hold real coordinates, got a torch.bool"):
        B.box_area(torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"boxes1 must hold real coordinates, got a torch.bool"):
        B.box_iou(torch.ones(1, 4, dtype=torch.bool), t([[0, 0, 1, 1]]))
    with pytest.raises(TypeError, match="complex"):
        B.check_boxes(torch.zeros(1, 4, dtype=torch.complex64))
    with pytest.raises(TypeError, match="deltas must be a real-valued tensor"):
        B.decode_boxes(torch.zeros(1, 4, dtype=torch.bool), t([[0, 0, 1, 1]]))


def _count_host_reads(monkeypatch) -> list[str]:
    """Record every read of a tensor's value into Python (a host synchronisation on a GPU)."""
    reads: list[str] = []
    for name in ("__bool__", "__int__", "__float__", "item", "tolist"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name):
            reads.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads


def test_host_synchronisations(monkeypatch):
    """One read per validated call (the happy path's single bool), none with validate=False:
    the count a training step pays per image."""
    a, b = random_boxes(20, seed=4), random_boxes(20, seed=5)
    deltas = torch.zeros(20, 4)
    checked = [
        lambda: B.check_boxes(a),
        lambda: B.box_area(a),
        lambda: B.clip_boxes(a, (600, 800)),
        lambda: B.remove_small_boxes(a, 4.0),
        lambda: B.encode_boxes(a, b),
        lambda: B.decode_boxes(deltas, a),
    ]
    unchecked = [
        lambda: B.box_iou(a, b, validate=False),
        lambda: B.box_area(a, validate=False),
        lambda: B.clip_boxes(a, (600, 800), validate=False),
        lambda: B.remove_small_boxes(a, 4.0, validate=False),
        lambda: B.encode_boxes(a, b, validate=False),
        lambda: B.decode_boxes(deltas, a, validate=False),
        lambda: B.elementwise_box_iou(a, b, validate=False),
    ]
    reads = _count_host_reads(monkeypatch)
    for call in checked:
        reads.clear()
        call()
        assert reads == ["__bool__"]
    for call in (lambda: B.box_iou(a, b), lambda: B.elementwise_box_iou(a, b)):
        reads.clear()
        call()
        assert reads == ["__bool__", "__bool__"]  # one per box tensor
    for call in unchecked:
        reads.clear()
        call()
        assert reads == []


def test_unchecked_calls_give_the_same_numbers():
    a, b = random_boxes(30, seed=6), random_boxes(30, seed=7)
    assert torch.equal(B.box_iou(a, b, validate=False), B.box_iou(a, b))
    assert torch.equal(B.encode_boxes(a, b, validate=False), B.encode_boxes(a, b))
    deltas = B.encode_boxes(a, b)
    assert torch.equal(B.decode_boxes(deltas, b, validate=False), B.decode_boxes(deltas, b))
    size = (500, 700)
    assert torch.equal(B.clip_boxes(a, size, validate=False), B.clip_boxes(a, size))
    assert torch.equal(B.remove_small_boxes(a, 50, validate=False), B.remove_small_boxes(a, 50))


# --------------------------------------------------------------------------- clip / small boxes


def test_clip_boxes_known_answer_and_torchvision():
    boxes = t([[-10, -5, 50, 900], [700, 10, 820, 20], [10, 10, 20, 20]])
    clipped = B.clip_boxes(boxes, (600, 800))  # height 600, width 800
    assert clipped.tolist() == [[0, 0, 50, 600], [700, 10, 800, 20], [10, 10, 20, 20]]
    torch.testing.assert_close(clipped, torchvision.ops.clip_boxes_to_image(boxes, (600, 800)))


@given(boxes=xyxy_boxes(max_coord=900), h=st.integers(1, 800), w=st.integers(1, 800))
def test_clip_boxes_matches_torchvision(boxes, h, w):
    boxes = boxes - 100
    ours = B.clip_boxes(boxes, (h, w))
    torch.testing.assert_close(ours, torchvision.ops.clip_boxes_to_image(boxes, (h, w)))
    assert (ours[:, 0::2] <= w).all() and (ours[:, 1::2] <= h).all() and (ours >= 0).all()


def test_clip_boxes_rejects_bad_size():
    for bad in ((0, 10), (10, -1), (10, float("nan")), (10, float("inf")), (10,), "ab"):
        with pytest.raises(ValueError, match="image_size"):
            B.clip_boxes(t([[0, 0, 1, 1]]), bad)


def test_clip_boxes_takes_a_fractional_size_as_given():
    """(10.7, 10.2) is clamped to, not cut to (10, 10): torchvision's clip_boxes_to_image."""
    boxes = t([[-1, -1, 20, 20], [3, 3, 10.5, 10.5]])
    clipped = B.clip_boxes(boxes, (10.7, 10.2))
    assert clipped.tolist() == t([[0, 0, 10.2, 10.7], [3, 3, 10.2, 10.5]]).tolist()
    assert torch.equal(clipped, torchvision.ops.clip_boxes_to_image(boxes, (10.7, 10.2)))


def test_image_sizes_in_whole_pixels_refuse_fractions():
    assert B.check_image_size((128.0, torch.tensor(96))) == (128, 96)
    with pytest.raises(ValueError, match=r"whole pixels .* got \(10.7, 10.2\)"):
        B.check_image_size((10.7, 10.2))


def test_remove_small_boxes_keeps_boxes_at_least_min_size():
    boxes = t([[0, 0, 16, 16], [0, 0, 15.9, 30], [0, 0, 30, 15.9], [5, 5, 40, 40]])
    assert B.remove_small_boxes(boxes, 16).tolist() == [0, 3]


def test_remove_small_boxes_refuses_a_size_that_is_not_a_number():
    boxes = t([[0, 0, 16, 16]])
    with pytest.raises(ValueError, match="min_size is NaN"):
        B.remove_small_boxes(boxes, float("nan"))
    with pytest.raises(ValueError, match="min_size is NaN"):
        B.remove_small_boxes(boxes, torch.tensor(float("nan")))
    with pytest.raises(TypeError, match="min_size must be a number"):
        B.remove_small_boxes(boxes, "16")
    assert B.remove_small_boxes(boxes, torch.tensor(16.0)).tolist() == [0]


@given(boxes=xyxy_boxes(max_n=12, max_coord=40), min_size=st.floats(0, 30))
def test_remove_small_boxes_matches_torchvision(boxes, min_size):
    assert torch.equal(
        B.remove_small_boxes(boxes, min_size), torchvision.ops.remove_small_boxes(boxes, min_size)
    )


# --------------------------------------------------------------------------- box coding


def test_encode_known_answer():
    anchors = t([[0, 0, 10, 20]])  # centre (5, 10), size 10 x 20
    gt = t([[5, 10, 25, 30]])  # centre (15, 20), size 20 x 20
    deltas = B.encode_boxes(gt, anchors)
    torch.testing.assert_close(deltas, t([[1.0, 0.5, math.log(2.0), 0.0]]))
    weighted = B.encode_boxes(gt, anchors, weights=(10, 10, 5, 5))
    torch.testing.assert_close(weighted, t([[10.0, 5.0, 5 * math.log(2.0), 0.0]]))


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
@given(gt=xyxy_boxes(min_n=1, min_size=1), anchors=xyxy_boxes(min_n=1, min_size=1))
def test_coding_matches_torchvision_boxcoder(weights, gt, anchors, device):
    n = min(len(gt), len(anchors))
    gt, anchors = gt[:n].to(device), anchors[:n].to(device)
    coder = BoxCoder(weights)
    ours = B.encode_boxes(gt, anchors, weights)
    torch.testing.assert_close(ours, coder.encode_single(gt, anchors), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        B.decode_boxes(ours, anchors, weights),
        coder.decode_single(ours, anchors),
        atol=1e-3,
        rtol=1e-4,
    )


@given(gt=xyxy_boxes(min_n=1, min_size=1), anchors=xyxy_boxes(min_n=1, min_size=1))
def test_decode_inverts_encode(gt, anchors):
    n = min(len(gt), len(anchors))
    gt, anchors = gt[:n].double(), anchors[:n].double()
    deltas = B.encode_boxes(gt, anchors)
    assume(bool((deltas[:, 2:] <= B.BBOX_XFORM_CLIP).all()))  # beyond the clamp decode saturates
    torch.testing.assert_close(B.decode_boxes(deltas, anchors), gt)


def test_decode_clamps_dw_dh():
    anchors = t([[0, 0, 16, 16]])
    boxes = B.decode_boxes(t([[0, 0, 50.0, 50.0]]), anchors)
    assert torch.isfinite(boxes).all()
    torch.testing.assert_close(boxes, t([[-492.0, -492.0, 508.0, 508.0]]))  # 16 * 1000 / 16 = 1000


def test_decode_per_class_deltas_broadcast_over_anchors():
    anchors = t([[0, 0, 10, 10], [10, 10, 30, 30]])
    deltas = torch.zeros(2, 3, 4)
    boxes = B.decode_boxes(deltas, anchors)
    assert boxes.shape == (2, 3, 4)
    torch.testing.assert_close(boxes[:, 2], anchors)


def test_encode_rejects_degenerate_and_mismatched_boxes():
    with pytest.raises(ValueError, match=r"anchors\[0\].*zero width or height"):
        B.encode_boxes(t([[0, 0, 1, 1]]), t([[0, 0, 0, 5]]))
    with pytest.raises(ValueError, match=r"gt_boxes\[1\].*zero width or height"):
        B.encode_boxes(t([[0, 0, 1, 1], [3, 3, 3, 9]]), t([[0, 0, 1, 1], [0, 0, 2, 2]]))
    with pytest.raises(ValueError, match="same shape"):
        B.encode_boxes(t([[0, 0, 1, 1]]), t([[0, 0, 1, 1], [0, 0, 2, 2]]))
    with pytest.raises(ValueError, match="weights"):
        B.encode_boxes(t([[0, 0, 1, 1]]), t([[0, 0, 1, 1]]), weights=(1, 1, 0, 1))


def test_decode_refuses_non_finite_deltas_naming_the_row():
    anchors = t([[0, 0, 16, 16], [8, 8, 24, 24]])
    for bad in (float("nan"), float("inf"), -float("inf")):
        deltas = t([[0, 0, 0, 0], [0, 0, 0, 0]])
        deltas[1, 2] = bad
        with pytest.raises(ValueError, match=r"deltas\[1\] = .* is not finite"):
            B.decode_boxes(deltas, anchors)
    per_class = torch.zeros(2, 3, 4)
    per_class[1, 2, 0] = float("nan")  # row 5 of the flattened [N * K, 4] deltas
    with pytest.raises(ValueError, match=r"deltas.reshape\(-1, 4\)\[5\]"):
        B.decode_boxes(per_class, anchors)


def test_decode_refuses_bad_anchors():
    with pytest.raises(ValueError, match=r"anchors\[1\].*not finite"):
        B.decode_boxes(torch.zeros(2, 4), t([[0, 0, 1, 1], [0, float("nan"), 1, 1]]))
    with pytest.raises(ValueError, match=r"anchors\[0\].*x2 < x1"):
        B.decode_boxes(torch.zeros(1, 4), t([[5, 0, 1, 1]]))


@given(
    deltas=st.lists(
        st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=4, max_size=4
    ),
    anchor=xyxy_boxes(min_n=1, max_n=1, min_size=0.0),
)
def test_decode_of_finite_inputs_is_never_nan(deltas, anchor):
    boxes = B.decode_boxes(torch.tensor([deltas]), anchor)
    assert not boxes.isnan().any()  # a huge dx may give an infinite box, which clipping bounds
    assert torch.isfinite(B.clip_boxes(boxes, (100, 100), validate=False)).all()
