"""Images of mixed sizes brought to one square size, and detections mapped back: letterbox or
stretch.

A folder of photos holds images of many sizes. The detectors pad a batch to its largest image
(:mod:`tutorial_det.input_transform`), but SSD lays its priors on the padded size, so an object's
size relative to the priors would depend on the other images of its batch, and every detector
here is sized for objects of a few dozen pixels. :class:`Resize` brings an image of ``H x W``
pixels to ``size x size``:

- ``"letterbox"``: scaled by one factor, so that its longer side becomes ``size`` and the aspect
  ratio is kept, then padded with black at the bottom and right (the padding leaves pixel
  coordinates where they were);
- ``"stretch"``: each side scaled to ``size`` on its own (no padding; circles become ellipses).

Boxes move with the pixels, ``(x, y) -> (x * sx, y * sy)`` with ``sx = W' / W`` and
``sy = H' / H`` the factors of the scaled (unpadded) image; plate corners ``[N, 4, 2]`` too.
Going back divides by the same factors and clips boxes to the original image.

- ``Resize(128)(image, target)``: the transform for a data set (``VOCDataset(...,
  transforms=Resize(128))``), for training;
- ``ResizedDetector(model, Resize(128))``: a detector that takes images of any size, resizes
  them itself and answers in each image's own pixels (torchvision's detection models do the
  same inside, in their ``GeneralizedRCNNTransform``); what ``evaluate`` and ``detect`` use, so
  that metrics and drawn boxes refer to the images as they are on disk.

Lesson 11 (your own data) teaches it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from tutorial_det.boxes import clip_boxes

RESIZE_MODES = ("letterbox", "stretch")


@dataclass(frozen=True)
class Resize:
    """Bring ``[3, H, W]`` images to ``[3, size, size]`` (see the module docstring).

    Args:
        size: side of the output in pixels.
        mode: ``"letterbox"`` (aspect ratio kept, black padding at the bottom and right) or
            ``"stretch"``.
    """

    size: int
    mode: str = "letterbox"

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size must be a positive int, got {self.size!r}")
        if self.mode not in RESIZE_MODES:
            raise ValueError(f"mode must be one of {RESIZE_MODES}, got {self.mode!r}")

    def scaled_size(self, height: int, width: int) -> tuple[int, int]:
        """``(height, width)`` of an ``height x width`` image once scaled, before padding."""
        if self.mode == "stretch":
            return self.size, self.size
        factor = self.size / max(height, width)
        return max(1, round(height * factor)), max(1, round(width * factor))

    def factors(self, height: int, width: int) -> tuple[float, float]:
        """``(sx, sy)``: the factors of x and y coordinates for an image of ``height x width``."""
        new_height, new_width = self.scaled_size(height, width)
        return new_width / width, new_height / height

    def image(self, image: Tensor) -> Tensor:
        """``[3, H, W]`` -> ``[3, size, size]`` (bilinear with antialiasing, black padding)."""
        height, width = image.shape[-2:]
        new_height, new_width = self.scaled_size(height, width)
        plain = image.as_subclass(Tensor)
        scaled = F.resize(plain, [new_height, new_width], antialias=True)
        return F.pad(scaled, [0, 0, self.size - new_width, self.size - new_height], fill=0.0)

    def __call__(self, image: Tensor, target: Mapping[str, Any]) -> tuple[Tensor, dict]:
        """One data set item resized: the image, ``target["boxes"]`` ``[N, 4]`` xyxy and
        ``target["corners"]`` ``[N, 4, 2]`` (when present) scaled with it; the other entries
        unchanged. BoundingBoxes keep their type, with the new canvas size."""
        height, width = image.shape[-2:]
        sx, sy = self.factors(height, width)
        out = dict(target)
        boxes = target["boxes"]
        scaled = boxes.as_subclass(Tensor) * boxes.new_tensor([sx, sy, sx, sy])
        if isinstance(boxes, tv_tensors.BoundingBoxes):
            scaled = tv_tensors.wrap(scaled, like=boxes, canvas_size=(self.size, self.size))
        out["boxes"] = scaled
        if "corners" in target:
            corners = target["corners"]
            out["corners"] = corners * corners.new_tensor([sx, sy])
        resized = self.image(image)
        if isinstance(image, tv_tensors.Image):
            resized = tv_tensors.Image(resized)
        return resized, out

    def prediction_back(
        self, prediction: Mapping[str, Tensor], image_size: Sequence[int]
    ) -> dict[str, Tensor]:
        """A detector's output for a resized image, in the pixels of the original image of
        ``image_size = (height, width)``: ``"boxes"`` ``[D, 4]`` divided by the factors and
        clipped to the image, ``"corners"`` ``[D, 4, 2]`` divided (not clipped); the other
        entries unchanged."""
        height, width = int(image_size[0]), int(image_size[1])
        sx, sy = self.factors(height, width)
        out = dict(prediction)
        boxes = prediction["boxes"]
        out["boxes"] = clip_boxes(boxes / boxes.new_tensor([sx, sy, sx, sy]), (height, width))
        if "corners" in prediction:
            corners = prediction["corners"]
            out["corners"] = corners / corners.new_tensor([sx, sy])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "mode": self.mode}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Resize:
        return cls(int(state["size"]), str(state["mode"]))

    def __str__(self) -> str:
        return f"{self.mode} to {self.size}x{self.size}"


class ResizedDetector(nn.Module):
    """A detector that resizes its input images itself and answers in their own pixels.

    Args:
        detector: a model with torchvision's detection contract, trained on images resized by
            ``resize``.
        resize: the :class:`Resize` its training images went through.

    Eval mode: ``model(images)`` (a list of ``[3, H_i, W_i]``, sizes may differ) -> one
    ``{"boxes", "labels", "scores", ...}`` per image, boxes ``[D, 4]`` xyxy in that image's
    pixels. Training mode: ``model(images, targets)`` resizes both, then returns the detector's
    losses. The detector's weights are ``model.detector``'s.
    """

    def __init__(self, detector: nn.Module, resize: Resize) -> None:
        super().__init__()
        self.detector = detector
        self.resize = resize

    def forward(
        self, images: Sequence[Tensor], targets: Sequence[Mapping[str, Any]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if self.training:
            if targets is None or len(targets) != len(images):
                raise ValueError(
                    f"in training mode the model needs one target per image ({len(images)}), "
                    f"got {None if targets is None else len(targets)}"
                )
            pairs = [self.resize(im, t) for im, t in zip(images, targets, strict=True)]
            return self.detector([image for image, _ in pairs], [target for _, target in pairs])
        sizes = [tuple(image.shape[-2:]) for image in images]
        outputs = self.detector([self.resize.image(image) for image in images])
        return [
            self.resize.prediction_back(output, size)
            for output, size in zip(outputs, sizes, strict=True)
        ]
