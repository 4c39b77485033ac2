"""What the synthetic data sets share: item ``i`` is a pure function of ``(seed, i)``.

A subclass draws one picture in :meth:`SyntheticDataset.render` from the generator
``numpy.random.default_rng([seed, i])``; this base class checks the common arguments, adds
``image_id`` and applies the optional transforms.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from tutorial_det.data.canvas import BACKGROUNDS

Item = tuple[torch.Tensor, dict]
Transforms = Callable[[torch.Tensor, dict], Item]


def check_count_range(low: int, high: int, names: str, min_low: int) -> None:
    """Raise ValueError unless ``min_low <= low <= high`` are integers (``names`` reads like
    ``"min_objects, max_objects"``)."""
    if not (isinstance(low, int) and isinstance(high, int) and min_low <= low <= high):
        raise ValueError(
            f"{names} must be integers with {min_low} <= low <= high, got {low}, {high}"
        )


class SyntheticDataset(Dataset):
    """Base of the synthetic data sets: ``length`` square images of ``image_size`` pixels.

    Args:
        length: number of items.
        seed: the data set's seed; a different seed gives an independent set (e.g. held-out data).
        image_size: side of the square images in pixels (at least ``min_image_size``).
        background: ``"textured"`` or ``"flat"`` (one colour, for lessons and tests).
        pixel_noise: largest standard deviation of the pixel noise (0 = none).
        transforms: optional ``transforms(image, target) -> (image, target)``, applied last
            (e.g. :func:`tutorial_det.data.transforms.train_transforms`; random augmentation makes
            an item depend on torch's random state as well).
    """

    min_image_size = 8

    def __init__(
        self,
        length: int,
        seed: int,
        image_size: int,
        background: str,
        pixel_noise: float,
        transforms: Transforms | None,
    ) -> None:
        if not (isinstance(length, int) and length >= 0):
            raise ValueError(f"length must be a non-negative integer, got {length!r}")
        if not (isinstance(image_size, int) and image_size >= self.min_image_size):
            raise ValueError(
                f"image_size must be an integer >= {self.min_image_size}, got {image_size!r}"
            )
        if background not in BACKGROUNDS:
            raise ValueError(f"background={background!r} is not one of {BACKGROUNDS}")
        if not 0 <= pixel_noise <= 0.5:
            raise ValueError(f"pixel_noise must be in [0, 0.5], got {pixel_noise}")
        if transforms is not None and not callable(transforms):
            raise TypeError(f"transforms must be callable or None, got {type(transforms).__name__}")
        self.length = length
        self.seed = int(seed)
        self.image_size = image_size
        self.background = background
        self.pixel_noise = float(pixel_noise)
        self.transforms = transforms

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index) -> Item:
        """Item ``index`` (negative indices count from the end, as for lists)."""
        i = operator.index(index)
        if not -self.length <= i < self.length:
            raise IndexError(
                f"index {i} is out of range for {type(self).__name__} of length {self.length}"
            )
        i %= self.length
        image, target = self.render(np.random.default_rng([self.seed, i]))
        target["image_id"] = i
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def render(self, rng: np.random.Generator) -> Item:
        """One image ``[3, H, W]`` and its target (without ``image_id``) drawn from ``rng``."""
        raise NotImplementedError
