"""RoI max pooling (lesson 05): every region of interest becomes a fixed ``[C, h, w]`` grid.

:func:`roi_pool` has ``torchvision.ops.roi_pool``'s contract and returns exactly its numbers
(and its gradients); the tests check both. It is lesson 05's recipe, with every rounding step
explicit:

1. scale the box to the feature map and **round** each coordinate to a cell index
   (``x1 = round(x1 * spatial_scale)``, halves away from zero, as C's ``round``);
2. the RoI spans cells ``x1 .. x2`` inclusive: ``x2 - x1 + 1`` cells, at least 1 (a box whose
   corners round the wrong way round becomes a single cell). This "+1" is RoI pooling's own
   convention, unlike the boxes of the rest of the package;
3. split that span into ``w`` bins of ``span / w`` cells: bin ``j`` covers cells
   ``floor(j * span / w) .. ceil((j + 1) * span / w) - 1`` (neighbouring bins can share a cell),
   shifted by ``x1`` and clamped to the map; likewise in y;
4. each output value is the **max** over its bin; a bin that lies entirely off the map is 0.
   The gradient of a bin goes to its arg-max cell only (the first one in row-major order on a
   tie); cells that are no bin's maximum get none.

Steps 1-3 run for every RoI and bin at once (:func:`_bin_ranges`). Step 4 takes one RoI at a
time (:func:`_bin_maxima`): it lays out the cells of each of its bins as one run, row by row
as the lesson's ``grid[top:bottom, left:right]`` reads them, and takes the maximum of every run
for all channels at once. When a gradient is wanted, it also finds the first cell of each run
that holds the maximum, and the output is read again at those cells, so that the gradient
flows to them. The loop over RoIs *and* bins that lesson 05 writes is
:func:`tutorial_det.naive.roi_pool_loop`.

RoIAlign (``torchvision.ops.roi_align``, which :class:`tutorial_det.roi.RoIHead` uses by
default) removes every rounding step: the box is scaled but not rounded, each bin is an exact
``span / w`` sub-box, and its value is the average (or max) of a few points sampled inside it by
**bilinear interpolation** of the four surrounding cells, so the output moves smoothly with the
box and the gradient reaches the coordinates' neighbourhood, not one cell. With ``aligned=True``
it also subtracts half a pixel, so that a box coordinate x refers to the continuous position
x - 0.5 on the map (cell centres at 0.5, 1.5, ...): with ``aligned=False`` everything sits half
a cell off. The package does not reimplement it; lessons call torchvision's.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from tutorial_det.boxes import check_boxes

# torchvision's kernel starts each bin's max at -FLT_MAX (the lowest float32)
_FLT_MAX = torch.finfo(torch.float32).max


def roi_pool(
    features: Tensor,
    rois: Tensor | Sequence[Tensor],
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """Fast R-CNN RoI max pooling (``torchvision.ops.roi_pool``'s contract and numbers).

    Args:
        features: ``[B, C, H, W]`` float32 or float64 feature maps.
        rois: ``[K, 5]`` rows ``(batch index, x1, y1, x2, y2)`` in image pixels, or a list of
            ``B`` tensors ``[K_i, 4]`` xyxy (the RoIs of image ``i``), concatenated in order.
        output_size: ``h`` (square) or ``(h, w)``, the grid each RoI is pooled to.
        spatial_scale: feature cells per image pixel (1/16 for a stride-16 backbone).

    Returns:
        ``[K, C, h, w]`` in the dtype of ``features``, differentiable with respect to
        ``features`` (the gradient goes to each bin's arg-max).

    Raises:
        TypeError / ValueError: wrong shapes or dtypes, a batch index that is not an integer in
            ``[0, B)``, non-finite coordinates, ``output_size`` or ``spatial_scale`` not
            positive; messages name the argument and the offending RoI.
    """
    _check_features(features)
    batch, channels, height, width = features.shape
    out_h, out_w = check_output_size(output_size)
    scale = check_spatial_scale(spatial_scale)
    rois = _check_rois(rois, batch, features)
    if features.numel() == 0:  # every bin is empty (or there are no channels)
        return features.new_zeros(len(rois), channels, out_h, out_w)

    top, bottom = _bin_ranges(rois[:, 2], rois[:, 4], out_h, scale, height)  # [K, h] each
    left, right = _bin_ranges(rois[:, 1], rois[:, 3], out_w, scale, width)  # [K, w] each
    find_cells = features.requires_grad and torch.is_grad_enabled()
    with torch.no_grad():
        image = rois[:, 0].long()
        pooled, cell = _bin_maxima(features, image, (top, bottom), (left, right), find_cells)
    # torchvision takes a cell only when it is strictly greater than the max so far, from
    # -FLT_MAX: a bin of NaN, -inf or -FLT_MAX gives -FLT_MAX (and no gradient)
    lost = pooled <= -_FLT_MAX
    empty = (bottom <= top)[:, None, :, None] | (right <= left)[:, None, None, :]
    if find_cells:
        # each maximum read again at its cell: index_select's backward adds each output's
        # gradient to its cell, in output order, the same additions in the same order as
        # torchvision's backward kernel
        pooled = features.reshape(-1).index_select(0, cell.flatten()).view(cell.shape)
    return pooled.masked_fill(lost, -_FLT_MAX).masked_fill(empty, 0.0)


def _bin_maxima(
    features: Tensor,
    image: Tensor,
    rows: tuple[Tensor, Tensor],
    cols: tuple[Tensor, Tensor],
    find_cells: bool,
) -> tuple[Tensor, Tensor | None]:
    """Every bin's maximum, ``[K, C, h, w]`` (-inf where the bin has only NaN or -inf), and,
    with ``find_cells``, the flat index into ``features.reshape(-1)`` of its first maximum in
    row-major order (``[K, C, h, w]`` int64; otherwise None).

    ``image`` is ``[K]``; ``rows`` and ``cols`` are the bins' cell ranges ``[start, end)`` from
    :func:`_bin_ranges`, ``[K, h]`` and ``[K, w]`` each. An empty bin gets the value and cell of
    some cell of the map (:func:`roi_pool` sets it to 0)."""
    batch, channels, height, width = features.shape
    (top, bottom), (left, right) = rows, cols
    out_h, out_w = top.shape[1], left.shape[1]
    # NaN is never a bin's maximum (torchvision compares with >); channels last, so that reading
    # a cell copies its C values in one piece: [B, H * W, C]
    values = features.nan_to_num(nan=-math.inf, posinf=math.inf, neginf=-math.inf)
    values = values.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
    planes = torch.arange(channels, device=features.device) * (height * width)  # [C]
    bin_heights = (bottom - top).amax(dim=1).clamp(min=1).tolist()  # the longest bin, [K]
    bin_widths = (right - left).amax(dim=1).clamp(min=1).tolist()
    maxima, cells = [], []
    for k, b in enumerate(image.tolist()):
        ys = _bin_cells(top[k], bottom[k], bin_heights[k], height)  # [h, bin height]
        xs = _bin_cells(left[k], right[k], bin_widths[k], width)  # [w, bin width]
        # the cells of each bin as one run, row by row: [h, w, run], run = bin height * width
        runs = (ys[:, None, :, None] * width + xs[None, :, None, :]).flatten(2)
        window = values[b].index_select(0, runs.flatten()).view(*runs.shape, channels)
        peak = window.amax(dim=2)  # [h, w, C]: each bin's maximum
        maxima.append(peak.permute(2, 0, 1))  # [C, h, w]
        if find_cells:  # the first cell of the run holding it: the first maximum, row by row
            first = _first_true(window == peak[:, :, None], dim=2)  # [h, w, C]
            cell = b * channels * height * width + planes + runs.gather(2, first)
            cells.append(cell.permute(2, 0, 1))  # [C, h, w]
    if not maxima:
        empty = features.new_empty(0, channels, out_h, out_w)
        return empty, empty.long() if find_cells else None
    return torch.stack(maxima), torch.stack(cells) if find_cells else None


def _first_true(mask: Tensor, dim: int) -> Tensor:
    """Index of the first True along ``dim`` of a bool tensor (int64; the length of ``dim``
    where there is none): the largest ``length - index`` among the True entries, read back
    (a product and a max: far cheaper on a CPU than ``torch.where`` or ``argmax`` here)."""
    length = mask.shape[dim]
    shape = [length if d == dim % mask.ndim else 1 for d in range(mask.ndim)]
    # the narrowest integer that counts that far: the fewer bytes, the faster
    dtype = next(t for t in (torch.uint8, torch.int16, torch.int32) if length <= torch.iinfo(t).max)
    countdown = torch.arange(length, 0, -1, dtype=dtype, device=mask.device).view(shape)
    return length - (mask * countdown).amax(dim=dim).long()


def _bin_cells(start: Tensor, end: Tensor, length: int, size: int) -> Tensor:
    """The cells ``start .. end - 1`` of each bin along one axis as rows of ``length`` (the
    longest bin's), ``[n, length]`` int64: a shorter bin's row ends in repeats of its last
    cell, which change neither its max nor where that max first occurs. ``start`` and ``end``
    are ``[n]``; an empty bin gets one cell of the map, ``size`` cells long."""
    steps = torch.arange(length, device=start.device)
    return torch.minimum(start[:, None] + steps, end[:, None] - 1).clamp(0, size - 1)


def _bin_ranges(
    low: Tensor, high: Tensor, bins: int, spatial_scale: float, size: int
) -> tuple[Tensor, Tensor]:
    """Cell ranges ``[start, end)`` (two ``[K, bins]`` int64 tensors, clamped to ``[0, size]``)
    of the bins of RoIs from ``low`` to ``high`` (image pixels, ``[K]``) along one axis: steps
    1-3 of the module's recipe.

    All arithmetic is in the RoIs' dtype, as torchvision's kernel does it, so that floor and
    ceil see exactly the same values: ``span / bins`` is rounded to that dtype first, then
    multiplied by the bin number (lesson 05 divides ``j * span`` by 2, which is exact)."""
    scale = torch.tensor(spatial_scale, dtype=low.dtype)
    first = _round_half_away(low * scale)
    last = _round_half_away(high * scale)
    span = (last - first + 1).clamp(min=1)  # [K]
    bin_size = span.to(low.dtype) / bins
    j = torch.arange(bins, device=low.device).to(low.dtype)
    start = first[:, None] + torch.floor(j * bin_size[:, None]).long()  # [K, bins]
    end = first[:, None] + torch.ceil((j + 1) * bin_size[:, None]).long()
    return start.clamp(0, size), end.clamp(0, size)


def _round_half_away(values: Tensor) -> Tensor:
    """C's ``round``: to the nearest integer, halves away from zero (``torch.round`` rounds
    halves to even), as int64. ``values - trunc(values)`` is exact, so no value is misrounded."""
    whole = torch.trunc(values)
    up = (values - whole).abs() >= 0.5
    return (whole + torch.where(up, torch.sign(values), 0)).long()


# --------------------------------------------------------------------------- validation


def _check_features(features: Tensor) -> None:
    """Raise unless ``features`` is a ``[B, C, H, W]`` float32 or float64 tensor."""
    if not isinstance(features, Tensor):
        raise TypeError(
            f"features must be a torch.Tensor [B, C, H, W], got {type(features).__name__}"
        )
    if features.ndim != 4:
        raise ValueError(f"features must have shape [B, C, H, W], got {list(features.shape)}")
    if features.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"features must be float32 or float64, got {features.dtype}")


def check_output_size(output_size: int | Sequence[int]) -> tuple[int, int]:
    """``h`` or ``(h, w)`` -> ``(h, w)``, positive integers."""
    size = (output_size, output_size) if isinstance(output_size, numbers.Integral) else output_size
    try:
        height, width = size
    except (TypeError, ValueError):
        raise ValueError(f"output_size must be an int or (h, w), got {output_size!r}") from None
    for value in (height, width):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"output_size must be positive integers (h, w), got {output_size!r}")
    return int(height), int(width)


def check_spatial_scale(spatial_scale: float) -> float:
    """``spatial_scale`` as a positive, finite float."""
    if isinstance(spatial_scale, bool) or not isinstance(spatial_scale, numbers.Real):
        raise TypeError(f"spatial_scale must be a number, got {type(spatial_scale).__name__}")
    if not 0 < float(spatial_scale) < float("inf"):
        raise ValueError(f"spatial_scale must be positive and finite, got {spatial_scale}")
    return float(spatial_scale)


def _check_rois(rois: Tensor | Sequence[Tensor], batch: int, features: Tensor) -> Tensor:
    """Validate ``rois`` (``[K, 5]`` or a list of ``batch`` ``[K_i, 4]`` xyxy tensors) and return
    them as ``[K, 5]`` rows ``(batch index, x1, y1, x2, y2)`` in the dtype and device of
    ``features``."""
    if isinstance(rois, (list, tuple)):
        if len(rois) != batch:
            raise ValueError(
                f"rois as a list must hold one [K_i, 4] tensor per image: {batch} images, "
                f"got {len(rois)} tensors"
            )
        parts = []
        for i, boxes in enumerate(rois):
            boxes = check_boxes(boxes, f"rois[{i}]", ordered=False).to(features)
            parts.append(torch.cat((boxes.new_full((len(boxes), 1), i), boxes), dim=1))
        return torch.cat(parts) if parts else features.new_zeros(0, 5)
    if not isinstance(rois, Tensor):
        raise TypeError(
            f"rois must be a [K, 5] tensor or a list of [K_i, 4] tensors, got {type(rois).__name__}"
        )
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(
            f"rois must have shape [K, 5] (batch index, x1, y1, x2, y2), got {list(rois.shape)}"
        )
    rois = rois.to(features)
    check_boxes(rois[:, 1:], "rois[:, 1:]", ordered=False)
    index = rois[:, 0]
    bad = (index != torch.floor(index)) | (index < 0) | (index >= batch)
    if bool(bad.any()):
        k = int(bad.nonzero()[0])
        raise ValueError(
            f"rois[{k}] has batch index {index[k].item()}; it must be an integer in [0, {batch})"
        )
    return rois
