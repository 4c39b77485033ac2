"""Anchors: the reference boxes a detection head predicts offsets from.

A stride-``s`` feature map of ``H x W`` cells puts ``A`` anchors on every cell: one per
(aspect ratio, scale) pair, all centred on the cell's centre ``((j + 0.5) s, (i + 0.5) s)`` in
input pixels (row ``i``, column ``j``). Boxes are ``[N, 4]`` xyxy pixels.

- :func:`anchor_base`: the ``A`` anchors of the first cell (Faster R-CNN: 3 ratios x 3 scales).
- :func:`grid_anchors`: those anchors copied onto every cell, ordered (row, column, anchor), the
  order of a head's output permuted to ``(N, H, W, A)`` and flattened.
- :func:`inside_anchors`: which anchors lie entirely inside the image.

torchvision's ``AnchorGenerator`` builds the same boxes with two differences in presentation: its
cell anchors are centred on 0 and rounded to whole pixels, and it shifts them to the cells'
top-left corners ``(j s, i s)``; so ours = torchvision's + s/2, within its rounding (0.5 px). Its
``sizes`` are the anchors' square-root areas, ``stride * scale`` here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tutorial_det.boxes import _image_size, check_boxes


def _positive_numbers(values: Sequence[float], name: str) -> Tensor:
    if len(values) == 0:
        raise ValueError(f"{name} must hold at least one value, got {tuple(values)}")
    if min(values) <= 0:
        raise ValueError(f"{name} must all be positive, got {tuple(values)}")
    return torch.as_tensor(values, dtype=torch.float64)


def anchor_base(
    stride: float = 16,
    ratios: Sequence[float] = (0.5, 1.0, 2.0),
    scales: Sequence[float] = (8, 16, 32),
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The anchors of the first cell: ``[len(ratios) * len(scales), 4]`` xyxy.

    Anchor ``(ratio r, scale k)`` has area ``(stride * k) ** 2`` and shape ``h / w = r``:
    ``h = stride * k * sqrt(r)``, ``w = stride * k / sqrt(r)``, centred on the first cell's centre
    ``(stride / 2, stride / 2)``. Rows go ratio by ratio, and within a ratio scale by scale
    (index ``i * len(scales) + j``). With the defaults, ratio 0.5 scale 8 is 181.02 wide and
    90.51 high: ``[-82.51, -37.25, 98.51, 53.25]``.

    Computed in float64, returned as ``dtype``.
    """
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    r = _positive_numbers(ratios, "ratios")
    k = _positive_numbers(scales, "scales")
    h = (stride * k[None, :] * r.sqrt()[:, None]).reshape(-1)
    w = (stride * k[None, :] / r.sqrt()[:, None]).reshape(-1)
    c = stride / 2
    return torch.stack((c - w / 2, c - h / 2, c + w / 2, c + h / 2), dim=1).to(dtype)


def grid_anchors(base: Tensor, feature_size: Sequence[int], stride: float) -> Tensor:
    """Copy the first cell's anchors onto every cell of an ``H x W`` feature map.

    Args:
        base: ``[A, 4]`` xyxy anchors centred on the first cell's centre ``(stride/2, stride/2)``
            (what :func:`anchor_base` returns).
        feature_size: ``(H, W)`` of the feature map.
        stride: input pixels per cell.

    Returns:
        ``[H * W * A, 4]`` xyxy on ``base``'s device and dtype. Anchor ``(i * W + j) * A + a`` is
        base anchor ``a`` moved to row ``i``, column ``j`` (moved by ``(j * stride, i * stride)``):
        row-major, the order of a head's ``[N, A * 4, H, W]`` output after
        ``permute(0, 2, 3, 1).reshape(N, -1, 4)``.

    Raises:
        ValueError: ``base`` is not ``[A, 4]`` xyxy, ``feature_size`` is not two non-negative
            integers, ``stride`` is not positive, or ``base`` is not centred on
            ``(stride/2, stride/2)`` (a zero-centred base, like torchvision's, would put every
            anchor half a cell up and left of its cell).
    """
    base = check_boxes(base, "base")
    if len(feature_size) != 2 or min(feature_size) < 0:
        raise ValueError(
            f"feature_size must be (H, W) with non-negative sizes, got {tuple(feature_size)}"
        )
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    centres = (base[:, :2] + base[:, 2:]) / 2
    off = (centres - stride / 2).abs().amax(dim=1) > 1e-3 * max(1.0, stride)
    if bool(off.any()):
        a = int(off.nonzero()[0])
        raise ValueError(
            f"base[{a}] = {base[a].tolist()} is centred at {centres[a].tolist()}, not on the first "
            f"cell's centre ({stride / 2:g}, {stride / 2:g}) for stride {stride:g}"
        )
    height, width = int(feature_size[0]), int(feature_size[1])
    xs = torch.arange(width, dtype=base.dtype, device=base.device) * stride
    ys = torch.arange(height, dtype=base.dtype, device=base.device) * stride
    shift_y, shift_x = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=-1).reshape(-1, 1, 4)
    return (shifts + base[None, :, :]).reshape(-1, 4)


def inside_anchors(anchors: Tensor, image_size: Sequence[int]) -> Tensor:
    """Bool mask ``[K]``: anchors lying entirely inside an image of ``(height, width)``
    (``x1 >= 0``, ``y1 >= 0``, ``x2 <= width``, ``y2 <= height``; touching the border counts as
    inside). On 800 x 800 at stride 16 with the default 9 anchors: 8940 of 22500."""
    height, width = _image_size(image_size)
    anchors = check_boxes(anchors, "anchors")
    return (
        (anchors[:, 0] >= 0)
        & (anchors[:, 1] >= 0)
        & (anchors[:, 2] <= width)
        & (anchors[:, 3] <= height)
    )
