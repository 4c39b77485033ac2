"""Synthetic plates: determinism, exact corners, reading order, placement, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tutorial_det.boxes import box_iou
from tutorial_det.data.plates import (
    CLASSES,
    PlatesDataset,
    random_plate_text,
    render_plate,
    view_quad,
)
from tutorial_det.geometry import homography


def centres_inside(quad: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[H, W]`` bool: pixel centres inside the convex quad (corners clockwise on screen)."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    inside = np.ones((height, width), bool)
    for k in range(4):
        (x0, y0), (x1, y1) = quad[k], quad[(k + 1) % 4]
        inside &= (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0) >= 0
    return inside


def rectify(image: torch.Tensor, quad: np.ndarray, width: int, height: int) -> np.ndarray:
    """Grey ``[height, width]`` view of the plate at ``quad``, warped back to a flat rectangle."""
    grey = Image.fromarray((image.mean(dim=0).numpy() * 255).astype(np.uint8))
    rectangle = np.array([[0, 0], [width, 0], [width, height], [0, height]], float)
    coeffs = homography(torch.from_numpy(rectangle), torch.from_numpy(quad)).flatten()[:8]
    flat = grey.transform((width, height), Image.Transform.PERSPECTIVE, tuple(coeffs))
    return np.asarray(flat, dtype=np.float64)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_item_format():
    ds = PlatesDataset(4, seed=1)
    image, t = ds[2]
    assert image.shape == (3, 128, 128) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert set(t) == {"boxes", "labels", "corners", "text", "image_id"}
    assert t["boxes"].shape == (1, 4) and t["boxes"].dtype == torch.float32
    assert t["labels"].tolist() == [1] and t["labels"].dtype == torch.int64
    assert t["corners"].shape == (1, 4, 2) and t["corners"].dtype == torch.float32
    assert len(t["text"]) == 1 and isinstance(t["text"][0], str) and t["image_id"] == 2
    assert ds.classes == CLASSES == ("background", "plate")


def test_determinism():
    a, b = PlatesDataset(5, seed=3, max_plates=3), PlatesDataset(5, seed=3, max_plates=3)
    for i in range(5):
        (ia, ta), (ib, tb) = a[i], b[i]
        assert torch.equal(ia, ib) and torch.equal(ta["corners"], tb["corners"])
        assert ta["text"] == tb["text"]
    assert not torch.equal(a[0][0], a[1][0])
    assert not torch.equal(a[0][0], PlatesDataset(5, seed=4)[0][0])


def test_box_is_the_bounding_box_of_the_corners_and_lies_inside():
    ds = PlatesDataset(60, seed=0, min_plates=0, max_plates=3)
    counts = set()
    for i in range(len(ds)):
        _, t = ds[i]
        counts.add(len(t["boxes"]))
        c = t["corners"]
        expected = torch.cat((c.amin(dim=1), c.amax(dim=1)), dim=1)
        assert torch.allclose(t["boxes"], expected, atol=1e-4), i
        assert bool((c >= 1 - 1e-4).all() and (c <= 127 + 1e-4).all()), i
        iou = box_iou(t["boxes"], t["boxes"]) - torch.eye(len(c))
        assert bool((iou <= 0).all()), f"plates overlap in item {i}"
    assert counts == {0, 1, 2, 3}


def test_corners_match_the_warped_plate_pixels():
    # On a flat background the plate covers exactly the pixels whose centres lie in its quad.
    ds = PlatesDataset(50, seed=3, background="flat", clutter=False, pixel_noise=0)
    for i in range(len(ds)):
        image, t = ds[i]
        pixels = image.numpy()
        changed = np.abs(pixels - pixels[:, :1, :1]).max(axis=0) > 1e-3
        expected = centres_inside(t["corners"][0].double().numpy(), 128, 128)
        assert (changed != expected).sum() == 0, f"item {i}: {(changed != expected).sum()} pixels"


def test_corners_follow_the_reading_order():
    # Warping the image back through the corners gives the flat plate the right way round: its
    # text matches a freshly rendered plate with the same text much better than its mirror image
    # or its half turn do. The reference is rendered at the size the data set renders at (the
    # longer of opposite edges), with and without the blue band, so the text layouts agree.
    ds = PlatesDataset(30, seed=5, plate_width=(96, 120), clutter=False, pixel_noise=0)
    for i in range(len(ds)):
        image, t = ds[i]
        q = t["corners"][0].double().numpy()
        top, right, bottom, left = np.linalg.norm(q - np.roll(q, -1, axis=0), axis=1)
        width, height = round(max(top, bottom)), round(max(left, right))
        # Compare the text only: the border is symmetric and would match any orientation.
        rows, cols = slice(height // 5, -(height // 5)), slice(width // 10, -(width // 10))
        text = rectify(image, q, width, height)[rows, cols]
        references = [
            np.asarray(render_plate(t["text"][0], width, height, band=band).convert("L"), float)
            for band in (None, (30, 60, 170))
        ]
        scores = [
            max(correlation(view, r[rows, cols]) for r in references)
            for view in (text, text[:, ::-1], text[::-1, ::-1])  # as is, mirrored, half turn
        ]
        assert scores[0] > 0.85, (i, scores)
        assert scores[0] > max(scores[1:]) + 0.15, (i, scores)


def test_plates_have_varied_sizes_and_views():
    ds = PlatesDataset(100, seed=0)
    corners = torch.cat([ds[i][1]["corners"] for i in range(len(ds))])
    widths = corners[:, :, 0].amax(dim=1) - corners[:, :, 0].amin(dim=1)
    assert widths.min() < 40 and widths.max() > 90
    # Oblique views: the left and right edges often differ in length (perspective).
    left = (corners[:, 3] - corners[:, 0]).norm(dim=1)
    right = (corners[:, 2] - corners[:, 1]).norm(dim=1)
    assert ((left / right - 1).abs() > 0.1).float().mean() > 0.2
    # Corners clockwise on screen (TL, TR, BR, BL): positive shoelace area with y pointing down.
    x, y = corners[..., 0], corners[..., 1]
    area = (x * y.roll(-1, dims=1) - x.roll(-1, dims=1) * y).sum(dim=1)
    assert bool((area > 0).all())


def test_frontal_view_is_a_rectangle():
    quad = view_quad(aspect=4.0, yaw=0.0, pitch=0.0, roll=0.0, distance=3.0)
    np.testing.assert_allclose(quad, [[-0.5, -0.125], [0.5, -0.125], [0.5, 0.125], [-0.5, 0.125]])


def test_plate_text_and_rendering():
    rng = np.random.default_rng(0)
    texts = {random_plate_text(rng) for _ in range(50)}
    assert len(texts) == 50
    assert all(c.isdigit() or c.isupper() or c == " " for t in texts for c in t)
    plate = np.asarray(render_plate("AB 123", 120, 30).convert("L"))
    assert plate.shape == (30, 120)
    assert plate[0].max() < 60 and plate[:, 0].max() < 60  # dark border
    assert plate[15].min() < 60 and np.median(plate) > 200  # dark text on light paper
    with pytest.raises(ValueError, match="at least 8 x 4 pixels"):
        render_plate("A", 6, 30)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"plate_width": (10, 50)}, "plate_width"),
        ({"plate_width": (40, 200)}, "image_size - 2 = 126"),
        ({"aspect": (3, 2)}, "aspect"),
        ({"max_yaw": 80}, "max_yaw must be in"),
        ({"max_roll": -1}, "max_roll must be in"),
        ({"min_plates": 2, "max_plates": 1}, "min_plates, max_plates"),
        ({"image_size": 16}, "image_size must be an integer >= 32"),
        ({"background": "sky"}, "background='sky'"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PlatesDataset(3, **kwargs)


def test_images_without_plates():
    image, t = PlatesDataset(2, min_plates=0, max_plates=0)[0]
    assert t["boxes"].shape == (0, 4) and t["corners"].shape == (0, 4, 2)
    assert t["labels"].shape == (0,) and t["text"] == []
    assert image.shape == (3, 128, 128)
