"""Augmentation: boxes and corners follow the pixels, dropped objects vanish from every entry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torchvision import tv_tensors
from torchvision.transforms import v2

from tutorial_det.data.plates import PlatesDataset, view_quad
from tutorial_det.data.shapes import ShapesDataset
from tutorial_det.data.transforms import (
    DetectionPipeline,
    RandomHorizontalFlip,
    RandomScaleCrop,
    train_transforms,
)


def centres_inside(quad: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[H, W]`` bool: pixel centres inside a convex quad whose corners run clockwise on screen."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    inside = torch.ones(height, width, dtype=torch.bool)
    for k in range(4):
        (x0, y0), (x1, y1) = quad[k].tolist(), quad[(k + 1) % 4].tolist()
        inside &= (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0) >= 0
    return inside


def mask_box(mask: torch.Tensor) -> torch.Tensor:
    ys, xs = mask.nonzero(as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


def near_boundary(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Pixels within ``pixels`` steps (4-neighbourhood) of the boundary of ``mask``. Beyond the
    image's edge counts as outside the mask (a frame wider than ``pixels``, so that ``roll``
    wraps only empty frame around), so where the mask runs off the image its edge is a boundary:
    the resize blurs it there too."""
    frame = pixels + 1
    grown = torch.nn.functional.pad(mask, (frame, frame, frame, frame), value=False)
    shrunk = grown.clone()
    for _ in range(pixels):
        g, s = grown.clone(), shrunk.clone()
        for dim, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
            grown |= g.roll(shift, dims=dim)
            shrunk &= s.roll(shift, dims=dim)
    return (grown & ~shrunk)[frame:-frame, frame:-frame]


def test_near_boundary_counts_the_image_edge_as_a_boundary():
    """A mask that runs off both sides of the image has its rim at the image's edges too (with
    wrap-around, an object touching both sides would look like the interior there)."""
    mask = torch.zeros(6, 8, dtype=torch.bool)
    mask[1:5] = True  # rows 1-4, every column
    rim = near_boundary(mask, 1)
    assert rim[:, 0].tolist() == [True] * 6 and rim[:, -1].tolist() == [True] * 6
    assert not bool(rim[2:4, 2:6].any())  # two rows inside, away from every edge


def geometric(kind: str, size: int) -> DetectionPipeline:
    """The training pipeline without colour jitter, so the mask stays a clean 0 / 1 image."""
    return train_transforms(kind, size=size, colour=0.0)


