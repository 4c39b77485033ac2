"""What every detector does to its input before its network: check, normalise, pad into a batch.

Faster R-CNN, SSD and WPOD-Net all take images the way torchvision's detectors do: a list of
``[3, H, W]`` float tensors in [0, 1] (sizes may differ) or one ``[N, 3, H, W]`` tensor, and in
training mode one target dict per image. :class:`InputTransform` turns them into what a backbone
reads (lesson 01 normalises a photo by hand with :func:`~tutorial_det.backbones.imagenet_normalize`;
lesson 04 batches images through a detector's ``transform``):

1. **check** the images: a clear error names the first bad one (:func:`check_images`);
2. **normalise** each image, ``(image - image_mean) / image_std`` per channel (ImageNet's
   statistics by default, as ImageNet-trained backbones and torchvision's detectors expect);
3. **pad** them with zeros at the bottom and right into one ``[N, 3, H', W']`` batch, ``H'`` and
   ``W'`` the largest height and width rounded up to a multiple of ``size_divisible`` (a
   backbone's stride, so that every feature cell covers the same pixels in every image).

It also returns each image's own ``(height, width)``. Padding at the bottom and right leaves pixel
coordinates where they were, so boxes need no mapping between an image and the batch: targets go
in as they are, and a detector maps its boxes back to an image by clipping them to that image's
own size (never to the padded size). Unlike torchvision's ``GeneralizedRCNNTransform`` it does not
resize: the lessons' detectors are sized for their data (128 x 128 synthetic images);
:class:`tutorial_det.resize.ResizedDetector` wraps a detector to resize images of any size and map
its boxes back to each image's pixels.

:func:`check_targets` checks training targets (``{"boxes": [G, 4] xyxy, "labels": [G]}`` per
image) the same way for every detector; :func:`check_target_count` is its first step alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from tutorial_det.backbones import IMAGENET_MEAN, IMAGENET_STD
from tutorial_det.boxes import check_boxes

IMAGES = "a [N, 3, H, W] tensor or a list of [3, H, W] tensors"


def check_images(images: Sequence[Tensor] | Tensor) -> list[Tensor]:
    """The images as a list of ``[3, H, W]`` float tensors, or ValueError naming the first bad one.

    Accepts a ``[N, 3, H, W]`` tensor or a non-empty sequence of ``[3, H, W]`` tensors, each at
    least one pixel high and wide, of a floating dtype (pixels in [0, 1]: an integer image would
    be read as values up to 255).
    """
    if isinstance(images, Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be {IMAGES}, got a tensor of shape {list(images.shape)}")
        images = list(images)
    elif not isinstance(images, Sequence):
        raise ValueError(f"images must be {IMAGES}, got {type(images).__name__}")
    if len(images) == 0:
        raise ValueError("images is empty: give at least one [3, H, W] image")
    for i, image in enumerate(images):
        if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
            shape = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"images[{i}] must be a [3, H, W] tensor, got {shape}")
        if image.shape[1] == 0 or image.shape[2] == 0:
            raise ValueError(f"images[{i}] has no pixels: {list(image.shape)}")
        if not image.is_floating_point():
            raise ValueError(
                f"images[{i}] is {image.dtype}: give float images with pixels in [0, 1] (e.g. "
                "torchvision.transforms.v2.functional.to_dtype(image, torch.float32, scale=True))"
            )
    return list(images)


class InputTransform(nn.Module):
    """Check, normalise and pad a list of images into one batch (see the module docstring).

    Args:
        image_mean, image_std: per-channel statistics subtracted and divided by (RGB in [0, 1]);
            mean 0 and std 1 leave the pixels as they are.
        size_divisible: the batch's height and width are rounded up to a multiple of it.

    ``forward(images)`` -> ``(batch [N, 3, H', W'] float32, image_sizes [(h_i, w_i), ...])``, the
    batch on the device of the ``image_mean`` / ``image_std`` buffers (the model's), zeros in
    the padding.
    """

    def __init__(
        self,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        size_divisible: int = 1,
    ) -> None:
        super().__init__()
        if len(image_mean) != 3 or len(image_std) != 3 or min(image_std) <= 0:
            raise ValueError(
                "image_mean and image_std must give three channels, std > 0, got "
                f"{tuple(image_mean)} and {tuple(image_std)}"
            )
        if not (isinstance(size_divisible, int) and size_divisible >= 1):
            raise ValueError(f"size_divisible must be a positive int, got {size_divisible!r}")
        self.size_divisible = size_divisible
        mean = torch.tensor(image_mean, dtype=torch.float32).reshape(3, 1, 1)
        std = torch.tensor(image_std, dtype=torch.float32).reshape(3, 1, 1)
        self.register_buffer("image_mean", mean, persistent=False)  # [3, 1, 1]
        self.register_buffer("image_std", std, persistent=False)  # [3, 1, 1]

    def normalise(self, image: Tensor) -> Tensor:
        """``[3, H, W]`` -> ``(image - image_mean) / image_std``, float32 on the buffers' device."""
        image = image.as_subclass(Tensor).to(self.image_mean.device, torch.float32)
        return (image - self.image_mean) / self.image_std

    def padded_size(self, image_sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
        """The largest height and width, each rounded up to a multiple of ``size_divisible``."""
        multiple = self.size_divisible
        height = -(-max(h for h, _ in image_sizes) // multiple) * multiple
        width = -(-max(w for _, w in image_sizes) // multiple) * multiple
        return height, width

    def forward(self, images: Sequence[Tensor] | Tensor) -> tuple[Tensor, list[tuple[int, int]]]:
        images = check_images(images)
        sizes = [(int(image.shape[1]), int(image.shape[2])) for image in images]
        batch = self.image_mean.new_zeros(len(images), 3, *self.padded_size(sizes))
        for i, ((height, width), image) in enumerate(zip(sizes, images, strict=True)):
            batch[i, :, :height, :width] = self.normalise(image)
        return batch, sizes


def check_target_count(targets: Sequence[Mapping] | None, num_images: int) -> None:
    """ValueError unless there is one target per image (what a detector in training mode needs)."""
    if targets is None or len(targets) != num_images:
        raise ValueError(
            f"in training mode the model needs one target per image ({num_images}), got "
            f"{'none' if targets is None else len(targets)}"
        )


def check_targets(
    targets: Sequence[Mapping[str, Tensor]] | None,
    num_images: int,
    num_classes: int,
    device: torch.device | str | None = None,
) -> list[dict[str, Tensor]]:
    """One checked ``{"boxes": [G, 4] float xyxy, "labels": [G] int64}`` per image, on ``device``.

    Raises ValueError naming the target, the key and the value: a missing key, boxes that are not
    ``[G, 4]`` xyxy (:func:`~tutorial_det.boxes.check_boxes`), labels that are not ``G``
    integers, or a label outside ``[1, num_classes)`` (0 is the background).
    """
    check_target_count(targets, num_images)
    checked = []
    for i, target in enumerate(targets):
        if not isinstance(target, Mapping) or "boxes" not in target or "labels" not in target:
            raise ValueError(f"targets[{i}] must be a dict holding 'boxes' and 'labels'")
        boxes = check_boxes(target["boxes"].as_subclass(Tensor), f"targets[{i}]['boxes']")
        labels = target["labels"].as_subclass(Tensor)
        if labels.shape != boxes.shape[:1] or labels.is_floating_point():
            raise ValueError(
                f"targets[{i}]['labels'] must be [{len(boxes)}] integers, got "
                f"{labels.dtype} {list(labels.shape)}"
            )
        bad = (labels < 1) | (labels >= num_classes)
        if bool(bad.any()):
            j = int(bad.nonzero()[0])
            raise ValueError(
                f"targets[{i}]['labels'][{j}] = {int(labels[j])} is not an object class in "
                f"[1, {num_classes}) (0 is the background)"
            )
        checked.append({"boxes": boxes.to(device), "labels": labels.to(device).long()})
    return checked
