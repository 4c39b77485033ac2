"""Augmentation that moves boxes and plate corners with the pixels (torchvision.transforms.v2).

Items go in and come out as plain tensors, ``(image [C, H, W], target)``, the way the data sets
return them. Inside, :class:`DetectionPipeline` wraps the image as ``tv_tensors.Image``, the boxes
as ``tv_tensors.BoundingBoxes`` (XYXY, not clamped) and the plate corners as
``tv_tensors.KeyPoints`` ``[N, 4, 2]``, so every v2 transform moves them together; afterwards it
drops the objects that the augmentation pushed (mostly) out of the image from EVERY per-object
entry at once (boxes, labels, corners, text, ...), clamps the remaining boxes to the image, and
unwraps. A kept object that was cut keeps its clamped box (which can be looser than what is left
of a tilted shape) and its corners as they are, possibly outside the image.

Two conventions, stated once:

- Coordinates are continuous: pixel column ``c`` spans ``[c, c + 1]``, for boxes and corners
  alike, so a horizontal flip maps ``x -> W - x``. torchvision's keypoint flip treats points as
  pixel indices (``x -> W - 1 - x``), one pixel off from its own box flip, so the flip here does
  the corners itself.
- Corner order: corners are top-left, top-right, bottom-right, bottom-left. A mirror image of a
  plate reads backwards; after a flip the corners are reordered (the old top-right becomes the
  top-left, and so on) so that the order stays TL, TR, BR, BL as seen in the image. A flipped
  plate is then a plate whose text is mirrored; its ``text`` entry is kept as the plate's text.

Random choices use torch's global generator (as every v2 transform does): seed it (e.g.
:func:`tutorial_det.runtime.seed_everything`) for repeatable augmentation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from tutorial_det.boxes import check_boxes, clip_boxes

#: Target entries with one value per object: they are kept or dropped together with the boxes.
PER_OBJECT_KEYS = ("labels", "corners", "text", "iscrowd", "difficult")

KINDS = ("shapes", "plates")


class RandomHorizontalFlip(v2.RandomHorizontalFlip):
    """Mirror the image, boxes and plate corners with probability ``p``.

    Corners ``[N, 4, 2]`` map with ``x -> W - x`` (the boxes' convention) and are reordered
    ``[1, 0, 3, 2]`` so that they stay top-left, top-right, bottom-right, bottom-left in the image.
    """

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.KeyPoints):
            if inpt.ndim != 3 or inpt.shape[1:] != (4, 2):
                raise ValueError(
                    f"the flip expects plate corners of shape [N, 4, 2], got {list(inpt.shape)}"
                )
            points = inpt.as_subclass(Tensor)[:, [1, 0, 3, 2]].clone()
            points[..., 0] = inpt.canvas_size[1] - points[..., 0]
            return tv_tensors.wrap(points, like=inpt)
        return super().transform(inpt, params)


class RandomScaleCrop(v2.Transform):
    """Scale by a random factor, then cut (or pad) a window of a fixed output size.

    The factor is drawn log-uniformly from ``scale``. A factor below 1 zooms out: the window is
    larger than the scaled image and the rest is filled with ``fill``. With ``keep_all=True`` the
    window always contains every box (the factor is lowered when their union would not fit), as
    the plate lessons want; otherwise objects may be cut, and :class:`DetectionPipeline` drops
    those that are mostly outside.

    Args:
        size: output ``(height, width)`` or one int for a square.
        scale: ``(low, high)`` range of the factor, ``0 < low <= high``.
        keep_all: keep every box inside the window.
        fill: value of padded pixels (images in [0, 1]: 0.5 is mid grey).
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.75, 1.33),
        keep_all: bool = False,
        fill: float = 0.5,
    ) -> None:
        super().__init__()
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"size must be a positive int or (height, width), got {size}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        self.size = (int(size[0]), int(size[1]))
        self.scale = (float(scale[0]), float(scale[1]))
        self.keep_all = keep_all
        self.fill = fill

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        image = next(x for x in flat_inputs if isinstance(x, tv_tensors.Image))
        height, width = F.get_size(image)
        out_h, out_w = self.size
        low, high = math.log(self.scale[0]), math.log(self.scale[1])
        union = None
        if self.keep_all:
            boxes = [x for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes)]
            if boxes and len(boxes[0]) > 0:
                b = boxes[0].as_subclass(Tensor)
                union = torch.cat((b[:, :2].min(dim=0).values, b[:, 2:].max(dim=0).values))
                # The scaled union must fit in the window with two pixels to spare: one is lost
                # to rounding the scaled size, and an integer window position must remain.
                union_w, union_h = (union[2:] - union[:2]).clamp(min=1e-6).tolist()
                fit = min((out_w - 2) / union_w, (out_h - 2) / union_h)
                high = min(high, math.log(fit))
                low = min(low, high)
        factor = math.exp(low + (high - low) * float(torch.rand(())))
        new_h, new_w = max(1, round(height * factor)), max(1, round(width * factor))
        # Window positions (top, left) may be negative or run past the scaled image: padding.
        top_range = [min(0, new_h - out_h), max(0, new_h - out_h)]
        left_range = [min(0, new_w - out_w), max(0, new_w - out_w)]
        if union is not None:
            sx, sy = new_w / width, new_h / height
            x1, y1, x2, y2 = union.tolist()
            left_range = [
                max(left_range[0], math.ceil(x2 * sx - out_w)),
                min(left_range[1], math.floor(x1 * sx)),
            ]
            top_range = [
                max(top_range[0], math.ceil(y2 * sy - out_h)),
                min(top_range[1], math.floor(y1 * sy)),
            ]
        top = int(torch.randint(top_range[0], top_range[1] + 1, ()))
        left = int(torch.randint(left_range[0], left_range[1] + 1, ()))
        return {"resized": [new_h, new_w], "top": top, "left": left}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        new_h, new_w = params["resized"]
        out_h, out_w = self.size
        top, left = params["top"], params["left"]
        inpt = self._call_kernel(F.resize, inpt, [new_h, new_w], antialias=True)
        pad = [
            max(0, -left),
            max(0, -top),
            max(0, left + out_w - new_w),
            max(0, top + out_h - new_h),
        ]
        if any(pad):
            inpt = self._call_kernel(F.pad, inpt, pad, fill=self.fill)
        return self._call_kernel(F.crop, inpt, top + pad[1], left + pad[0], out_h, out_w)


