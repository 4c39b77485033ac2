"""WPOD-Net: geometry (warped unit square, homography, rectification, quadrilateral IoU), targets,
loss (hand-computed answers, a naive loop, gradients), network, decoding, the detector's
contract, evaluation, training from the sample pool, and the lesson's exercise checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.path import Path

from tutorial_det.boxes import box_iou
from tutorial_det.data.plates import PlatesDataset, view_quad
from tutorial_det.exercises.wpod import check_warp_unit_square, check_wpod_loss
from tutorial_det.models import build_model
from tutorial_det.wpod import (
    PAPER_ALPHA,
    PLATES_ALPHA,
    UNIT_SQUARE,
    WPODDetector,
    WPODNet,
    alpha_for_sizes,
    decode_detections,
    encode_targets,
    evaluate_plates,
    homography,
    positive_cells,
    quad_area,
    quad_iou,
    rectify,
    train_on_plates,
    warp_unit_square,
    wpod_loss,
    wpod_loss_terms,
)
from tutorial_det.wpod.targets import from_cell_frame, to_cell_frame

IDENTITY = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def square(x0, y0, side):
    return [[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]]


def random_view_quads(n, seed, scale=40.0, offset=50.0):
    """n convex quadrilaterals: plates seen from random viewpoints (PlatesDataset's geometry)."""
    rng = np.random.default_rng(seed)
    quads = []
    for _ in range(n):
        quad = view_quad(
            rng.uniform(1.5, 4.0),
            rng.uniform(-0.8, 0.8),
            rng.uniform(-0.5, 0.5),
            rng.uniform(-0.6, 0.6),
            rng.uniform(1.5, 4.0),
        )
        quads.append(quad * scale * rng.uniform(0.5, 1.5) + offset + rng.uniform(-15, 15, 2))
    return torch.tensor(np.array(quads), dtype=torch.float64)


# --------------------------------------------------------------------------- geometry


def test_warp_unit_square_known_answers():
    assert torch.equal(warp_unit_square(torch.tensor(IDENTITY)), UNIT_SQUARE)
    # x scaled by 4, y by 2, shifted by (1, -3): corners (-2 + 1, -1 - 3), (2 + 1, -1 - 3), ...
    got = warp_unit_square(torch.tensor([4.0, 0.0, 1.0, 0.0, 2.0, -3.0]))
    assert torch.equal(got, torch.tensor([[-1.0, -4.0], [3.0, -4.0], [3.0, -2.0], [-1.0, -2.0]]))
    # shear b = 1: x gains y; corner (0.5, 0.5) -> (1.0, 0.5)
    got = warp_unit_square(torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0]))
    assert torch.equal(got[2], torch.tensor([1.0, 0.5]))
    # negative diagonal terms are clamped at 0: no mirroring, the square collapses instead
    got = warp_unit_square(torch.tensor([-2.0, 0.0, 0.0, 0.0, -1.0, 0.0]))
    assert torch.equal(got, torch.zeros(4, 2))


def test_warp_unit_square_batches_and_rejects_bad_shapes():
    affine = torch.randn(2, 3, 5, 6)
    assert warp_unit_square(affine).shape == (2, 3, 5, 4, 2)
    with pytest.raises(ValueError, match=r"\[\.\.\., 6\]"):
        warp_unit_square(torch.zeros(3, 5))


def test_homography_maps_the_points():
    src = random_view_quads(6, seed=1)
    dst = random_view_quads(6, seed=2)
    h = homography(src, dst)
    assert h.shape == (6, 3, 3)
    mapped = torch.cat((src, torch.ones(6, 4, 1, dtype=src.dtype)), dim=2) @ h.transpose(1, 2)
    torch.testing.assert_close(mapped[..., :2] / mapped[..., 2:], dst, atol=1e-6, rtol=0)
    unit = torch.tensor(square(0.0, 0.0, 1.0))
    scaled = homography(unit, torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 3.0], [0.0, 3.0]]))
    torch.testing.assert_close(scaled, torch.diag(torch.tensor([2.0, 3.0, 1.0])))


