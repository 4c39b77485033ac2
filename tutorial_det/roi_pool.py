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

RoIAlign (``torchvision.ops.roi_align``, which :class:`tutorial_det.roi.RoIHead` uses by
default) removes every rounding step: the box is scaled but not rounded, each bin is an exact
``span / w`` sub-box, and its value is the average (or max) of a few points sampled inside it by
**bilinear interpolation** of the four surrounding cells, so the output moves smoothly with the
box and the gradient reaches the coordinates' neighbourhood, not one cell. With ``aligned=True``
it also subtracts half a pixel, so that a box coordinate x refers to the continuous position
x - 0.5 on the map (cell centres at 0.5, 1.5, ...): with ``aligned=False`` everything sits half
a cell off. The package does not reimplement it; lessons call torchvision's.

How :func:`roi_pool` is vectorised (no Python loop over RoIs or bins):

- each cell's value and position are packed into one int64 key, ``order(value) * 2**32 +
  (2**32 - 1 - cell)``: the largest key of any set of cells is its largest value at its first
  cell in row-major order, torchvision's arg-max; and since a key belongs to one cell, the max
  of several windows' maxima is the max of their union even where the windows overlap;
- a sparse table holds, for every cell, the largest key of the ``2**i`` x ``2**j`` window whose
  top-left corner it is (each level is the max of two windows of the level below);
- a bin of ``m`` x ``n`` cells (``2**i <= m < 2**(i+1)``, ``2**j <= n < 2**(j+1)``) is covered
  exactly by the four such windows anchored at its corners, so its max is the max of four table
  entries: four ``index_select`` calls for every bin of every RoI at once.

The output then gathers the features at each bin's arg-max cell, which also routes the
gradient to it. Channels and RoIs go in groups that keep each table and each group's keys
within ``CHUNK_ELEMENTS`` values.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from tutorial_det.boxes import check_boxes

#: int64 keys in one sparse table or one group of results: bounds the working memory of
#: :func:`roi_pool` to a few times ``8 * CHUNK_ELEMENTS`` bytes (16 MB) plus its output.
CHUNK_ELEMENTS = 1 << 21

# torchvision starts each bin's max at -FLT_MAX and takes a value only when it is strictly
# greater, so NaN, -inf and -FLT_MAX itself are never a bin's maximum.
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
    check_features(features)
    batch, channels, height, width = features.shape
    out_h, out_w = check_output_size(output_size)
    scale = torch.tensor(check_spatial_scale(spatial_scale), dtype=features.dtype)
    rois = check_rois(rois, batch, features)
    if features.numel() == 0:  # every bin is empty (or there are no channels)
        return features.new_zeros(len(rois), channels, out_h, out_w)

    rows = _bin_edges(rois[:, 2], rois[:, 4], out_h, scale, height)
    cols = _bin_edges(rois[:, 1], rois[:, 3], out_w, scale, width)
    with torch.no_grad():
        cell = _bin_argmax(features.detach(), rois[:, 0].long(), rows, cols)
    # index_select's backward adds each output's gradient to its cell, in output order: the
    # same additions, in the same order, as torchvision's backward kernel.
    picked = features.reshape(-1).index_select(0, cell.reshape(-1)).view(cell.shape)
    empty = (rows[1] <= rows[0])[:, None, :, None] | (cols[1] <= cols[0])[:, None, None, :]
    found = picked > -_FLT_MAX  # False: every cell of the bin is NaN, -inf or -FLT_MAX
    fill = torch.where(empty, 0.0, -_FLT_MAX).to(features.dtype)
    return torch.where(found & ~empty, picked, fill)