class DetectionPipeline:
    """Apply v2 transforms to ``(image, target)`` and keep every per-object entry aligned.

    Args:
        transforms: v2 transforms, applied in order (e.g. :class:`RandomHorizontalFlip`,
            :class:`RandomScaleCrop`, ``v2.ColorJitter``). torchvision's own
            ``RandomHorizontalFlip`` / ``RandomVerticalFlip`` are refused: they move keypoints
            one pixel off the boxes and scramble the corner order.
        min_visibility: an object is dropped when less than this fraction of its box's area is
            left inside the image.
        min_size: an object is dropped when its clamped box is narrower or lower than this (px).

    Call: ``pipeline(image, target) -> (image, target)`` with ``image`` ``[C, H, W]`` (float in
    [0, 1] or uint8) and ``target`` holding ``"boxes"`` ``[N, 4]`` xyxy inside the image and
    optionally ``"labels"`` ``[N]``, ``"corners"`` ``[N, 4, 2]``, ``"text"`` (N strings),
    ``"iscrowd"``, ``"difficult"`` ``[N]``, ``"image_id"``, and per-image strings or numbers.
    Other entries are refused (a list or tensor the pipeline does not know could be per-object
    and would silently lose its alignment with the boxes).
    """

    def __init__(
        self, transforms: Sequence[v2.Transform], min_visibility: float = 0.5, min_size: float = 2.0
    ) -> None:
        for i, t in enumerate(transforms):
            if type(t) in (v2.RandomHorizontalFlip, v2.RandomVerticalFlip):
                raise ValueError(
                    f"transforms[{i}] is torchvision's {type(t).__name__}: use "
                    "tutorial_det.data.transforms.RandomHorizontalFlip, which keeps plate corners "
                    "on the boxes' pixel convention and in TL, TR, BR, BL order"
                )
        if not 0 <= min_visibility <= 1:
            raise ValueError(f"min_visibility must be in [0, 1], got {min_visibility}")
        if min_size < 0:
            raise ValueError(f"min_size must be >= 0, got {min_size}")
        self.transforms = v2.Compose(list(transforms) or [v2.Identity()])
        self.min_visibility = float(min_visibility)
        self.min_size = float(min_size)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.transforms}, min_visibility={self.min_visibility}, "
            f"min_size={self.min_size})"
        )

    def __call__(self, image: Tensor, target: dict) -> tuple[Tensor, dict]:
        check_item(image, target)
        height, width = image.shape[-2:]
        sample = {
            "image": tv_tensors.Image(image),
            "boxes": tv_tensors.BoundingBoxes(
                target["boxes"].float(),
                format="XYXY",
                canvas_size=(height, width),
                clamping_mode=None,
            ),
        }
        if "corners" in target:
            sample["corners"] = tv_tensors.KeyPoints(
                target["corners"].float(), canvas_size=(height, width)
            )
        sample = self.transforms(sample)
        out_image = sample["image"].as_subclass(Tensor)
        boxes = sample["boxes"].as_subclass(Tensor)
        clamped = clip_boxes(boxes, out_image.shape[-2:])
        keep = self._visible(boxes, clamped)
        index = keep.nonzero().flatten().tolist()
        out = {}
        for key, value in target.items():
            if key == "boxes":
                out[key] = clamped[keep]
            elif key == "corners":
                out[key] = sample["corners"].as_subclass(Tensor)[keep]
            elif key in PER_OBJECT_KEYS:
                out[key] = value[keep] if isinstance(value, Tensor) else [value[i] for i in index]
            else:
                out[key] = value
        return out_image, out

    def _visible(self, boxes: Tensor, clamped: Tensor) -> Tensor:
        """``[N]`` bool: enough of each box is left inside the image, and it is not too small."""
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        wh = clamped[:, 2:] - clamped[:, :2]
        inside = wh[:, 0] * wh[:, 1]
        # A zero-area box is "fully visible" when it lies inside; the size test then decides.
        visible = torch.where(area > 0, inside / area.clamp(min=1e-12), torch.ones_like(area))
        return (visible >= self.min_visibility) & (wh >= self.min_size).all(dim=1)