def test_homography_rejects_collinear_points_and_bad_shapes():
    line = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.0, 5.0]])
    good = torch.tensor(square(0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="point set 1"):
        homography(torch.stack((good, line)), torch.stack((good, good)))
    with pytest.raises(ValueError, match="differ in shape"):
        homography(good, torch.stack((good, good)))
    with pytest.raises(ValueError, match=r"\[\.\.\., 4, 2\]"):
        homography(torch.zeros(3, 2), torch.zeros(3, 2))


def test_rectify_crops_an_axis_aligned_plate_exactly_and_follows_corner_order():
    image = torch.rand(3, 20, 30)
    corners = torch.tensor([[[5.0, 4.0], [17.0, 4.0], [17.0, 10.0], [5.0, 10.0]]])
    out = rectify(image, corners, size=(6, 12))
    assert out.shape == (1, 3, 6, 12)
    torch.testing.assert_close(out[0], image[:, 4:10, 5:17], atol=1e-5, rtol=0)
    # Corners listed starting from the bottom-left: the plate reads rotated by 90 degrees.
    turned = corners[:, [3, 0, 1, 2]]
    out = rectify(image, turned, size=(12, 6))
    torch.testing.assert_close(
        out[0], image[:, 4:10, 5:17].rot90(-1, dims=(1, 2)), atol=1e-5, rtol=0
    )


def test_rectify_empty_and_bad_input():
    image = torch.rand(3, 16, 16)
    assert rectify(image, torch.zeros(0, 4, 2), size=(8, 24)).shape == (0, 3, 8, 24)
    with pytest.raises(ValueError, match="image"):
        rectify(torch.rand(16, 16), torch.zeros(0, 4, 2))
    with pytest.raises(ValueError, match="size"):
        rectify(image, torch.zeros(0, 4, 2), size=(8, 0))
    with pytest.raises(ValueError, match=r"corners must have shape \[N, 4, 2\]"):
        rectify(image, torch.zeros(2, 4))


def test_quad_iou_known_areas():
    a = torch.tensor([square(0.0, 0.0, 2.0)])
    b = torch.tensor([square(1.0, 1.0, 2.0), square(1.0, 0.0, 2.0), square(5.0, 5.0, 1.0)])
    # 1 / (4 + 4 - 1); 2 / (4 + 4 - 2); disjoint
    torch.testing.assert_close(quad_iou(a, b), torch.tensor([[1 / 7, 1 / 3, 0.0]]))
    diamond = torch.tensor([[[1.0, 0.0], [2.0, 1.0], [1.0, 2.0], [0.0, 1.0]]])
    assert quad_area(diamond).item() == 2.0
    assert quad_iou(a, diamond).item() == pytest.approx(0.5)
    # orientation and starting corner do not matter
    assert quad_iou(diamond.flip(1), a.roll(1, dims=1)).item() == pytest.approx(0.5)
    # a triangle-like intersection: the square's corner cut by a rotated square (area 1/2)
    tilted = torch.tensor([[[2.0, 1.0], [3.0, 2.0], [2.0, 3.0], [1.0, 2.0]]])
    assert quad_iou(a, tilted).item() == pytest.approx(0.5 / (4 + 2 - 0.5))


def test_quad_iou_degenerate_empty_and_non_convex():
    a = torch.tensor([square(0.0, 0.0, 2.0)])
    flat = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]])
    assert quad_iou(a, flat).item() == 0.0
    assert quad_iou(flat, flat).item() == 0.0
    assert quad_iou(a, torch.zeros(0, 4, 2)).shape == (1, 0)
    assert quad_iou(torch.zeros(0, 4, 2), a).shape == (0, 1)
    bow_tie = torch.tensor([[[0.0, 0.0], [2.0, 2.0], [2.0, 0.0], [0.0, 2.0]]])
    with pytest.raises(ValueError, match=r"quads2\[0\].*not a convex"):
        quad_iou(a, bow_tie)
    with pytest.raises(ValueError, match=r"quads1\[0\].*not finite"):
        quad_iou(torch.full((1, 4, 2), float("nan")), a)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 50), st.floats(0, 50), st.floats(0.5, 40), st.floats(0.5, 40)),
        min_size=1,
        max_size=5,
    )
)
def test_quad_iou_equals_box_iou_on_rectangles(rects):
    boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in rects], dtype=torch.float64)
    quads = torch.stack(
        (boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [2, 3]], boxes[:, [0, 3]]), dim=1
    )
    torch.testing.assert_close(quad_iou(quads, quads.flip(0)), box_iou(boxes, boxes.flip(0)))