def plate_item(height: int, width: int, quad: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """An image that is 1 exactly on the pixels whose centres lie in ``quad`` and 0 elsewhere."""
    image = centres_inside(quad, height, width).float().expand(3, -1, -1).clone()
    box = torch.cat((quad.amin(dim=0), quad.amax(dim=0)))[None]
    target = {"boxes": box, "labels": torch.tensor([1]), "corners": quad[None], "text": ["AB 1"]}
    return image, target


@st.composite
def quads(draw, height: int, width: int):
    """A plate-like quad (TL, TR, BR, BL, clockwise on screen) inside a height x width image."""
    quad = view_quad(
        aspect=draw(st.floats(1.5, 4.5)),
        yaw=math.radians(draw(st.floats(-45, 45))),
        pitch=math.radians(draw(st.floats(-30, 30))),
        roll=math.radians(draw(st.floats(-20, 20))),
        distance=draw(st.floats(1.5, 4.0)),
    )
    quad = quad * draw(st.floats(20, min(height, width) - 4)) / (np.ptp(quad[:, 0]) + 1e-9)
    quad = quad * min(1.0, (height - 4) / np.ptp(quad[:, 1]))
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    x = draw(st.floats(2 - lo[0], width - 2 - hi[0]))
    y = draw(st.floats(2 - lo[1], height - 2 - hi[1]))
    return torch.tensor(quad + [x, y], dtype=torch.float32)


@given(
    data=st.data(),
    height=st.integers(48, 160),
    width=st.integers(48, 160),
    kind=st.sampled_from(["shapes", "plates"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_boxes_and_corners_follow_the_pixels(data, height, width, kind, seed):
    quad = data.draw(quads(height, width))
    image, target = plate_item(height, width, quad)
    torch.manual_seed(seed)
    out, t = geometric(kind, 96)(image, target)
    assert out.shape == (3, 96, 96)
    mask = out[0] > 0.75  # padding is 0.5, the object 1 (edges blurred by the resize)
    if len(t["boxes"]) == 0:
        assert kind == "shapes"  # plates are never cut
        return
    assert set(t) == {"boxes", "labels", "corners", "text"} and t["text"] == ["AB 1"]
    corners = t["corners"][0]
    # Corners: the transformed pixels are the transformed quad, up to the blurred rim.
    expected = centres_inside(corners, 96, 96)
    assert not bool(((mask ^ expected) & ~near_boundary(expected, 2)).any())
    # Order: still TL, TR, BR, BL, clockwise on screen (positive shoelace area, y down).
    x, y = corners[:, 0], corners[:, 1]
    assert float((x * y.roll(-1) - x.roll(-1) * y).sum()) > 0
    # Boxes: the clamped bounding box of the corners, and of the visible pixels.
    bound = torch.cat((corners.amin(dim=0), corners.amax(dim=0))).clamp(0, 96)
    assert torch.allclose(t["boxes"][0], bound, atol=1e-4)
    if mask.sum() > 4:
        # The box holds every visible pixel; it is tight unless the crop cut the plate (the
        # clamped box of a cut, tilted quad can be larger than what is left of it).
        visible = mask_box(mask)
        assert bool((visible[:2] >= t["boxes"][0][:2] - 2.0).all())
        assert bool((visible[2:] <= t["boxes"][0][2:] + 2.0).all())
        if bool((corners >= 0).all() and (corners <= 96).all()):
            assert (t["boxes"][0] - visible).abs().max() <= 2.0
    if kind == "plates":
        assert bool((corners >= 0).all() and (corners <= 96).all())


@given(data=st.data(), height=st.integers(24, 120), width=st.integers(24, 120))
def test_flip_mirrors_corners_and_restores_their_order(data, height, width):
    quad = data.draw(quads(height, width))
    image, target = plate_item(height, width, quad)
    out, t = DetectionPipeline([RandomHorizontalFlip(p=1.0)])(image, target)
    assert torch.equal(out, image.flip(-1))
    mirrored = torch.stack((width - quad[:, 0], quad[:, 1]), dim=1)
    assert torch.allclose(t["corners"][0], mirrored[[1, 0, 3, 2]], atol=1e-5)
    b = target["boxes"][0]
    assert torch.allclose(t["boxes"][0], torch.stack((width - b[2], b[1], width - b[0], b[3])))
    # The pixels of the flipped image are exactly those of the flipped quad.
    assert torch.equal(out[0] > 0.5, centres_inside(t["corners"][0], height, width))


@given(
    boxes=st.lists(
        st.tuples(st.integers(0, 90), st.integers(0, 90), st.integers(2, 40), st.integers(2, 40)),
        max_size=8,
    ),
    seed=st.integers(0, 2**31 - 1),
)
def test_dropped_objects_leave_every_entry_together(boxes, seed):
    # Each object's text, label, iscrowd flag and corners identify it: after a random crop the
    # survivors must still agree with each other and with their boxes.
    b = torch.tensor(
        [(x, y, min(x + w, 100), min(y + h, 100)) for x, y, w, h in boxes], dtype=torch.float32
    ).reshape(-1, 4)
    n = len(b)
    corners = torch.stack((b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]), dim=1)
    labels = torch.arange(1, n + 1)
    target = {
        "boxes": b,
        "labels": labels,
        "corners": corners,
        "text": [f"#{k}" for k in labels.tolist()],
        "iscrowd": labels % 2,
        "image_id": 7,
    }
    torch.manual_seed(seed)
    pipeline = train_transforms("shapes", size=64, scale=(0.5, 1.6))
    _, t = pipeline(torch.rand(3, 100, 100), target)
    kept = len(t["boxes"])
    assert t["labels"].shape == (kept,) and t["corners"].shape == (kept, 4, 2)
    assert t["text"] == [f"#{k}" for k in t["labels"].tolist()]
    assert torch.equal(t["iscrowd"], t["labels"] % 2) and t["image_id"] == 7
    bound = torch.cat((t["corners"].amin(dim=1), t["corners"].amax(dim=1)), dim=1).clamp(0, 64)
    assert torch.allclose(t["boxes"], bound, atol=1e-4)
    assert bool((t["boxes"][:, 2:] - t["boxes"][:, :2] >= 2).all())


def test_objects_mostly_outside_are_dropped_and_the_rest_clamped():
    # A centre crop of 50 x 50 from 100 x 100 shifts everything by 25 pixels: box 0 keeps
    # 15 x 15 of 40 x 40 (14 %), box 1 35 x 35 of 40 x 40 (77 %), box 2 5 x 45 of 10 x 60 (37.5 %).
    target = {
        "boxes": torch.tensor([[0.0, 0, 40, 40], [20, 20, 60, 60], [70, 30, 80, 90]]),
        "labels": torch.tensor([1, 2, 3]),
        "text": ["a", "b", "c"],
    }
    image = torch.zeros(3, 100, 100)

    def kept(**kwargs):
        _, t = DetectionPipeline([v2.CenterCrop(50)], **kwargs)(image, target)
        assert t["text"] == [" abc"[k] for k in t["labels"].tolist()]
        return t

    t = kept(min_visibility=0.5)
    assert t["labels"].tolist() == [2] and t["boxes"].tolist() == [[0.0, 0.0, 35.0, 35.0]]
    assert kept(min_visibility=0.3)["labels"].tolist() == [2, 3]
    assert kept(min_visibility=0.1)["boxes"].tolist() == [
        [0.0, 0.0, 15.0, 15.0],
        [0.0, 0.0, 35.0, 35.0],
        [45.0, 5.0, 50.0, 50.0],
    ]
    assert kept(min_visibility=0.1, min_size=10)["labels"].tolist() == [1, 2]


def test_scale_crop_with_keep_all_keeps_every_plate_whole():
    torch.manual_seed(0)
    ds = PlatesDataset(40, seed=1, min_plates=1, max_plates=3, plate_width=(60, 120))
    pipeline = DetectionPipeline([RandomScaleCrop(64, scale=(1.0, 2.0), keep_all=True)])
    for i in range(len(ds)):
        image, target = ds[i]
        out, t = pipeline(image, target)
        assert out.shape == (3, 64, 64)
        assert t["text"] == target["text"], i
        assert bool((t["corners"] >= 0).all() and (t["corners"] <= 64).all()), i


def test_scale_crop_output_size_and_padding():
    torch.manual_seed(0)
    crop = DetectionPipeline([RandomScaleCrop((40, 60), scale=(0.25, 0.25))])
    out, t = crop(torch.ones(3, 100, 100), {"boxes": torch.tensor([[10.0, 10, 90, 90]])})
    assert out.shape == (3, 40, 60)
    # The image shrinks to 25 x 25 and sits somewhere in the window; the rest is fill (0.5).
    ones = torch.isclose(out[0], torch.tensor(1.0), atol=1e-5)
    assert int(ones.sum()) == 625 and int((out[0] == 0.5).sum()) == 40 * 60 - 625
    x1, y1, x2, y2 = t["boxes"][0].tolist()
    assert (x2 - x1, y2 - y1) == (20.0, 20.0)


def test_colour_jitter_leaves_targets_alone():
    torch.manual_seed(0)
    image, target = ShapesDataset(3, seed=0)[0]
    out, t = DetectionPipeline([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)])(image, target)
    assert not torch.equal(out, image) and out.shape == image.shape
    assert torch.equal(t["boxes"], target["boxes"]) and torch.equal(t["labels"], target["labels"])


def test_same_torch_seed_same_augmentation():
    image, target = PlatesDataset(2, seed=0)[0]
    results = []
    for _ in range(2):
        torch.manual_seed(123)
        results.append(train_transforms("plates")(image, target))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1]["corners"], results[1][1]["corners"])


