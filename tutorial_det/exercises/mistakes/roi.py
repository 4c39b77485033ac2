"""Mistakes in the RoI max pooling of lesson 05 (``check_roi_pool``: ``fn(features [B, C, H, W],
rois [K, 5], output_size, spatial_scale) -> [K, C, h, w]``, torchvision.ops.roi_pool's contract).

The right steps, written out in :func:`_pool_by_hand`: scale each RoI's corners to cells and round
them (halves away from zero); the RoI spans ``x2 - x1 + 1`` cells (at least 1); bin ``b`` of ``n``
covers cells ``floor(b * span / n)`` to ``ceil((b + 1) * span / n) - 1`` from the first cell,
clamped to the map; its value is the maximum of those cells, 0 when none is left. Each mistake
swaps one step for a wrong one."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tutorial_det.exercises.core import Catalogue

ROI_POOL = Catalogue()


def _round_half_away(value):
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _rounded(corners, spatial_scale):
    """Right: scaled corners rounded to the nearest cell, halves away from zero."""
    return [_round_half_away(v * spatial_scale) for v in corners]


def _span(first, last):
    """Right: the RoI includes its last cell, and covers at least one."""
    return max(last - first + 1, 1)


def _bin_cells(first, span, b, bins, size):
    """Right: cells ``[floor(b * span / n), ceil((b + 1) * span / n))`` after ``first``, on the
    map. The bin size is computed in float32, as torchvision does."""
    bin_size = torch.tensor(float(span)) / bins
    start = first + int(torch.floor(b * bin_size))
    end = first + int(torch.ceil((b + 1) * bin_size))
    return range(min(max(start, 0), size), min(max(end, 0), size))


def _pool_by_hand(
    features,
    rois,
    output_size,
    spatial_scale,
    corners=_rounded,
    span=_span,
    bin_cells=_bin_cells,
    empty=0.0,
):
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    _, channels, height, width = features.shape
    out = features.new_zeros(len(rois), channels, out_h, out_w)
    for k, roi in enumerate(rois.tolist()):
        image = int(roi[0])
        x1, y1, x2, y2 = corners(roi[1:], spatial_scale)
        rows, cols = span(y1, y2), span(x1, x2)
        for i in range(out_h):
            ys = bin_cells(y1, rows, i, out_h, height)
            for j in range(out_w):
                xs = bin_cells(x1, cols, j, out_w, width)
                if len(ys) and len(xs):
                    out[k, :, i, j] = features[
                        image, :, ys.start : ys.stop, xs.start : xs.stop
                    ].amax(dim=(1, 2))
                else:
                    out[k, :, i, j] = empty
    return out


@ROI_POOL.add(
    "You truncate the scaled corners (int() or .long(), as the walkthrough does), which crops up "
    "to a cell up and left of roi_pool: round them to the nearest cell."
)
def roi_pool_truncates(features, rois, output_size, spatial_scale):
    def truncated(corners, scale):
        return [int(v * scale) for v in corners]

    return _pool_by_hand(features, rois, output_size, spatial_scale, corners=truncated)


@ROI_POOL.add(
    "Your rounding sends halves to the even cell (Python's round and torch.round do); RoI "
    "pooling rounds halves away from zero, like C's round: 2.5 is cell 3."
)
def roi_pool_rounds_half_to_even(features, rois, output_size, spatial_scale):
    def half_to_even(corners, scale):
        return [round(v * scale) for v in corners]

    return _pool_by_hand(features, rois, output_size, spatial_scale, corners=half_to_even)


@ROI_POOL.add(
    "Your RoI leaves out its last cell (x2 - x1 cells); the corners are both inside it, so it "
    "spans x2 - x1 + 1 cells."
)
def roi_pool_without_last_cell(features, rois, output_size, spatial_scale):
    return _pool_by_hand(
        features, rois, output_size, spatial_scale, span=lambda first, last: max(last - first, 1)
    )


@ROI_POOL.add(
    "Your bins end at floor((b + 1) x span / n); they end at the ceiling, so that neighbouring "
    "bins may share a cell and no bin is empty."
)
def roi_pool_floor_bin_ends(features, rois, output_size, spatial_scale):
    def floor_ends(first, span, b, bins, size):
        start = first + (b * span) // bins
        end = first + ((b + 1) * span) // bins
        return range(min(max(start, 0), size), min(max(end, 0), size))

    return _pool_by_hand(features, rois, output_size, spatial_scale, bin_cells=floor_ends)


@ROI_POOL.add(
    "You read output_size as (width, height); it is (height, width): output_size[0] bins down "
    "the rows."
)
def roi_pool_size_width_first(features, rois, output_size, spatial_scale):
    if not isinstance(output_size, int):
        output_size = (output_size[1], output_size[0])
    return _pool_by_hand(features, rois, output_size, spatial_scale)


@ROI_POOL.add(
    "You pool every RoI from the first image; column 0 of a RoI says which image of the batch "
    "it is on."
)
def roi_pool_first_image_only(features, rois, output_size, spatial_scale):
    return _pool_by_hand(
        features[:1], rois * torch.tensor([0.0, 1, 1, 1, 1]), output_size, spatial_scale
    )


@ROI_POOL.add("Your bins that fall off the map are -inf; a bin with no cell on the map is 0.")
def roi_pool_empty_bins_minus_inf(features, rois, output_size, spatial_scale):
    return _pool_by_hand(features, rois, output_size, spatial_scale, empty=-math.inf)


@ROI_POOL.add("You divide the corners by spatial_scale; it is cells per pixel (1/16), so multiply.")
def roi_pool_divides_by_scale(features, rois, output_size, spatial_scale):
    return _pool_by_hand(features, rois, output_size, 1 / spatial_scale)


@ROI_POOL.add(
    "You cut the RoI out of the map and pool the crop; where the RoI leaves the map the crop is "
    "smaller or empty and the bins move: place the bins on the whole RoI, then clamp each bin."
)
def roi_pool_crops(features, rois, output_size, spatial_scale):
    pooled = []
    for roi in rois.tolist():
        x1, y1, x2, y2 = _rounded(roi[1:], spatial_scale)
        crop = features[int(roi[0]), :, max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1]
        pooled.append(F.adaptive_max_pool2d(crop, output_size))
    return torch.stack(pooled) if pooled else features.new_zeros(0, features.shape[1], 1, 1)