def test_quad_iou_matches_a_rasterised_mask():
    quads = random_view_quads(12, seed=3)
    step = 0.1
    xs = torch.arange(0, 110, step) + step / 2
    points = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), dim=-1).reshape(-1, 2).numpy()
    masks = [Path(q.numpy()).contains_points(points) for q in quads]
    ours = quad_iou(quads[:6], quads[6:])
    for i in range(6):
        for j in range(6):
            inter = np.logical_and(masks[i], masks[6 + j]).sum()
            union = np.logical_or(masks[i], masks[6 + j]).sum()
            assert ours[i, j].item() == pytest.approx(inter / union, abs=0.01)
    assert (ours > 0).sum() >= 10  # the test really compares overlapping pairs
    areas = quad_area(quads)
    raster = torch.tensor([m.sum() * step * step for m in masks], dtype=torch.float64)
    torch.testing.assert_close(areas, raster, rtol=0.02, atol=0)


# --------------------------------------------------------------------------- targets


def test_alpha_rule():
    assert alpha_for_sizes(40, 208) == PAPER_ALPHA == 7.75
    assert PLATES_ALPHA == 4.25
    with pytest.raises(ValueError, match="smallest"):
        alpha_for_sizes(50, 40)


def box_quad(cx, cy, w, h):
    return [
        [cx - w / 2, cy - h / 2],
        [cx + w / 2, cy - h / 2],
        [cx + w / 2, cy + h / 2],
        [cx - w / 2, cy + h / 2],
    ]


def test_positive_cells_iou_rule():
    # A 48 x 16 plate centred on cell (2, 3): shifted one cell sideways, the same-size box
    # overlaps 32 x 16 of 48 x 16 -> IoU 512 / 1024 = 0.5 > 0.3; two cells: 256 / 1280 = 0.2.
    # One cell up or down: no overlap.
    owner = positive_cells(torch.tensor([box_quad(56, 40, 48, 16)]), (8, 8))
    assert owner[2].tolist() == [-1, -1, 0, 0, 0, -1, -1, -1]
    assert int((owner >= 0).sum()) == 3


def test_positive_cells_centre_rule_for_thin_plates_and_conflicts():
    # 20 x 6 plate centred at (60, 45): the best cell's IoU is 16 / 224 < 0.3, so only the
    # centre rule makes cell (2, 3) positive.
    owner = positive_cells(torch.tensor([box_quad(60, 45, 20, 6)]), (8, 8))
    assert (owner >= 0).nonzero().tolist() == [[2, 3]]
    # Two plates in a row: cell (1, 3), centre x = 56, has IoU 32 * 16 / (2 * 768 - 512) = 0.5
    # with the first plate and 32 * 16 / (2 * 1024 - 512) = 0.33 with the second: it goes to the
    # first. Cell (1, 0) is two cells from the first plate's centre: IoU 0.2, not positive.
    plates = torch.tensor([box_quad(40, 24, 48, 16), box_quad(88, 24, 64, 16)])
    owner = positive_cells(plates, (4, 8))
    assert owner[1].tolist() == [-1, 0, 0, 0, 1, 1, 1, 1]
    assert positive_cells(torch.zeros(0, 4, 2), (3, 5)).eq(-1).all()


def test_encode_targets_values():
    corners = torch.tensor([box_quad(56, 40, 48, 16)])
    target = encode_targets([corners, torch.zeros(0, 4, 2)], (8, 8), alpha=2.0)
    assert target.shape == (2, 9, 8, 8)
    assert target[1].abs().sum() == 0
    assert target[0, 0].sum() == 3
    # cell (2, 3) has centre (3.5, 2.5) cells = (56, 40) px; top-left corner (32, 32) px
    # -> (32 / 16 - 3.5, 32 / 16 - 2.5) / 2 = (-0.75, -0.25)
    assert target[0, 1:3, 2, 3].tolist() == [-0.75, -0.25]
    # cell (2, 4), one to the right: x shifted by -1 / alpha
    assert target[0, 1:3, 2, 4].tolist() == [-1.25, -0.25]
    # non-object cells carry zeros
    assert target[0, 1:, 0, 0].abs().sum() == 0