def _bin_argmax(
    features: Tensor, image: Tensor, rows: tuple[Tensor, Tensor], cols: tuple[Tensor, Tensor]
) -> Tensor:
    """Flat index into ``features.reshape(-1)`` of every bin's first maximum, ``[K, C, h, w]``
    int64. ``image`` is ``[K]``; ``rows`` and ``cols`` are the bins' clamped cell ranges
    ``[start, end)``, ``[K, h]`` and ``[K, w]`` each. Empty bins get an arbitrary valid index."""
    batch, channels, height, width = features.shape
    (row_start, row_end), (col_start, col_end) = rows, cols
    count, out_h = row_start.shape
    out_w = col_start.shape[1]
    device = features.device
    best = torch.empty(count, channels, out_h, out_w, dtype=torch.long, device=device)
    if count == 0:
        return best
    # Each bin as first cell and length along each axis; an empty bin becomes one valid cell.
    row_first, row_len = row_start.clamp(max=height - 1), (row_end - row_start).clamp(min=1)
    col_first, col_len = col_start.clamp(max=width - 1), (col_end - col_start).clamp(min=1)
    row_levels, col_levels = int(row_len.max()).bit_length(), int(col_len.max()).bit_length()
    # Channels in groups and RoIs in chunks, so that a table and a chunk's keys each hold at
    # most about CHUNK_ELEMENTS values.
    group = max(1, CHUNK_ELEMENTS // (row_levels * col_levels * height * width))
    chunk = max(1, CHUNK_ELEMENTS // (out_h * out_w * group))
    for b in range(batch):
        rois = (image == b).nonzero().flatten()
        if not len(rois):
            continue
        windows = _covering_windows(
            (row_first[rois], row_len[rois]),
            (col_first[rois], col_len[rois]),
            (row_levels, col_levels),
            (height, width),
        )
        for c0 in range(0, channels, group):
            c1 = min(c0 + group, channels)
            table = _window_table(_keys(features[b, c0:c1]), row_levels, col_levels)
            plane = (b * channels + torch.arange(c0, c1, device=device)) * (height * width)
            for k0 in range(0, len(rois), chunk):
                k1 = min(k0 + chunk, len(rois))
                key = table.index_select(0, windows[0][k0:k1].reshape(-1))
                for window in windows[1:]:
                    torch.maximum(key, table.index_select(0, window[k0:k1].reshape(-1)), out=key)
                cell = (2**32 - 1) - (key & (2**32 - 1))  # the cell the key carries
                cell = cell.view(k1 - k0, out_h, out_w, c1 - c0) + plane
                best[rois[k0:k1], c0:c1] = cell.permute(0, 3, 1, 2)
    return best


def _covering_windows(
    rows: tuple[Tensor, Tensor],
    cols: tuple[Tensor, Tensor],
    levels: tuple[int, int],
    size: tuple[int, int],
) -> list[Tensor]:
    """The four windows of :func:`_window_table` that together cover each bin exactly, as rows
    of the flattened table: four ``[K, h, w]`` int64 tensors.

    ``rows`` and ``cols`` are the bins' first cells and lengths (``[K, h]`` and ``[K, w]``),
    ``levels`` the table's ``(row levels, column levels)``, ``size`` the map's ``(H, W)``. A run of ``n`` cells (``2**j <= n <
    2**(j + 1)``) is covered by the two windows of ``2**j`` cells that start at its first cell
    and end at its last; a bin by the four combinations of its row and column runs."""

    def ends(first: Tensor, length: Tensor, n_levels: int) -> tuple[Tensor, Tensor, Tensor]:
        level = torch.zeros_like(length)  # floor(log2(length)), for lengths < 2**n_levels
        for j in range(1, n_levels):
            level += length >= 2**j
        return level, first, first + length - 2**level

    row_level, top, bottom = ends(*rows, levels[0])
    col_level, left, right = ends(*cols, levels[1])
    height, width = size
    level = row_level[:, :, None] * levels[1] + col_level[:, None, :]
    return [
        (level * height + y[:, :, None]) * width + x[:, None, :]
        for y in (top, bottom)
        for x in (left, right)
    ]


def _window_table(keys: Tensor, row_levels: int, col_levels: int) -> Tensor:
    """A two-dimensional sparse table of ``[H, W, C]`` keys: entry ``(i, j, y, x)`` is the max
    over the ``2**i`` x ``2**j`` window whose top-left cell is ``(y, x)``. Returned flattened to
    rows of ``C`` keys, ``[row_levels * col_levels * H * W, C]``. Each level is the max of two
    windows of the level below, side by side (wider) or one above the other (taller); windows
    that would run off the map are never looked up and just copy the level below."""
    height, width, channels = keys.shape
    table = keys.new_empty(row_levels, col_levels, height, width, channels)
    table[0, 0] = keys
    for j in range(1, col_levels):
        half, narrow = 2 ** (j - 1), table[0, j - 1]
        table[0, j, :, width - half :] = narrow[:, width - half :]
        torch.maximum(
            narrow[:, : width - half], narrow[:, half:], out=table[0, j, :, : width - half]
        )
    for i in range(1, row_levels):
        half, short = 2 ** (i - 1), table[i - 1]
        table[i, :, height - half :] = short[:, height - half :]
        torch.maximum(short[:, : height - half], short[:, half:], out=table[i, :, : height - half])
    return table.view(-1, channels)


def _keys(x: Tensor) -> Tensor:
    """``[C, H, W]`` values -> ``[H, W, C]`` int64 keys whose max is the max value and, among
    equal values, the first cell in row-major order: ``order(value) * 2**32 + (2**32 - 1 -
    cell)``, ``cell = row * W + col``.

    ``order`` is an integer code that sorts like the values, with NaN made -inf (torchvision
    never picks NaN) and 0.0 and -0.0 equal. For float32 it is the bit pattern read as an
    integer, negated (sign-magnitude to two's complement) for negative numbers; for float64,
    whose bit pattern leaves no room, it is the rank among the map's values."""
    x = torch.nan_to_num(x, nan=-math.inf, posinf=math.inf, neginf=-math.inf)
    x = x.permute(1, 2, 0).contiguous()
    if x.dtype == torch.float32:
        bits = x.view(torch.int32)
        order = torch.where(bits < 0, -(bits & 0x7FFFFFFF), bits).long()
    else:
        order = torch.unique(torch.where(x == 0, 0.0, x), return_inverse=True)[1]
    height, width, _ = x.shape
    cell = torch.arange(height * width, device=x.device).view(height, width, 1)
    return (order << 32) | ((2**32 - 1) - cell)


def _bin_edges(
    low: Tensor, high: Tensor, bins: int, scale: Tensor, size: int
) -> tuple[Tensor, Tensor]:
    """Cell ranges ``[start, end)`` (two ``[K, bins]`` int64 tensors, clamped to ``[0, size]``)
    of the bins of RoIs from ``low`` to ``high`` (image pixels, ``[K]``) along one axis.

    All arithmetic is in the RoIs' dtype, as torchvision's kernel does it, so that floor and
    ceil see exactly the same values."""
    first = _round_half_away(low * scale)
    last = _round_half_away(high * scale)
    span = (last - first + 1).clamp(min=1)
    bin_size = span.to(low.dtype) / bins
    steps = torch.arange(bins + 1, device=low.device).to(low.dtype)
    edges = steps * bin_size[:, None]  # [K, bins + 1]
    start = torch.floor(edges[:, :-1]).long() + first[:, None]
    end = torch.ceil(edges[:, 1:]).long() + first[:, None]
    return start.clamp(0, size), end.clamp(0, size)


def _round_half_away(values: Tensor) -> Tensor:
    """C's ``round``: to the nearest integer, halves away from zero (``torch.round`` rounds
    halves to even), as int64. ``values - trunc(values)`` is exact, so no value is misrounded."""
    whole = torch.trunc(values)
    up = (values - whole).abs() >= 0.5
    return (whole + torch.where(up, torch.sign(values), 0)).long()


def check_features(features: Tensor) -> None:
    if not isinstance(features, Tensor):
        raise TypeError(
            f"features must be a torch.Tensor [B, C, H, W], got {type(features).__name__}"
        )
    if features.ndim != 4:
        raise ValueError(f"features must have shape [B, C, H, W], got {list(features.shape)}")
    if features.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"features must be float32 or float64, got {features.dtype}")


def check_output_size(output_size: int | Sequence[int]) -> tuple[int, int]:
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
    if isinstance(spatial_scale, bool) or not isinstance(spatial_scale, numbers.Real):
        raise TypeError(f"spatial_scale must be a number, got {type(spatial_scale).__name__}")
    if not 0 < float(spatial_scale) < float("inf"):
        raise ValueError(f"spatial_scale must be positive and finite, got {spatial_scale}")
    return float(spatial_scale)


def check_rois(rois: Tensor | Sequence[Tensor], batch: int, features: Tensor) -> Tensor:
    """Validate ``rois`` and return them as ``[K, 5]`` in the dtype and device of ``features``."""
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