def test_pipelines_on_the_data_sets_and_empty_targets():
    torch.manual_seed(0)
    for ds in (
        ShapesDataset(20, min_objects=0, transforms=train_transforms("shapes", size=96)),
        PlatesDataset(
            20, min_plates=0, max_plates=2, transforms=train_transforms("plates", size=96)
        ),
    ):
        for i in range(len(ds)):
            image, t = ds[i]
            assert image.shape == (3, 96, 96) and image.dtype == torch.float32
            assert 0 <= image.min() and image.max() <= 1
            n = len(t["boxes"])
            assert t["boxes"].shape == (n, 4) and t["labels"].shape == (n,)
            assert bool((t["boxes"] >= 0).all() and (t["boxes"] <= 96).all())
            assert t["image_id"] == i
    empty = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "corners": torch.zeros(0, 4, 2),
        "text": [],
    }
    out, t = train_transforms("plates", size=48)(torch.rand(3, 80, 80), empty)
    assert out.shape == (3, 48, 48)
    assert t["boxes"].shape == (0, 4) and t["corners"].shape == (0, 4, 2) and t["text"] == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            {"boxes": torch.tensor([[0.0, 0, 10, 10], [50, 5, 70, 20]])},
            r"target\['boxes'\]\[1\] = \[50.0, 5.0, 70.0, 20.0\] lies outside the image of width 64",
        ),
        ({"boxes": torch.tensor([[-3.0, 0, 10, 10]])}, r"target\['boxes'\]\[0\].*lies outside"),
        (
            {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 5, 10, 20]])},
            r"target\['boxes'\]\[1\] = .* has x2 < x1",
        ),
        ({"boxes": torch.zeros(2, 3)}, r"target\['boxes'\] must have shape \[N, 4\]"),
        (
            {"boxes": torch.zeros(2, 4), "labels": torch.tensor([1])},
            r"target\['labels'\] has 1 entries for 2 boxes",
        ),
        (
            {"boxes": torch.zeros(1, 4), "corners": torch.zeros(1, 3, 2)},
            r"target\['corners'\] must be a \[1, 4, 2\] tensor",
        ),
        (
            {"boxes": torch.zeros(1, 4), "text": "AB"},
            r"target\['text'\] must be a list or tensor with one value per box, got str",
        ),
        ({"boxes": torch.zeros(1, 4), "text": ["A", "B"]}, r"target\['text'\] has 2 entries"),
        (
            {"boxes": torch.zeros(1, 4), "area": torch.zeros(1)},
            r"target\['area'\] is not understood",
        ),
        ({"labels": torch.zeros(1)}, "'boxes' entry"),
    ],
)
def test_bad_targets_are_named(target, message):
    with pytest.raises(ValueError, match=message):
        train_transforms("shapes", size=32)(torch.zeros(3, 32, 64), target)


def test_bad_pipeline_arguments():
    with pytest.raises(ValueError, match="kind='cars' is not one of"):
        train_transforms("cars")
    with pytest.raises(ValueError, match=r"transforms\[0\] is torchvision's RandomHorizontalFlip"):
        DetectionPipeline([v2.RandomHorizontalFlip()])
    with pytest.raises(ValueError, match="scale must be"):
        RandomScaleCrop(32, scale=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"image must be a \[C, H, W\] tensor"):
        train_transforms("shapes")(torch.zeros(32, 32), {"boxes": torch.zeros(0, 4)})
    points = tv_tensors.KeyPoints(torch.zeros(3, 2), canvas_size=(8, 8))
    with pytest.raises(ValueError, match=r"plate corners of shape \[N, 4, 2\], got \[3, 2\]"):
        RandomHorizontalFlip(1.0)(
            {"image": tv_tensors.Image(torch.zeros(3, 8, 8)), "points": points}
        )