def test_cell_frame_round_trip():
    points = torch.rand(5, 4, 2) * 128
    rows, cols = torch.randint(0, 8, (5,)), torch.randint(0, 8, (5,))
    local = to_cell_frame(points, rows, cols, alpha=3.0, stride=16)
    torch.testing.assert_close(from_cell_frame(local, rows, cols, 3.0, 16), points)


def test_encode_targets_rejects_bad_input():
    with pytest.raises(TypeError, match="list"):
        encode_targets(torch.zeros(1, 4, 2), (4, 4))
    with pytest.raises(ValueError, match=r"corners\[1\]"):
        encode_targets([torch.zeros(0, 4, 2), torch.zeros(2, 3, 2)], (4, 4))
    with pytest.raises(ValueError, match="alpha"):
        encode_targets([torch.zeros(0, 4, 2)], (4, 4), alpha=0)


# --------------------------------------------------------------------------- loss


def one_cell(p_object, affine, flag, corners):
    pred = torch.tensor([p_object, 1 - p_object, *affine]).reshape(1, 8, 1, 1)
    target = torch.tensor([flag, *corners]).reshape(1, 9, 1, 1)
    return pred, target


def test_wpod_loss_hand_computed():
    # object cell: the identity warp gives the unit square; the target is it shifted by 0.1 in
    # x, so L1 = 4 * 0.1; the object log loss is -log(0.8).
    shifted = (UNIT_SQUARE + torch.tensor([0.1, 0.0])).flatten().tolist()
    pred, target = one_cell(0.8, IDENTITY, 1.0, shifted)
    assert wpod_loss(pred, target).item() == pytest.approx(0.4 - math.log(0.8), rel=1e-6)
    # non-object cell: only -log(p_not_object) = -log(0.2); the affine values do not count
    pred, target = one_cell(0.8, [3.0, 1, 2, 3, 4, 5], 0.0, shifted)
    assert wpod_loss(pred, target).item() == pytest.approx(-math.log(0.2), rel=1e-6)
    # clamped diagonal: a = -2 acts as 0, every x becomes tx = 0; |x| of the unit square's
    # corners sums to 4 * 0.5 = 2, y is exact; p_object = 1 costs nothing
    pred, target = one_cell(1.0, [-2.0, 0, 0, 0, 1, 0], 1.0, UNIT_SQUARE.flatten().tolist())
    assert wpod_loss(pred, target).item() == pytest.approx(2.0)
    # p = 0 on an object cell: clamped inside the log, -log(1e-9), finite
    pred, target = one_cell(0.0, IDENTITY, 1.0, UNIT_SQUARE.flatten().tolist())
    assert wpod_loss(pred, target).item() == pytest.approx(-math.log(1e-9), rel=1e-5)


def naive_wpod_loss(pred, target):
    """Cell by cell with Python numbers: per-image sums [B]."""
    out = []
    for b in range(pred.shape[0]):
        total = 0.0
        for i in range(pred.shape[2]):
            for j in range(pred.shape[3]):
                p = pred[b, :, i, j].tolist()
                t = target[b, :, i, j].tolist()
                if t[0] == 1:
                    a, bb, tx, c, d, ty = p[2:]
                    a, d = max(a, 0.0), max(d, 0.0)
                    for k, (qx, qy) in enumerate(UNIT_SQUARE.tolist()):
                        total += abs(a * qx + bb * qy + tx - t[1 + 2 * k])
                        total += abs(c * qx + d * qy + ty - t[2 + 2 * k])
                    total -= math.log(max(p[0], 1e-9))
                else:
                    total -= math.log(max(p[1], 1e-9))
        out.append(total)
    return torch.tensor(out)


def random_pred_target(batch=3, height=4, width=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(batch, 2, height, width, generator=g), dim=1)
    pred = torch.cat((probs, torch.randn(batch, 6, height, width, generator=g)), dim=1)
    flag = (torch.rand(batch, 1, height, width, generator=g) < 0.3).float()
    target = torch.cat((flag, torch.randn(batch, 8, height, width, generator=g) * flag), dim=1)
    return pred, target


