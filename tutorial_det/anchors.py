"""Anchors: the reference boxes a detection head predicts offsets from.

Lesson 02 teaches the anchors: it builds one cell's nine by hand (``anchors_by_hand``, the
numbers of :func:`anchor_base`) and the grid with a loop (:func:`tutorial_det.naive.anchors_loop`)
before it uses these vectorised functions; lesson 07 teaches the SSD priors.

A stride-``s`` feature map of ``H x W`` cells puts ``A`` anchors on every cell: one per
(aspect ratio, scale) pair, all centred on the cell's centre ``((j + 0.5) s, (i + 0.5) s)`` in
input pixels (row ``i``, column ``j``). Boxes are ``[N, 4]`` xyxy pixels.

- :func:`anchor_base`: the ``A`` anchors of the first cell (Faster R-CNN: 3 ratios x 3 scales).
- :func:`grid_anchors`: those anchors copied onto every cell, ordered (row, column, anchor), the
  order of a head's output permuted to ``(N, H, W, A)`` and flattened.
- :func:`inside_anchors`: which anchors lie entirely inside the image.
- SSD priors ("default boxes"): :func:`prior_boxes` (the paper's scales and aspect ratios,
  normalised ``(cx, cy, w, h)``), :func:`ssd_scales` and :func:`ssd300_priors` (SSD300's 8732,
  the same boxes in the same order as torchvision's ``DefaultBoxGenerator``). Lesson 07 first
  shows the simpler set-up of the SSD tutorial, :func:`tutorial_det.exercises.variants.simple_priors`.

torchvision's ``AnchorGenerator`` builds the same boxes with two differences in presentation: its
cell anchors are centred on 0 and rounded to whole pixels, and it shifts them to the cells'
top-left corners ``(j s, i s)``; so ours = torchvision's + s/2, within its rounding (0.5 px). Its
``sizes`` are the anchors' square-root areas, ``stride * scale`` here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tutorial_det.boxes import check_boxes, check_image_size


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
    h = (stride * k[None, :] * r.sqrt()[:, None]).reshape(-1)  # [R, S] -> [R * S], ratio-major
    w = (stride * k[None, :] / r.sqrt()[:, None]).reshape(-1)  # [R * S]
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
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=-1)  # [H, W, 4]
    shifts = shifts.reshape(-1, 1, 4)  # [H*W, 1, 4]
    return (shifts + base[None, :, :]).reshape(-1, 4)  # [H*W, A, 4] -> [H*W*A, 4]


def inside_anchors(anchors: Tensor, image_size: Sequence[int]) -> Tensor:
    """Bool mask ``[K]``: anchors lying entirely inside an image of ``(height, width)``
    (``x1 >= 0``, ``y1 >= 0``, ``x2 <= width``, ``y2 <= height``; touching the border counts as
    inside). On 800 x 800 at stride 16 with the default 9 anchors: 8940 of 22500."""
    height, width = check_image_size(image_size)
    anchors = check_boxes(anchors, "anchors")
    return (
        (anchors[:, 0] >= 0)
        & (anchors[:, 1] >= 0)
        & (anchors[:, 2] <= width)
        & (anchors[:, 3] <= height)
    )


# --------------------------------------------------------------------------- SSD priors


def ssd_scales(
    num_maps: int = 6, s_min: float = 0.2, s_max: float = 0.9, first: float | None = 0.1
) -> tuple[float, ...]:
    """The SSD paper's prior scales (fractions of the image side), one per feature map plus one.

    The paper spaces the scales linearly, ``s_k = s_min + (s_max - s_min) (k - 1) / (m - 1)``
    for maps ``k = 1..m``. For SSD300 it gives the first map (conv4_3) its own scale 0.1 and
    spaces the other five from 0.2 to 0.9: ``first=0.1`` does that. The extra value at the end,
    ``s_{m+1}``, continues the same spacing; it is used only by the last map's second square
    prior, of scale ``sqrt(s_m * s_{m+1})``.

    ``ssd_scales()`` = (0.1, 0.2, 0.375, 0.55, 0.725, 0.9, 1.075) (SSD300). The original Caffe
    model rounds these to whole percents and pixels (0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05);
    torchvision's ``ssd300_vgg16`` uses its COCO set (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05).

    Returns:
        ``num_maps + 1`` floats.
    """
    spaced = num_maps - (first is not None)
    if spaced < 2 or not 0 < s_min < s_max:
        raise ValueError(
            f"need at least two linearly spaced maps and 0 < s_min < s_max, got num_maps="
            f"{num_maps}, first={first}, s_min={s_min}, s_max={s_max}"
        )
    step = (s_max - s_min) / (spaced - 1)
    linear = tuple(s_min + step * k for k in range(spaced + 1))
    return linear if first is None else (float(first), *linear)


def prior_boxes(
    feature_sizes: Sequence[int | Sequence[int]],
    scales: Sequence[float],
    aspect_ratios: Sequence[Sequence[float]],
    steps: Sequence[float] | None = None,
    image_size: int | Sequence[int] | None = None,
    clip: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """SSD's default boxes ("priors") as in the paper: normalised ``(cx, cy, w, h)``.

    Feature map ``k`` (``f_k`` cells a side) gets, on every cell:

    - a square prior of side ``s_k`` and a square prior of side ``s'_k = sqrt(s_k * s_{k+1})``;
    - for every ratio ``a`` in ``aspect_ratios[k]`` two priors, ``w = s_k sqrt(a), h = s_k / sqrt(a)``
      and the same turned by 90 degrees (ratio ``1 / a``). So ``[2]`` gives 4 priors per cell
      (ratios 1, 1, 2, 1/2) and ``[2, 3]`` gives 6. Ratios here are ``w / h`` (the paper's ``a_r``);
      :func:`anchor_base`'s are ``h / w``: the sets are the same because each comes with its
      inverse.

    The centre of cell (row ``i``, column ``j``) is ``((j + 0.5) / f_k, (i + 0.5) / f_k)`` in the
    paper. With ``steps`` (input pixels per cell, the original Caffe model's and torchvision's
    way) it is ``((j + 0.5) step_k / W, (i + 0.5) step_k / H)`` instead: SSD300's conv4_3 has 38
    cells but a step of 8, so its centres are spaced 8/300 apart, not 1/38.

    Args:
        feature_sizes: ``f_k`` per map, an int (square) or ``(H, W)``.
        scales: ``s_1 .. s_{m+1}``: one more than there are maps (see :func:`ssd_scales`).
        aspect_ratios: per map, the ratios other than 1 (each positive and not 1).
        steps: optional input pixels per cell, one per map; needs ``image_size``.
        image_size: ``(height, width)`` (or one side) of the input, only used with ``steps``.
        clip: clamp every prior's ``w`` and ``h`` to at most 1 (torchvision's ``clip=True``); the
            paper does not.

    Returns:
        ``[P, 4]`` ``(cx, cy, w, h)`` as fractions of the image width and height, ordered (map, row,
        column, prior); within a cell: ``s_k``, ``s'_k``, then each ratio and its inverse. This is
        the order and format of torchvision's ``DefaultBoxGenerator`` before it scales to pixels.
        :func:`ssd300_priors` gives SSD300's 8732.
    """
    m = len(feature_sizes)
    if m == 0 or len(aspect_ratios) != m or len(scales) != m + 1:
        raise ValueError(
            f"need one entry of aspect_ratios per feature map and one more scale than maps: got "
            f"{m} feature_sizes, {len(aspect_ratios)} aspect_ratios, {len(scales)} scales "
            f"(expected {m + 1})"
        )
    s = _positive_numbers(scales, "scales")
    if steps is not None:
        if len(steps) != m:
            raise ValueError(f"steps must hold one value per feature map ({m}), got {len(steps)}")
        _positive_numbers(steps, "steps")
        if image_size is None:
            raise ValueError("steps are in input pixels: image_size is needed to normalise them")
        height, width = check_image_size(
            (image_size, image_size) if isinstance(image_size, (int, float)) else image_size
        )
    levels = []
    for k, size in enumerate(feature_sizes):
        rows, cols = (size, size) if isinstance(size, int) else tuple(size)
        if not (isinstance(rows, int) and isinstance(cols, int) and rows > 0 and cols > 0):
            raise ValueError(f"feature_sizes[{k}] = {size} is not a positive int or (H, W)")
        ratios = (
            _positive_numbers(aspect_ratios[k], f"aspect_ratios[{k}]")
            if aspect_ratios[k]
            else torch.zeros(0, dtype=torch.float64)
        )
        if bool((ratios == 1).any()):
            raise ValueError(
                f"aspect_ratios[{k}] = {tuple(aspect_ratios[k])} contains 1: ratio 1 is always "
                "there (two square priors); list only the other ratios"
            )
        sq = ratios.sqrt()
        wh = [torch.stack((s[k], s[k])), torch.stack([(s[k] * s[k + 1]).sqrt()] * 2)]
        for r in sq:
            wh += [torch.stack((s[k] * r, s[k] / r)), torch.stack((s[k] / r, s[k] * r))]
        wh = torch.stack(wh)  # [A, 2]
        if clip:
            wh = wh.clamp(max=1.0)
        if steps is None:
            cx = (torch.arange(cols, dtype=torch.float64) + 0.5) / cols
            cy = (torch.arange(rows, dtype=torch.float64) + 0.5) / rows
        else:
            cx = (torch.arange(cols, dtype=torch.float64) + 0.5) * steps[k] / width
            cy = (torch.arange(rows, dtype=torch.float64) + 0.5) * steps[k] / height
        grid_y, grid_x = torch.meshgrid(cy, cx, indexing="ij")
        centres = torch.stack((grid_x, grid_y), dim=-1).reshape(-1, 1, 2)  # [H*W, 1, 2]
        boxes = torch.cat(
            (centres.expand(-1, len(wh), 2), wh[None].expand(len(centres), -1, 2)), dim=-1
        )  # [H*W, A, 4]
        levels.append(boxes.reshape(-1, 4))  # [H*W*A, 4]
    return torch.cat(levels).to(dtype)


#: SSD300's feature maps (conv4_3, fc7, conv8_2 .. conv11_2), steps and ratios other than 1.
SSD300_FEATURE_SIZES = (38, 19, 10, 5, 3, 1)
SSD300_STEPS = (8, 16, 32, 64, 100, 300)
SSD300_ASPECT_RATIOS = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))


def ssd300_priors(clip: bool = False, dtype: torch.dtype = torch.float32) -> Tensor:
    """SSD300's 8732 priors: ``[8732, 4]`` normalised ``(cx, cy, w, h)``.

    Maps of 38, 19, 10, 5, 3, 1 cells with 4, 6, 6, 6, 4, 4 priors per cell
    (38² 4 + 19² 6 + 10² 6 + 5² 6 + 3² 4 + 1² 4 = 5776 + 2166 + 600 + 150 + 36 + 4 = 8732),
    scales :func:`ssd_scales` ``()`` = 0.1, 0.2, 0.375, 0.55, 0.725, 0.9 (and 1.075 for the last
    map's extra prior), centres placed with the steps 8, 16, 32, 64, 100, 300 on a 300 x 300
    input (see :func:`prior_boxes`).
    """
    return prior_boxes(
        SSD300_FEATURE_SIZES,
        ssd_scales(),
        SSD300_ASPECT_RATIOS,
        steps=SSD300_STEPS,
        image_size=300,
        clip=clip,
        dtype=dtype,
    )
