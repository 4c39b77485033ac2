"""Synthetic shapes: determinism, exact boxes, overlap limit, contrast, bad arguments, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tutorial_det.boxes import box_iou
from tutorial_det.data.canvas import SHAPE_NAMES, contrasting_colour, shape_mask, text_mask
from tutorial_det.data.collate import detection_collate
from tutorial_det.data.shapes import CLASSES, ShapesDataset


def changed_pixel_box(image: torch.Tensor) -> list[float]:
    """xyxy box of the pixels that differ from the top-left pixel (a flat background)."""
    pixels = image.numpy()
    changed = np.abs(pixels - pixels[:, :1, :1]).max(axis=0) > 1e-6
    ys, xs = np.nonzero(changed)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_item_format():
    ds = ShapesDataset(5, seed=1)
    image, target = ds[3]
    assert image.shape == (3, 128, 128) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert set(target) == {"boxes", "labels", "image_id"}
    n = len(target["boxes"])
    assert 1 <= n <= 4
    assert target["boxes"].shape == (n, 4) and target["boxes"].dtype == torch.float32
    assert target["labels"].shape == (n,) and target["labels"].dtype == torch.int64
    assert target["image_id"] == 3
    assert len(ds) == 5 and ds.classes == CLASSES == ("background", "circle", "square", "triangle")


def test_same_seed_and_index_give_the_same_item():
    a, b = ShapesDataset(10, seed=7), ShapesDataset(10, seed=7)
    for i in (0, 4, 9):
        (ia, ta), (ib, tb) = a[i], b[i]
        assert torch.equal(ia, ib)
        assert torch.equal(ta["boxes"], tb["boxes"]) and torch.equal(ta["labels"], tb["labels"])
    # Order of access does not matter: an item is a pure function of (seed, index).
    assert torch.equal(a[9][0], ShapesDataset(10, seed=7)[9][0])


def test_different_index_or_seed_gives_a_different_item():
    ds = ShapesDataset(10, seed=0)
    assert not torch.equal(ds[0][0], ds[1][0])
    assert not torch.equal(ds[0][0], ShapesDataset(10, seed=1)[0][0])


def test_negative_index_counts_from_the_end_and_out_of_range_raises():
    ds = ShapesDataset(4)
    assert torch.equal(ds[-1][0], ds[3][0]) and ds[-1][1]["image_id"] == 3
    with pytest.raises(IndexError, match="index 4 is out of range for ShapesDataset of length 4"):
        ds[4]
    assert len(list(iter(ds))) == 4  # the sequence protocol stops at IndexError


@pytest.mark.parametrize("shape", ["circle", "square", "triangle", "hexagon", "star"])
def test_box_is_the_bounding_box_of_the_drawn_pixels(shape):
    ds = ShapesDataset(
        40,
        seed=3,
        classes=[shape],
        max_objects=1,
        min_size=6,
        max_size=80,
        max_rotation=45,
        background="flat",
        pixel_noise=0,
    )
    for i in range(len(ds)):
        image, target = ds[i]
        assert target["boxes"][0].tolist() == changed_pixel_box(image), f"item {i}"


def test_boxes_lie_inside_the_image_and_labels_in_range():
    ds = ShapesDataset(60, seed=2, image_size=96, min_size=8, max_size=60)
    for i in range(len(ds)):
        _, t = ds[i]
        b = t["boxes"]
        assert bool((b[:, :2] >= 0).all() and (b[:, 2:] <= 96).all()), i
        assert bool((b[:, 2:] > b[:, :2]).all()), i
        assert bool(((t["labels"] >= 1) & (t["labels"] <= 3)).all()), i


def test_overlap_between_boxes_is_limited():
    ds = ShapesDataset(80, seed=5, min_objects=4, max_objects=4, max_overlap=0.3)
    counts = []
    for i in range(len(ds)):
        boxes = ds[i][1]["boxes"]
        counts.append(len(boxes))
        iou = box_iou(boxes, boxes) - torch.eye(len(boxes))
        assert iou.max() <= 0.3 + 1e-6, i
    assert np.mean(counts) > 3.5  # the retry loop rarely gives up


def test_sizes_span_the_requested_range():
    ds = ShapesDataset(100, seed=0, max_rotation=0, classes=["square"])
    widths = torch.cat([ds[i][1]["boxes"] for i in range(len(ds))])
    widths = widths[:, 2] - widths[:, 0]
    assert 11 <= widths.min() <= 15 and 58 <= widths.max() <= 65


def test_each_shape_stands_out_from_the_local_background():
    ds = ShapesDataset(30, seed=4, max_objects=1, pixel_noise=0)
    for i in range(len(ds)):
        image, t = ds[i]
        x1, y1, x2, y2 = (int(v) for v in t["boxes"][0])
        patch = image[:, y1:y2, x1:x2].reshape(3, -1)
        # The shape's pixels are its colour; the box also holds background: two colour groups.
        colours, counts = patch.T.unique(dim=0, return_counts=True)
        shape_colour = colours[counts.argmax()]
        background = patch.T[(patch.T - shape_colour).abs().sum(dim=1) > 1e-6].mean(dim=0)
        assert (shape_colour - background).norm() >= 0.25, i


def test_images_without_objects():
    ds = ShapesDataset(5, min_objects=0, max_objects=0)
    image, t = ds[0]
    assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,)
    assert image.shape == (3, 128, 128)


def test_more_classes_and_their_order():
    ds = ShapesDataset(30, classes=("star", "circle"), seed=1)
    assert ds.classes == ("background", "star", "circle")
    labels = torch.cat([ds[i][1]["labels"] for i in range(30)])
    assert set(labels.tolist()) == {1, 2}


def test_textured_backgrounds_vary():
    ds = ShapesDataset(10, min_objects=0, max_objects=0, pixel_noise=0)
    stds = [ds[i][0].std(dim=(1, 2)).max().item() for i in range(10)]
    assert min(stds) > 0.005  # never flat
    means = torch.stack([ds[i][0].mean(dim=(1, 2)) for i in range(10)])
    assert means.std(dim=0).min() > 0.05  # different colours from image to image


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": ["circle", "blob"]}, r"unknown: \['blob'\]"),
        ({"classes": []}, "classes must be distinct"),
        ({"classes": ["circle", "circle"]}, "classes must be distinct"),
        ({"min_size": 40, "max_size": 20}, "min_size, max_size"),
        ({"max_size": 100}, "max_size <= image_size / 1.5"),
        ({"image_size": 4}, "image_size must be an integer >= 8"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects, max_objects"),
        ({"min_objects": -1}, "min_objects, max_objects"),
        ({"max_overlap": 1.5}, "max_overlap"),
        ({"background": "plaid"}, "background='plaid'"),
        ({"pixel_noise": -0.1}, "pixel_noise"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShapesDataset(10, **kwargs)


def test_shape_mask_is_tight_and_rejects_unknown_shapes():
    for name in SHAPE_NAMES:
        mask = shape_mask(name, 20.0, 30.0)
        assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
    assert shape_mask("square", 20.0).shape == (20, 20)
    with pytest.raises(ValueError, match="shape='oval' is not one of"):
        shape_mask("oval", 10.0)
    with pytest.raises(ValueError, match="size must be at least 2"):
        shape_mask("circle", 1.0)
    assert text_mask("AB", 12).any()


def test_contrasting_colour_keeps_its_distance():
    rng = np.random.default_rng(0)
    for k in (1, 3, 7):
        for _ in range(100):
            avoid = rng.random((k, 3), dtype=np.float32)
            colour = contrasting_colour(rng, avoid, min_distance=0.45)
            assert np.linalg.norm(avoid - colour, axis=1).min() >= 0.45
    # Asking for more than random draws can give falls back to the farthest cube corner.
    grey = np.full(3, 0.5, np.float32)
    assert np.linalg.norm(contrasting_colour(rng, [grey], 0.85) - grey) >= 0.85


def test_detection_collate_with_a_dataloader():
    ds = ShapesDataset(6, seed=0)
    images, targets = next(iter(DataLoader(ds, batch_size=3, collate_fn=detection_collate)))
    assert len(images) == 3 and len(targets) == 3
    assert torch.equal(images[1], ds[1][0]) and targets[2]["image_id"] == 2
    with pytest.raises(ValueError, match=r"batch\[1\] must be an \(image, target\) pair"):
        detection_collate([ds[0], ds[0][0]])