def test_wpod_loss_matches_a_naive_loop_and_reductions():
    pred, target = random_pred_target()
    per_image = wpod_loss(pred, target, reduction="none")
    assert per_image.shape == (3,)
    torch.testing.assert_close(per_image, naive_wpod_loss(pred, target), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(wpod_loss(pred, target), per_image.mean())
    torch.testing.assert_close(wpod_loss(pred, target, reduction="sum"), per_image.sum())
    terms = wpod_loss_terms(pred, target)
    torch.testing.assert_close(sum(terms.values()), per_image)
    empty = wpod_loss(torch.zeros(0, 8, 2, 2), torch.zeros(0, 9, 2, 2))
    assert empty.item() == 0.0


def test_wpod_loss_gradient():
    pred, target = random_pred_target(batch=2, height=2, width=3, seed=1)
    pred = pred.double().requires_grad_()
    wpod_loss(pred, target.double()).backward()
    assert torch.isfinite(pred.grad).all()
    # affine values of non-object cells get no gradient
    assert (pred.grad[:, 2:] * (1 - target[:, :1].double())).abs().sum() == 0
    # away from the clamp's kink, the gradient is the analytic one
    affine = torch.tensor(IDENTITY, dtype=torch.float64).reshape(1, 6, 1, 1)
    params = (
        torch.cat((torch.tensor([0.7, 0.3]).double().reshape(1, 2, 1, 1), affine), 1) + 0.01
    ).requires_grad_()
    fixed_target = torch.cat((torch.ones(1, 1, 1, 1), torch.randn(1, 8, 1, 1)), 1).double()
    assert torch.autograd.gradcheck(lambda p: wpod_loss(p, fixed_target), (params,))


def test_wpod_loss_rejects_bad_input():
    pred, target = random_pred_target()
    with pytest.raises(ValueError, match=r"pred must have shape \[B, 8, H, W\]"):
        wpod_loss(pred[:, :7], target)
    with pytest.raises(ValueError, match=r"target must have shape \[B, 9, H, W\]"):
        wpod_loss(pred, target[0])
    with pytest.raises(ValueError, match="agree"):
        wpod_loss(pred, target[:, :, :3])
    with pytest.raises(ValueError, match="reduction"):
        wpod_loss(pred, target, reduction="avg")
    with pytest.raises(TypeError, match="pred"):
        wpod_loss(pred.numpy(), target)


# --------------------------------------------------------------------------- network and model


def test_network_layout_and_shapes():
    net = WPODNet(width=0.25).eval()
    out = net(torch.rand(2, 3, 64, 96))
    assert out.shape == (2, 8, 4, 6)
    torch.testing.assert_close(out[:, 0] + out[:, 1], torch.ones(2, 4, 6))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 21 and all(c.kernel_size == (3, 3) for c in convs)
    in_blocks = sum(
        isinstance(m, torch.nn.Conv2d)
        for block in net.modules()
        if type(block).__name__ == "ResidualBlock"
        for m in block.modules()
    )
    assert in_blocks == 14
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 4
    assert convs[-3].out_channels == 32  # 128 * 0.25
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.rand(1, 3, 40, 48))
    with pytest.raises(ValueError, match="width"):
        WPODNet(width=0)


def test_detector_training_contract(device):
    torch.manual_seed(0)
    plates = PlatesDataset(3, seed=5, image_size=64, plate_width=(20, 48))
    images, targets = zip(*[plates[i] for i in range(3)], strict=True)
    images = [image.to(device) for image in images]
    model = WPODDetector(width=0.25).to(device).train()
    losses = model(list(images), list(targets))
    assert set(losses) == {"loss_affine", "loss_object", "loss_background"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    model.eval()  # same BN statistics path for both computations below
    with torch.no_grad():
        output = model.head_outputs(list(images))
        target = encode_targets([t["corners"] for t in targets], output.shape[-2:], model.alpha)
        expected = wpod_loss(output, target)
        model.train()
        model.net.eval()
        got = sum(model(list(images), list(targets)).values())
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="corners"):
        model(list(images), [{"boxes": t["boxes"]} for t in targets])
    with pytest.raises(ValueError, match="one target per image"):
        model(list(images))


