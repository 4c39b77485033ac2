"""Mistakes in the anchors of lesson 02: the first cell's anchors (``check_anchor_base``:
``fn(stride, ratios, scales) -> [A, 4]``) and the anchors of every cell (``check_grid_anchors``:
``fn(base [A, 4], (H, W), stride) -> [H * W * A, 4]``, row-major)."""

from __future__ import annotations

import torch

from tutorial_det.exercises.core import Catalogue

ANCHOR_BASE = Catalogue()
GRID_ANCHORS = Catalogue()


def _boxes(width, height, centre_x, centre_y):
    """xyxy boxes ``[A, 4]`` from ``[A]`` widths and heights around one centre."""
    return torch.stack(
        (centre_x - width / 2, centre_y - height / 2, centre_x + width / 2, centre_y + height / 2),
        dim=1,
    )


def _sides(stride, ratios, scales):
    """Heights and widths ``[A]``, ratio by ratio, scale by scale within a ratio (right)."""
    root = torch.tensor(ratios, dtype=torch.float64).sqrt()[:, None]
    size = stride * torch.tensor(scales, dtype=torch.float64)[None, :]
    return (size * root).flatten(), (size / root).flatten()


@ANCHOR_BASE.add(
    "Your anchors have width and height swapped: ratio = h / w (ratio 2 is twice as high as "
    "wide), and the columns are x1, y1, x2, y2."
)
def anchors_ratio_w_over_h(stride, ratios, scales):
    height, width = _sides(stride, ratios, scales)
    return _boxes(height, width, stride / 2, stride / 2).float()  # ratio read as w / h


@ANCHOR_BASE.add(
    "Your anchors are centred on (0, 0); the first cell covers pixels 0 to stride, so its centre "
    "is (stride / 2, stride / 2)."
)
def anchors_centred_on_origin(stride, ratios, scales):
    height, width = _sides(stride, ratios, scales)
    return _boxes(width, height, 0.0, 0.0).float()


@ANCHOR_BASE.add(
    'You centre the anchors on (stride - 1) / 2, the "+1 pixel" convention; without it the first '
    "cell's centre is stride / 2."
)
def anchors_plus_one_centre(stride, ratios, scales):
    height, width = _sides(stride, ratios, scales)
    centre = (stride - 1) / 2
    return _boxes(width, height, centre, centre).float()


@ANCHOR_BASE.add(
    "Your anchors are (centre x, centre y, width, height); boxes in this course are corners, "
    "x1, y1, x2, y2."
)
def anchors_cxcywh(stride, ratios, scales):
    height, width = _sides(stride, ratios, scales)
    centre = torch.full_like(width, stride / 2)
    return torch.stack((centre, centre, width, height), dim=1).float()


@ANCHOR_BASE.add(
    "Your anchors are twice too large: the corners are half a width and half a height from the "
    "centre (x1 = cx - w / 2)."
)
def anchors_twice_too_large(stride, ratios, scales):
    height, width = _sides(stride, ratios, scales)
    return _boxes(2 * width, 2 * height, stride / 2, stride / 2).float()


@ANCHOR_BASE.add(
    "Your anchors go scale by scale, with the ratios inside; anchor i * len(scales) + j has "
    "ratios[i] and scales[j] (loop over the ratios outside)."
)
def anchors_scales_outside(stride, ratios, scales):
    root = torch.tensor(ratios, dtype=torch.float64).sqrt()[None, :]
    size = stride * torch.tensor(scales, dtype=torch.float64)[:, None]  # scales along the rows
    height, width = (size * root).flatten(), (size / root).flatten()
    return _boxes(width, height, stride / 2, stride / 2).float()


@ANCHOR_BASE.add(
    "Your anchors are scale pixels wide, not stride x scale: a scale-8 anchor at stride 16 is "
    "128 pixels on a side (at ratio 1)."
)
def anchors_without_stride(stride, ratios, scales):
    height, width = _sides(1, ratios, scales)
    return _boxes(width, height, stride / 2, stride / 2).float()


@ANCHOR_BASE.add(
    "You multiply the height by the ratio and keep the width; the area must stay (stride x "
    "scale)^2, so h = size x sqrt(ratio) and w = size / sqrt(ratio)."
)
def anchors_without_sqrt(stride, ratios, scales):
    size = stride * torch.tensor(scales, dtype=torch.float64)[None, :]
    height = (size * torch.tensor(ratios, dtype=torch.float64)[:, None]).flatten()
    width = size.expand(len(ratios), -1).flatten()
    return _boxes(width, height, stride / 2, stride / 2).float()


# --------------------------------------------------------------------------- grid anchors


def _shifts(rows, columns, stride, device):
    """``[rows * columns, 4]`` shifts (x, y, x, y), row-major (right)."""
    y, x = torch.meshgrid(
        torch.arange(rows, device=device) * stride,
        torch.arange(columns, device=device) * stride,
        indexing="ij",
    )
    return torch.stack((x, y, x, y), dim=-1).reshape(-1, 4)


@GRID_ANCHORS.add(
    "Your anchors come column by column (x in the outer loop, the walkthrough's order); the "
    "head's (N, H, W, A) output goes row by row, so loop over rows (y) outside."
)
def grid_column_major(base, feature_size, stride):
    rows, columns = feature_size
    out = [
        base + base.new_tensor([j, i, j, i]) * stride for j in range(columns) for i in range(rows)
    ]
    return torch.cat(out) if out else base.new_zeros(0, 4)


@GRID_ANCHORS.add(
    "Your anchors come anchor by anchor (all cells for anchor 0, then anchor 1, ...); the A "
    "anchors of one cell must stay together: index (i * W + j) * A + a."
)
def grid_anchor_major(base, feature_size, stride):
    shifts = _shifts(*feature_size, stride, base.device)
    return (base[:, None, :] + shifts[None, :, :]).reshape(-1, 4)  # [A, H * W, 4]


@GRID_ANCHORS.add(
    "You read feature_size as (W, H); it is (H, W): rows first, as in a tensor's shape."
)
def grid_width_first(base, feature_size, stride):
    columns, rows = feature_size
    return (_shifts(rows, columns, stride, base.device)[:, None, :] + base).reshape(-1, 4)


@GRID_ANCHORS.add(
    "Your cells are 16 pixels apart whatever the stride: shift them by the stride passed in."
)
def grid_fixed_stride(base, feature_size, stride):
    return (_shifts(*feature_size, 16, base.device)[:, None, :] + base).reshape(-1, 4)


@GRID_ANCHORS.add(
    "Your shift vector is (x, x, y, y); the boxes are x1, y1, x2, y2, so it must be (x, y, x, y)."
)
def grid_shift_xxyy(base, feature_size, stride):
    shifts = _shifts(*feature_size, stride, base.device)[:, [0, 2, 1, 3]]
    return (shifts[:, None, :] + base).reshape(-1, 4)


@GRID_ANCHORS.add(
    "You move the anchors by (j + 0.5) x stride, but the base anchors already sit on the first "
    "cell's centre: move them by j x stride."
)
def grid_half_cell_twice(base, feature_size, stride):
    shifts = _shifts(*feature_size, stride, base.device) + stride / 2
    return (shifts[:, None, :] + base).reshape(-1, 4)
