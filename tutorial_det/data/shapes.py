"""Synthetic shapes: circles, squares and triangles on textured backgrounds, with exact boxes.

Lessons 04, 06, 07, 09 and 10 train and evaluate on it.

The data set the Faster R-CNN and SSD lessons train on. It needs no download, costs about a
millisecond per 128 x 128 image, and every item is a pure function of ``(seed, index)``, so a
held-out set is just another seed.

What makes it honest but learnable:

- 1-4 objects per image (configurable), sizes drawn log-uniformly from about 12 to 64 px, squares
  and triangles mildly rotated;
- textured backgrounds (smooth colour noise, gradients, faint stripes) plus pixel noise;
- every shape's colour keeps a distance from the local background and from the shapes it
  overlaps, so it is always visible;
- overlaps are allowed but limited: a placement whose box has IoU above ``max_overlap`` with an
  earlier box is rejected, and shapes are drawn largest first so that a later (smaller) shape
  covers at most about half of an earlier one's box.

Boxes are exact: each shape is drawn from a tight mask, and its box is the mask's extent in xyxy
pixel coordinates (a shape whose leftmost pixel is column 10 and rightmost column 29 has
``x1 = 10, x2 = 30``). The box covers the whole shape even where a later shape overlaps it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from tutorial_det.boxes import box_iou
from tutorial_det.data.canvas import (
    SHAPE_NAMES,
    add_pixel_noise,
    background,
    contrasting_colour,
    paint,
    shape_mask,
)
from tutorial_det.data.synthetic import Item, SyntheticDataset, Transforms, check_count_range

#: Class names of the default data set, indexed by label; 0 is the background.
CLASSES = ("background", "circle", "square", "triangle")


class ShapesDataset(SyntheticDataset):
    """``length`` images of random shapes; item ``i`` is a pure function of ``(seed, i)``.

    Args:
        length: number of items.
        seed: the data set's seed; a different seed gives an independent set (e.g. held-out data).
        image_size: side of the square images in pixels.
        classes: shape names to draw, in label order (label 1 is ``classes[0]``); any of
            ``"circle"``, ``"square"``, ``"triangle"``, ``"hexagon"``, ``"star"``.
        min_objects, max_objects: number of shapes per image, drawn uniformly (``min_objects=0``
            allows images without objects). Fewer are drawn when no placement within the overlap
            limit is found in 20 tries.
        min_size, max_size: shape width before rotation in pixels, drawn log-uniformly.
        max_rotation: squares, triangles, hexagons and stars are rotated uniformly within
            +/- this many degrees.
        max_overlap: largest IoU a shape's box may have with an earlier one.
        background: ``"textured"`` or ``"flat"`` (one colour, for lessons and tests).
        pixel_noise: largest standard deviation of the pixel noise (0 = none).
        transforms: optional ``transforms(image, target) -> (image, target)``, applied last
            (e.g. :func:`tutorial_det.data.transforms.train_transforms`; random augmentation makes
            an item depend on torch's random state as well).

    Item ``i``: ``(image, target)`` with ``image`` ``[3, H, W]`` float32 in [0, 1] and ``target``
    ``{"boxes": [N, 4] float32 xyxy, "labels": [N] int64 (1..len(classes)), "image_id": i}``.
    """

    def __init__(
        self,
        length: int,
        seed: int = 0,
        image_size: int = 128,
        classes: Sequence[str] = CLASSES[1:],
        min_objects: int = 1,
        max_objects: int = 4,
        min_size: float = 12.0,
        max_size: float = 64.0,
        max_rotation: float = 15.0,
        max_overlap: float = 0.3,
        background: str = "textured",
        pixel_noise: float = 0.04,
        transforms: Transforms | None = None,
    ) -> None:
        super().__init__(length, seed, image_size, background, pixel_noise, transforms)
        classes = tuple(classes)
        unknown = [name for name in classes if name not in SHAPE_NAMES]
        if unknown or not classes or len(set(classes)) != len(classes):
            raise ValueError(
                f"classes must be distinct names from {SHAPE_NAMES}, got {classes}"
                + (f" (unknown: {unknown})" if unknown else "")
            )
        check_count_range(min_objects, max_objects, "min_objects, max_objects", 0)
        # A rotated shape's mask is up to 1.5 times its size (the star's points, a square's
        # diagonal at 45 degrees would be 1.41): it must fit in the image.
        if not 2 <= min_size <= max_size <= image_size / 1.5:
            raise ValueError(
                f"min_size, max_size must satisfy 2 <= min_size <= max_size <= image_size / 1.5 "
                f"= {image_size / 1.5:g}, got {min_size}, {max_size}"
            )
        if not 0 <= max_rotation <= 180:
            raise ValueError(f"max_rotation must be in [0, 180] degrees, got {max_rotation}")
        if not 0 <= max_overlap <= 1:
            raise ValueError(f"max_overlap must be in [0, 1], got {max_overlap}")
        self.shapes = classes
        self.classes = ("background", *classes)
        self.min_objects, self.max_objects = min_objects, max_objects
        self.min_size, self.max_size = float(min_size), float(max_size)
        self.max_rotation = float(max_rotation)
        self.max_overlap = float(max_overlap)

    def render(self, rng: np.random.Generator) -> Item:
        """One image and its target (without ``image_id``) drawn from ``rng``."""
        size = self.image_size
        canvas = background(rng, self.background, size, size)
        n = int(rng.integers(self.min_objects, self.max_objects + 1))
        sizes = np.exp(rng.uniform(math.log(self.min_size), math.log(self.max_size), n))
        boxes = torch.zeros((0, 4))
        labels, colours = [], []
        for shape_size in sorted(sizes, reverse=True):
            label = int(rng.integers(len(self.shapes)))
            angle = rng.uniform(-self.max_rotation, self.max_rotation)
            mask = shape_mask(self.shapes[label], shape_size, angle)
            h, w = mask.shape
            tries = 20
            corners = np.stack(
                (rng.integers(0, size - w + 1, tries), rng.integers(0, size - h + 1, tries)), 1
            )
            candidates = torch.from_numpy(np.concatenate((corners, corners + (w, h)), 1)).float()
            iou = box_iou(candidates, boxes)
            ok = (iou <= self.max_overlap).all(dim=1).nonzero()
            if len(ok) == 0:
                continue
            box = candidates[int(ok[0])]
            x0, y0 = int(box[0]), int(box[1])
            under = [canvas[:, y0 : y0 + h, x0 : x0 + w].mean(axis=(1, 2))]
            overlapped = (iou[int(ok[0])] > 0).nonzero().flatten().tolist()
            colour = contrasting_colour(rng, under + [colours[j] for j in overlapped])
            paint(canvas, mask, x0, y0, colour)
            boxes = torch.cat((boxes, box[None]))
            labels.append(label + 1)
            colours.append(colour)
        add_pixel_noise(rng, canvas, self.pixel_noise)
        target = {"boxes": boxes, "labels": torch.tensor(labels, dtype=torch.int64)}
        return torch.from_numpy(canvas), target