def test_detector_eval_contract_pads_mixed_sizes(device):
    model = WPODDetector(width=0.25, score_thresh=0.0).to(device).eval()
    out = model([torch.rand(3, 50, 70, device=device), torch.rand(3, 64, 64, device=device)])
    assert len(out) == 2
    for det, (h, w) in zip(out, [(50, 70), (64, 64)], strict=True):
        assert set(det) == {"boxes", "labels", "scores", "corners"}
        d = len(det["scores"])
        assert d >= 1
        assert det["boxes"].shape == (d, 4) and det["corners"].shape == (d, 4, 2)
        assert (det["labels"] == 1).all()
        assert (det["boxes"][:, 2] <= w).all() and (det["boxes"][:, 3] <= h).all()
    with pytest.raises(ValueError, match=r"images\[1\]"):
        model([torch.rand(3, 32, 32, device=device), torch.rand(32, 32, device=device)])


def test_registry_builds_wpod():
    model = build_model("wpod", 2, width=0.25)
    assert isinstance(model, WPODDetector) and model.net.width == 0.25
    with pytest.raises(ValueError, match="num_classes must be 2"):
        build_model("wpod", 3)


# --------------------------------------------------------------------------- decoding


def test_decode_known_cell():
    output = torch.zeros(1, 8, 3, 4)
    output[0, 1] = 1.0
    output[0, :2, 1, 2] = torch.tensor([0.9, 0.1])
    output[0, 2:, 1, 2] = torch.tensor(IDENTITY)
    (det,) = decode_detections(output, alpha=2.0, stride=16)
    # cell (1, 2): centre (2.5, 1.5) cells; corners (+-0.5 * 2 + centre) * 16
    expected = torch.tensor([[[24.0, 8.0], [56.0, 8.0], [56.0, 40.0], [24.0, 40.0]]])
    torch.testing.assert_close(det["corners"], expected)
    torch.testing.assert_close(det["boxes"], torch.tensor([[24.0, 8.0, 56.0, 40.0]]))
    assert det["scores"].tolist() == [pytest.approx(0.9)]


def test_decode_inverts_encoding_and_suppresses_duplicates():
    # A rotated rectangle is a parallelogram: its exact affine exists at every positive cell.
    angle = 0.3
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    corners = (torch.tensor(box_quad(0, 0, 60, 20)) @ rot.T + torch.tensor([64.0, 60.0]))[None]
    target = encode_targets([corners], (8, 8), alpha=PLATES_ALPHA)
    local = target[0, 1:].permute(1, 2, 0).reshape(8, 8, 4, 2)
    tl, tr, bl = local[..., 0, :], local[..., 1, :], local[..., 3, :]
    centre = local.mean(dim=2)
    affine = torch.stack(
        (
            tr[..., 0] - tl[..., 0],
            bl[..., 0] - tl[..., 0],
            centre[..., 0],
            tr[..., 1] - tl[..., 1],
            bl[..., 1] - tl[..., 1],
            centre[..., 1],
        ),
        dim=0,
    )
    assert bool((affine[0] * target[0, 0] >= 0).all()) and bool(
        (affine[4] * target[0, 0] >= 0).all()
    )
    flag = target[0, 0]
    output = torch.cat((torch.stack((flag * 0.9, 1 - flag * 0.9)), affine * flag))[None]
    torch.testing.assert_close(
        wpod_loss_terms(output, target)["affine"], torch.zeros(1), atol=1e-4, rtol=0
    )
    (det,) = decode_detections(output, alpha=PLATES_ALPHA, image_sizes=[(128, 128)])
    assert int(flag.sum()) > 1 and len(det["scores"]) == 1  # duplicates suppressed
    torch.testing.assert_close(det["corners"], corners, atol=1e-4, rtol=0)


def test_decode_thresholds_and_empty_output():
    output = torch.zeros(2, 8, 2, 2)
    output[:, 0] = 0.4
    dets = decode_detections(output, score_thresh=0.5)
    assert [len(d["scores"]) for d in dets] == [0, 0]
    assert dets[0]["boxes"].shape == (0, 4) and dets[0]["corners"].shape == (0, 4, 2)
    assert len(decode_detections(output, score_thresh=0.3)[0]["scores"]) >= 1
    with pytest.raises(ValueError, match=r"\[B, 8, H, W\]"):
        decode_detections(torch.zeros(1, 6, 2, 2))
    with pytest.raises(ValueError, match="image_sizes"):
        decode_detections(output, image_sizes=[(32, 32)])