def check_item(image: Tensor, target: dict) -> None:
    """Raise TypeError / ValueError naming the entry when ``(image, target)`` is not a valid
    detection item: image ``[C, H, W]``, boxes ``[N, 4]`` xyxy with x1 <= x2, y1 <= y2, inside the
    image, and per-object entries with N values (corners ``[N, 4, 2]``)."""
    if not isinstance(image, Tensor) or image.ndim != 3:
        shape = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a [C, H, W] tensor, got {shape}")
    if not isinstance(target, dict) or "boxes" not in target:
        raise ValueError("target must be a dict with a 'boxes' entry")
    height, width = image.shape[-2:]
    boxes = check_boxes(target["boxes"], "target['boxes']")
    tolerance = 1e-3
    outside = (boxes[:, :2] < -tolerance).any(dim=1) | (boxes[:, 2] > width + tolerance)
    outside |= boxes[:, 3] > height + tolerance
    if bool(outside.any()):
        i = int(outside.nonzero()[0])
        raise ValueError(
            f"target['boxes'][{i}] = {boxes[i].tolist()} lies outside the image of width {width} "
            f"and height {height} (x must be in [0, {width}], y in [0, {height}])"
        )
    n = len(boxes)
    for key, value in target.items():
        if key in ("boxes", "image_id"):
            continue
        if key in PER_OBJECT_KEYS:
            per_object = isinstance(value, (list, tuple)) or (
                isinstance(value, Tensor) and value.ndim >= 1
            )
            if not per_object:
                raise ValueError(
                    f"target[{key!r}] must be a list or tensor with one value per box, got "
                    f"{type(value).__name__}"
                )
            if len(value) != n:
                raise ValueError(f"target[{key!r}] has {len(value)} entries for {n} boxes")
        elif not isinstance(value, (str, int, float)):
            raise ValueError(
                f"target[{key!r}] is not understood by the transforms (per-object entries: "
                f"{PER_OBJECT_KEYS}; per-image entries must be strings or numbers)"
            )
    if "corners" in target:
        corners = target["corners"]
        if not isinstance(corners, Tensor) or tuple(corners.shape) != (n, 4, 2):
            shape = list(corners.shape) if isinstance(corners, Tensor) else type(corners).__name__
            raise ValueError(f"target['corners'] must be a [{n}, 4, 2] tensor, got {shape}")
        if not bool(torch.isfinite(corners).all()):
            raise ValueError("target['corners'] holds a NaN or infinite value")


def train_transforms(
    kind: str,
    size: int = 128,
    scale: tuple[float, float] | None = None,
    flip: float = 0.5,
    colour: float = 0.3,
    hue: float = 0.0,
) -> DetectionPipeline:
    """The training augmentation of the lessons, for items of either synthetic data set.

    - ``"shapes"``: horizontal flip, scale jitter in ``scale`` (default 0.75-1.5) with a random
      ``size x size`` window (shapes may be cut; those less than half visible are dropped),
      brightness / contrast / saturation jitter (and hue jitter if asked for).
    - ``"plates"``: the same with scale 0.75-1.33, but the window keeps every plate whole (WPOD-Net
      needs all four corners); flips reorder the corners (see the module notes).

    Args:
        kind: ``"shapes"`` or ``"plates"``.
        size: side of the square output images.
        scale: scale-jitter range, or None for the kind's default.
        flip: probability of a horizontal flip.
        colour: strength of the brightness, contrast and saturation jitter; 0 turns it off.
        hue: strength of the hue jitter (at most 0.5). Off by default: the HSV round trip costs
            about three times the rest of the pipeline, and the synthetic colours are random
            already.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not one of {KINDS}")
    if not 0 <= flip <= 1:
        raise ValueError(f"flip must be a probability in [0, 1], got {flip}")
    if not 0 <= colour <= 1:
        raise ValueError(f"colour must be in [0, 1], got {colour}")
    if not 0 <= hue <= 0.5:
        raise ValueError(f"hue must be in [0, 0.5], got {hue}")
    plates = kind == "plates"
    if scale is None:
        scale = (0.75, 1.33) if plates else (0.75, 1.5)
    steps: list[v2.Transform] = [
        RandomHorizontalFlip(flip),
        RandomScaleCrop(size, scale=scale, keep_all=plates),
    ]
    if colour > 0 or hue > 0:
        steps.append(v2.ColorJitter(colour, colour, colour, hue))
    return DetectionPipeline(steps)