# --------------------------------------------------------------------------- evaluation


def test_evaluate_plates_counts_and_corner_error():
    truth = torch.tensor([square(10.0, 10.0, 20.0), square(50.0, 50.0, 20.0)])
    shifted = truth[:1] + torch.tensor([1.0, 0.0])  # IoU 19 / 21, corner error 1 px
    elsewhere = torch.tensor([square(90.0, 0.0, 10.0)])
    predictions = [
        {"corners": torch.cat((elsewhere, shifted)), "scores": torch.tensor([0.9, 0.8])},
        {"corners": torch.zeros(0, 4, 2), "scores": torch.zeros(0)},
    ]
    targets = [{"corners": truth}, {"corners": truth[:1]}]
    result = evaluate_plates(predictions, targets)
    assert result["plates"] == 3 and result["detected"] == 1
    assert result["detection_rate"] == pytest.approx(1 / 3)
    assert result["false_positives"] == 1
    assert result["corner_error_px"] == pytest.approx(1.0)
    none = evaluate_plates([predictions[1]], [targets[1]])
    assert none["detected"] == 0 and math.isnan(none["corner_error_px"])
    with pytest.raises(ValueError, match="predictions"):
        evaluate_plates(predictions, targets[:1])


# --------------------------------------------------------------------------- training


def test_training_from_the_sample_pool_lowers_the_loss():
    torch.manual_seed(0)
    plates = PlatesDataset(1, image_size=64, plate_width=(24, 50), clutter=False)
    model = WPODDetector(width=0.25, alpha=alpha_for_sizes(24, 50))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the pool's worker thread needs a core of its own
    try:
        history = train_on_plates(
            model,
            plates,
            batch_size=8,
            lr=5e-3,
            max_steps=25,
            pool_size=16,
            progress=False,
            log_every=None,
            device="cpu",
        )
    finally:
        torch.set_num_threads(threads)
    assert history.step == list(range(1, 26))
    assert set(history.terms) == {"loss_affine", "loss_object", "loss_background"}
    first, last = np.mean(history.loss[:5]), np.mean(history.loss[-5:])
    assert last < 0.6 * first


# --------------------------------------------------------------------------- exercises


def test_exercise_checks_accept_the_reference_and_catch_mistakes():
    assert check_warp_unit_square(warp_unit_square, verbose=False)
    assert check_wpod_loss(wpod_loss, verbose=False)

    def no_clamp(affine):
        a, b, tx, c, d, ty = affine.unbind(-1)
        q = UNIT_SQUARE
        x = a[..., None] * q[:, 0] + b[..., None] * q[:, 1] + tx[..., None]
        y = c[..., None] * q[:, 0] + d[..., None] * q[:, 1] + ty[..., None]
        return torch.stack((x, y), -1)

    def wrong_order(affine):
        return warp_unit_square(affine)[..., [0, 1, 3, 2], :]

    def mean_not_sum(pred, target, reduction="mean"):
        return wpod_loss(pred, target, reduction="none").mean() / pred[0, 0].numel()

    def no_background(pred, target, reduction="mean"):
        return (
            wpod_loss_terms(pred, target)["affine"].mean()
            + wpod_loss_terms(pred, target)["object"].mean()
        )

    assert not check_warp_unit_square(no_clamp, verbose=False)
    assert not check_warp_unit_square(wrong_order, verbose=False)
    assert not check_wpod_loss(mean_not_sum, verbose=False)
    assert not check_wpod_loss(no_background, verbose=False)


def test_draw_quads_adds_one_outline_per_plate():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tutorial_det.wpod import draw_quads

    fig, ax = plt.subplots()
    quads = torch.tensor([square(0.0, 0.0, 10.0), square(20.0, 5.0, 4.0)])
    patches = draw_quads(ax, quads, scores=[0.9, 0.5])
    assert len(patches) == 2 and len(ax.patches) == 2 and len(ax.texts) == 2
    assert patches[1].get_xy()[:4].tolist() == quads[1].tolist()
    with pytest.raises(ValueError, match="scores has 1 entries for 2 plates"):
        draw_quads(ax, quads, scores=[0.9])
    plt.close(fig)
